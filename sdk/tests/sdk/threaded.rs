//! Tests of the threaded runtime: partitions, asks across partitions, backpressure, shutdown,
//! and agreement with the deterministic runtime on random apps.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pods_sdk::{
    App, AppBuilder, AskError, DeterministicSystem, Error, PartitionThreads, PerKeyState,
    StreamItem, ThreadedConfig, ThreadedSystem,
};
use proptest::prelude::*;

use crate::{LIMIT, Rt, Sys, atoms_and_seal, serve, within_limit};

fn threaded(workers: usize, stream_bound: usize) -> ThreadedSystem {
    let config = ThreadedConfig {
        workers,
        stream_bound,
        // Every partitioned step on helper threads, however small.
        parallel_step: 1,
        partition_threads: PartitionThreads::AtOnce,
        pending_asks: 64,
        group_commit: 8,
        ..ThreadedConfig::default()
    };
    ThreadedSystem::with_storage(config, pods_sdk::MemoryStorage::new()).expect("threads")
}

/// generator (range) → map → filter → key_by → per-key count, in `p` partitions.
fn keyed_count(events: i64, atom: usize, p: usize) -> App {
    let app = AppBuilder::new("app");
    let g = app.generator_from_range("g", 0..events, atom);
    let count = PerKeyState::<u64>::new("count");
    app.workflow("count")
        .partitions(p)
        .source(&g)
        .map(|x| x.wrapping_mul(7919))
        .filter(|x| x % 3 != 0)
        .key_by(|x| x.rem_euclid(1024))
        .processor(move |ctx, x: i64| {
            let n = count.get(ctx) + 1;
            count.set(ctx, n);
            ctx.emit((x.rem_euclid(1024), n));
        })
        .sink();
    app.build().expect("app")
}

/// Runs `keyed_count(events, atom, p)` on `system` and on the deterministic runtime (one
/// partition); asserts the same final state, one output atom per input atom and each key's
/// counts in order; returns the final state.
fn keyed_count_as_deterministic(
    system: &ThreadedSystem,
    events: i64,
    atom: usize,
    p: usize,
) -> Vec<(Option<pods_sdk::Key>, u64)> {
    system.launch(keyed_count(events, atom, p)).unwrap();
    let out = system
        .subscribe::<(i64, u64)>("/app/workflows/count/stream")
        .unwrap();
    system.run_until_quiescent_within(LIMIT).unwrap();
    let state = system
        .storage()
        .values::<u64>("/app/workflows/count", "count")
        .unwrap();

    let mut reference = DeterministicSystem::new(5);
    reference.launch(keyed_count(events, atom, 1)).unwrap();
    reference.run_until_quiescent();
    let expected = reference
        .storage()
        .values::<u64>("/app/workflows/count", "count");
    assert_eq!(state, expected.unwrap());
    // One output atom per input atom, every event counted once, each key's counts in order.
    let items = out.items();
    assert_eq!(items.last(), Some(&StreamItem::Seal));
    assert_eq!(items.len(), events as usize / atom + 1);
    let mut last: BTreeMap<i64, u64> = BTreeMap::new();
    for (key, n) in out.values().into_iter().flatten() {
        let before = last.insert(key, n).unwrap_or(0);
        assert_eq!(n, before + 1, "key {key} counted out of order");
    }
    state
}

#[test]
fn a_million_events_through_a_keyed_count_in_four_partitions_end_in_the_deterministic_state() {
    within_limit(|| {
        let state = keyed_count_as_deterministic(&threaded(2, 4), 1_000_000, 1_000, 4);
        assert_eq!(state.len(), 1024);
        let total: u64 = state.iter().map(|(_, n)| n).sum();
        assert_eq!(
            total,
            (0..1_000_000i64)
                .filter(|x| x.wrapping_mul(7919) % 3 != 0)
                .count() as u64
        );
    });
}

/// With the way of running partitions measured (the default), a workflow's steps run its
/// partitions at once (its first trial), then in turn (its second), then whichever was faster,
/// trying the other again after 512 steps: a keyed count over 1,200 steps of 100 events, run
/// both ways in turn, still ends in the deterministic runtime's state, each key counted in
/// order.
#[test]
fn a_keyed_count_run_both_ways_in_turn_ends_in_the_deterministic_state() {
    within_limit(|| {
        let config = ThreadedConfig {
            workers: 2,
            stream_bound: 4,
            parallel_step: 1,
            partition_threads: PartitionThreads::Measured,
            ..ThreadedConfig::default()
        };
        let system =
            ThreadedSystem::with_storage(config, pods_sdk::MemoryStorage::new()).expect("threads");
        let state = keyed_count_as_deterministic(&system, 120_000, 100, 2);
        assert_eq!(state.len(), 1024);
    });
}

