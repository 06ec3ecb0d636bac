//! Durability against real crashes: a child process (this test binary, re-run in child mode)
//! runs a counting app with asks and a sink against a SQLite store and is killed with SIGKILL
//! at random moments (and aborted at each failpoint of the commit path), then restarted; the
//! final state must be what a run never killed gives. Beside it: replies kept across a replay
//! (here), quarantine, resuming after stops, sequencers and splitters, and erasure of data
//! subjects (modules).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pods_node::{Node, NodeConfig, SqliteStore, StoreOptions, Synchronous};
use pods_sdk::{App, AppBuilder, AskError, Ctx, PartitionThreads, PerKeyState, ThreadedConfig};

mod asks;
mod erasure;
mod moves;
mod quarantine;
mod resume;

/// Environment variable naming the data dir of the child mode.
const CHILD_DIR: &str = "PODS_DURABILITY_CHILD_DIR";
const EVENTS: i64 = 200_000;
const ATOM: usize = 100;
const KEYS: i64 = 1_000;

/// A row of the sink: key, the key's count, and the replier's count of asks it applied for
/// that key.
type Row = (i64, u64, u64);

/// Generator of `EVENTS` events in atoms of `ATOM` → `count`: key_by(x mod `KEYS`), per-key
/// count (two partitions), asking the portal `tally` with each new count → `tally` (another
/// workflow) counts per key every ask it applies and replies with that count → the
/// continuation emits a row → `sink` (a workflow reading the logged rows) appends each row to
/// its key's table: the number of rows and a hash chained over them in order, refusing a row
/// out of order. An ask applied twice shows as a reply ahead of the count; a row lost or
/// doubled shows in the table.
fn app() -> App {
    let app = AppBuilder::new("crash");
    let g = app.generator_from_range("g", 0..EVENTS, ATOM);
    let tally = app.portal_keyed::<(i64, u64), u64, _>("tally", |(k, _)| *k as u64);
    let applied = PerKeyState::<u64>::new("applied");
    let none = app.generator_from_atoms::<(i64, u64)>("none", vec![]);
    app.workflow("tally")
        .source(&none)
        .replier(&tally, move |ctx, _ask: (i64, u64), to| {
            let n = applied.get(ctx) + 1;
            applied.set(ctx, n);
            ctx.reply(to, n);
        })
        .sink();
    let count = PerKeyState::<u64>::new("count");
    let portal = tally.clone();
    let rows = app
        .workflow("count")
        .partitions(2)
        .source(&g)
        .key_by(|x| x % KEYS)
        .asker(&tally, move |ctx: &mut Ctx<'_, Row>, x: i64| {
            let c = count.get(ctx) + 1;
            count.set(ctx, c);
            let key = x % KEYS;
            let h = ctx.ask(&portal, (key, c));
            ctx.on_reply(
                h,
                move |ctx, r: Result<u64, AskError>| -> Result<(), AskError> {
                    ctx.emit((key, c, r?));
                    Ok(())
                },
            );
        })
        .sink();
    let table = PerKeyState::<(u64, u64)>::new("table");
    app.workflow("sink")
        .source(&rows)
        .key_by(|(k, _, _): &Row| *k)
        .processor(move |ctx: &mut Ctx<'_, ()>, (key, c, applied): Row| {
            let (n, chain) = table.get(ctx);
            if c != n + 1 || applied != c {
                ctx.fail(format!(
                    "row out of order for key {key}: count {c}, applied {applied}, after {n} rows"
                ));
                return;
            }
            let chain = (chain ^ c ^ (applied << 32)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            table.set(ctx, (n + 1, chain));
        })
        .sink();
    app.build().expect("app")
}

