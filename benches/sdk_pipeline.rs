//! Throughput of the sdk's deterministic runtime beside a hand-written loop doing the same
//! work, in the same run: generator → map → filter → key_by → per-key count over 1,024 keys,
//! at atom sizes 1, 100, 1,000 and 10,000; then in-process portal asks per second.
//!
//! Run with `cargo bench --bench sdk_pipeline` (optionally `-- --quick`).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::hint::black_box;
use std::time::{Duration, Instant};

use pods_sdk::{AppBuilder, AskError, Ctx, DeterministicSystem, PerKeyState};

const KEYS: i64 = 1024;

fn map(x: i64) -> i64 {
    x.wrapping_mul(7).wrapping_add(3)
}
fn keep(x: &i64) -> bool {
    x % 8 != 0
}

/// A multiply hasher for the hand-written loop's map (as fast as the runtime's own).
#[derive(Default)]
struct Mul(u64);
impl Hasher for Mul {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_i64(&mut self, n: i64) {
        self.0 = (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// The same pipeline by hand: one atom at a time, each stage over the whole atom.
fn hand_written(events: i64, atom: i64) -> u64 {
    let mut counts: HashMap<i64, u64, BuildHasherDefault<Mul>> = HashMap::default();
    let mut start = 0;
    while start < events {
        let end = (start + atom).min(events);
        let batch: Vec<i64> = (start..end).collect();
        let mut mapped: Vec<i64> = batch.into_iter().map(map).collect();
        mapped.retain(keep);
        for x in mapped {
            *counts.entry(x.rem_euclid(KEYS)).or_default() += 1;
        }
        start = end;
    }
    counts.values().sum()
}

fn runtime(events: i64, atom: i64) -> u64 {
    let app = AppBuilder::new("bench");
    let g = app.generator_from_range("g", 0..events, atom as usize);
    let count = PerKeyState::<u64>::new("count");
    app.workflow("count")
        .source(&g)
        .map(map)
        .filter(keep)
        .key_by(|x| x.rem_euclid(KEYS))
        .processor(move |ctx: &mut Ctx<'_, ()>, _x: i64| {
            count.update(ctx, |c| *c += 1);
        })
        .sink();
    let mut system = DeterministicSystem::new(1);
    system.launch(app.build().expect("build")).expect("launch");
    system.run_until_quiescent();
    system.storage().commits()
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

/// Best events/s over repetitions lasting at least `budget`.
fn rate(events: i64, budget: Duration, mut f: impl FnMut() -> u64) -> f64 {
    let mut best = f64::MAX;
    let started = Instant::now();
    let mut reps = 0;
    while reps < 3 || started.elapsed() < budget {
        let t = Instant::now();
        black_box(f());
        best = best.min(t.elapsed().as_secs_f64());
        reps += 1;
    }
    events as f64 / best
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let budget = Duration::from_millis(if quick { 200 } else { 1500 });
    let total: i64 = if quick { 1_000_000 } else { 4_000_000 };
    println!(
        "pipeline: generator -> map -> filter -> key_by -> per-key count ({KEYS} keys), deterministic runtime"
    );
    println!(
        "{:>10} {:>12} {:>16} {:>16} {:>8}",
        "atom size", "events", "runtime ev/s", "hand loop ev/s", "ratio"
    );
    for atom in [1i64, 100, 1_000, 10_000] {
        let events = if atom == 1 { total / 10 } else { total };
        let ours = rate(events, budget, || runtime(events, atom));
        let hand = rate(events, budget, || hand_written(events, atom));
        println!(
            "{atom:>10} {events:>12} {:>16.0} {:>16.0} {:>7.1}%",
            ours,
            hand,
            100.0 * ours / hand
        );
    }
    let n = if quick { 100_000 } else { 1_000_000 };
    let ask_rate = rate(n, budget, || asks(n));
    let plain = rate(n, budget, || runtime(n, 1000));
    println!("portal asks (replier x+1, continuation emits), atoms of 1,000 asks:");
    println!(
        "{:>16} asks/s   (same events through the count pipeline, no asks: {:.0} ev/s; ratio {:.1}%)",
        format!("{ask_rate:.0}"),
        plain,
        100.0 * ask_rate / plain
    );
}
