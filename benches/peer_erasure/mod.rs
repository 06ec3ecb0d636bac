//! The erasure of one subject with a peer on loopback, through two real `pods node start`
//! daemons: clinic `a` holds 1,000,000 records of 100,000 subjects and exports its study
//! stream to `b`, which mirrors it and holds 1,000,000 records of its own. A subject whose
//! visits went to `b` is erased at `a` through the admin API (as `pods subject erase --wait`
//! does): `a` erases locally, asks `b`, `b` erases, audits and signs an acknowledgement, and `a`
//! records it in the receipt. Timed from the request until the receipt `a` serves holds `b`'s
//! acknowledgement (read every millisecond). Baseline in the same run: the erasure through the
//! same daemon of a subject whose data went nowhere.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pods_node::admin::api::{ImportRequest, PolicyLoad};
use pods_node::admin::client::AdminClient;
use pods_node::privacy::{ErasureReceipt, Format, ImportReport, SubjectExport};
use pods_policy::{Category, Consent, Grant, Purpose};

type Error = Box<dyn std::error::Error>;

const SUBJECTS: usize = 100_000;
const PER_SUBJECT: usize = 10;
/// Records per import request.
const CHUNK: usize = 100_000;
const STREAM: &str = "/clinic/workflows/study/stream";
/// The subjects measured: the first half's visits go to `b`, the second half's stay at `a`.
const MEASURED: [usize; 10] = [
    500, 20_000, 41_100, 77_700, 99_900, 1_500, 30_000, 51_100, 87_700, 99_990,
];

const POLICY_A: &str = r#"[[purpose]]
name = "research"

[[dataset]]
name = "patients"
subject = "pid"
columns = { pid = "identity.id", name = "contact.name", pulse = "health.pulse" }

[[dataset]]
name = "visits"
subject = "pid"
columns = { pid = "identity.id", name = "contact.name", pulse = "health.pulse" }
feed = "/clinic/generators/visits"

[[workflow]]
path = "/clinic/workflows/study"
purpose = "research"
basis = "legitimate_interests"

[[workflow]]
path = "/clinic/workflows/care"
purpose = "research"
basis = "consent"

[[export]]
path = "/clinic/workflows/study/stream"
purpose = "research"
basis = "consent"
"#;

const POLICY_B: &str = r#"[[purpose]]
name = "research"

[[dataset]]
name = "patients"
subject = "pid"
columns = { pid = "identity.id", name = "contact.name", pulse = "health.pulse" }
"#;

/// A daemon, killed when dropped.
struct Daemon(Child);