/// The child: runs the app against the store in `dir` until it has nothing left to do.
#[test]
#[ignore = "run as a child process by killed_runs_end_in_the_state_of_a_run_never_killed"]
fn child() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        return;
    };
    let config = NodeConfig {
        store: StoreOptions {
            synchronous: Synchronous::Normal,
            // Compactions often (a record may cover 32 atoms), so kills land in them too.
            compact_every: 16,
            ..StoreOptions::default()
        },
        runtime: ThreadedConfig {
            workers: 2,
            parallel_step: 1,
            partition_threads: PartitionThreads::AtOnce,
            ..ThreadedConfig::default()
        },
    };
    let node = Node::open(Path::new(&dir), config).expect("node");
    node.launch(app()).expect("launch");
    node.run_until_quiescent();
    node.stop();
    println!("child: done");
}

fn spawn_child(dir: &Path) -> Child {
    spawn_child_with(dir, None)
}

/// A child, with failpoint `armed` (`name:n`) if given.
fn spawn_child_with(dir: &Path, armed: Option<&str>) -> Child {
    let exe = std::env::current_exe().expect("test binary");
    let mut command = Command::new(exe);
    if let Some(spec) = armed {
        command.env(pods_node::failpoint::VARIABLE, spec);
    }
    command
        .args([
            "--exact",
            "child",
            "--ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD_DIR, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("child starts")
}

/// Waits for `child` to exit, at most `limit`; kills it and fails the test past that.
fn wait(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("child did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// What the app committed in `dir`: the count workflow's steps and per-key counts, the
/// replier's per-key applied asks, and the sink's per-key tables, each sorted.
#[derive(Debug, PartialEq, Eq)]
struct Committed {
    steps: u64,
    counts: Vec<u64>,
    applied: Vec<u64>,
    tables: Vec<(u64, u64)>,
}

fn committed(dir: &Path) -> Committed {
    let store = SqliteStore::open(dir, StoreOptions::default()).expect("store");
    let values = |workflow: &str| {
        let path = pods_sdk::Path::parse(&format!("/crash/workflows/{workflow}")).expect("path");
        store.recover(path.stable_id()).expect("recover")
    };
    fn decoded<T: serde_like::Decode>(r: &pods_sdk::Recovery) -> Vec<T> {
        let mut out: Vec<T> = r.values.values().map(|b| T::decode(b)).collect();
        out.sort();
        out
    }
    let count = values("count");
    Committed {
        steps: count.step,
        counts: decoded(&count),
        applied: decoded(&values("tally")),
        tables: decoded(&values("sink")),
    }
}

/// CBOR decoding of the states' values.
mod serde_like {
    pub trait Decode: Ord {
        fn decode(bytes: &[u8]) -> Self;
    }
    impl Decode for u64 {
        fn decode(bytes: &[u8]) -> u64 {
            ciborium::from_reader(bytes).expect("a u64")
        }
    }
    impl Decode for (u64, u64) {
        fn decode(bytes: &[u8]) -> (u64, u64) {
            ciborium::from_reader(bytes).expect("a pair")
        }
    }
}

/// What `workflow` (a path) committed in `dir`: its recovery, and its one state value
/// decoded as `T` (the default if it has none).
fn committed_value<T: serde::de::DeserializeOwned + Default>(
    dir: &Path,
    workflow: &str,
) -> (pods_sdk::Recovery, T) {
    let store = SqliteStore::open(dir, StoreOptions::default()).expect("store");
    let path = pods_sdk::Path::parse(workflow).expect("path");
    let r = store.recover(path.stable_id()).expect("recover");
    let value = r
        .values
        .values()
        .next()
        .map(|b| ciborium::from_reader(b.as_slice()).expect("a value of the state's type"))
        .unwrap_or_default();
    (r, value)
}

/// Launches the test named `child` of this binary (in child mode, with `env` naming `dir`)
/// until one exits normally, at most 8 times; returns how each ended ("crashed" by an abort,
/// or "done").
fn launch_until_done(child: &str, env: &str, dir: &Path) -> Vec<&'static str> {
    use std::os::unix::process::ExitStatusExt;
    let exe = std::env::current_exe().expect("test binary");
    let mut endings = Vec::new();
    for _launch in 0..8 {
        let mut process = Command::new(&exe)
            .args(["--exact", child, "--ignored", "--nocapture"])
            .env(env, dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("child starts");
        let status = wait(&mut process, Duration::from_secs(60));
        if status.success() {
            endings.push("done");
            break;
        }
        assert_eq!(status.signal(), Some(6), "the child aborts, nothing else");
        endings.push("crashed");
    }
    endings
}

/// Runs `system` (over the crash app) until the replier has committed answers its asker has
/// not committed yet; whether it got there.
fn run_until_the_replier_is_ahead(system: &mut pods_sdk::DeterministicSystem<SqliteStore>) -> bool {
    for _ in 0..400 {
        system.run_steps(7);
        let (asked, applied) = (
            committed_sum(system.storage(), "count"),
            committed_sum(system.storage(), "tally"),
        );
        assert!(
            applied >= asked,
            "an ask is applied before its atom commits"
        );
        if applied > asked {
            return true;
        }
    }
    false
}

/// splitmix64, for kill times that a seed repeats.
fn next(seed: &mut u64) -> u64 {
    *seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *seed;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[test]
fn killed_runs_end_in_the_state_of_a_run_never_killed() {
    let limit = Duration::from_secs(60);
    // How long a whole run takes here, to aim the kills inside it.
    let reference = tempfile::tempdir().expect("dir");
    let start = Instant::now();
    let mut child = spawn_child(reference.path());
    assert!(wait(&mut child, limit).success());
    let full = start.elapsed();
    let expected = committed(reference.path());
    let per_key = (EVENTS / KEYS) as u64;
    assert_eq!(expected.counts, vec![per_key; KEYS as usize]);
    assert_eq!(
        expected.applied,
        vec![per_key; KEYS as usize],
        "each ask applied once"
    );
    assert_eq!(expected.tables.len(), KEYS as usize);
    assert!(expected.tables.iter().all(|(rows, _)| *rows == per_key));
    assert!(
        expected.steps >= (EVENTS as u64).div_ceil(ATOM as u64),
        "a step per atom, and per batch of replies"
    );
    // And how long a start takes that finds everything done (process start, recovery).
    let start = Instant::now();
    let mut child = spawn_child(reference.path());
    assert!(wait(&mut child, limit).success());
    let restart = start.elapsed();
    assert_eq!(
        committed(reference.path()),
        expected,
        "a finished run stays finished"
    );

    let mut seed = 7;
    let (mut landed, mut progress, mut at_failpoints, mut rounds) = (0, Vec::new(), Vec::new(), 0);
    let started = Instant::now();
    // Rounds over fresh data dirs until 20 SIGKILLs have landed mid-run; each round ends with a
    // run to completion and the exact state.
    while landed < 20 {
        assert!(started.elapsed() < limit * 3, "only {landed} kills landed");
        rounds += 1;
        let dir = tempfile::tempdir().expect("dir");
        if rounds == 1 {
            // First a crash at each failpoint of the commit path (while much work remains).
            for point in pods_node::failpoint::ALL {
                let n = 1 + next(&mut seed) % 40;
                let mut child = spawn_child_with(dir.path(), Some(&format!("{point}:{n}")));
                let status = wait(&mut child, limit);
                use std::os::unix::process::ExitStatusExt;
                assert_eq!(
                    status.signal(),
                    Some(6),
                    "{point}:{n} was not reached: {status}"
                );
                at_failpoints.push(format!(
                    "{point} (time {n}) at step {}",
                    committed(dir.path()).steps
                ));
            }
        }
        while landed < 20 {
            let mut child = spawn_child(dir.path());
            // Past the start, then 1 to 20 % of a whole run's work: kills spread over the run.
            let work = full.saturating_sub(restart).as_micros() as u64;
            let delay = restart.as_micros() as u64 + work * (1 + next(&mut seed) % 20) / 100;
            std::thread::sleep(Duration::from_micros(delay));
            let running = child.try_wait().expect("wait").is_none();
            let _ = child.kill(); // SIGKILL
            let _ = child.wait();
            if !running {
                break; // The work was done: the next round starts afresh.
            }
            landed += 1;
            progress.push(committed(dir.path()).steps);
        }
        let mut child = spawn_child(dir.path());
        let status = wait(&mut child, limit);
        let mut out = String::new();
        if let Some(mut stdout) = child.stdout.take() {
            let _ = stdout.read_to_string(&mut out);
        }
        assert!(status.success() && out.contains("child: done"), "{out}");
        let got = committed(dir.path());
        assert_eq!(
            (&got.counts, &got.applied, &got.tables),
            (&expected.counts, &expected.applied, &expected.tables),
            "no event lost or counted twice, no ask applied twice, no row lost, doubled or reordered"
        );
        // The log between the two workflows keeps only atoms the consumer may still need.
        let db = rusqlite::Connection::open(dir.path().join(pods_node::DATABASE)).expect("db");
        let logged: i64 = db
            .query_row("SELECT count(*) FROM atoms", [], |r| r.get(0))
            .expect("count");
        assert!(logged <= 256, "the log was not truncated: {logged} atoms");
    }
    println!("aborted at each failpoint once: {at_failpoints:?}");
    println!(
        "SIGKILLs that landed mid-run: {landed} over {rounds} rounds; committed steps at each: {progress:?}"
    );
    let distinct: BTreeMap<u64, ()> = progress.iter().map(|s| (*s, ())).collect();
    assert!(
        distinct.len() > 1,
        "the kills all landed at the same point: {progress:?}"
    );
}

/// Sum of the u64 values `workflow` of app `crash` committed in `store`.
fn committed_sum(store: &SqliteStore, workflow: &str) -> u64 {
    committed_sum_of(store, &format!("/crash/workflows/{workflow}"))
}

/// Sum of the u64 values the workflow at `path` committed in `store`.
fn committed_sum_of(store: &SqliteStore, path: &str) -> u64 {
    let path = pods_sdk::Path::parse(path).expect("path");
    let r = store.recover(path.stable_id()).expect("recover");
    r.values
        .values()
        .map(|b| ciborium::from_reader::<u64, _>(b.as_slice()).expect("u64"))
        .sum()
}

/// Runs the crash app with `options` until its replier has committed answers its asker has
/// not, crashes it, waits `downtime`, and runs it again to the end: what it committed.
fn replay_with_the_replier_ahead(options: fn() -> StoreOptions, downtime: Duration) -> Committed {
    let dir = tempfile::tempdir().expect("dir");
    let store = SqliteStore::open(dir.path(), options()).expect("store");
    let mut first = pods_sdk::DeterministicSystem::with_storage(11, store);
    first.launch(app()).expect("launch");
    assert!(
        run_until_the_replier_is_ahead(&mut first),
        "the replier never got ahead of its asker"
    );
    // A crash: the staged steps go; the asker replays its atom and asks again.
    drop(first);
    std::thread::sleep(downtime);
    let store = SqliteStore::open(dir.path(), options()).expect("store");
    let mut second = pods_sdk::DeterministicSystem::with_storage(12, store);
    second.launch(app()).expect("launch");
    second.run_until_quiescent();
    drop(second);
    committed(dir.path())
}

#[test]
fn a_replayed_asking_atom_gets_the_kept_replies_and_nothing_is_applied_twice() {
    let done = replay_with_the_replier_ahead(StoreOptions::default, Duration::ZERO);
    let per_key = (EVENTS / KEYS) as u64;
    assert_eq!(done.counts, vec![per_key; KEYS as usize]);
    assert_eq!(
        done.applied,
        vec![per_key; KEYS as usize],
        "no ask applied twice"
    );
    assert!(done.tables.iter().all(|(rows, _)| *rows == per_key));
}

/// Kept replies age only while the node runs: a node down for longer than they are kept
/// still answers the replayed asks from them.
#[test]
fn kept_replies_outlast_a_downtime_longer_than_they_are_kept() {
    let options = || StoreOptions {
        answers_kept: Duration::from_secs(2),
        ..StoreOptions::default()
    };
    // Down for longer than replies are kept.
    let done = replay_with_the_replier_ahead(options, Duration::from_secs(4));
    let per_key = (EVENTS / KEYS) as u64;
    assert_eq!(
        done.applied,
        vec![per_key; KEYS as usize],
        "no ask applied twice"
    );
}
