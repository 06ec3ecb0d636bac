//! Resuming after a stop: other partition counts, group commit, fed atoms.

use std::path::Path;

use pods_node::{Node, NodeConfig, SqliteStore, StoreOptions};
use pods_sdk::{App, AppBuilder, Ctx, PerKeyState};

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
    let (r, total) = crate::committed_value(dir, "/fed/workflows/sum");
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
