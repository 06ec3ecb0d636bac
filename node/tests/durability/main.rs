//! Durability against real crashes: a child process (this test binary, re-run in child mode)
//! runs a counting app with asks and a sink against a SQLite store and is killed with SIGKILL
//! at random moments (and aborted at each failpoint of the commit path), then restarted; the
//! final state must be what a run never killed gives.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pods_node::{Node, NodeConfig, SqliteStore, StoreOptions, Synchronous};
use pods_sdk::{App, AppBuilder, AskError, Ctx, PerKeyState, ThreadedConfig};

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
            ..StoreOptions::default()
        },
        runtime: ThreadedConfig {
            workers: 2,
            parallel_step: 1,
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

/// The same count, in `partitions` partitions.
fn count_app(partitions: usize) -> App {
    let app = AppBuilder::new("resume");
    let g = app.generator_from_range("g", 0..10_000, 100);
    let count = PerKeyState::<u64>::new("count");
    let atoms = pods_sdk::PerTaskState::<u64>::new("atoms");
    app.workflow("count")
        .partitions(partitions)
        .source(&g)
        .key_by(|x| x % 97)
        .processor(move |ctx: &mut Ctx<'_, ()>, _x: i64| {
            count.update(ctx, |c| *c += 1);
        })
        .on_atom_complete(move |ctx: &mut Ctx<'_, ()>| {
            atoms.update(ctx, |a| *a += 1);
        })
        .sink();
    app.build().expect("app")
}

#[test]
fn a_stopped_run_resumes_where_it_committed_even_with_other_partition_counts() {
    for (before, after) in [(1, 1), (2, 3), (4, 1)] {
        let dir = tempfile::tempdir().expect("dir");
        let store = SqliteStore::open(dir.path(), StoreOptions::default()).expect("store");
        let mut first = pods_sdk::DeterministicSystem::with_storage(3, store);
        first.launch(count_app(before)).expect("launch");
        first.run_steps(40);
        let stopped_at = first.storage().commits();
        drop(first);
        assert!(
            stopped_at > 0 && stopped_at < 100,
            "stopped midway: {stopped_at}"
        );

        let store = SqliteStore::open(dir.path(), StoreOptions::default()).expect("store");
        let mut second = pods_sdk::DeterministicSystem::with_storage(3, store);
        second.launch(count_app(after)).expect("launch");
        second.run_until_quiescent();
        assert_eq!(
            second.storage().commits(),
            100 - stopped_at,
            "{before} → {after}: only the atoms not committed before ran again"
        );
        drop(second);
        let workflow = pods_sdk::Path::parse("/resume/workflows/count").expect("path");
        let store = SqliteStore::open(dir.path(), StoreOptions::default()).expect("store");
        let r = store.recover(workflow.stable_id()).expect("recover");
        let mut per_key: Vec<u64> = Vec::new();
        let mut per_task: u64 = 0;
        for ((_, key), bytes) in &r.values {
            let v: u64 = ciborium::from_reader(bytes.as_slice()).expect("u64");
            match key {
                Some(_) => per_key.push(v),
                None => per_task += v,
            }
        }
        per_key.sort();
        let mut want: Vec<u64> = (0..97u64)
            .map(|k| (0..10_000u64).filter(|x| x % 97 == k).count() as u64)
            .collect();
        want.sort();
        assert_eq!(per_key, want, "{before} → {after}: per-key counts exact");
        assert_eq!(r.step, 100);
        // Per-task state is per partition: each partition counted the atoms it took part in.
        assert!(per_task >= 100, "{before} → {after}: {per_task}");
    }
}

#[test]
fn group_commit_puts_queued_atoms_in_one_transaction_and_counts_stay_exact() {
    let mut per_group = Vec::new();
    for group in [1, 16] {
        let dir = tempfile::tempdir().expect("dir");
        let store = SqliteStore::open(dir.path(), StoreOptions::default()).expect("store");
        let mut system = pods_sdk::DeterministicSystem::with_storage(5, store);
        system.set_group_commit(group);
        system.launch(count_app(2)).expect("launch");
        system.run_until_quiescent();
        let transactions = system.storage().commits();
        drop(system);
        let workflow = pods_sdk::Path::parse("/resume/workflows/count").expect("path");
        let store = SqliteStore::open(dir.path(), StoreOptions::default()).expect("store");
        let r = store.recover(workflow.stable_id()).expect("recover");
        assert_eq!(r.step, 100);
        assert_eq!(r.input.map(|p| p.next), Some(100));
        let total: u64 = r
            .values
            .iter()
            .filter(|((_, key), _)| key.is_some())
            .map(|(_, bytes)| ciborium::from_reader::<u64, _>(bytes.as_slice()).expect("u64"))
            .sum();
        assert_eq!(total, 10_000, "group {group}: every event counted once");
        per_group.push(transactions);
    }
    assert_eq!(
        per_group[0], 100,
        "without grouping, a transaction per atom"
    );
    assert!(
        per_group[1] < per_group[0],
        "queued atoms share transactions: {per_group:?}"
    );
}

