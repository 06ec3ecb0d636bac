//! Erasure across peers, end to end: clinic `a` exports its study stream to `b` under an
//! export rule of its policy, which withholds the events of a subject without consent; `b`
//! mirrors it into the stock `research` app. `a` records which
//! subjects' data went to `b`; erasing a subject at `a` asks `b`, which erases, audits it and
//! answers with a signed acknowledgement that `a`'s receipt then carries.

use std::time::Duration;

use pods_node::privacy::ErasureReceipt;

use crate::nodes::{Daemon, free_port, init, ok, status, wait_for};

const STREAM: &str = "/clinic/workflows/study/stream";

const POLICY: &str = r#"[[purpose]]
name = "research"

[[dataset]]
name = "patients"
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

fn receipt(subject: &str, dir: &str) -> ErasureReceipt {
    serde_json::from_str(&ok(&["subject", "erase", subject, "--data-dir", dir])).unwrap()
}

/// Two running clinics on loopback: `a` exports its study stream to `b`, which mirrors it;
/// ann and bob consented, dan did not; their visits were imported at `a` and reached `b`.
struct Clinics {
    root: tempfile::TempDir,
    a: std::path::PathBuf,
    b: std::path::PathBuf,
    a_id: String,
    b_id: String,
    node_a: Daemon,
    node_b: Daemon,
}

fn clinics() -> Clinics {
    let root = tempfile::tempdir().unwrap();
    let (a, b) = (root.path().join("a"), root.path().join("b"));
    let (a_s, b_s) = (a.to_str().unwrap(), b.to_str().unwrap());
    let (a_id, b_id) = (init(a_s, "a"), init(b_s, "b"));
    let (a_addr, b_addr) = (
        format!("/ip4/127.0.0.1/tcp/{}", free_port()),
        format!("/ip4/127.0.0.1/tcp/{}", free_port()),
    );
    let mut s = pods_node::Settings::load(&a).unwrap();
    s.listen = vec![a_addr.clone()];
    s.apps = vec!["clinic".into()];
    s.peers = vec![pods_node::Peer {
        name: "b".into(),
        peer_id: b_id.clone(),
        address: b_addr.clone(),
    }];
    s.exports = vec![pods_node::Export {
        path: STREAM.into(),
        allow: vec!["b".into()],
    }];
    s.save(&a).unwrap();
    let mut s = pods_node::Settings::load(&b).unwrap();
    s.listen = vec![b_addr.clone()];
    s.apps = vec!["research".into()];
    s.peers = vec![pods_node::Peer {
        name: "a".into(),
        peer_id: a_id.clone(),
        address: a_addr.clone(),
    }];
    s.imports = vec![pods_node::Import {
        from: format!("/peers/a{STREAM}"),
        into: "/research/generators/visits".into(),
    }];
    s.save(&b).unwrap();
    let file = |name: &str, text: &str| {
        let f = root.path().join(name);
        std::fs::write(&f, text).unwrap();
        f.to_str().unwrap().to_owned()
    };
    let node_a = Daemon::start(&a);
    let node_b = Daemon::start(&b);
    ok(&[
        "policy",
        "load",
        &file("policy.toml", POLICY),
        "--data-dir",
        a_s,
    ]);
    for who in ["ann", "bob"] {
        ok(&[
            "consent",
            "grant",
            who,
            "--purpose",
            "research",
            "--category",
            "identity",
            "--category",
            "contact",
            "--category",
            "health",
            "--data-dir",
            a_s,
        ]);
    }
    // Dan gave no consent: the study takes his visits (legitimate interests), but the export's
    // rule (consent) keeps them at a; the second atom, his alone, leaves empty and still takes
    // its offset at b.
    let visits = file(
        "visits.csv",
        "pid,name,pulse\nann,Ann MARKER-ANN,61\nbob,Bob MARKER-BOB,72\ndan,Dan MARKER-DAN,80\n",
    );
    ok(&["data", "import", "patients", &visits, "--data-dir", a_s]);
    let dan = file("dan.csv", "pid,name,pulse\ndan,Dan MARKER-DAN-2,81\n");
    ok(&["data", "import", "patients", &dan, "--data-dir", a_s]);
    wait_for(Duration::from_secs(60), || {
        status(b_s).imports.first().is_some_and(|i| i.next >= 2)
    });
    Clinics {
        root,
        a,
        b,
        a_id,
        b_id,
        node_a,
        node_b,
    }
}