#[test]
fn partitions_are_registered_by_path() {
    within_limit(|| {
        let system = threaded(2, 4);
        system.launch(keyed_count(10, 5, 3)).unwrap();
        let partitions: Vec<String> = system
            .registry()
            .into_iter()
            .filter(|(_, kind)| *kind == "partition")
            .map(|(path, _)| path)
            .collect();
        assert_eq!(
            partitions,
            vec![
                "/app/workflows/count/partitions/0",
                "/app/workflows/count/partitions/1",
                "/app/workflows/count/partitions/2",
            ]
        );
    });
}

#[test]
fn zero_partitions_is_refused_when_the_app_is_built() {
    let app = AppBuilder::new("app");
    let g = app.generator_from_atoms("g", vec![vec![1i64]]);
    app.workflow("wf")
        .partitions(0)
        .source(&g)
        .identity()
        .sink();
    assert_eq!(
        app.build().err(),
        Some(Error::NoPartitions {
            workflow: "/app/workflows/wf".to_owned()
        })
    );
}

/// An asker in 2 partitions asks a keyed replier in 3 partitions twice per event and sums both
/// replies; the replier counts asks per key in its partitions' state.
fn asks_across_partitions(asker: usize, replier: usize) -> App {
    let app = AppBuilder::new("app");
    let portal = app.portal_keyed::<i64, i64, i64>("times10", |x| x.rem_euclid(5));
    let asked = PerKeyState::<u64>::new("asked");
    let none = app.generator_from_atoms::<i64>("none", vec![]);
    app.workflow("replier")
        .partitions(replier)
        .source(&none)
        .replier(&portal, move |ctx, x, to| {
            let n = asked.get(ctx) + 1;
            asked.set(ctx, n);
            ctx.reply(to, x * 10)
        })
        .sink();
    let atoms: Vec<Vec<i64>> = (0..20).map(|a| (a * 7..a * 7 + 7).collect()).collect();
    let g = app.generator_from_atoms("g", atoms);
    let p = portal.clone();
    app.workflow("asker")
        .partitions(asker)
        .source(&g)
        .asker(&portal, move |ctx, x: i64| {
            let a = ctx.ask(&p, x);
            let b = ctx.ask(&p, x + 1);
            ctx.on_replies(vec![a, b], move |ctx, replies| {
                let r = replies.map_err(|e| e.to_string())?;
                ctx.emit((x, r.iter().sum::<i64>()));
                Ok::<(), String>(())
            });
        })
        .sink();
    app.build().expect("app")
}

#[test]
fn asks_reach_the_partition_owning_their_key_and_replies_return_to_the_asker() {
    within_limit(|| {
        for (asker, replier) in [(1, 1), (2, 3), (4, 2)] {
            let system = threaded(2, 2);
            system
                .launch(asks_across_partitions(asker, replier))
                .unwrap();
            let out = system
                .subscribe::<(i64, i64)>("/app/workflows/asker/stream")
                .unwrap();
            system.run_until_quiescent_within(LIMIT).unwrap();
            let mut got: Vec<(i64, i64)> = out.values().into_iter().flatten().collect();
            got.sort();
            let want: Vec<(i64, i64)> = (0..140).map(|x| (x, x * 10 + (x + 1) * 10)).collect();
            assert_eq!(got, want, "asker {asker}, replier {replier}");
            assert_eq!(out.values().len(), 20, "one atom of replies per input atom");
            let asked = system
                .storage()
                .values::<u64>("/app/workflows/replier", "asked")
                .unwrap();
            let mut per_key = [0u64; 5];
            for x in (0..140).chain(1..141) {
                per_key[(x % 5) as usize] += 1;
            }
            let mut counts: Vec<u64> = asked.into_iter().map(|(_, n)| n).collect();
            counts.sort();
            let mut want_counts = per_key.to_vec();
            want_counts.sort();
            assert_eq!(
                counts, want_counts,
                "each ask applied once, in its key's partition"
            );
        }
    });
}

/// The names of this process's live threads.
fn thread_names() -> Vec<String> {
    let mut names = Vec::new();
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for t in tasks.flatten() {
            if let Ok(name) = std::fs::read_to_string(t.path().join("comm")) {
                names.push(name.trim().to_owned());
            }
        }
    }
    names
}

