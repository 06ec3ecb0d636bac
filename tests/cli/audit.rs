//! `pods audit` end to end: a daemon's acts in its audit log, shown by `pods audit tail`,
//! verified offline by `pods audit verify`, and a row edited in audit.db named.

use std::time::Duration;

use pods_policy::audit::Entry;

use crate::nodes::{Daemon, ok};
use crate::pods;

#[test]
fn a_daemons_acts_are_audited_tailed_and_an_edited_row_is_named() {
    let _dog = crate::watchdog("audit", 120);
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("a");
    let d = dir.to_str().unwrap();
    ok(&["init", "--data-dir", d, "--name", "a"]);
    let other = libp2p::identity::Keypair::generate_ed25519()
        .public()
        .to_peer_id()
        .to_string();

    let node = Daemon::start(&dir);
    ok(&[
        "peer",
        "add",
        "b",
        &other,
        "/ip4/127.0.0.1/tcp/9",
        "--data-dir",
        d,
    ]);
    let tail = ok(&["audit", "tail", "--data-dir", d]);
    let lines: Vec<&str> = tail.lines().collect();
    assert_eq!(lines.len(), 3, "{tail}");
    let fields: Vec<Vec<&str>> = lines.iter().map(|l| l.split('\t').collect()).collect();
    assert_eq!(
        fields
            .iter()
            .map(|f| (f[0], f[2], f[3]))
            .collect::<Vec<_>>(),
        vec![
            ("0", "admin", "node.init"),
            ("1", "node", "node.start"),
            ("2", "admin", "peer.add")
        ],
        "{tail}"
    );
    assert!(fields[2][1].ends_with('Z'), "a UTC time: {tail}");
    assert!(fields[2][4].contains(&other), "the peer's PeerId: {tail}");
    let last: Vec<Entry> = serde_json::from_str(&ok(&[
        "audit",
        "tail",
        "-n",
        "1",
        "--json",
        "--data-dir",
        d,
    ]))
    .expect("entries as JSON");
    assert_eq!(last.len(), 1);
    assert_eq!((last[0].seq, last[0].action.as_str()), (2, "peer.add"));
    assert_eq!(last[0].detail["name"], "b");
    // Offline verification works while the node runs, too.
    let verified = ok(&["audit", "verify", "--data-dir", d]);
    assert!(
        verified.starts_with("audit log verified: 3 entries"),
        "{verified}"
    );
    ok(&["peer", "remove", "b", "--data-dir", d]);
    assert!(node.terminate().success());

    let verified = ok(&["audit", "verify", "--data-dir", d]);
    assert!(
        verified.starts_with("audit log verified: 5 entries"),
        "peer.remove and node.stop: {verified}"
    );

    let db = rusqlite::Connection::open(dir.join("audit.db")).unwrap();
    db.execute(
        "UPDATE entries SET detail = '{\"name\":\"c\"}' WHERE seq = 3",
        [],
    )
    .unwrap();
    drop(db);
    let (ok_after, stdout, stderr) = pods(
        &["audit", "verify", "--data-dir", d],
        Duration::from_secs(30),
    );
    assert!(!ok_after, "a tampered log fails: {stdout}");
    assert!(
        stderr.contains("entry 3 was edited") && stderr.contains("audit.db"),
        "{stderr}"
    );
}
