//! The privacy commands against a running daemon hosting the stock `clinic` app: a policy
//! loaded (a bad one refused with its locations), consents granted and withdrawn, records
//! imported (a file with a bad row refused whole) and fed to the workflows through the policy
//! gate, whose decisions `pods status` shows; a subject restricted, exported, rectified.

use std::time::Duration;

use pods_node::privacy::SubjectExport;
use pods_policy::Reason;

use crate::nodes::{Daemon, free_port, ok, status, wait_for};
use crate::pods;

const POLICY: &str = r#"[[purpose]]
name = "research.cardiology"

[[purpose]]
name = "care"

[[dataset]]
name = "patients"
subject = "pid"
columns = { pid = "identity.id", name = "contact.name", pulse = "health.pulse" }
feed = "/clinic/generators/visits"

[[workflow]]
path = "/clinic/workflows/study"
purpose = "research.cardiology"
basis = "consent"
redact = "patients"

[[workflow]]
path = "/clinic/workflows/care"
purpose = "care"
basis = "contract"
"#;

/// `true` if any file in `dir` (database, WAL, logs) holds `marker`.
pub(crate) fn scan(dir: &std::path::Path, marker: &str) -> bool {
    std::fs::read_dir(dir).unwrap().any(|e| {
        let bytes = std::fs::read(e.unwrap().path()).unwrap_or_default();
        bytes.windows(marker.len()).any(|w| w == marker.as_bytes())
    })
}

/// A data dir `ROOT/clinic`, set up to host the stock `clinic` app on a free loopback port.
fn clinic_dir(root: &std::path::Path) -> std::path::PathBuf {
    let dir = root.join("clinic");
    ok(&[
        "init",
        "--data-dir",
        dir.to_str().unwrap(),
        "--name",
        "clinic",
    ]);
    let mut s = pods_node::Settings::load(&dir).unwrap();
    s.listen = vec![format!("/ip4/127.0.0.1/tcp/{}", free_port())];
    s.apps = vec!["clinic".into()];
    s.save(&dir).unwrap();
    dir
}

/// Writes `text` to `ROOT/name`; returns the file's path.
fn write(root: &std::path::Path, name: &str, text: &str) -> String {
    let f = root.join(name);
    std::fs::write(&f, text).unwrap();
    f.to_str().unwrap().to_owned()
}

/// Starts the daemon of `dir` with the failpoint `spec` (`name:n`) armed, once it serves.
fn start_to_abort(dir: &std::path::Path, spec: &str) -> std::process::Child {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_pods"))
        .args(["node", "start", "--data-dir", dir.to_str().unwrap()])
        .env(pods_node::failpoint::VARIABLE, spec)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for(Duration::from_secs(30), || dir.join("admin.json").exists());
    child
}

fn fails(args: &[&str]) -> String {
    let (ok, _, stderr) = pods(args, Duration::from_secs(30));
    assert!(!ok, "pods {args:?} should have failed");
    stderr
}

/// The (subject, name) of every record logged on the clinic's fed stream, in order.
fn visit_names(dir: &std::path::Path) -> Vec<(String, Option<String>)> {
    logged_names(dir, "/clinic/generators/visits/stream")
}

/// The (subject, name) of every record logged on `stream` in the data dir `dir`, in order.
pub(crate) fn logged_names(dir: &std::path::Path, stream: &str) -> Vec<(String, Option<String>)> {
    #[derive(serde::Deserialize)]
    struct Columns {
        values: Vec<serde_json::Map<String, serde_json::Value>>,
    }
    let mut reader = pods_node::StreamReader::open(dir).unwrap();
    let pods_node::Pulled::Atoms(atoms) = reader.pull(stream, 0, 100, 1 << 20).unwrap() else {
        panic!("the log of {stream} is not there");
    };
    let mut out = Vec::new();
    for (_, bytes) in atoms {
        let columns: Columns = ciborium::from_reader(bytes.as_slice()).unwrap();
        for v in columns.values {
            let text = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_owned);
            out.push((text("pid").unwrap_or_default(), text("name")));
        }
    }
    out
}

