//! `pods peer …` and `pods status`: requests to a running node's admin API.

use std::path::Path;

use pods_node::admin::api::{NewPeer, PeerInfo, Status};
use pods_node::admin::client::AdminClient;

pub fn add(dir: &Path, name: String, peer_id: String, address: String) -> anyhow::Result<()> {
    let client = AdminClient::for_dir(dir)?;
    let added: NewPeer = client.post(
        "/peers",
        &NewPeer {
            name,
            peer_id,
            address,
        },
    )?;
    eprintln!(
        "peer {} added ({} at {})",
        added.name, added.peer_id, added.address
    );
    Ok(())
}

pub fn remove(dir: &Path, name: &str) -> anyhow::Result<()> {
    AdminClient::for_dir(dir)?.delete(&format!("/peers/{name}"))?;
    eprintln!("peer {name} removed: its connections are closed and its requests refused");
    Ok(())
}

pub fn list(dir: &Path) -> anyhow::Result<()> {
    let peers: Vec<PeerInfo> = AdminClient::for_dir(dir)?.get("/peers")?;
    if peers.is_empty() {
        eprintln!("no peers; add one with `pods peer add NAME PEER_ID MULTIADDR`");
    }
    for p in peers {
        let state = if p.connected {
            "connected"
        } else {
            "not connected"
        };
        println!("{}\t{}\t{}\t{state}", p.name, p.peer_id, p.address);
    }
    Ok(())
}

pub fn status(dir: &Path, json: bool) -> anyhow::Result<()> {
    let s: Status = AdminClient::for_dir(dir)?.get("/status")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(());
    }
    println!("node {} ({})", s.name, s.peer_id);
    println!("listening on {}", s.listen.join(", "));
    println!("peers:");
    if s.peers.is_empty() {
        println!("  none");
    }
    for p in &s.peers {
        let state = if p.connected {
            "connected"
        } else {
            "not connected"
        };
        println!("  {} {} {} {state}", p.name, p.peer_id, p.address);
    }
    println!("apps:");
    if s.apps.is_empty() {
        println!("  none");
    }
    for a in &s.apps {
        println!("  {}", a.name);
        for (path, w) in &a.workflows {
            let last = w.last_commit_ms.map_or("never in this run".to_owned(), ago);
            println!(
                "    {path}: {} atoms committed ({} steps), last commit {last}",
                w.atoms, w.steps
            );
        }
    }
    for i in &s.imports {
        match &i.stopped {
            None => println!("import {} -> {}: {} atoms taken", i.from, i.into, i.next),
            Some(why) => println!(
                "import {} -> {}: stopped after {} atoms: {why}",
                i.from, i.into, i.next
            ),
        }
    }
    for e in &s.erasures {
        println!(
            "erasure {} pending at {} (retried until they acknowledge)",
            e.subject,
            e.peers.join(", ")
        );
    }
    for r in &s.rectifications {
        println!(
            "rectification {} pending at {} (retried until they apply it)",
            r.subject,
            r.peers.join(", ")
        );
    }
    if s.asks_out > 0 {
        println!("asks to peers waiting for replies: {}", s.asks_out);
    }
    Ok(())
}

fn ago(ms: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    format!("{:.1} s ago", now.saturating_sub(ms) as f64 / 1000.0)
}