impl Daemon {
    fn start(dir: &Path) -> Result<Daemon, Error> {
        let child = Command::new(env!("CARGO_BIN_EXE_pods"))
            .args(["node", "start", "--data-dir"])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let daemon = Daemon(child);
        wait(Duration::from_secs(30), "the admin API", || {
            Ok(dir.join("admin.json").exists())
        })?;
        Ok(daemon)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until `done`, checking every 20 ms, at most `limit`.
fn wait(
    limit: Duration,
    what: &str,
    mut done: impl FnMut() -> Result<bool, Error>,
) -> Result<(), Error> {
    let end = Instant::now() + limit;
    while !done()? {
        if Instant::now() > end {
            return Err(format!("{what}: not ready within {limit:?}").into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// `pods init`; the node's PeerId.
fn init(dir: &Path, name: &str) -> Result<String, Error> {
    let out = Command::new(env!("CARGO_BIN_EXE_pods"))
        .args(["init", "--name", name, "--data-dir"])
        .arg(dir)
        .output()?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned().into());
    }
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}

fn port() -> Result<String, Error> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    Ok(format!("/ip4/127.0.0.1/tcp/{port}"))
}

/// Two configured data dirs under `root`: `a` exporting the study stream to `b`.
fn configure(root: &Path) -> Result<(PathBuf, PathBuf), Error> {
    let (a, b) = (root.join("a"), root.join("b"));
    let (a_id, b_id) = (init(&a, "a")?, init(&b, "b")?);
    let (a_addr, b_addr) = (port()?, port()?);
    let mut s = pods_node::Settings::load(&a)?;
    s.listen = vec![a_addr.clone()];
    s.apps = vec!["clinic".into()];
    s.peers = vec![pods_node::Peer {
        name: "b".into(),
        peer_id: b_id,
        address: b_addr.clone(),
    }];
    s.exports = vec![pods_node::Export {
        path: STREAM.into(),
        allow: vec!["b".into()],
    }];
    s.save(&a)?;
    let mut s = pods_node::Settings::load(&b)?;
    s.listen = vec![b_addr];
    s.apps = vec!["research".into()];
    s.peers = vec![pods_node::Peer {
        name: "a".into(),
        peer_id: a_id,
        address: a_addr,
    }];
    s.imports = vec![pods_node::Import {
        from: format!("/peers/a{STREAM}"),
        into: "/research/generators/visits".into(),
    }];
    s.save(&b)?;
    Ok((a, b))
}

/// Imports `rows` (CSV lines after the header) into `dataset`, in requests of [`CHUNK`].
fn import(node: &AdminClient, dataset: &str, rows: &[String]) -> Result<u64, Error> {
    let mut imported = 0;
    for chunk in rows.chunks(CHUNK) {
        let mut text = String::from("pid,name,pulse\n");
        for r in chunk {
            text.push_str(r);
            text.push('\n');
        }
        let report: ImportReport = node.post(
            &format!("/data/{dataset}"),
            &ImportRequest {
                format: Format::Csv,
                text,
                skip_bad: false,
            },
        )?;
        imported += report.imported;
    }
    Ok(imported)
}

/// `who`'s records of the bulk dataset at the node named `node`.
fn records(node: &str) -> Vec<String> {
    (0..PER_SUBJECT)
        .flat_map(|r| (0..SUBJECTS).map(move |s| (r, s)))
        .map(|(r, s)| format!("s{s},{node} name {s} {r},{}", 60 + (s + r) % 40))
        .collect()
}

/// Erases `subject` at `node` and waits until no peer is pending; the time to the erasure's
/// answer and to the last acknowledgement.
fn erase(node: &AdminClient, subject: &str) -> Result<(Duration, Duration), Error> {
    let t = Instant::now();
    let mut receipt: ErasureReceipt = node.post(&format!("/subjects/{subject}/erase"), &())?;
    let local = t.elapsed();
    if receipt.erased.records < PER_SUBJECT as u64 {
        return Err(format!("{subject}: {} records erased", receipt.erased.records).into());
    }
    while receipt.pending() {
        if t.elapsed() > Duration::from_secs(60) {
            return Err(format!("{subject}: no acknowledgement within 60 s").into());
        }
        std::thread::sleep(Duration::from_millis(1));
        receipt = node.get(&format!("/subjects/{subject}/erasure"))?;
    }
    Ok((local, t.elapsed()))
}

/// The median of `v` (not empty).
pub fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Runs the measurement and prints it.
pub fn run() -> Result<(), Error> {
    let root = tempfile::tempdir()?;
    let (a_dir, b_dir) = configure(root.path())?;
    let _a_daemon = Daemon::start(&a_dir)?;
    let _b_daemon = Daemon::start(&b_dir)?;
    let (a, b) = (AdminClient::for_dir(&a_dir)?, AdminClient::for_dir(&b_dir)?);
    for (node, text) in [(&a, POLICY_A), (&b, POLICY_B)] {
        let _: serde_json::Value = node.post(
            "/policy",
            &PolicyLoad {
                name: "policy.toml".into(),
                text: text.into(),
            },
        )?;
    }
    let started = Instant::now();
    for (node, name) in [(&a, "a"), (&b, "b")] {
        eprintln!(
            "importing {} records of {SUBJECTS} subjects at {name}…",
            SUBJECTS * PER_SUBJECT
        );
        let n = import(node, "patients", &records(name))?;
        if n != (SUBJECTS * PER_SUBJECT) as u64 {
            return Err(format!("{n} records imported at {name}").into());
        }
    }
    eprintln!("imported in {:.1?}", started.elapsed());

    // The first half's visits go to b (consent for the export's purpose).
    let (sent, kept) = MEASURED.split_at(MEASURED.len() / 2);
    for s in sent {
        let _: Consent = a.post(
            "/consents",
            &Grant {
                subject: format!("s{s}"),
                purposes: vec![Purpose::new("research")?],
                categories: ["identity", "contact", "health"]
                    .into_iter()
                    .map(Category::new)
                    .collect::<Result<_, _>>()?,
                expires_at: None,
                source: "bench".into(),
            },
        )?;
    }
    let visits: Vec<String> = sent
        .iter()
        .map(|s| format!("s{s},visit of s{s},70"))
        .collect();
    import(&a, "visits", &visits)?;
    for s in sent {
        wait(Duration::from_secs(60), "the visits reaching b", || {
            let export: SubjectExport = a.get(&format!("/subjects/s{s}"))?;
            Ok(export.recipients.iter().any(|r| r.peer == "b"))
        })?;
    }

    let mut local = Vec::new();
    for s in kept {
        local.push(erase(&a, &format!("s{s}"))?.0);
    }
    let (mut here, mut acknowledged) = (Vec::new(), Vec::new());
    for s in sent {
        let (h, all) = erase(&a, &format!("s{s}"))?;
        here.push(h);
        acknowledged.push(all);
    }
    let (local, here, acknowledged) = (
        median(&mut local),
        median(&mut here),
        median(&mut acknowledged),
    );
    println!(
        "erasure through the daemon, {} records at each node, median of {}",
        SUBJECTS * PER_SUBJECT,
        sent.len()
    );
    println!("  no peer (baseline)                {local:>10.2?}");
    println!("  with one peer: answered here      {here:>10.2?}");
    println!(
        "  with one peer: peer acknowledged  {acknowledged:>10.2?}  {:.1}x baseline  target <= 1 s: {}",
        acknowledged.as_secs_f64() / local.as_secs_f64().max(1e-9),
        if acknowledged.as_secs_f64() <= 1.0 {
            "met"
        } else {
            "MISSED"
        }
    );
    Ok(())
}
