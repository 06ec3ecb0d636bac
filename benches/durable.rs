//! What durability costs, in one run: the pipeline (generator → map → filter → key_by →
//! per-key count over 1,024 keys, one partition) on the threaded runtime with 2 workers,
//! committing to a `SqliteStore` (WAL) in a fresh temp dir with group commit (the default) and,
//! for comparison, one atom per commit, at atom sizes 100 and 1,000 with `synchronous` NORMAL
//! and FULL, beside the same pipeline on `VolatileStorage` (the in-memory baseline); then the
//! latency of one commit (p50, p99) at atom size 1,000, with and without group commit, timed
//! by a `Storage` adapter around the store; then the recovery of about 100 MB of compacted
//! state (100,000 keys of ~1 KB strings): `SqliteStore::open` + `recover`, best of 3, in MB/s;
//! then a logged stream (a workflow passing each event on to a counting workflow, so its output
//! atoms are logged with its commits) of plain events beside the same of personal events
//! (each with an envelope naming one of 1,000 subjects), whose values the store seals.
//!
//! Every durable run is checked: a step per atom, the input consumed to its end, and the
//! counts recovered from the reopened file adding up to the events that pass the filter. Recovery reads a file the page
//! cache holds (it was just written), so it measures the store's CPU cost, not the disk's.
//!
//! Run with `cargo bench --bench durable` (5,000,000 events; optionally `-- --quick`: 200,000
//! events and 20 MB of state; `-- --events <n>`: another number of events, as 1,000,000 shows
//! the fixed costs of opening, launching and closing the store beside a steady state;
//! `-- --pipeline`: the first table alone). For a profiler: `-- --profile <atom size> [--full]
//! [--quick]` runs only the pipeline on the store (NORMAL, or FULL), once, and prints the share
//! of time in commits and the slowest commits.

mod common;

use std::time::{Duration, Instant};

use common::{pipeline, rate, staged};
use pods_node::{SqliteStore, StoreOptions, Synchronous};
use pods_sdk::{
    App, AppBuilder, Commit, Ctx, Envelope, Event, InputPosition, Key, Path, PerKeyState, Recovery,
    StateName, StateValue, StateWrite, Storage, StorageError, ThreadedConfig, ThreadedSystem,
    VolatileStorage,
};

const WORKERS: usize = 2;
/// Bytes of each state value written for the recovery measurement (a string of this length).
const VALUE_LEN: usize = 1_000;
/// Keys written per commit for the recovery measurement.
const KEYS_PER_COMMIT: u64 = 1_000;

fn options(synchronous: Synchronous) -> StoreOptions {
    StoreOptions {
        synchronous,
        ..StoreOptions::default()
    }
}

fn label(synchronous: Synchronous) -> &'static str {
    match synchronous {
        Synchronous::Normal => "NORMAL",
        Synchronous::Full => "FULL",
    }
}

/// Runs `app` on a threaded system over `storage` until quiescent, then stops it; `group`:
/// most queued atoms committed in one transaction.
fn run_on<S: Storage + 'static>(storage: S, app: App, group: usize) -> ThreadedSystem<S> {
    let config = ThreadedConfig {
        workers: WORKERS,
        group_commit: group,
        ..ThreadedConfig::default()
    };
    let system = ThreadedSystem::with_storage(config, storage).expect("threads");
    system.launch(app).expect("launch");
    system.run_until_quiescent();
    system.stop();
    system
}

/// The store, timing each commit (one transaction, for one atom or a group of them).
struct Timed {
    store: SqliteStore,
    times: Vec<Duration>,
}

impl Storage for Timed {
    fn commit(&mut self, commit: &Commit<'_>) -> Result<(), StorageError> {
        let t = Instant::now();
        let result = self.store.commit(commit);
        self.times.push(t.elapsed());
        result
    }

    fn keeps_state(&self) -> bool {
        self.store.keeps_state()
    }

    fn recover(
        &mut self,
        workflow: &Path,
        workflow_id: u64,
    ) -> Result<Option<Recovery>, StorageError> {
        Storage::recover(&mut self.store, workflow, workflow_id)
    }

