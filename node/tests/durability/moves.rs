//! Sequencers and splitters: their readers resume in the same order after crashes.

use std::path::Path;

use pods_node::{Node, NodeConfig, SqliteStore, StoreOptions};
use pods_sdk::{App, AppBuilder, Ctx};

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

/// Fed atoms → a sequencer → a workflow summing them.
fn fed_sequence_app() -> App {
    let app = AppBuilder::new("fedseq");
    let input = app.generator_external::<i64>("in");
    let seq = app.sequencer::<i64>("seq");
    app.connect(&input, &seq);
    let merged = seq.stream();
    let total = pods_sdk::PerTaskState::<i64>::new("total");
    app.workflow("sum")
        .source(&merged)
        .processor(move |ctx: &mut Ctx<'_, ()>, x: i64| {
            total.update(ctx, |t| *t += x);
        })
        .sink();
    app.build().expect("app")
}

/// Where `sum` of app `fedseq` stands in `dir`, and its total.
fn fed_total(dir: &Path) -> (u64, i64) {
    let (r, total) = crate::committed_value(dir, "/fedseq/workflows/sum");
    (r.input.map_or(0, |p| p.next), total)
}

#[test]
fn a_node_logs_its_sequencer_moves_and_goes_on_after_a_restart() {
    let dir = tempfile::tempdir().expect("dir");
    {
        let node = Node::open(dir.path(), NodeConfig::default()).expect("node");
        node.launch(fed_sequence_app()).expect("launch");
        let feeder = node.feeder::<i64>("/fedseq/generators/in").expect("feeder");
        for x in 1..=40 {
            feeder.push(vec![x]).expect("push");
        }
        node.run_until_quiescent();
        node.stop();
    }
    let db = rusqlite::Connection::open(dir.path().join(pods_node::DATABASE)).expect("db");
    let next: i64 = db
        .query_row(
            "SELECT next FROM heads WHERE stream = '/fedseq/sequencers/seq/stream'",
            [],
            |r| r.get(0),
        )
        .expect("the sequencer's log has a head");
    assert_eq!(next, 40, "every move logged");
    assert_eq!(fed_total(dir.path()), (40, (1..=40).sum::<i64>()));
    let node = Node::open(dir.path(), NodeConfig::default()).expect("node");
    node.launch(fed_sequence_app()).expect("launch");
    let feeder = node.feeder::<i64>("/fedseq/generators/in").expect("feeder");
    for x in 41..=50 {
        feeder.push(vec![x]).expect("push");
    }
    node.run_until_quiescent();
    node.stop();
    drop(node);
    assert_eq!(fed_total(dir.path()), (50, (1..=50).sum::<i64>()));
}
