//! Throughput of the sdk's deterministic runtime beside hand-written loops doing the same
//! work, in the same run: generator → map → filter → key_by → per-key count over 1,024 keys,
//! at atom sizes 1, 100, 1,000 and 10,000; then in-process portal asks per second.
//!
//! Three hand-written baselines, all counting into the same hash map (multiply hasher):
//! - *fused*: one pass per event (map, filter, key and count in one loop body), the upper bound;
//! - *staged*: per atom, each stage over the whole atom as a dataflow engine must (the
//!   generator's atom into a buffer, mapped into another, filtered, keyed into a third), then
//!   the count; the buffers are reused, nothing is allocated per atom;
//! - *hand*: the earlier baseline, staged as well but collecting fresh `Vec`s every atom.
//!
//! All three must end with the same counts (checked once per atom size before timing).
//!
//! Run with `cargo bench --bench sdk_pipeline` (optionally `-- --quick`).

mod common;

use std::hint::black_box;
use std::time::Duration;

use common::{Counts, KEYS, keep, key, map, pipeline, rate, staged};
use pods_sdk::{
    AppBuilder, AskError, DeterministicSystem, MemoryStorage, Storage, VolatileStorage,
};

/// The same pipeline by hand: one atom at a time, each stage over the whole atom, collecting
/// fresh `Vec`s every atom (the earlier baseline).
fn hand_written(events: i64, atom: i64) -> Counts {
    let mut counts = Counts::default();
    let mut start = 0;
    while start < events {
        let end = (start + atom).min(events);
        let batch: Vec<i64> = (start..end).collect();
        let mut mapped: Vec<i64> = batch.into_iter().map(map).collect();
        mapped.retain(keep);
        for x in mapped {
            *counts.entry(key(&x)).or_default() += 1;
        }
        start = end;
    }
    counts
}

/// The same pipeline fused by hand: one pass per event (map, filter, key and count in one loop
/// body), atom by atom.
fn fused(events: i64, atom: i64) -> Counts {
    let mut counts = Counts::default();
    let mut start = 0;
    while start < events {
        let end = (start + atom).min(events);
        for x in start..end {
            let y = map(x);
            if keep(&y) {
                *counts.entry(key(&y)).or_default() += 1;
            }
        }
        start = end;
    }
    counts
}

/// The pipeline on the deterministic runtime committing to `storage`; returns the steps taken.
fn runtime<S: Storage>(events: i64, atom: i64, storage: S) -> u64 {
    let mut system = DeterministicSystem::with_storage(1, storage);
    system.launch(pipeline(events, atom, 1)).expect("launch");
    system.run_until_quiescent();
    system.steps()
}

fn asks(n: i64) -> u64 {
    let app = AppBuilder::new("asks");
    let inc = app.portal::<i64, i64>("inc");
    let none = app.generator_from_atoms::<i64>("none", vec![]);
    app.workflow("server")
        .source(&none)
        .replier(&inc, |ctx, x, to| ctx.reply(to, x + 1));
    let g = app.generator_from_range("g", 0..n, 1000);
    let p = inc.clone();
    app.workflow("client")
        .source(&g)
        .asker(&inc, move |ctx, x: i64| {
            let h = ctx.ask(&p, x);
            ctx.on_reply(h, |ctx, r: Result<i64, AskError>| -> Result<(), AskError> {
                ctx.emit(r?);
                Ok(())
            });
        })
        .sink();
    let mut system = DeterministicSystem::new(1);
    system.launch(app.build().expect("build")).expect("launch");
    let out = system
        .subscribe::<i64>("/asks/workflows/client/stream")
        .expect("subscribe");
    system.run_until_quiescent();
    out.values().iter().map(|a| a.len() as u64).sum()
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    if std::env::args().any(|a| a == "--profile-asks") {
        black_box(asks(2_000_000));
        return;
    }
    if std::env::args().any(|a| a == "--profile-runtime") {
        // Only the runtime, for a profiler: 20 M events at atom size 1,000 (`volatile`: no copy).
        if std::env::args().any(|a| a == "volatile") {
            black_box(runtime(20_000_000, 1_000, VolatileStorage::new()));
        } else {
            black_box(runtime(20_000_000, 1_000, MemoryStorage::new()));
        }
        return;
    }
    let budget = Duration::from_millis(if quick { 200 } else { 1500 });
    let total: i64 = if quick { 1_000_000 } else { 4_000_000 };
    println!(
        "pipeline: generator -> map -> filter -> key_by -> per-key count ({KEYS} keys), deterministic runtime"
    );
    println!(
        "  volatile: VolatileStorage (state stays in the tasks; commits counted, positions kept)"
    );
    println!(
        "  memory:   MemoryStorage (every value written in an atom CBOR-encoded into the store at its commit)"
    );
    println!("  fused:    hand-written, one pass per event (map, filter, key, count)");
    println!(
        "  staged:   hand-written, per atom each stage over the atom into reused buffers, then the count"
    );
    println!("  hand:     hand-written, staged, fresh Vecs every atom (the earlier baseline)");
    println!(
        "{:>10} {:>10} {:>14} {:>14} {:>14} {:>14} {:>14}",
        "atom size",
        "events",
        "volatile ev/s",
        "memory ev/s",
        "fused ev/s",
        "staged ev/s",
        "hand ev/s"
    );
    let mut ratios = Vec::new();
    for atom in [1i64, 100, 1_000, 10_000] {
        let events = if atom == 1 { total / 10 } else { total };
        let expected = fused(events, atom);
        assert!(
            staged(events, atom) == expected && hand_written(events, atom) == expected,
            "the hand-written loops disagree on the counts at atom size {atom}"
        );
        let volatile = rate(events, budget, || {
            runtime(events, atom, VolatileStorage::new())
        });
        let memory = rate(events, budget, || {
            runtime(events, atom, MemoryStorage::new())
        });
        let fused_rate = rate(events, budget, || fused(events, atom).len() as u64);
        let staged_rate = rate(events, budget, || staged(events, atom).len() as u64);
        let hand_rate = rate(events, budget, || hand_written(events, atom).len() as u64);
        println!(
            "{atom:>10} {events:>10} {volatile:>14.0} {memory:>14.0} {fused_rate:>14.0} {staged_rate:>14.0} {hand_rate:>14.0}"
        );
        ratios.push((atom, volatile, memory, [fused_rate, staged_rate, hand_rate]));
    }
    println!("ratios runtime / loop:");
    println!(
        "{:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "atom size", "vol/fused", "mem/fused", "vol/staged", "mem/staged", "vol/hand", "mem/hand"
    );
    for (atom, volatile, memory, loops) in ratios {
        print!("{atom:>10}");
        for lp in loops {
            print!(
                " {:>9.1}% {:>9.1}%",
                100.0 * volatile / lp,
                100.0 * memory / lp
            );
        }
        println!();
    }
    let n = if quick { 100_000 } else { 1_000_000 };
    let ask_rate = rate(n, budget, || asks(n));
    let plain = rate(n, budget, || runtime(n, 1000, VolatileStorage::new()));
    println!("portal asks (replier x+1, continuation emits), atoms of 1,000 asks, MemoryStorage:");
    println!(
        "{:>14} asks/s   (same events through the count pipeline without asks: {plain:.0} ev/s; ratio {:.1}%)",
        format!("{ask_rate:.0}"),
        100.0 * ask_rate / plain
    );
}