/// Environment variable naming the data dir of the poisoned child.
const POISON_DIR: &str = "PODS_POISON_CHILD_DIR";
/// The event that makes the poisoned child abort: in atom 42 of 100.
const POISON: i64 = 4_242;

/// Generator of 10,000 events in atoms of 100 → per-key count; the count aborts the process
/// when it meets `POISON` (as a crash in native code would, past any `catch_unwind`).
fn poisoned_app() -> App {
    let app = AppBuilder::new("poison");
    let g = app.generator_from_range("g", 0..10_000, 100);
    let count = PerKeyState::<u64>::new("count");
    app.workflow("count")
        .source(&g)
        .key_by(|x| x % 10)
        .processor(move |ctx: &mut Ctx<'_, ()>, x: i64| {
            if x == POISON {
                std::process::abort();
            }
            count.update(ctx, |c| *c += 1);
        })
        .sink();
    app.build().expect("app")
}

#[test]
#[ignore = "run as a child process by an_atom_that_crashes_every_launch_is_quarantined"]
fn poisoned_child() {
    let Some(dir) = std::env::var_os(POISON_DIR) else {
        return;
    };
    let node = Node::open(Path::new(&dir), NodeConfig::default()).expect("node");
    node.launch(poisoned_app()).expect("launch");
    node.run_until_quiescent();
    node.stop();
    println!("child: done");
}

#[test]
fn an_atom_that_crashes_every_launch_is_quarantined() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().expect("dir");
    let exe = std::env::current_exe().expect("test binary");
    let mut endings = Vec::new();
    for _launch in 0..8 {
        let mut child = Command::new(&exe)
            .args(["--exact", "poisoned_child", "--ignored", "--nocapture"])
            .env(POISON_DIR, dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("child starts");
        let status = wait(&mut child, Duration::from_secs(60));
        endings.push(status.signal().map_or("done", |_| "crashed"));
        if status.success() {
            break;
        }
        assert_eq!(status.signal(), Some(6), "the child aborts, nothing else");
    }
    // The first run and three relaunches crash on the atom; the fifth launch sets it aside.
    assert_eq!(
        endings,
        ["crashed", "crashed", "crashed", "crashed", "done"],
        "crash, three relaunches that crash on the same atom, then quarantine"
    );
    let store = SqliteStore::open(dir.path(), StoreOptions::default()).expect("store");
    let quarantined = store.quarantined().expect("quarantine");
    assert_eq!(quarantined.len(), 1, "{quarantined:?}");
    let q = &quarantined[0];
    assert_eq!(
        (q.workflow.as_str(), q.stream.as_str(), q.offset),
        ("/poison/workflows/count", "/poison/generators/g/stream", 42)
    );
    assert!(q.reason.contains("3 launches in a row"), "{}", q.reason);
    // The atom as its stream's log holds it: its events' values (and keys) in columns.
    let atom: ciborium::Value = ciborium::from_reader(q.atom.as_slice()).expect("an atom");
    let values = atom
        .as_map()
        .and_then(|m| m.iter().find(|(k, _)| k.as_text() == Some("values")))
        .and_then(|(_, v)| v.as_array())
        .expect("the atom's values");
    let values: Vec<i64> = values
        .iter()
        .map(|v| {
            v.as_integer()
                .and_then(|i| i64::try_from(i).ok())
                .expect("i64")
        })
        .collect();
    assert_eq!(
        values,
        (4_200..4_300).collect::<Vec<i64>>(),
        "the whole atom is kept"
    );
    // Every other atom was counted exactly once.
    let workflow = pods_sdk::Path::parse("/poison/workflows/count").expect("path");
    let r = store.recover(workflow.stable_id()).expect("recover");
    let total: u64 = r
        .values
        .values()
        .map(|bytes| ciborium::from_reader::<u64, _>(bytes.as_slice()).expect("u64"))
        .sum();
    assert_eq!(total, 10_000 - 100);
    assert_eq!((r.step, r.input.map(|p| p.next)), (100, Some(100)));
}

