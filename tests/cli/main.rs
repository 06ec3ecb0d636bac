//! The `pods` binary and the examples, end to end.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod audit;
mod erasure;
mod nodes;
mod privacy;
#[path = "../../examples/word_count.rs"]
mod word_count;

/// Aborts the test process if the test holding the returned sender runs longer than `secs`.
fn watchdog(name: &'static str, secs: u64) -> std::sync::mpsc::Sender<()> {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
            rx.recv_timeout(Duration::from_secs(secs))
        {
            eprintln!("test {name} hung for {secs} s");
            std::process::abort();
        }
    });
    tx
}

/// Runs `pods` with `args`, killing it after `limit`; returns (status ok, stdout, stderr).
fn pods(args: &[&str], limit: Duration) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pods"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pods");
    let started = Instant::now();
    loop {
        if let Some(_status) = child.try_wait().expect("wait") {
            break;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("pods {args:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn demo_prints_the_carts_outcomes_in_order() {
    let (ok, stdout, stderr) = pods(&["demo"], Duration::from_secs(30));
    assert!(ok, "stderr: {stderr}");
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        vec![
            "alice: 3 x apple reserved (7 left)",
            "alice: 1 x pear reserved (9 left)",
            "bob: 5 x apple reserved (2 left)",
            "bob: 2 x fig reserved (8 left)",
            "carol: 4 x apple refused, only 2 in stock",
            "dave: 2 x pear reserved (7 left)",
            "dave: 1 x fig reserved (7 left)",
        ]
    );
    assert!(
        stderr.contains("running the shop demo"),
        "progress goes to stderr: {stderr}"
    );
}

#[test]
fn help_lists_the_commands_and_bad_arguments_fail() {
    let (ok, stdout, _) = pods(&["--help"], Duration::from_secs(30));
    assert!(ok);
    assert!(
        stdout.contains("demo") && stdout.contains("Usage: pods"),
        "{stdout}"
    );
    let (ok, stdout, _) = pods(&["demo", "--help"], Duration::from_secs(30));
    assert!(ok && stdout.contains("--seed"), "{stdout}");
    let (ok, _, stderr) = pods(&["demo", "--seed", "nope"], Duration::from_secs(30));
    assert!(!ok && stderr.contains("invalid value"), "{stderr}");
    for (args, says) in [
        (&["init", "--help"][..], "--name <ORG>"),
        (&["node", "start", "--help"], "SIGTERM"),
        (&["peer", "add", "--help"], "<MULTIADDR>"),
        (&["peer", "remove", "--help"], "connections are closed"),
        (&["peer", "list", "--help"], "connected"),
        (&["status", "--help"], "--json"),
        (&["policy", "load", "--help"], "line and column"),
        (&["policy", "show", "--help"], "policy in force"),
        (&["consent", "grant", "--help"], "--purpose <PURPOSE>"),
        (&["consent", "withdraw", "--help"], "next atom"),
        (&["consent", "list", "--help"], "history"),
        (&["data", "import", "--help"], "--skip-bad"),
        (&["subject", "export", "--help"], "--output <FILE>"),
        (&["subject", "rectify", "--help"], "COLUMN=VALUE"),
        (&["subject", "restrict", "--help"], "--lift"),
        (&["audit", "tail", "--help"], "-n <N>"),
        (
            &["audit", "verify", "--help"],
            "whether the node runs or not",
        ),
    ] {
        let (ok, stdout, _) = pods(
            &[args, &["--help"]].concat()[..args.len()],
            Duration::from_secs(30),
        );
        assert!(
            ok && stdout.contains(says) && stdout.contains("--data-dir"),
            "{args:?}: {stdout}"
        );
    }
    // A command on a node that is not running says how to start it.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let (ok, _, stderr) = pods(&["status", "--data-dir", d], Duration::from_secs(30));
    assert!(!ok && stderr.contains("is the node running?"), "{stderr}");
    let (ok, _, stderr) = pods(&["node", "start", "--data-dir", d], Duration::from_secs(30));
    assert!(!ok && stderr.contains("pods init"), "{stderr}");
}

#[test]
fn word_count_example_counts_words() {
    let counts = word_count::run(&["a b a", "B c"]).unwrap();
    assert_eq!(
        counts,
        vec![
            ("a".into(), 1),
            ("b".into(), 1),
            ("a".into(), 2),
            ("b".into(), 2),
            ("c".into(), 1)
        ]
    );
}
