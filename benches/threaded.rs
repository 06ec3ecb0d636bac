//! Throughput of the threaded runtime beside the deterministic runtime and the staged
//! hand-written loop, in the same run: generator → map → filter → key_by → per-key count over
//! 1,024 keys, with the workflow in 1 and 2 partitions (P = 2 splits each atom between the
//! partitions and exchanges the events by key after `key_by`; it runs them at once or in turn
//! as the workflow measures faster, the default, and beside that always at once); then portal
//! asks per second with 1, 16 and 256 concurrent askers, each asking one request at a time (a
//! closed loop: the reply's continuation sends the next request).
//!
//! Run with `cargo bench --bench threaded` (optionally `-- --quick`). For a profiler:
//! `-- --profile-asks <askers>` runs only the closed loops of separate asker workflows, and
//! `-- --partition-overhead [1|2]` only the pipeline in 1 or 2 partitions on the deterministic
//! runtime (the cost of partitioning without threads).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::{pipeline, rate, staged};
use pods_sdk::{
    App, AppBuilder, AskError, DeterministicSystem, PartitionThreads, Portal, ThreadedConfig,
    ThreadedSystem, VolatileStorage,
};

/// Runs `app` on a threaded system (default settings) until quiescent; returns the steps taken.
fn threaded(app: App, workers: usize) -> u64 {
    threaded_running(app, workers, PartitionThreads::default())
}

/// Runs `app` on a threaded system running partitions `ways` until quiescent; returns the
/// steps taken.
fn threaded_running(app: App, workers: usize, ways: PartitionThreads) -> u64 {
    let config = ThreadedConfig {
        workers,
        partition_threads: ways,
        ..ThreadedConfig::default()
    };
    let system = ThreadedSystem::with_storage(config, VolatileStorage::new()).expect("threads");
    system.launch(app).expect("launch");
    let steps = system.run_until_quiescent();
    system.stop();
    steps
}

fn deterministic(app: App) -> u64 {
    let mut system = DeterministicSystem::with_storage(1, VolatileStorage::new());
    system.launch(app).expect("launch");
    system.run_until_quiescent()
}

/// Adds an echo portal (keyed by the request) whose replier counts the asks it answers into
/// `answered`.
fn echo_server(app: &AppBuilder, answered: Arc<AtomicU64>) -> Portal<i64, i64> {
    let echo = app.portal_keyed::<i64, i64, i64>("echo", |x| *x);
    let none = app.generator_from_atoms::<i64>("none", vec![]);
    app.workflow("server")
        .source(&none)
        .replier(&echo, move |ctx, x, to| {
            answered.fetch_add(1, Ordering::Relaxed);
            ctx.reply(to, x)
        });
    echo
}

/// `askers` closed loops, each asking an echo portal `rounds` times in a row; the replier
/// counts the asks it answered into `answered`.
fn closed_loops(askers: usize, rounds: i64, answered: Arc<AtomicU64>) -> App {
    let app = AppBuilder::new("asks");
    let echo = echo_server(&app, answered);
    for i in 0..askers {
        let g = app.generator_from_atoms(&format!("start{i}"), vec![vec![rounds]]);
        let again = app.sequencer::<i64>(&format!("loop{i}"));
        app.connect(&g, &again);
        let p = echo.clone();
        let next = app
            .workflow(&format!("asker{i}"))
            .source(&again.stream())
            .asker(&echo, move |ctx, n: i64| {
                let reply = ctx.ask(&p, n);
                ctx.on_reply(
                    reply,
                    |ctx, r: Result<i64, AskError>| -> Result<(), AskError> {
                        let n = r?;
                        if n > 1 {
                            ctx.emit(n - 1);
                        }
                        Ok(())
                    },
                );
            })
            .sink();
        app.connect(&next, &again);
    }
    app.build().expect("build")
}

/// `clients` closed loops inside one asker workflow: one atom of `clients` requests circulates
/// through a sequencer, each request asking the echo portal and its reply's continuation
/// sending the next, `rounds` times; the replier counts the asks into `answered`.
fn clients_in_one_workflow(clients: usize, rounds: i64, answered: Arc<AtomicU64>) -> App {
    let app = AppBuilder::new("asks");
    let echo = echo_server(&app, answered);
    // Client c's request carries its rounds left in the low 32 bits and c above them.
    let start: Vec<i64> = (0..clients as i64).map(|c| (c << 32) | rounds).collect();
    let g = app.generator_from_atoms("start", vec![start]);
    let again = app.sequencer::<i64>("loop");
    app.connect(&g, &again);
    let p = echo.clone();
    let next = app
        .workflow("clients")
        .source(&again.stream())
        .asker(&echo, move |ctx, request: i64| {
            let reply = ctx.ask(&p, request);
            ctx.on_reply(
                reply,
                |ctx, r: Result<i64, AskError>| -> Result<(), AskError> {
                    let r = r?;
                    if r & 0xffff_ffff > 1 {
                        ctx.emit(r - 1);
                    }
                    Ok(())
                },
            );
        })
        .sink();
    app.connect(&next, &again);
    app.build().expect("build")
}

