//! What the benchmarks share: the pipeline's functions, the staged hand-written baseline, the
//! pipeline as an app, and best-of timing.

#![allow(dead_code)]

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::hint::black_box;
use std::time::{Duration, Instant};

use pods_sdk::{App, AppBuilder, Ctx, PerKeyState};

pub const KEYS: i64 = 1024;

pub fn map(x: i64) -> i64 {
    x.wrapping_mul(7).wrapping_add(3)
}
pub fn keep(x: &i64) -> bool {
    x % 8 != 0
}

/// A multiply hasher for the hand-written loops' maps (as fast as the runtime's own).
#[derive(Default)]
pub struct Mul(u64);
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

/// Events per key, as the hand-written loops count them.
pub type Counts = HashMap<i64, u64, BuildHasherDefault<Mul>>;

/// The key of an event (the runtime's `key_by` closure).
pub fn key(x: &i64) -> i64 {
    x.rem_euclid(KEYS)
}

/// The same pipeline staged by hand, as a dataflow engine runs it: per atom, the generator's
/// atom into a buffer, mapped into a second one, filtered there (`retain`), keyed into a third
/// as `(key, value)`, then counted per key. The buffers are cleared and reused, so nothing is
/// allocated per atom.
pub fn staged(events: i64, atom: i64) -> Counts {
    let capacity = usize::try_from(atom).unwrap_or(0);
    let mut counts = Counts::default();
    let mut batch: Vec<i64> = Vec::with_capacity(capacity);
    let mut mapped: Vec<i64> = Vec::with_capacity(capacity);
    let mut keyed: Vec<(i64, i64)> = Vec::with_capacity(capacity);
    let mut start = 0;
    while start < events {
        let end = (start + atom).min(events);
        batch.clear();
        batch.extend(start..end);
        mapped.clear();
        mapped.extend(batch.iter().copied().map(map));
        mapped.retain(keep);
        keyed.clear();
        keyed.extend(mapped.iter().map(|x| (key(x), *x)));
        for (k, _) in &keyed {
            *counts.entry(*k).or_default() += 1;
        }
        start = end;
    }
    counts
}

/// The pipeline as an app: a range generator of `events` in atoms of `atom`, then one workflow
/// in `partitions` partitions (map, filter, key_by, per-key count).
pub fn pipeline(events: i64, atom: i64, partitions: usize) -> App {
    let app = AppBuilder::new("bench");
    let g = app.generator_from_range("g", 0..events, atom as usize);
    let count = PerKeyState::<u64>::new("count");
    app.workflow("count")
        .partitions(partitions)
        .source(&g)
        .map(map)
        .filter(keep)
        .key_by(key)
        .processor(move |ctx: &mut Ctx<'_, ()>, _x: i64| {
            count.update(ctx, |c| *c += 1);
        })
        .sink();
    app.build().expect("build")
}

/// Best events/s over repetitions lasting at least `budget`.
pub fn rate(events: i64, budget: Duration, mut f: impl FnMut() -> u64) -> f64 {
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