    fn begin_consumer(
        &mut self,
        workflow: &Path,
        workflow_id: u64,
        input: &InputPosition,
    ) -> Result<(), StorageError> {
        self.store.begin_consumer(workflow, workflow_id, input)
    }

    fn replay(&mut self, stream: &Path, from: u64, to: u64) -> Result<Vec<Vec<u8>>, StorageError> {
        self.store.replay(stream, from, to)
    }
}

/// Atoms of `atom` events in `events`: the steps (and commits) of one pipeline run.
fn atoms(events: i64, atom: i64) -> u64 {
    (events as u64).div_ceil(atom as u64)
}

/// The unsigned integer a CBOR item holds (the count state's encoding).
fn cbor_u64(bytes: &[u8]) -> u64 {
    let (&head, rest) = bytes.split_first().expect("a CBOR item");
    assert_eq!(head >> 5, 0, "an unsigned integer");
    let width = match head & 31 {
        n @ 0..24 => return u64::from(n),
        24 => 1,
        25 => 2,
        26 => 4,
        27 => 8,
        n => panic!("bad CBOR length {n}"),
    };
    assert_eq!(rest.len(), width, "one CBOR item");
    rest.iter().fold(0, |n, b| (n << 8) | u64::from(*b))
}

/// Reopens the store in `dir` and checks what a pipeline run committed: `atoms` steps, the
/// input consumed to its end, and per-key counts adding up to `kept` over at most 1,024 keys.
fn check_pipeline(dir: &std::path::Path, atoms: u64, kept: u64) {
    let store = SqliteStore::open(dir, StoreOptions::default()).expect("reopen");
    let id = Path::parse("/bench/workflows/count")
        .expect("path")
        .stable_id();
    let r = store.recover(id).expect("recover");
    assert_eq!(r.step, atoms, "one step per atom");
    assert_eq!(r.input.map(|p| p.next), Some(atoms), "input consumed");
    assert!(r.values.len() <= common::KEYS as usize);
    let total: u64 = r.values.values().map(|v| cbor_u64(v)).sum();
    assert_eq!(total, kept, "recovered counts add up to the events kept");
}

/// Best events/s of the pipeline on a fresh `SqliteStore` per repetition (at least 3, and
/// at least `budget` in all): timed from opening the store to closing it (the system dropped),
/// each repetition checked afterwards.
fn durable_rate(
    events: i64,
    atom: i64,
    synchronous: Synchronous,
    group: usize,
    budget: Duration,
) -> f64 {
    let atoms = atoms(events, atom);
    let kept: u64 = staged(events, atom).values().sum();
    let mut best = f64::MAX;
    let started = Instant::now();
    let mut reps = 0;
    while reps < 3 || started.elapsed() < budget {
        let dir = tempfile::tempdir().expect("temp dir");
        let t = Instant::now();
        let store = SqliteStore::open(dir.path(), options(synchronous)).expect("open");
        let system = run_on(store, pipeline(events, atom, 1), group);
        drop(system);
        best = best.min(t.elapsed().as_secs_f64());
        check_pipeline(dir.path(), atoms, kept);
        reps += 1;
    }
    events as f64 / best
}

/// Every commit's latency (one transaction for up to `group` atoms) over one run of the
/// pipeline, sorted.
fn commit_latencies(
    events: i64,
    atom: i64,
    synchronous: Synchronous,
    group: usize,
) -> Vec<Duration> {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path(), options(synchronous)).expect("open");
    let system = run_on(
        Timed {
            store,
            times: Vec::new(),
        },
        pipeline(events, atom, 1),
        group,
    );
    let mut times = std::mem::take(&mut system.storage().times);
    drop(system);
    check_pipeline(
        dir.path(),
        atoms(events, atom),
        staged(events, atom).values().sum(),
    );
    times.sort();
    times
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// Bytes of the database's files (the database, and its WAL and shared memory if present).
fn database_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry"))
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(pods_node::DATABASE)
        })
        .map(|e| e.metadata().expect("metadata").len())
        .sum()
}

