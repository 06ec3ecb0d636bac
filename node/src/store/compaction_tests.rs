//! When a workflow's records are compacted and its logs tidied: compaction after
//! `compact_every` records or `compact_bytes` bytes of them, whatever steps they cover, counting
//! what an earlier run left; the input's log truncated every 256 steps even without compaction.

use std::sync::Arc;

use pods_sdk::{Key, Path, StateName, StateValue, StateWrite};

use super::tests::{WF, commit_step};
use super::*;

const STREAM: &str = "/app/generators/g/stream";

fn options(compact_every: u64, compact_bytes: u64) -> StoreOptions {
    StoreOptions {
        compact_every,
        compact_bytes,
        ..StoreOptions::default()
    }
}

/// Commits the steps `step - steps + 1 ..= step` as one record, writing `value` to keys
/// `0..keys` of one state, with the input consumed up to `step`.
fn commit_group(store: &mut SqliteStore, (step, steps): (u64, u64), keys: u64, value: i64) {
    let state = StateName {
        workflow: Path::parse("/app/workflows/wf").unwrap(),
        task: 1,
        name: Arc::from("count"),
        id: 7,
    };
    let writes: Vec<StateWrite<'_>> = (0..keys)
        .map(|k| StateWrite {
            state: &state,
            key: Some(Key(k)),
            value: Some(&value as &dyn StateValue),
            owner: None,
        })
        .collect();
    commit_step(store, (step, steps), Some(step), &writes, &[]).expect("commit");
}

fn records(store: &SqliteStore) -> i64 {
    store
        .conn
        .query_row(
            "SELECT count(*) FROM changelog WHERE workflow = ?1",
            [WF as i64],
            |r| r.get(0),
        )
        .unwrap()
}

fn logged_atoms(store: &SqliteStore) -> i64 {
    store
        .conn
        .query_row(
            "SELECT count(*) FROM atoms WHERE stream = ?1",
            [STREAM],
            |r| r.get(0),
        )
        .unwrap()
}

/// The value recovered for key 0.
fn recovered(store: &SqliteStore) -> Option<Vec<u8>> {
    let r = store.recover(WF).unwrap();
    r.values.get(&(7, Some(Key(0)))).cloned()
}

fn cbor(v: i64) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(&v, &mut out).unwrap();
    out
}

#[test]
fn compaction_follows_records_not_the_steps_they_cover() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(dir.path(), options(4, u64::MAX)).unwrap();
    // Three records of 100 steps each: more than 256 steps, fewer than 4 records.
    for (i, step) in [100, 200, 300].into_iter().enumerate() {
        commit_group(&mut store, (step, 100), 3, i as i64);
    }
    assert_eq!(records(&store), 3);
    commit_group(&mut store, (400, 100), 3, 9);
    assert_eq!(records(&store), 0, "the fourth record compacts");
    assert_eq!(recovered(&store), Some(cbor(9)));
    assert_eq!(store.recover(WF).unwrap().step, 400);
}

#[test]
fn large_records_are_compacted_before_their_number_is_reached() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(dir.path(), options(1_000, 1_000)).unwrap();
    // One write of a small count takes about 12 bytes of a record: 20 keys stay below 1,000
    // bytes, 100 do not.
    commit_group(&mut store, (1, 1), 20, 1);
    assert_eq!(records(&store), 1);
    commit_group(&mut store, (2, 1), 100, 2);
    assert_eq!(records(&store), 0);
    let r = store.recover(WF).unwrap();
    assert_eq!(r.values.len(), 100);
    assert!(r.values.values().all(|v| *v == cbor(2)));
}

#[test]
fn records_an_earlier_run_left_count_toward_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(dir.path(), options(4, u64::MAX)).unwrap();
    for step in 1..=3 {
        commit_group(&mut store, (step, 1), 1, step as i64);
    }
    drop(store);
    let mut store = SqliteStore::open(dir.path(), options(4, u64::MAX)).unwrap();
    assert_eq!(records(&store), 3);
    commit_group(&mut store, (4, 1), 1, 4);
    assert_eq!(records(&store), 0);
    assert_eq!(recovered(&store), Some(cbor(4)));
}

#[test]
fn the_input_log_is_truncated_every_256_steps_without_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(dir.path(), options(0, u64::MAX)).unwrap();
    for offset in 0..400i64 {
        store
            .conn
            .execute(
                "INSERT INTO atoms (stream, offset, atom) VALUES (?1, ?2, x'00')",
                rusqlite::params![STREAM, offset],
            )
            .unwrap();
    }
    commit_group(&mut store, (200, 200), 1, 1);
    assert_eq!(logged_atoms(&store), 400, "200 steps: not yet");
    commit_group(&mut store, (300, 100), 1, 2);
    assert_eq!(
        logged_atoms(&store),
        100,
        "the atoms below 300 went with step 300"
    );
    commit_group(&mut store, (350, 50), 1, 3);
    assert_eq!(logged_atoms(&store), 100, "the count starts again");
    assert_eq!(records(&store), 3, "never compacted");
    assert_eq!(recovered(&store), Some(cbor(3)));
}