#[test]
fn stop_finishes_the_atoms_in_flight_and_leaves_no_thread_behind() {
    within_limit(|| {
        let system = threaded(2, 2);
        let app = AppBuilder::new("app");
        let input = app.generator_external::<i64>("input");
        app.workflow("slow")
            .source(&input)
            .map(|x| {
                std::thread::sleep(Duration::from_millis(5));
                x
            })
            .sink();
        system.launch(app.build().unwrap()).unwrap();
        let out = system
            .subscribe::<i64>("/app/workflows/slow/stream")
            .unwrap();
        let feeder = system.feeder::<i64>("/app/generators/input").unwrap();
        system.start();
        for a in 0..20 {
            feeder.push(vec![a * 3, a * 3 + 1, a * 3 + 2]).unwrap();
        }
        std::thread::sleep(Duration::from_millis(30));
        let prefix = system.thread_prefix();
        let started = std::time::Instant::now();
        while !thread_names().iter().any(|n| n.starts_with(&prefix)) {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "no worker thread seen"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        system.stop();
        // `stop` has joined every thread; the kernel may list a joined thread for a moment
        // longer (its id is cleared before it is reaped), so look again briefly.
        let stopped = std::time::Instant::now();
        while thread_names().iter().any(|n| n.starts_with(&prefix)) {
            assert!(
                stopped.elapsed() < Duration::from_millis(500),
                "worker threads outlived stop()"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        // Every atom that came out is whole, in order; stop did not cut one.
        let atoms = out.values();
        assert!(!atoms.is_empty() && atoms.len() <= 20);
        for (a, atom) in atoms.iter().enumerate() {
            let a = a as i64;
            assert_eq!(atom, &vec![a * 3, a * 3 + 1, a * 3 + 2]);
        }
        assert_eq!(
            system.launch(AppBuilder::new("late").build().unwrap()),
            Err(Error::Stopped)
        );
    });
}

#[test]
fn a_host_waits_on_a_subscription_until_more_items_arrive() {
    within_limit(|| {
        let system = threaded(2, 4);
        let app = AppBuilder::new("app");
        let input = app.generator_external::<i64>("input");
        app.workflow("wf").source(&input).map(|x| x + 1).sink();
        system.launch(app.build().unwrap()).unwrap();
        let out = system.subscribe::<i64>("/app/workflows/wf/stream").unwrap();
        let feeder = system.feeder::<i64>("/app/generators/input").unwrap();
        system.start();
        // Nothing pushed: the wait ends at its timeout with nothing seen.
        let t = Instant::now();
        assert_eq!(out.wait_beyond(0, Duration::from_millis(50)), 0);
        assert!(t.elapsed() >= Duration::from_millis(50));
        // Pushed from another thread while this one waits: the wait ends with the atom.
        let pusher = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            feeder.push(vec![1, 2]).unwrap();
            feeder.seal();
        });
        let mut seen = out.wait_beyond(0, LIMIT);
        assert!(seen >= 1);
        while !out.ended() {
            seen = out.wait_beyond(seen, LIMIT);
        }
        pusher.join().unwrap();
        assert_eq!(atoms_and_seal(&out), (vec![vec![2, 3]], true));
        // Already beyond: returns at once.
        assert_eq!(out.wait_beyond(0, LIMIT), 2);
        system.stop();
    });
}

/// `n` asks for `/math/portals/double` from another process, numbered from `first`, whose
/// replies land in `got`.
fn asks_from_afar(
    n: u32,
    first: u32,
    got: &Arc<std::sync::Mutex<Vec<u32>>>,
) -> Vec<pods_sdk::InboundAsk> {
    let portal = pods_sdk::Path::parse("/math/portals/double").unwrap();
    (first..first + n)
        .map(|seq| {
            let mut request = Vec::new();
            ciborium::into_writer(&i64::from(seq), &mut request).unwrap();
            let got = got.clone();
            pods_sdk::InboundAsk {
                portal: portal.clone(),
                id: pods_sdk::AskId {
                    origin: 7,
                    scope: u64::from(first),
                    partition: 0,
                    seq,
                },
                request,
                envelope: None,
                reply: Box::new(move |r| {
                    assert!(r.is_ok(), "{r:?}");
                    got.lock().unwrap().push(seq);
                }),
            }
        })
        .collect()
}

/// The threads that ran each step of a replier, in order.
type Threads = Arc<std::sync::Mutex<Vec<Option<String>>>>;

/// A started system running `/math/portals/double`, whose replier takes `pause` per ask and
/// records the thread of each of its steps; resting (nothing runs).
fn doubler(pause: Duration) -> (ThreadedSystem, Threads) {
    let system = threaded(2, 4);
    let app = AppBuilder::new("math");
    let double = app.portal::<i64, i64>("double");
    let threads: Threads = Arc::default();
    let seen = threads.clone();
    serve(&app, "doubler", &double, move |ctx, x, to| {
        let name = std::thread::current().name().map(str::to_owned);
        seen.lock().unwrap().push(name);
        std::thread::sleep(pause);
        ctx.reply(to, x * 2);
    });
    system.launch(app.build().unwrap()).unwrap();
    system.start();
    system.run_until_quiescent();
    (system, threads)
}

/// Waits until `got` holds `n` replies.
fn replies_reach(got: &Arc<std::sync::Mutex<Vec<u32>>>, n: usize) {
    let t = Instant::now();
    while got.lock().unwrap().len() < n {
        assert!(t.elapsed() < LIMIT, "{n} replies not seen");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_few_asks_from_another_process_are_answered_on_the_calling_thread_when_all_is_idle() {
    within_limit(|| {
        let (system, threads) = doubler(Duration::ZERO);
        let got: Arc<std::sync::Mutex<Vec<u32>>> = Arc::default();
        // 64 asks while nothing runs: one step on this thread, answered before the call returns.
        let refused = system.ask_inbound_all(asks_from_afar(64, 0, &got));
        assert!(refused.is_empty());
        assert_eq!(got.lock().unwrap().len(), 64);
        let here = std::thread::current().name().map(str::to_owned);
        assert!(threads.lock().unwrap().iter().all(|t| *t == here));
        // 65 are more than a caller waits for: a worker takes them.
        let refused = system.ask_inbound_all(asks_from_afar(65, 64, &got));
        assert!(refused.is_empty());
        replies_reach(&got, 129);
        let prefix = system.thread_prefix();
        let threads = threads.lock().unwrap();
        assert_eq!(threads.len(), 129);
        assert!(
            threads[64..]
                .iter()
                .all(|t| t.as_deref().is_some_and(|n| n.starts_with(&prefix))),
            "{:?}",
            &threads[64..]
        );
        system.stop();
    });
}

#[test]
fn a_unit_whose_last_step_was_long_takes_asks_from_afar_on_a_worker() {
    within_limit(|| {
        // A slow replier: 2 ms per ask.
        let (system, threads) = doubler(Duration::from_millis(2));
        let got: Arc<std::sync::Mutex<Vec<u32>>> = Arc::default();
        // No step of it yet: the first is taken here, and is long.
        let refused = system.ask_inbound_all(asks_from_afar(1, 0, &got));
        assert!(refused.is_empty());
        assert_eq!(got.lock().unwrap().len(), 1);
        // So the next goes to a worker.
        let refused = system.ask_inbound_all(asks_from_afar(1, 1, &got));
        assert!(refused.is_empty());
        replies_reach(&got, 2);
        let here = std::thread::current().name().map(str::to_owned);
        let prefix = system.thread_prefix();
        let threads = threads.lock().unwrap();
        assert_eq!(threads[0], here);
        assert!(
            threads[1]
                .as_deref()
                .is_some_and(|n| n.starts_with(&prefix)),
            "{threads:?}"
        );
        system.stop();
    });
}

/// Environment variable that turns [`memory_bound_child`] into the measured child process.
const CHILD: &str = "PODS_MEMORY_CHILD";

#[test]
fn a_fast_generator_and_a_slow_sink_keep_memory_bounded() {
    within_limit(|| {
        let exe = std::env::current_exe().expect("test binary");
        let out = std::process::Command::new(exe)
            .args([
                "--exact",
                "threaded::memory_bound_child",
                "--ignored",
                "--nocapture",
            ])
            .env(CHILD, "1")
            .output()
            .expect("child runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "child failed: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = stdout
            .lines()
            .find(|l| l.starts_with("memory:"))
            .unwrap_or_else(|| panic!("no measurement in: {stdout}"));
        let fields: Vec<u64> = line
            .split_whitespace()
            .filter_map(|f| f.split('=').nth(1))
            .filter_map(|v| v.parse().ok())
            .collect();
        println!("{line}");
        let [produced, consumed, rss_early, rss_late] = fields[..] else {
            panic!("bad measurement: {line}");
        };
        // The generator is far faster than the sink, yet only the stream bounds separate them:
        // two streams of 4 atoms, plus the atoms in the hands of the map and the sink.
        assert!(consumed > 10, "{line}");
        assert!(
            produced <= consumed + 2 * 4 + 4,
            "generator ran ahead: {line}"
        );
        assert!(
            rss_late <= rss_early + 16 * 1024,
            "resident memory grew: {line}"
        );
    });
}

/// The child of [`a_fast_generator_and_a_slow_sink_keep_memory_bounded`]: an endless
/// generator of 10,000-event atoms into a sink that takes 2 ms per atom, for 1.5 s.
#[test]
#[ignore = "run as a child process by a_fast_generator_and_a_slow_sink_keep_memory_bounded"]
fn memory_bound_child() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let produced = Arc::new(AtomicU64::new(0));
    let consumed = Arc::new(AtomicU64::new(0));
    let app = AppBuilder::new("app");
    let g = app.generator_from_range("g", 0..i64::MAX, 10_000);
    let p = produced.clone();
    let fast = app
        .workflow("fast")
        .source(&g)
        .processor(move |ctx, x: i64| {
            if x % 10_000 == 0 {
                p.fetch_add(1, Ordering::SeqCst);
            }
            ctx.emit(x);
        })
        .sink();
    let c = consumed.clone();
    app.workflow("slow")
        .source(&fast)
        .processor(move |_ctx: &mut pods_sdk::Ctx<'_, i64>, x: i64| {
            if x % 10_000 == 0 {
                std::thread::sleep(Duration::from_millis(2));
                c.fetch_add(1, Ordering::SeqCst);
            }
        })
        .sink();
    let system = threaded(2, 4);
    system.launch(app.build().unwrap()).unwrap();
    system.start();
    std::thread::sleep(Duration::from_millis(500));
    let early = rss_kib();
    std::thread::sleep(Duration::from_millis(1_000));
    let late = rss_kib();
    system.stop();
    println!(
        "memory: produced={} consumed={} rss_early_kib={early} rss_late_kib={late}",
        produced.load(Ordering::SeqCst),
        consumed.load(Ordering::SeqCst)
    );
}

/// This process's resident memory, in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// A random app: a chain or a diamond, a keyed count in `pa` partitions, then an asker in `pb`
/// partitions (or a map) asking a keyed replier in `pr` partitions.
fn random_app(
    atoms: &[Vec<i64>],
    diamond: bool,
    portal: bool,
    pa: usize,
    pb: usize,
    pr: usize,
) -> App {
    let app = AppBuilder::new("app");
    let g = app.generator_from_atoms("g", atoms.to_vec());
    let count = PerKeyState::<u64>::new("count");
    let start = app.workflow("a").partitions(pa).source(&g).map(|x| x + 1);
    let shaped = if diamond {
        let left = start.map(|x| x * 2);
        let right = start.filter(|x| x % 3 == 0);
        left.union(&[&right])
    } else {
        start.filter(|x| x % 4 != 1)
    };
    let a = shaped
        .key_by(|x| x.rem_euclid(5))
        .processor(move |ctx, x: i64| {
            let n = count.get(ctx) + 1;
            count.set(ctx, n);
            ctx.emit(x * 100 + n as i64);
        })
        .sink();
    if portal {
        let p = app.portal_keyed::<i64, i64, i64>("p", |x| x.rem_euclid(3));
        let none = app.generator_from_atoms::<i64>("none", vec![]);
        app.workflow("r")
            .partitions(pr)
            .source(&none)
            .replier(&p, |ctx, x, to| ctx.reply(to, x - 7))
            .sink();
        let handle = p.clone();
        app.workflow("b")
            .partitions(pb)
            .source(&a)
            .asker(&p, move |ctx, x: i64| {
                let reply = ctx.ask(&handle, x);
                ctx.on_reply(reply, |ctx, r| {
                    ctx.emit(r.map_err(|e| e.to_string())?);
                    Ok::<(), String>(())
                });
            })
            .sink();
    } else {
        app.workflow("b")
            .partitions(pb)
            .source(&a)
            .map(|x| x - 7)
            .sink();
    }
    app.build().expect("app")
}

/// Each atom's events sorted, then the atoms sorted: the multiset of atoms.
fn multiset(items: Vec<StreamItem<i64>>) -> (Vec<Vec<i64>>, Option<StreamItem<i64>>) {
    let end = items.last().filter(|i| i.values().is_none()).cloned();
    let mut atoms: Vec<Vec<i64>> = items
        .iter()
        .filter_map(StreamItem::values)
        .map(|mut a| {
            a.sort();
            a
        })
        .collect();
    atoms.sort();
    (atoms, end)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn random_apps_give_the_deterministic_runtimes_atoms(
        atoms in prop::collection::vec(prop::collection::vec(-50i64..50, 1..12), 0..10),
        diamond in any::<bool>(),
        portal in any::<bool>(),
        pa in 1usize..=4,
        pb in 1usize..=4,
        pr in 1usize..=4,
        seed in any::<u64>(),
    ) {
        let observe = move |rt: Rt, p: (usize, usize, usize)| {
            let mut system = Sys::new(rt, seed);
            system.launch(random_app(&atoms, diamond, portal, p.0, p.1, p.2)).unwrap();
            let streams = ["/app/workflows/a/stream", "/app/workflows/b/stream"];
            let subs: Vec<_> = streams.iter().map(|s| system.subscribe::<i64>(s).unwrap()).collect();
            system.run_until_quiescent();
            subs.iter().map(|s| multiset(s.items())).collect::<Vec<_>>()
        };
        let reference = observe(Rt::Deterministic, (pa, pb, pr));
        let (tx, rx) = std::sync::mpsc::channel();
        let run = {
            let observe = observe.clone();
            move || { let _ = tx.send(observe(Rt::Threaded, (pa, pb, pr))); }
        };
        std::thread::spawn(run);
        let got = rx.recv_timeout(LIMIT).expect("threaded run within the limit");
        prop_assert_eq!(&got, &reference);
        for (_, end) in &reference {
            prop_assert_eq!(end, &Some(StreamItem::Seal));
        }
        // Partitions change nothing in a chain: each key's events keep their order. (A union
        // before the key_by merges branches per partition, so the order of one key's events
        // from different branches may differ from a single partition's.)
        if !diamond {
            prop_assert_eq!(&observe(Rt::Deterministic, (1, 1, 1)), &reference);
        }
    }
}

/// An asker whose asks wait for a slow replier takes no more input once `pending_asks`
/// continuations wait: asks in flight stay bounded however long the input.
#[test]
fn asks_waiting_for_a_slow_replier_stay_bounded() {
    within_limit(|| {
        let outstanding = Arc::new(AtomicI64::new(0));
        let max = Arc::new(AtomicI64::new(0));
        let app = AppBuilder::new("app");
        let portal = app.portal::<i64, i64>("slow");
        let (o1, m1) = (outstanding.clone(), max.clone());
        serve(&app, "server", &portal, move |ctx, req: i64, to| {
            m1.fetch_max(o1.fetch_sub(1, Ordering::SeqCst), Ordering::SeqCst);
            std::thread::sleep(Duration::from_micros(50));
            ctx.reply(to, req)
        });
        let g = app.generator_from_range("g", 0..5_000, 1);
        let p = portal.clone();
        let o2 = outstanding.clone();
        app.workflow("client")
            .source(&g)
            .asker(&portal, move |ctx, x: i64| {
                o2.fetch_add(1, Ordering::SeqCst);
                let h = ctx.ask(&p, x);
                ctx.on_reply(h, |ctx, r: Result<i64, AskError>| ctx.emit(r.unwrap_or(-1)));
            })
            .sink();
        let system = threaded(2, 1);
        system.launch(app.build().unwrap()).unwrap();
        system.run_until_quiescent_within(LIMIT).unwrap();
        let max = max.load(Ordering::SeqCst);
        println!("most asks outstanding: {max}");
        assert!(
            max <= 64,
            "{max} asks queued for the replier with stream bound 1"
        );
    });
}

/// Units take turns in order: an endless cycle on one worker does not keep another app from
/// running to its end.
#[test]
fn an_endless_cycle_does_not_starve_other_apps() {
    within_limit(|| {
        let cycle = AppBuilder::new("cycle");
        let g = cycle.generator_from_atoms("g", vec![vec![1i64]]);
        let seq = cycle.sequencer::<i64>("seq");
        cycle.connect(&g, &seq);
        let out = cycle
            .workflow("spin")
            .source(&seq.stream())
            .identity()
            .sink();
        cycle.connect(&out, &seq);
        let other = AppBuilder::new("other");
        let og = other.generator_from_atoms("g", vec![vec![1i64], vec![2], vec![3]]);
        other.workflow("wf").source(&og).map(|x: i64| x * 10).sink();

        let system = threaded(1, 4);
        system.launch(cycle.build().unwrap()).unwrap();
        system.launch(other.build().unwrap()).unwrap();
        let sub = system
            .subscribe::<i64>("/other/workflows/wf/stream")
            .unwrap();
        system.start();
        let started = Instant::now();
        while !sub.ended() && started.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(10));
        }
        let steps = system.steps();
        system.stop();
        assert_eq!(
            atoms_and_seal(&sub),
            (vec![vec![10], vec![20], vec![30]], true),
            "after {steps} steps of the cycle"
        );
    });
}