/// The value held for key `k`: its number, then filler, `VALUE_LEN` bytes in all.
fn big_value(k: u64) -> String {
    let mut s = format!("{k:010}:");
    while s.len() < VALUE_LEN {
        s.push_str("the quick brown fox jumps over the lazy dog ");
    }
    s.truncate(VALUE_LEN);
    s
}

/// Writes `keys` values of `VALUE_LEN` bytes into a store in `dir` as one workflow's per-key
/// state, as the runtime commits it (one commit of `KEYS_PER_COMMIT` writes per step, with an
/// input position), compacting after each commit as `compact_every` would; returns the time
/// taken and the workflow's id.
fn write_state(dir: &std::path::Path, keys: u64) -> (Duration, u64) {
    let workflow = Path::parse("/big/workflows/w").expect("path");
    let workflow_id = workflow.stable_id();
    let state = StateName {
        workflow: workflow.clone(),
        task: 0,
        name: "blob".into(),
        id: 7,
    };
    let stream = Path::parse("/big/generators/g/stream").expect("path");
    let t = Instant::now();
    let mut store = SqliteStore::open(
        dir,
        StoreOptions {
            synchronous: Synchronous::Normal,
            compact_every: 0,
            ..StoreOptions::default()
        },
    )
    .expect("open");
    let mut step = 0;
    let mut first = 0;
    while first < keys {
        let last = (first + KEYS_PER_COMMIT).min(keys);
        let values: Vec<String> = (first..last).map(big_value).collect();
        let writes: Vec<StateWrite<'_>> = (first..last)
            .zip(&values)
            .map(|(k, v)| StateWrite {
                state: &state,
                key: Some(Key(k)),
                value: Some(v as &dyn StateValue),
                owner: None,
            })
            .collect();
        step += 1;
        store
            .commit(&Commit {
                workflow: &workflow,
                workflow_id,
                step,
                steps: 1,
                input: Some(InputPosition {
                    stream: stream.clone(),
                    next: step,
                }),
                writes: &writes,
                output_events: 0,
                outputs: &[],
                asks: 0,
                replies: 0,
                answered: &[],
            })
            .expect("commit");
        assert_eq!(store.compact(workflow_id).expect("compact"), 1);
        first = last;
    }
    drop(store);
    (t.elapsed(), workflow_id)
}

/// Checks a recovery of `keys` values written by `write_state`.
fn check_state(r: &Recovery, keys: u64) {
    assert_eq!(r.values.len() as u64, keys, "every value recovered");
    assert_eq!(r.step, keys.div_ceil(KEYS_PER_COMMIT));
    for (k, (slot, v)) in r.values.iter().enumerate() {
        assert_eq!(slot.1, Some(Key(k as u64)));
        // CBOR text string of VALUE_LEN (two length bytes), then the text.
        assert_eq!(v.len(), VALUE_LEN + 3);
        assert_eq!(&v[3..], big_value(k as u64).as_bytes());
    }
}

/// Subjects of the personal events of the logged stream.
const SUBJECTS: i64 = 1_000;

/// A logged stream: a generator of `events` (plain, or `personal`: each with an envelope
/// naming one of `SUBJECTS` subjects) in atoms of `atom` → `pass` (emits each event; its output
/// stream is logged, since `count` reads it) → `count` (per-key count over 1,024 keys).
fn logged_pipeline(events: i64, atom: i64, personal: bool) -> App {
    let app = AppBuilder::new("logged");
    let atoms: Vec<Vec<Event<i64>>> = (0..events)
        .step_by(atom as usize)
        .map(|start| {
            (start..(start + atom).min(events))
                .map(|x| {
                    if personal {
                        let subject = format!("subject-{:04}@example.org", x % SUBJECTS);
                        Event::personal(x, Envelope::new(subject, &["bench.value"]))
                    } else {
                        Event::new(x)
                    }
                })
                .collect()
        })
        .collect();
    let g = app.generator_from_events("g", atoms);
    let passed = app
        .workflow("pass")
        .source(&g)
        .processor(|ctx: &mut Ctx<'_, i64>, x: i64| ctx.emit(x))
        .sink();
    let count = PerKeyState::<u64>::new("count");
    app.workflow("count")
        .source(&passed)
        .key_by(common::key)
        .processor(move |ctx: &mut Ctx<'_, ()>, _x: i64| {
            count.update(ctx, |c| *c += 1);
        })
        .sink();
    app.build().expect("build")
}