/// Fed atoms → a workflow summing them (per-task state).
fn fed_app() -> App {
    let app = AppBuilder::new("fed");
    let input = app.generator_external::<i64>("in");
    let total = pods_sdk::PerTaskState::<i64>::new("total");
    app.workflow("sum")
        .source(&input)
        .processor(move |ctx: &mut Ctx<'_, i64>, x: i64| {
            let t = total.get(ctx) + x;
            total.set(ctx, t);
            ctx.emit(t);
        })
        .sink();
    app.build().expect("app")
}

fn total(dir: &Path) -> (u64, i64) {
    let store = SqliteStore::open(dir, StoreOptions::default()).expect("store");
    let workflow = pods_sdk::Path::parse("/fed/workflows/sum").expect("path");
    let r = store.recover(workflow.stable_id()).expect("recover");
    let total = r
        .values
        .values()
        .next()
        .map(|b| ciborium::from_reader(b.as_slice()).expect("i64"))
        .unwrap_or(0);
    (r.step, total)
}

#[test]
fn atoms_fed_before_a_stop_are_processed_once_after_it() {
    let dir = tempfile::tempdir().expect("dir");
    {
        let node = Node::open(dir.path(), NodeConfig::default()).expect("node");
        node.launch(fed_app()).expect("launch");
        let feeder = node.feeder::<i64>("/fed/generators/in").expect("feeder");
        for x in 1..=10 {
            feeder.push(vec![x]).expect("push");
        }
        node.run_until_quiescent();
        // Fed, logged, never processed: the node stops before it takes them.
        for x in 11..=30 {
            feeder.push(vec![x]).expect("push");
        }
        node.stop();
    }
    assert_eq!(total(dir.path()), (10, 55));
    let node = Node::open(dir.path(), NodeConfig::default()).expect("node");
    node.launch(fed_app()).expect("launch");
    let out = node
        .subscribe::<i64>("/fed/workflows/sum/stream")
        .expect("subscribe");
    let feeder = node.feeder::<i64>("/fed/generators/in").expect("feeder");
    node.run_until_quiescent();
    feeder.push(vec![31]).expect("push");
    node.run_until_quiescent();
    node.stop();
    drop(node);
    // 11..=30 processed once from the log, then 31; the running sums continue from 55.
    let sums: Vec<i64> = out.values().concat();
    let want: Vec<i64> = (11..=31)
        .scan(55, |t, x| {
            *t += x;
            Some(*t)
        })
        .collect();
    assert_eq!(sums, want);
    assert_eq!(total(dir.path()), (31, (1..=31).sum::<i64>()));
}

/// Sum of the u64 values `workflow` of app `crash` committed in `store`.
fn committed_sum(store: &SqliteStore, workflow: &str) -> u64 {
    let path = pods_sdk::Path::parse(&format!("/crash/workflows/{workflow}")).expect("path");
    let r = store.recover(path.stable_id()).expect("recover");
    r.values
        .values()
        .map(|b| ciborium::from_reader::<u64, _>(b.as_slice()).expect("u64"))
        .sum()
}

#[test]
fn a_replayed_asking_atom_gets_the_kept_replies_and_nothing_is_applied_twice() {
    let dir = tempfile::tempdir().expect("dir");
    let store = SqliteStore::open(dir.path(), StoreOptions::default()).expect("store");
    let mut first = pods_sdk::DeterministicSystem::with_storage(11, store);
    first.launch(app()).expect("launch");
    // Run until the replier has committed answers the asker has not committed yet.
    let mut ahead = false;
    for _ in 0..400 {
        first.run_steps(7);
        let (asked, applied) = (
            committed_sum(first.storage(), "count"),
            committed_sum(first.storage(), "tally"),
        );
        assert!(
            applied >= asked,
            "an ask is applied before its atom commits"
        );
        if applied > asked {
            ahead = true;
            break;
        }
    }
    assert!(ahead, "the replier never got ahead of its asker");
    // A crash: the staged steps go; the asker replays its atom and asks again.
    drop(first);
    let store = SqliteStore::open(dir.path(), StoreOptions::default()).expect("store");
    let mut second = pods_sdk::DeterministicSystem::with_storage(12, store);
    second.launch(app()).expect("launch");
    second.run_until_quiescent();
    drop(second);
    let done = committed(dir.path());
    let per_key = (EVENTS / KEYS) as u64;
    assert_eq!(done.counts, vec![per_key; KEYS as usize]);
    assert_eq!(
        done.applied,
        vec![per_key; KEYS as usize],
        "no ask applied twice"
    );
    assert!(done.tables.iter().all(|(rows, _)| *rows == per_key));
}