/// How many of this process's threads have names starting with `prefix`.
fn threads_named(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|tasks| {
            tasks
                .flatten()
                .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
                .filter(|n| n.trim().starts_with(prefix))
                .count()
        })
        .unwrap_or(0)
}

/// A partitioned workflow's helper threads end when it seals, so a long-running system does
/// not keep threads for every partitioned app it ever ran.
#[test]
fn helper_threads_of_a_finished_workflow_end() {
    within_limit(|| {
        let system = threaded(2, 2);
        for a in 0..10 {
            let app = AppBuilder::new(&format!("app{a}"));
            let g = app.generator_from_range("g", 0..1_000, 100);
            app.workflow("wf")
                .partitions(4)
                .source(&g)
                .map(|x: i64| x + 1)
                .sink();
            system.launch(app.build().unwrap()).unwrap();
            system.run_until_quiescent_within(LIMIT).unwrap();
        }
        // Partition helpers are named `pods<id>-p-<i>`.
        let helpers = threads_named(&format!("{}p-", system.thread_prefix()));
        system.stop();
        assert_eq!(helpers, 0, "helper threads of sealed workflows still alive");
    });
}

/// A launch adding a split does not wait while the splitter's predicate (user code) is busy
/// routing an atom; the split takes the atoms after it.
#[test]
fn a_launch_does_not_wait_for_a_slow_split_predicate() {
    within_limit(|| {
        let first = AppBuilder::new("first");
        let input = first.generator_external::<i64>("in");
        let sp = first.splitter("sp", &input);
        let slow = first.split(&sp, "slow", |x: &i64| {
            if *x == 1 {
                std::thread::sleep(Duration::from_millis(600));
            }
            *x < 100
        });
        first.workflow("keep").source(&slow).identity().sink();
        let system = threaded(2, 4);
        system.launch(first.build().unwrap()).unwrap();
        let feeder = system.feeder::<i64>("/first/generators/in").unwrap();
        system.start();
        feeder.push(vec![1]).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        // The predicate is now sleeping on a worker.
        let second = AppBuilder::new("second");
        let sp2 = second.splitter_ref::<i64>("/first/splitters/sp");
        let big = second.split(&sp2, "big", |x: &i64| *x >= 100);
        second.workflow("big").source(&big).identity().sink();
        let started = Instant::now();
        system.launch(second.build().unwrap()).unwrap();
        let took = started.elapsed();
        let out = system
            .subscribe::<i64>("/second/workflows/big/stream")
            .unwrap();
        feeder.push(vec![5, 500]).unwrap();
        feeder.seal();
        system.run_until_quiescent_within(LIMIT).unwrap();
        system.stop();
        assert!(
            took < Duration::from_millis(300),
            "the launch waited {took:?}"
        );
        assert_eq!(atoms_and_seal(&out), (vec![vec![500]], true));
    });
}