#[test]
fn policy_consents_and_imports_decide_what_each_workflow_receives() {
    let _dog = crate::watchdog("privacy_cli", 120);
    let root = tempfile::tempdir().unwrap();
    let dir = clinic_dir(root.path());
    let d = dir.to_str().unwrap();
    let file = |name: &str, text: &str| write(root.path(), name, text);
    let node = Daemon::start(&dir);

    let bad = file(
        "bad.toml",
        "[[purpose]]\nname = \"care\"\n\n[[workflow]]\npath = \"/clinic/workflows/care\"\npurpose = \"cure\"\nbasis = \"whim\"\n",
    );
    let err = fails(&["policy", "load", &bad, "--data-dir", d]);
    assert!(
        err.contains("bad.toml") && err.contains("nothing was loaded"),
        "{err}"
    );
    assert!(
        err.contains("6:11: purpose `cure` is not declared"),
        "{err}"
    );
    assert!(err.contains("7:9: unknown legal basis `whim`"), "{err}");
    let err = fails(&[
        "consent",
        "grant",
        "ann",
        "--purpose",
        "research",
        "--category",
        "health",
        "--data-dir",
        d,
    ]);
    assert!(
        err.contains("not in the policy"),
        "no policy, no consent: {err}"
    );

    let policy = file("policy.toml", POLICY);
    ok(&["policy", "load", &policy, "--data-dir", d]);
    assert_eq!(ok(&["policy", "show", "--data-dir", d]), POLICY);
    let id = ok(&[
        "consent",
        "grant",
        "ann",
        "--purpose",
        "research",
        "--category",
        "contact",
        "--category",
        "health",
        "--data-dir",
        d,
    ]);
    assert_eq!(id.trim(), "1");
    ok(&[
        "consent",
        "grant",
        "bob",
        "--purpose",
        "research.cardiology",
        "--category",
        "contact",
        "--expires-in",
        "365d",
        "--data-dir",
        d,
    ]);

    let broken = file(
        "broken.csv",
        "pid,name,pulse\nann,Ann,61\n,Nobody,70\nann,Ann,62,extra\n",
    );
    let err = fails(&["data", "import", "patients", &broken, "--data-dir", d]);
    assert!(
        err.contains("line 3") && err.contains("line 4") && err.contains("nothing was imported"),
        "{err}"
    );
    let visits = file(
        "visits.csv",
        "pid,name,pulse\nann,Ann MARKER-ANN,61\nbob,Bob MARKER-BOB,72\ncy,Cy MARKER-CY,80\n",
    );
    ok(&["data", "import", "patients", &visits, "--data-dir", d]);

    // Ann whole, Bob without his pulse (no consent to health), Cy not at all; care, under
    // contract, receives all three.
    let counts = |st: &pods_node::admin::api::Status, path: &str| {
        st.gate.iter().find(|c| c.path == path).cloned()
    };
    wait_for(Duration::from_secs(30), || {
        let st = status(d);
        counts(&st, "/clinic/workflows/care").is_some_and(|c| c.admitted == 3)
            && counts(&st, "/clinic/workflows/study")
                .is_some_and(|c| c.admitted + c.redacted + c.denied.values().sum::<u64>() == 3)
    });
    let st = status(d);
    let study = counts(&st, "/clinic/workflows/study").unwrap();
    assert_eq!((study.admitted, study.redacted), (1, 1));
    assert_eq!(study.denied.get(&Reason::NoConsent), Some(&1));
    assert_eq!(study.purpose.as_deref(), Some("research.cardiology"));

    // Withdrawn and restricted: from the next atom on.
    ok(&["consent", "withdraw", "ann", "--data-dir", d]);
    ok(&["subject", "restrict", "cy", "--data-dir", d]);
    let again = file(
        "again.jsonl",
        "{\"pid\":\"ann\",\"pulse\":\"64\"}\n{\"pid\":\"cy\",\"pulse\":\"81\"}\n",
    );
    ok(&["data", "import", "patients", &again, "--data-dir", d]);
    wait_for(Duration::from_secs(30), || {
        counts(&status(d), "/clinic/workflows/care")
            .is_some_and(|c| c.admitted + c.denied.values().sum::<u64>() == 5)
    });
    let st = status(d);
    let care = counts(&st, "/clinic/workflows/care").unwrap();
    assert_eq!(
        (care.admitted, care.denied.get(&Reason::Restricted)),
        (4, Some(&1))
    );
    let study = counts(&st, "/clinic/workflows/study").unwrap();
    assert_eq!(
        (study.admitted, study.denied.get(&Reason::NoConsent)),
        (1, Some(&2))
    );
    assert_eq!(study.denied.get(&Reason::Restricted), Some(&1));

    let listed = ok(&["consent", "list", "--subject", "ann", "--data-dir", d]);
    assert!(listed.contains("withdrawn at"), "{listed}");
    // The scan works: every subject's marker is in the data dir (the imported records).
    for m in ["MARKER-ANN", "MARKER-BOB", "MARKER-CY"] {
        assert!(scan(&dir, m), "{m} not found before any change");
    }
    let fixed = ok(&[
        "subject",
        "rectify",
        "bob",
        "--dataset",
        "patients",
        "--set",
        "name=Bob Fixed",
        "--data-dir",
        d,
    ]);
    assert_eq!(fixed, "");
    assert!(
        !scan(&dir, "MARKER-BOB"),
        "the old value is gone from every file"
    );
    let bob: SubjectExport =
        serde_json::from_str(&ok(&["subject", "export", "bob", "--data-dir", d])).unwrap();
    assert_eq!(
        bob.records[0].fields.get("name"),
        Some(&serde_json::json!("Bob Fixed"))
    );
    // The copy of Bob's record in the fed stream's log is corrected too; the others are not.
    let names = visit_names(&dir);
    assert_eq!(
        names,
        [
            ("ann".to_owned(), Some("Ann MARKER-ANN".to_owned())),
            ("bob".to_owned(), Some("Bob Fixed".to_owned())),
            ("cy".to_owned(), Some("Cy MARKER-CY".to_owned())),
            ("ann".to_owned(), None),
            ("cy".to_owned(), None),
        ]
    );
    let export: SubjectExport =
        serde_json::from_str(&ok(&["subject", "export", "ann", "--data-dir", d])).unwrap();
    assert_eq!(export.records.len(), 2);
    assert_eq!(export.consents.len(), 1);
    assert!(export.consents[0].withdrawn_at.is_some());
    assert!(!export.restricted);
    let processed: Vec<(&str, &str, u64)> = export
        .processing
        .iter()
        .map(|p| (p.path.as_str(), p.purpose.as_str(), p.events))
        .collect();
    assert_eq!(
        processed,
        vec![
            ("/clinic/workflows/care", "care", 2),
            ("/clinic/workflows/study", "research.cardiology", 1)
        ],
        "care took both of Ann's visits; the study only the one before the withdrawal"
    );

    // Erasure: after it, no file holds Ann's marker, and Cy's is still there.
    let receipt: pods_node::privacy::ErasureReceipt =
        serde_json::from_str(&ok(&["subject", "erase", "ann", "--data-dir", d])).unwrap();
    assert_eq!((receipt.erased.records, receipt.erased.consents), (2, 1));
    assert!(
        receipt.erased.payload_key,
        "her sealed stream payloads had a key"
    );
    assert!(receipt.peers.is_empty());
    assert!(
        !scan(&dir, "MARKER-ANN"),
        "a file still holds the erased subject's data"
    );
    assert!(scan(&dir, "MARKER-CY"));
    let again: pods_node::privacy::ErasureReceipt =
        serde_json::from_str(&ok(&["subject", "erase", "ann", "--data-dir", d])).unwrap();
    assert_eq!(again, receipt, "erasing again gives the same receipt");
    let export: SubjectExport =
        serde_json::from_str(&ok(&["subject", "export", "ann", "--data-dir", d])).unwrap();
    assert!(export.records.is_empty() && export.consents.is_empty());
    assert!(node.terminate().success());

    // Every act is in the audit log, which verifies; denials went there at the latest at stop.
    let verified = ok(&["audit", "verify", "--data-dir", d]);
    assert!(verified.contains("audit log verified"), "{verified}");
    let db = rusqlite::Connection::open(dir.join("audit.db")).unwrap();
    let actions: Vec<String> = db
        .prepare("SELECT action FROM entries ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for act in [
        "policy.load",
        "consent.grant",
        "consent.withdraw",
        "data.import",
        "subject.restrict",
        "subject.rectify",
        "subject.export",
        "gate.denied",
        "subject.erase",
    ] {
        assert!(
            actions.iter().any(|a| a == act),
            "{act} not audited: {actions:?}"
        );
    }
    let details: String = db
        .query_row("SELECT group_concat(detail, ' ') FROM entries", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(
        !details.contains("MARKER"),
        "no personal payload in the audit log"
    );
}

#[test]
fn an_erasure_cut_by_a_crash_completes_at_the_next_start() {
    let _dog = crate::watchdog("erasure_crash", 120);
    let root = tempfile::tempdir().unwrap();
    let dir = clinic_dir(root.path());
    let d = dir.to_str().unwrap();
    let policy = root.path().join("policy.toml");
    std::fs::write(&policy, POLICY).unwrap();
    let visits = root.path().join("v.jsonl");
    std::fs::write(
        &visits,
        "{\"pid\":\"ann\",\"name\":\"MARKER-ANN-1\"}\n{\"pid\":\"bob\",\"name\":\"MARKER-BOB-1\"}\n",
    )
    .unwrap();

    // The daemon aborts right after the local deletion is committed, before the payload key
    // is destroyed and the receipt written.
    let mut child = start_to_abort(&dir, "erase.local:1");
    ok(&["policy", "load", policy.to_str().unwrap(), "--data-dir", d]);
    ok(&[
        "data",
        "import",
        "patients",
        visits.to_str().unwrap(),
        "--data-dir",
        d,
    ]);
    let (erased, _, _) = pods(
        &["subject", "erase", "ann", "--data-dir", d],
        Duration::from_secs(30),
    );
    assert!(!erased, "the daemon was to abort during the erasure");
    let status = child.wait().unwrap();
    assert!(!status.success(), "aborted at the failpoint");
    let _ = std::fs::remove_file(dir.join("admin.json"));

    // The next start finishes it before any app runs; asking again gives the receipt.
    let node = Daemon::start(&dir);
    let receipt: pods_node::privacy::ErasureReceipt =
        serde_json::from_str(&ok(&["subject", "erase", "ann", "--data-dir", d])).unwrap();
    assert_eq!(receipt.erased.records, 0, "the rows went before the crash");
    assert!(!receipt.signature.is_empty());
    let export: SubjectExport =
        serde_json::from_str(&ok(&["subject", "export", "bob", "--data-dir", d])).unwrap();
    assert_eq!(export.records.len(), 1);
    assert!(node.terminate().success());
    let policy_db = std::fs::read(dir.join("policy.db")).unwrap();
    let holds = |m: &str| policy_db.windows(m.len()).any(|w| w == m.as_bytes());
    assert!(!holds("MARKER-ANN-1") && holds("MARKER-BOB-1"));
    let db = rusqlite::Connection::open(dir.join("audit.db")).unwrap();
    let resumed: i64 = db
        .query_row(
            "SELECT count(*) FROM entries WHERE actor = 'node' AND action = 'subject.erase'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(resumed, 1, "the start resumed the erasure");
}

/// Ann's processing by `path`: events admitted.
fn processed(d: &str, subject: &str, path: &str) -> u64 {
    let export: SubjectExport =
        serde_json::from_str(&ok(&["subject", "export", subject, "--data-dir", d])).unwrap();
    export
        .processing
        .iter()
        .filter(|p| p.path == path)
        .map(|p| p.events)
        .sum()
}

#[test]
fn an_import_cut_by_a_crash_is_fed_once_at_the_next_start() {
    let _dog = crate::watchdog("import_crash", 120);
    let root = tempfile::tempdir().unwrap();
    let dir = clinic_dir(root.path());
    let d = dir.to_str().unwrap();
    let file = |name: &str, text: &str| write(root.path(), name, text);
    let policy = file("policy.toml", POLICY);
    let ann = file("ann.csv", "pid,name,pulse\nann,Ann,61\n");
    let bob = file("bob.csv", "pid,name,pulse\nbob,Bob,72\n");

    // The daemon aborts right after the import's records are stored, before they are fed.
    let mut child = start_to_abort(&dir, "import.stored:1");
    ok(&["policy", "load", &policy, "--data-dir", d]);
    let (imported, _, _) = pods(
        &["data", "import", "patients", &ann, "--data-dir", d],
        Duration::from_secs(30),
    );
    assert!(!imported, "the daemon was to abort during the import");
    assert!(!child.wait().unwrap().success(), "aborted at the failpoint");
    let _ = std::fs::remove_file(dir.join("admin.json"));

    // The next start feeds Ann's visit to the workflows; a later import follows it, and
    // Ann's visit was taken once.
    let node = Daemon::start(&dir);
    const CARE: &str = "/clinic/workflows/care";
    wait_for(Duration::from_secs(60), || processed(d, "ann", CARE) >= 1);
    ok(&["data", "import", "patients", &bob, "--data-dir", d]);
    wait_for(Duration::from_secs(60), || processed(d, "bob", CARE) >= 1);
    assert_eq!(processed(d, "ann", CARE), 1, "fed once");
    assert!(node.terminate().success());
    // A second start feeds nothing again.
    let node = Daemon::start(&dir);
    ok(&["data", "import", "patients", &bob, "--data-dir", d]);
    wait_for(Duration::from_secs(60), || processed(d, "bob", CARE) >= 2);
    assert_eq!(
        processed(d, "ann", CARE),
        1,
        "still once after another restart"
    );
    assert!(node.terminate().success());
    // The import the crash cut is audited by the start that finished it.
    let db = rusqlite::Connection::open(dir.join("audit.db")).unwrap();
    let resumed: Vec<String> = db
        .prepare("SELECT detail FROM entries WHERE actor = 'node' AND action = 'data.import'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(resumed.len(), 1, "{resumed:?}");
    let detail: serde_json::Value = serde_json::from_str(&resumed[0]).unwrap();
    assert_eq!(
        detail,
        serde_json::json!({"dataset": "patients", "records": 1, "resumed": true, "fed_at_start": true})
    );
}