#[test]
fn an_erasure_reaches_the_peer_the_data_went_to_and_comes_back_acknowledged() {
    let _dog = crate::watchdog("erasure_peers", 180);
    let Clinics {
        root: _root,
        a,
        b,
        a_id,
        b_id,
        node_a,
        node_b,
    } = clinics();
    let (a_s, b_s) = (a.to_str().unwrap(), b.to_str().unwrap());
    let never = pods_node::admin::client::AdminClient::for_dir(&a)
        .unwrap()
        .get::<ErasureReceipt>("/subjects/zed/erasure")
        .expect_err("no erasure of zed");
    assert!(
        never
            .to_string()
            .contains("404: this subject was never erased here"),
        "{never}"
    );

    let recipients = |who: &str| -> Vec<String> {
        let export: pods_node::privacy::SubjectExport =
            serde_json::from_str(&ok(&["subject", "export", who, "--data-dir", a_s])).unwrap();
        export
            .recipients
            .into_iter()
            .map(|r| format!("{} {}", r.peer, r.export))
            .collect()
    };
    assert_eq!(recipients("ann"), [format!("b {STREAM}")]);
    assert!(recipients("dan").is_empty(), "nothing of Dan's left a");

    // The scan works: a's imported records hold the markers in clear. At b they arrived as
    // stream atoms, which its store keeps sealed under each subject's key: never in clear.
    assert!(crate::privacy::scan(&a, "MARKER-ANN") && crate::privacy::scan(&a, "MARKER-BOB"));
    assert!(!crate::privacy::scan(&b, "MARKER-ANN"));

    // b is down when ann is erased at a, and a restarts meanwhile: the request is pending,
    // shown in status, and goes out again once b is back.
    assert!(node_b.terminate().success());
    let first = receipt("ann", a_s);
    assert!(first.pending());
    // Waiting for a peer that is down ends in an error naming it, with the receipt printed.
    let (waited, out, err) = crate::pods(
        &[
            "subject",
            "erase",
            "ann",
            "--wait",
            "0.3",
            "--data-dir",
            a_s,
        ],
        Duration::from_secs(30),
    );
    assert!(
        !waited && err.contains("still pending at b after 0.3 s"),
        "{err}"
    );
    let printed: ErasureReceipt = serde_json::from_str(&out).unwrap();
    assert_eq!(printed.subject, first.subject);
    assert!(printed.pending());
    let pending = status(a_s).erasures;
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].subject, first.subject);
    assert_eq!(pending[0].peers, ["b"]);
    assert!(node_a.terminate().success());
    let node_a = Daemon::start(&a);
    assert!(
        receipt("ann", a_s).pending(),
        "still pending after a restart"
    );
    let node_b = Daemon::start(&b);
    assert_eq!(first.node, a_id);
    assert_eq!(
        first
            .peers
            .iter()
            .map(|p| p.peer.as_str())
            .collect::<Vec<_>>(),
        vec!["b"],
        "the receipt lists the peer the data went to"
    );
    // `--wait` shows b's acknowledgement as it comes (unless it came before the command
    // asked: a retries on its own) and prints the finished receipt.
    let (waited, out, err) = crate::pods(
        &["subject", "erase", "ann", "--wait", "60", "--data-dir", a_s],
        Duration::from_secs(90),
    );
    assert!(waited, "{err}");
    assert!(
        err.contains("b acknowledged the erasure") || err.contains("no peer pending"),
        "{err}"
    );
    let done: ErasureReceipt = serde_json::from_str(&out).unwrap();
    assert!(!done.pending());
    assert!(status(a_s).erasures.is_empty(), "nothing pending in status");
    let ack: pods_node::privacy::Acknowledgement =
        serde_json::from_str(done.peers[0].acknowledgement.as_deref().unwrap()).unwrap();
    let b_peer: libp2p::PeerId = b_id.parse().unwrap();
    ack.verify(&b_peer, &done.subject)
        .expect("b's signature verifies");
    assert_eq!(ack.node, b_id);
    // a's receipt is signed with a's key.
    let a_peer: libp2p::PeerId = a_id.parse().unwrap();
    let key = libp2p::identity::PublicKey::try_decode_protobuf(a_peer.as_ref().digest()).unwrap();
    let signature = pods_policy::audit::from_hex(&done.signature).unwrap();
    assert!(key.verify(&done.signed_bytes(), &signature));
    assert_eq!(
        receipt("ann", a_s),
        done,
        "erasing again gives the receipt again"
    );

    assert!(node_b.terminate().success());
    assert!(node_a.terminate().success());
    let db = rusqlite::Connection::open(b.join("audit.db")).unwrap();
    let erased: Vec<(String, String)> = db
        .prepare("SELECT actor, detail FROM entries WHERE action = 'subject.erase'")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(
        erased
            .iter()
            .any(|(actor, detail)| actor == "peer:a" && detail.contains(&done.subject)),
        "b audited the erasure: {erased:?}"
    );
    // No file of either node holds ann's marker; bob's records are untouched.
    assert!(!crate::privacy::scan(&a, "MARKER-ANN") && !crate::privacy::scan(&b, "MARKER-ANN"));
    assert!(crate::privacy::scan(&a, "MARKER-BOB"));
    assert!(done.erased.payload_key || !done.peers.is_empty());
    let verified = ok(&["audit", "verify", "--data-dir", b_s]);
    assert!(verified.contains("audit log verified"), "{verified}");
}