/// A run waiting for quiescence returns once the system stops, even with an ask in flight
/// (nothing answers it any more).
#[test]
fn a_run_returns_after_a_stop_with_an_ask_in_flight() {
    let system = threaded(2, 16);
    let app = AppBuilder::new("app");
    let g = app.generator_from_range("g", 0..1, 1);
    let none = app.generator_from_atoms::<i64>("none", vec![]);
    let p = app.portal::<i64, i64>("p");
    app.workflow("r")
        .source(&none)
        .replier(&p, |ctx, x: i64, to| ctx.reply(to, x))
        .sink();
    let q = p.clone();
    app.workflow("w")
        .source(&g)
        .processor(move |ctx: &mut pods_sdk::Ctx<'_, ()>, x: i64| {
            let h = ctx.ask(&q, x);
            ctx.on_reply(h, |_ctx, _r: Result<i64, AskError>| {});
            std::thread::sleep(Duration::from_millis(300));
        })
        .sink();
    system.launch(app.build().unwrap()).unwrap();
    system.start();
    std::thread::sleep(Duration::from_millis(100));
    system.stop();
    let r = system.run_until_quiescent_within(Duration::from_secs(10));
    assert!(r.is_ok(), "{r:?}");
}

/// An asker-replier answering a self-ask and continuing from its reply asks in two scopes:
/// the two asks get two ids.
#[test]
fn answering_and_continuing_the_same_ask_ask_with_different_ids() {
    use std::sync::Mutex;
    let seen: Arc<Mutex<Vec<(pods_sdk::AskId, i64)>>> = Arc::default();
    let app = AppBuilder::new("app");
    let g = app.generator_from_range("g", 0..1, 1);
    let none = app.generator_from_atoms::<i64>("none", vec![]);
    let p = app.portal::<i64, i64>("p");
    let q = app.portal::<i64, i64>("q");
    let kept = seen.clone();
    app.workflow("echo")
        .source(&none)
        .replier(&q, move |ctx, x: i64, to| {
            kept.lock().unwrap().push((to.ask_id(), x));
            ctx.reply(to, x)
        })
        .sink();
    let (p1, q1, q2) = (p.clone(), q.clone(), q.clone());
    app.workflow("w")
        .source(&g)
        .processor(move |ctx: &mut pods_sdk::Ctx<'_, i64>, x: i64| {
            let h = ctx.ask(&p1, x);
            let q1 = q1.clone();
            ctx.on_reply(
                h,
                move |ctx, r: Result<i64, AskError>| -> Result<(), AskError> {
                    let h = ctx.ask(&q1, r? + 1000);
                    ctx.on_reply(h, |ctx, r: Result<i64, AskError>| -> Result<(), AskError> {
                        ctx.emit(r?);
                        Ok(())
                    });
                    Ok(())
                },
            );
        })
        .replier(&p, move |ctx, x: i64, to| {
            let h = ctx.ask(&q2, x + 2000);
            ctx.on_reply(
                h,
                move |ctx, r: Result<i64, AskError>| -> Result<(), AskError> {
                    ctx.reply(to, r?);
                    Ok(())
                },
            );
        })
        .sink();
    let mut system = pods_sdk::DeterministicSystem::with_storage(
        1,
        pods_sdk::MemoryStorage::holding_asking_atoms(),
    );
    system.launch(app.build().unwrap()).unwrap();
    let out = system.subscribe::<i64>("/app/workflows/w/stream").unwrap();
    system.run_until_quiescent();
    let mut seen = seen.lock().unwrap().clone();
    seen.sort_by_key(|(_, x)| *x);
    assert_eq!(
        seen.iter().map(|(_, x)| *x).collect::<Vec<_>>(),
        vec![2000, 3000]
    );
    assert_ne!(seen[0].0, seen[1].0, "two asks, two ids");
    assert_eq!(out.values().concat(), vec![3000]);
}