/// Two generators merged by a sequencer, read by two workflows that each keep the count and a
/// hash chained over the events in the order they read them; and a splitter sending the first
/// generator's even and odd events to two counting workflows.
fn merge_app() -> App {
    let app = AppBuilder::new("merge");
    let a = app.generator_from_range("a", 0..5_000, 50);
    let b = app.generator_from_range("b", 100_000..105_000, 50);
    let seq = app.sequencer::<i64>("seq");
    app.connect(&a, &seq);
    app.connect(&b, &seq);
    let merged = seq.stream();
    for name in ["first", "second"] {
        let seen = pods_sdk::PerTaskState::<(u64, u64)>::new("seen");
        app.workflow(name)
            .source(&merged)
            .processor(move |ctx: &mut Ctx<'_, ()>, x: i64| {
                seen.update(ctx, |(n, chain)| {
                    *n += 1;
                    *chain = (*chain ^ x as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                });
            })
            .sink();
    }
    let splitter = app.splitter("parity", &a);
    let even = app.split(&splitter, "even", |x: &i64| x % 2 == 0);
    let odd = app.split(&splitter, "odd", |x: &i64| x % 2 != 0);
    for (name, input) in [("evens", even), ("odds", odd)] {
        let seen = pods_sdk::PerTaskState::<(u64, u64)>::new("seen");
        app.workflow(name)
            .source(&input)
            .processor(move |ctx: &mut Ctx<'_, ()>, x: i64| {
                seen.update(ctx, |(n, sum)| {
                    *n += 1;
                    *sum += x as u64;
                });
            })
            .sink();
    }
    app.build().expect("app")
}

/// The (count, hash or sum) workflow `name` of app `merge` committed in `dir`.
fn seen(dir: &Path, name: &str) -> (u64, u64) {
    let store = SqliteStore::open(dir, StoreOptions::default()).expect("store");
    let path = pods_sdk::Path::parse(&format!("/merge/workflows/{name}")).expect("path");
    let r = store.recover(path.stable_id()).expect("recover");
    r.values
        .values()
        .next()
        .map(|b| ciborium::from_reader(b.as_slice()).expect("a pair"))
        .unwrap_or_default()
}

#[test]
fn sequencer_and_splitter_outputs_resume_in_the_same_order_after_crashes() {
    let dir = tempfile::tempdir().expect("dir");
    // Crashes at different points, each run interleaving differently (its own seed).
    for seed in 0..6 {
        let store = SqliteStore::open(dir.path(), StoreOptions::default()).expect("store");
        let mut system = pods_sdk::DeterministicSystem::with_storage(seed, store);
        system.launch(merge_app()).expect("launch");
        system.run_steps(40 + 13 * seed);
        drop(system);
    }
    let store = SqliteStore::open(dir.path(), StoreOptions::default()).expect("store");
    let mut system = pods_sdk::DeterministicSystem::with_storage(99, store);
    system.launch(merge_app()).expect("launch");
    system.run_until_quiescent();
    drop(system);
    let (first, second) = (seen(dir.path(), "first"), seen(dir.path(), "second"));
    assert_eq!(first.0, 10_000, "every merged event once");
    assert_eq!(
        first, second,
        "both readers saw the sequencer's choices in the same order"
    );
    let even_sum: u64 = (0..5_000u64).filter(|x| x % 2 == 0).sum();
    let odd_sum: u64 = (0..5_000u64).filter(|x| x % 2 != 0).sum();
    assert_eq!(seen(dir.path(), "evens"), (2_500, even_sum));
    assert_eq!(seen(dir.path(), "odds"), (2_500, odd_sum));
}