fn main() {
    if let Some(k) = std::env::args()
        .skip_while(|a| a != "--profile-asks")
        .nth(1)
    {
        // Only the closed loops, for a profiler.
        let askers: usize = k.parse().unwrap_or(1);
        let answered = Arc::new(AtomicU64::new(0));
        let t = std::time::Instant::now();
        let steps = threaded(
            closed_loops(askers, 65_536 / askers as i64, answered.clone()),
            2,
        );
        println!(
            "{askers} askers: {steps} steps, {:?}, {} asks",
            t.elapsed(),
            answered.load(Ordering::Relaxed)
        );
        return;
    }
    let quick = std::env::args().any(|a| a == "--quick");
    if std::env::args().any(|a| a == "--partition-overhead") {
        // The cost of partitioning itself: P = 1 and P = 2 on the deterministic runtime.
        let events = 4_000_000;
        let budget = Duration::from_millis(500);
        let only: Option<usize> = std::env::args()
            .skip_while(|a| a != "--partition-overhead")
            .nth(1)
            .and_then(|a| a.parse().ok());
        for p in [1, 2].into_iter().filter(|p| only.is_none_or(|o| o == *p)) {
            let r = rate(events, budget, || deterministic(pipeline(events, 1_000, p)));
            println!("deterministic P={p}: {r:.0} ev/s");
        }
        return;
    }
    let budget = Duration::from_millis(if quick { 200 } else { 1500 });
    let events: i64 = if quick { 1_000_000 } else { 4_000_000 };
    let workers = 2;
    println!(
        "pipeline: generator -> map -> filter -> key_by -> per-key count (1024 keys), VolatileStorage, {workers} worker threads"
    );
    println!(
        "{:>10} {:>14} {:>14} {:>14} {:>14} {:>14} {:>10} {:>10} {:>12}",
        "atom size",
        "staged ev/s",
        "determ. ev/s",
        "P=1 ev/s",
        "P=2 ev/s",
        "at once ev/s",
        "P2/P1",
        "P1/det",
        "P2/staged"
    );
    for atom in [100i64, 1_000, 10_000] {
        let staged_rate = rate(events, budget, || staged(events, atom).len() as u64);
        let det = rate(events, budget, || deterministic(pipeline(events, atom, 1)));
        let p1 = rate(events, budget, || {
            threaded(pipeline(events, atom, 1), workers)
        });
        let p2 = rate(events, budget, || {
            threaded(pipeline(events, atom, 2), workers)
        });
        let at_once = rate(events, budget, || {
            threaded_running(pipeline(events, atom, 2), workers, PartitionThreads::AtOnce)
        });
        println!(
            "{atom:>10} {staged_rate:>14.0} {det:>14.0} {p1:>14.0} {p2:>14.0} {at_once:>14.0} {:>9.2}x {:>9.1}% {:>11.1}%",
            p2 / p1,
            100.0 * p1 / det,
            100.0 * p2 / staged_rate
        );
    }
    let total: i64 = if quick { 16_384 } else { 65_536 };
    println!(
        "portal asks, closed loops (each asker waits for its reply before asking again), {total} asks per run:"
    );
    println!(
        "{:>8} {:>22} {:>12} {:>22} {:>12}",
        "askers", "clients of 1 wf asks/s", "vs 1 asker", "1 wf each asks/s", "vs 1 asker"
    );
    let mut one = None;
    for askers in [1usize, 16, 256] {
        let rounds = total / askers as i64;
        let asks = rounds * askers as i64;
        let measure = |build: fn(usize, i64, Arc<AtomicU64>) -> App| {
            rate(asks, budget, || {
                let answered = Arc::new(AtomicU64::new(0));
                threaded(build(askers, rounds, answered.clone()), workers);
                let answered = answered.load(Ordering::Relaxed);
                assert_eq!(answered, asks as u64, "every ask answered once");
                answered
            })
        };
        let clients = measure(clients_in_one_workflow);
        let workflows = measure(closed_loops);
        let (c1, w1) = *one.get_or_insert((clients, workflows));
        println!(
            "{askers:>8} {clients:>22.0} {:>11.2}x {workflows:>22.0} {:>11.2}x",
            clients / c1,
            workflows / w1
        );
    }
}