/// On a store that replays asking atoms, an ask made downstream of a continuation (its id would
/// differ in a replay) fails the task with a message saying what to do; elsewhere it works.
#[test]
fn an_ask_downstream_of_a_continuation_is_refused_where_atoms_replay() {
    for holding in [false, true] {
        let app = AppBuilder::new("app");
        let g = app.generator_from_range("g", 0..2, 1);
        let none = app.generator_from_atoms::<i64>("none", vec![]);
        let p = app.portal::<i64, i64>("p");
        app.workflow("r")
            .source(&none)
            .replier(&p, |ctx, x: i64, to| ctx.reply(to, x + 1))
            .sink();
        let (p1, p2) = (p.clone(), p.clone());
        app.workflow("w")
            .source(&g)
            .processor(move |ctx: &mut pods_sdk::Ctx<'_, i64>, x: i64| {
                let h = ctx.ask(&p1, x);
                ctx.on_reply(h, |ctx, r: Result<i64, AskError>| -> Result<(), AskError> {
                    ctx.emit(r?);
                    Ok(())
                });
            })
            .processor(move |ctx: &mut pods_sdk::Ctx<'_, i64>, y: i64| {
                let h = ctx.ask(&p2, y * 10);
                ctx.on_reply(h, |ctx, r: Result<i64, AskError>| -> Result<(), AskError> {
                    ctx.emit(r?);
                    Ok(())
                });
            })
            .sink();
        let storage = if holding {
            pods_sdk::MemoryStorage::holding_asking_atoms()
        } else {
            pods_sdk::MemoryStorage::new()
        };
        let mut system = pods_sdk::DeterministicSystem::with_storage(3, storage);
        system.launch(app.build().unwrap()).unwrap();
        let out = system.subscribe::<i64>("/app/workflows/w/stream").unwrap();
        system.run_until_quiescent();
        match (holding, out.items().last()) {
            (false, Some(StreamItem::Seal)) => {
                let mut got = out.values().concat();
                got.sort();
                assert_eq!(got, vec![11, 21]);
            }
            (true, Some(StreamItem::Error(m))) => {
                assert!(m.contains("downstream of a continuation"), "{m}");
            }
            other => panic!("holding {holding}: {other:?}"),
        }
    }
}