#[test]
fn a_rectification_reaches_the_copies_at_the_peer_the_data_went_to() {
    let _dog = crate::watchdog("rectification_peers", 180);
    let Clinics {
        root: _root,
        a,
        b,
        node_a,
        node_b,
        ..
    } = clinics();
    let (a_s, b_s) = (a.to_str().unwrap(), b.to_str().unwrap());
    let mirrored = "/research/generators/visits/stream";
    let names = |dir: &std::path::Path| crate::privacy::logged_names(dir, mirrored);
    assert_eq!(
        names(&b),
        [
            ("ann".to_owned(), Some("Ann MARKER-ANN".to_owned())),
            ("bob".to_owned(), Some("Bob MARKER-BOB".to_owned())),
        ],
        "b mirrored ann's and bob's visits (dan's stayed at a)"
    );

    // b is down when bob's name is corrected at a, and a restarts meanwhile: the request is
    // pending, shown in status, and goes once b is back.
    assert!(node_b.terminate().success());
    let (done, out, err) = crate::pods(
        &[
            "subject",
            "rectify",
            "bob",
            "--dataset",
            "patients",
            "--set",
            "name=Robert",
            "--data-dir",
            a_s,
        ],
        Duration::from_secs(30),
    );
    assert!(done, "{err}");
    assert!(err.contains("b asked to correct theirs"), "{err}{out}");
    let bob = pods_policy::audit::to_hex(&pods_policy::subject_digest("bob"));
    let pending = status(a_s).rectifications;
    assert_eq!(pending.len(), 1);
    assert_eq!(
        (&pending[0].subject, &pending[0].peers[..]),
        (&bob, &["b".to_owned()][..])
    );
    assert!(node_a.terminate().success());
    let node_a = Daemon::start(&a);
    let text = ok(&["status", "--data-dir", a_s]);
    assert!(
        text.contains(&format!("rectification {bob} pending at b")),
        "{text}"
    );
    let node_b = Daemon::start(&b);
    wait_for(Duration::from_secs(60), || {
        names(&b).contains(&("bob".to_owned(), Some("Robert".to_owned())))
    });
    assert_eq!(
        names(&b),
        [
            ("ann".to_owned(), Some("Ann MARKER-ANN".to_owned())),
            ("bob".to_owned(), Some("Robert".to_owned())),
        ],
        "bob's copy at b corrected, ann's untouched"
    );
    // b audited the request as a's; a audited b's answer.
    let audited = |dir: &std::path::Path, action: &str| -> Vec<String> {
        let db = rusqlite::Connection::open(dir.join("audit.db")).unwrap();
        db.prepare("SELECT actor FROM entries WHERE action = ?1")
            .unwrap()
            .query_map([action], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    wait_for(Duration::from_secs(30), || {
        !audited(&a, "subject.rectify.acknowledged").is_empty()
    });
    assert_eq!(audited(&b, "subject.rectify"), ["peer:a"]);
    assert!(status(a_s).rectifications.is_empty(), "nothing pending");
    assert!(node_b.terminate().success());
    assert!(node_a.terminate().success());
    let verified = ok(&["audit", "verify", "--data-dir", b_s]);
    assert!(verified.contains("audit log verified"), "{verified}");
}