/// Best events/s of the logged stream (`personal` or plain) on a fresh `SqliteStore` (NORMAL)
/// per repetition, as `durable_rate` times it, each repetition checked (every event counted);
/// or (`durable` false) on `VolatileStorage`.
fn logged_rate(events: i64, atom: i64, personal: bool, durable: bool, budget: Duration) -> f64 {
    let group = ThreadedConfig::default().group_commit;
    let mut best = f64::MAX;
    let started = Instant::now();
    let mut reps = 0;
    while reps < 3 || started.elapsed() < budget {
        let app = logged_pipeline(events, atom, personal);
        if !durable {
            let t = Instant::now();
            drop(run_on(VolatileStorage::new(), app, group));
            best = best.min(t.elapsed().as_secs_f64());
            reps += 1;
            continue;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let t = Instant::now();
        let store = SqliteStore::open(dir.path(), options(Synchronous::Normal)).expect("open");
        drop(run_on(store, app, group));
        best = best.min(t.elapsed().as_secs_f64());
        let store = SqliteStore::open(dir.path(), StoreOptions::default()).expect("reopen");
        let id = Path::parse("/logged/workflows/count")
            .expect("path")
            .stable_id();
        let r = store.recover(id).expect("recover");
        let total: u64 = r.values.values().map(|v| cbor_u64(v)).sum();
        assert_eq!(total, events as u64, "every event counted");
        reps += 1;
    }
    events as f64 / best
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let events: i64 = std::env::args()
        .skip_while(|a| a != "--events")
        .nth(1)
        .map(|n| n.parse().expect("a number of events"))
        // 5,000,000 events: the in-memory run of 1,000,000 takes about 10 ms, of which opening
        // a fresh database and its last checkpoint would be most of a durable run.
        .unwrap_or(if quick { 200_000 } else { 5_000_000 });
    if let Some(atom) = std::env::args().skip_while(|a| a != "--profile").nth(1) {
        // Only durable pipeline runs, for a profiler.
        let atom: i64 = atom.parse().expect("an atom size");
        let full = std::env::args().any(|a| a == "--full");
        let s = if full {
            Synchronous::Full
        } else {
            Synchronous::Normal
        };
        let t = Instant::now();
        let times = commit_latencies(events, atom, s, ThreadedConfig::default().group_commit);
        let total = t.elapsed();
        let committing: Duration = times.iter().sum();
        println!(
            "{} atom {atom}: {total:?}, {} commits taking {committing:?} ({:.0}%)",
            label(s),
            times.len(),
            100.0 * committing.as_secs_f64() / total.as_secs_f64()
        );
        let slowest: Vec<String> = times
            .iter()
            .rev()
            .take(12)
            .map(|t| format!("{:.1}", micros(*t) / 1e3))
            .collect();
        println!("slowest commits (ms): {}", slowest.join(" "));
        return;
    }
    let only_pipeline = std::env::args().any(|a| a == "--pipeline");
    let budget = Duration::from_millis(if quick { 200 } else { 1_500 });
    let modes = [Synchronous::Normal, Synchronous::Full];

    println!(
        "pipeline: generator -> map -> filter -> key_by -> per-key count (1024 keys), 1 partition, \
         {WORKERS} worker threads, {events} events; SqliteStore (WAL) in a fresh temp dir per run, \
         compacting each workflow every {} commits or {} MiB of records (within the commit)",
        StoreOptions::default().compact_every,
        StoreOptions::default().compact_bytes >> 20
    );
    let group = ThreadedConfig::default().group_commit;
    println!(
        "group commit: up to {group} queued atoms per transaction (the default); the last two \
         columns: FULL with one atom per transaction, for comparison"
    );
    println!(
        "{:>10} {:>9} {:>16} {:>14} {:>11} {:>14} {:>9} {:>14} {:>11}",
        "atom size",
        "atoms",
        "in-memory ev/s",
        "NORMAL ev/s",
        "NORMAL/mem",
        "FULL ev/s",
        "FULL/mem",
        "FULL 1/tx ev/s",
        "FULL/1/tx"
    );
    for atom in [100i64, 1_000] {
        let memory = rate(events, budget, || {
            let system = run_on(VolatileStorage::new(), pipeline(events, atom, 1), group);
            let steps = system.steps();
            drop(system);
            steps
        });
        let [normal, full] = modes.map(|s| durable_rate(events, atom, s, group, budget));
        let single = durable_rate(events, atom, Synchronous::Full, 1, budget);
        println!(
            "{atom:>10} {:>9} {memory:>16.0} {normal:>14.0} {:>10.1}% {full:>14.0} {:>8.1}% {single:>14.0} {:>10.1}x",
            atoms(events, atom),
            100.0 * normal / memory,
            100.0 * full / memory,
            full / single
        );
    }

    if only_pipeline {
        return;
    }
    let atom = 1_000;
    println!();
    println!(
        "commit latency at atom size {atom} (the commits of one run of {} atoms; a commit writes \
         the last count of each key its atoms touched, up to 1024)",
        atoms(events, atom)
    );
    println!(
        "{:>12} {:>14} {:>10} {:>10} {:>10} {:>10} {:>14}",
        "synchronous", "atoms per tx", "p50 us", "p99 us", "mean us", "max us", "transactions"
    );
    for s in modes {
        for group in [1, ThreadedConfig::default().group_commit] {
            let times = commit_latencies(events, atom, s, group);
            let mean = times.iter().sum::<Duration>() / times.len() as u32;
            println!(
                "{:>12} {:>14} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>14}",
                label(s),
                format!("up to {group}"),
                micros(percentile(&times, 0.50)),
                micros(percentile(&times, 0.99)),
                micros(mean),
                micros(*times.last().expect("commits")),
                times.len()
            );
        }
    }

    let keys: u64 = if quick { 20_000 } else { 100_000 };
    let dir = tempfile::tempdir().expect("temp dir");
    let (load, workflow_id) = write_state(dir.path(), keys);
    let values = keys * VALUE_LEN as u64;
    let size = database_bytes(dir.path());
    let mut best = Duration::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        let store = SqliteStore::open(dir.path(), StoreOptions::default()).expect("open");
        let r = store.recover(workflow_id).expect("recover");
        best = best.min(t.elapsed());
        check_state(&r, keys);
    }
    println!();
    println!(
        "recovery: {keys} keys x {VALUE_LEN} B strings ({:.0} MB of values), one workflow, \
         compacted into its snapshot",
        mb(values)
    );
    println!(
        "{:>14} {:>14} {:>12} {:>22} {:>12} {:>16}",
        "database MB",
        "bytes per key",
        "write s",
        "open + recover s",
        "MB/s of db",
        "MB/s of values"
    );
    println!(
        "{:>14.1} {:>14.0} {:>12.2} {:>22.3} {:>12.0} {:>16.0}",
        mb(size),
        size as f64 / keys as f64,
        load.as_secs_f64(),
        best.as_secs_f64(),
        mb(size) / best.as_secs_f64(),
        mb(values) / best.as_secs_f64()
    );

    println!();
    println!(
        "logged stream: generator -> pass (its output atoms logged with its commits) -> per-key \
         count; {events} events, SqliteStore NORMAL, group commit; personal events carry an \
         envelope naming one of {SUBJECTS} subjects, and the store seals their values"
    );
    println!(
        "{:>10} {:>24} {:>14} {:>16} {:>16}",
        "atom size", "in-memory personal ev/s", "plain ev/s", "personal ev/s", "personal/plain"
    );
    for atom in [100i64, 1_000] {
        let memory = logged_rate(events, atom, true, false, budget);
        let plain = logged_rate(events, atom, false, true, budget);
        let personal = logged_rate(events, atom, true, true, budget);
        println!(
            "{atom:>10} {memory:>24.0} {plain:>14.0} {personal:>16.0} {:>15.1}%",
            100.0 * personal / plain
        );
    }
}