/// The sdk's encoding of an atom of plain values (its columns, as stream logs hold them).
fn encoded(values: &[i64]) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct Columns<'a> {
        values: &'a [i64],
        keys: Option<Vec<u64>>,
        envelopes: Option<Vec<()>>,
    }
    let mut out = Vec::new();
    ciborium::into_writer(
        &Columns {
            values,
            keys: None,
            envelopes: None,
        },
        &mut out,
    )
    .unwrap();
    out
}

/// An atom fed at an offset may be empty (another node withheld all its events): it takes its
/// offset, so the next one is taken at the next offset, and the workflow steps over it.
#[test]
fn an_empty_atom_fed_at_an_offset_takes_the_offset() {
    within_limit(|| {
        let app = AppBuilder::new("app");
        let input = app.generator_external::<i64>("in");
        app.workflow("w").source(&input).map(|x: i64| x * 10).sink();
        let system = threaded(2, 4);
        system.launch(app.build().unwrap()).unwrap();
        let out = system.subscribe::<i64>("/app/workflows/w/stream").unwrap();
        system.start();
        let path = "/app/generators/in";
        assert!(system.feed_encoded(path, 0, &encoded(&[1, 2])).unwrap());
        assert!(system.feed_encoded(path, 1, &encoded(&[])).unwrap());
        assert!(
            !system.feed_encoded(path, 1, &encoded(&[])).unwrap(),
            "taken once"
        );
        assert!(system.feed_encoded(path, 2, &encoded(&[3])).unwrap());
        assert_eq!(system.feeder_next(path).unwrap(), 3);
        assert!(matches!(
            system.feed_encoded(path, 4, &encoded(&[4])),
            Err(Error::FeederGap {
                offset: 4,
                next: 3,
                ..
            })
        ));
        system.feeder::<i64>(path).unwrap().seal();
        system.run_until_quiescent_within(LIMIT).unwrap();
        system.stop();
        assert_eq!(atoms_and_seal(&out), (vec![vec![10, 20], vec![30]], true));
    });
}
