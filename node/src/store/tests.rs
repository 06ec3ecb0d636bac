//! The store against real SQLite files: commit and recover, compaction, and each fault.

use std::collections::BTreeMap;
use std::sync::Arc;

use pods_sdk::{
    Attempt, Commit, InputPosition, Key, Path, Recovery, StateName, StateValue, StateWrite, Storage,
};
use proptest::prelude::*;

use super::*;

/// The stable id the test commits give `/app/workflows/wf`.
pub(super) const WF: u64 = 42;

fn name(id: u64) -> StateName {
    StateName {
        workflow: Path::parse("/app/workflows/wf").unwrap(),
        task: 1,
        name: Arc::from(format!("s{id}")),
        id,
    }
}

/// Commits `writes` (state id, key, value or removal) as step `step`, with input position
/// `next` on `/app/generators/g/stream`.
fn commit(
    store: &mut SqliteStore,
    step: u64,
    next: Option<u64>,
    writes: &[(u64, Option<u64>, Option<i64>)],
) -> Result<(), StorageError> {
    let names: Vec<StateName> = writes.iter().map(|w| name(w.0)).collect();
    let values: Vec<Option<i64>> = writes.iter().map(|w| w.2).collect();
    let writes: Vec<StateWrite<'_>> = writes
        .iter()
        .enumerate()
        .map(|(i, w)| StateWrite {
            state: &names[i],
            key: w.1.map(Key),
            value: values[i].as_ref().map(|v| v as &dyn StateValue),
            owner: None,
        })
        .collect();
    commit_step(store, (step, 1), next, &writes, &[])
}

/// Commits step `step` of `/app/workflows/wf` (covering `steps` steps): `writes`, the input
/// position `next` on `/app/generators/g/stream`, and the replies `answered`.
pub(super) fn commit_step(
    store: &mut SqliteStore,
    (step, steps): (u64, u64),
    next: Option<u64>,
    writes: &[StateWrite<'_>],
    answered: &[pods_sdk::Answer<'_>],
) -> Result<(), StorageError> {
    let workflow = Path::parse("/app/workflows/wf").unwrap();
    let input = next.map(|next| InputPosition {
        stream: Path::parse("/app/generators/g/stream").unwrap(),
        next,
    });
    let commit = Commit {
        workflow: &workflow,
        workflow_id: WF,
        step,
        steps,
        input,
        writes,
        output_events: 0,
        outputs: &[],
        asks: 0,
        replies: answered.len(),
        answered,
    };
    store.commit(&commit)
}

/// Commits step `step` of the workflow, which only answered asks.
fn commit_answers(store: &mut SqliteStore, step: u64, answered: &[pods_sdk::Answer<'_>]) {
    commit_step(store, (step, step), None, &[], answered).unwrap();
}

/// Records, straight into the file, that the workflow committed step 3.
fn at_step_3(conn: &rusqlite::Connection) {
    conn.execute(
        "INSERT INTO positions (workflow, path, step, compacted) VALUES (?1, '/app/workflows/wf', 3, 0)",
        [WF as i64],
    )
    .unwrap();
}

fn cbor(v: i64) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(&v, &mut out).unwrap();
    out
}

fn open(dir: &std::path::Path) -> SqliteStore {
    SqliteStore::open(dir, StoreOptions::default()).expect("open")
}

#[test]
fn committed_values_and_positions_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    commit(
        &mut store,
        1,
        Some(1),
        &[(7, Some(3), Some(10)), (8, None, Some(1))],
    )
    .unwrap();
    commit(
        &mut store,
        2,
        None,
        &[(7, Some(3), Some(11)), (7, Some(4), Some(5))],
    )
    .unwrap();
    commit(&mut store, 3, Some(2), &[(7, Some(4), None)]).unwrap();
    drop(store);
    let store = open(dir.path());
    let r = store.recover(WF).unwrap();
    assert_eq!(r.step, 3);
    assert_eq!(
        r.input.map(|p| (p.stream.to_string(), p.next)),
        Some(("/app/generators/g/stream".to_owned(), 2))
    );
    let want: BTreeMap<_, _> = [((7, Some(Key(3))), cbor(11)), ((8, None), cbor(1))].into();
    assert_eq!(r.values, want);
    assert_eq!(store.recover(WF + 1).unwrap(), Recovery::default());
}

#[test]
fn a_step_committed_twice_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    commit(&mut store, 1, Some(1), &[(7, Some(1), Some(1))]).unwrap();
    assert!(commit(&mut store, 1, Some(9), &[(7, Some(1), Some(99))]).is_err());
    let r = store.recover(WF).unwrap();
    assert_eq!((r.step, r.input.map(|p| p.next)), (1, Some(1)));
    assert_eq!(r.values.get(&(7, Some(Key(1)))), Some(&cbor(1)));
}

#[test]
fn replies_given_are_kept_with_the_commit_until_they_age_out() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let ask = pods_sdk::AskId {
        origin: 9,
        scope: 4,
        partition: 1,
        seq: 2,
    };
    let answered = [pods_sdk::Answer {
        ask,
        reply: &cbor(41),
    }];
    commit_answers(&mut store, 3, &answered);
    let r = store.recover(WF).unwrap();
    assert_eq!(r.step, 3);
    assert_eq!(r.answered, vec![(ask, cbor(41))]);
    // Kept no time at all: the next compaction drops them, and recovery no longer sees them.
    drop(store);
    let options = StoreOptions {
        answers_kept: std::time::Duration::ZERO,
        ..StoreOptions::default()
    };
    let mut store = SqliteStore::open(dir.path(), options).unwrap();
    // Two seconds: reopening may move the reply a second forward (downtime counted in whole
    // seconds), and it must then be older than the time it is kept for.
    std::thread::sleep(std::time::Duration::from_millis(2_100));
    store.compact(WF).unwrap();
    assert_eq!(store.recover(WF).unwrap().answered, Vec::new());
}

#[test]
fn a_step_that_answered_many_asks_keeps_every_reply_and_the_last_of_a_repeated_id() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    // 75 asks: written by statements of 64, 8 and 1 replies; ask 3 is answered twice.
    let ask = |seq: u32| pods_sdk::AskId {
        origin: 9,
        scope: 4,
        partition: seq % 2,
        seq,
    };
    let replies: Vec<Vec<u8>> = (0..76).map(|i| cbor(i64::from(i) * 10)).collect();
    let mut answered: Vec<pods_sdk::Answer<'_>> = (0..75u32)
        .map(|seq| pods_sdk::Answer {
            ask: ask(seq),
            reply: &replies[seq as usize],
        })
        .collect();
    answered.push(pods_sdk::Answer {
        ask: ask(3),
        reply: &replies[75],
    });
    commit_answers(&mut store, 1, &answered);
    drop(store);
    let mut kept = open(dir.path()).recover(WF).unwrap().answered;
    kept.sort_by_key(|(a, _)| a.seq);
    let expected: Vec<_> = (0..75u32)
        .map(|seq| {
            (
                ask(seq),
                if seq == 3 {
                    cbor(750)
                } else {
                    cbor(i64::from(seq) * 10)
                },
            )
        })
        .collect();
    assert_eq!(kept, expected);
}

#[test]
fn damaged_kept_replies_are_a_typed_error_naming_the_step() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    let conn = rusqlite::Connection::open(dir.path().join(DATABASE)).unwrap();
    conn.execute(
        "INSERT INTO answer_sets (workflow, origin, scope, step, replies, at)
         VALUES (?1, 9, 4, 3, ?2, 0)",
        rusqlite::params![WF as i64, payload::plain(b"\xff not cbor")],
    )
    .unwrap();
    at_step_3(&conn);
    drop(conn);
    let store = open(dir.path());
    match store.recover(WF) {
        Err(NodeError::BadRecord { what, .. }) => assert_eq!(what, "kept replies of step 3"),
        other => panic!("expected BadRecord, got {other:?}"),
    }
}

#[test]
fn replies_to_asks_over_atoms_the_asker_committed_past_go_with_the_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    // The asker (workflow id 5) has committed its input up to offset 10.
    store
        .begin_consumer(
            &Path::parse("/app/workflows/asker").unwrap(),
            5,
            &InputPosition {
                stream: Path::parse("/app/generators/g/stream").unwrap(),
                next: 10,
            },
        )
        .unwrap();
    let ask = |scope: u64| pods_sdk::AskId {
        origin: 5,
        scope,
        partition: 0,
        seq: 0,
    };
    let derived = ask(7).scope_of();
    let replies = [cbor(1), cbor(2), cbor(3)];
    let answered = [
        pods_sdk::Answer {
            ask: ask(9),
            reply: &replies[0],
        },
        pods_sdk::Answer {
            ask: ask(10),
            reply: &replies[1],
        },
        pods_sdk::Answer {
            ask: ask(derived),
            reply: &replies[2],
        },
    ];
    commit_answers(&mut store, 1, &answered);
    store.compact(WF).unwrap();
    let mut kept: Vec<u64> = store
        .recover(WF)
        .unwrap()
        .answered
        .iter()
        .map(|(a, _)| a.scope)
        .collect();
    kept.sort();
    // Atom 9 is behind the asker's position; atom 10 may be replayed; a derived scope cannot
    // be placed, so it ages by time.
    assert_eq!(kept, vec![10, derived]);
}

#[test]
fn compaction_keeps_what_recovery_sees() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    commit(
        &mut store,
        1,
        Some(1),
        &[(7, Some(1), Some(1)), (7, Some(2), Some(2))],
    )
    .unwrap();
    commit(&mut store, 2, Some(2), &[(7, Some(2), None)]).unwrap();
    let before = store.recover(WF).unwrap();
    assert_eq!(store.compact(WF).unwrap(), 2);
    assert_eq!(store.compact(WF).unwrap(), 0);
    commit(&mut store, 3, Some(3), &[(7, Some(1), Some(5))]).unwrap();
    let after = store.recover(WF).unwrap();
    assert_eq!(before.values.len(), 1);
    assert_eq!(after.step, 3);
    assert_eq!(after.values, [((7, Some(Key(1))), cbor(5))].into());
}

#[test]
fn a_foreign_database_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(DATABASE);
    let other = rusqlite::Connection::open(&file).unwrap();
    other
        .execute_batch("CREATE TABLE mine (x); INSERT INTO mine VALUES (1);")
        .unwrap();
    drop(other);
    let err = SqliteStore::open(dir.path(), StoreOptions::default())
        .err()
        .expect("refused");
    assert!(matches!(err, NodeError::Foreign { .. }), "{err}");
    assert!(err.to_string().contains("pods.db"), "{err}");
    let other = rusqlite::Connection::open(&file).unwrap();
    let n: i64 = other
        .query_row("SELECT count(*) FROM mine", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
}

#[test]
fn a_damaged_file_is_refused_and_never_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(DATABASE);
    let junk = b"this is not a database, but it is somebody's data".repeat(100);
    std::fs::write(&file, &junk).unwrap();
    let err = SqliteStore::open(dir.path(), StoreOptions::default())
        .err()
        .expect("refused");
    assert!(matches!(err, NodeError::Damaged { .. }), "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), junk, "the file was changed");
}

#[test]
fn a_damaged_page_inside_a_pods_database_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    for step in 1..=200 {
        commit(
            &mut store,
            step,
            Some(step),
            &[(7, Some(step), Some(step as i64))],
        )
        .unwrap();
    }
    drop(store);
    // Checkpointed into the main file; then overwrite its second half with junk.
    let file = dir.path().join(DATABASE);
    let conn = rusqlite::Connection::open(&file).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    drop(conn);
    let mut bytes = std::fs::read(&file).unwrap();
    let half = bytes.len() / 2;
    for b in &mut bytes[half..] {
        *b = 0xa5;
    }
    std::fs::write(&file, &bytes).unwrap();
    let result = SqliteStore::open(dir.path(), StoreOptions::default()).and_then(|s| s.recover(WF));
    let err = result.expect_err("damage noticed");
    assert!(
        matches!(err, NodeError::Damaged { .. } | NodeError::BadRecord { .. }),
        "{err}"
    );
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    let conn = rusqlite::Connection::open(dir.path().join(DATABASE)).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let err = SqliteStore::open(dir.path(), StoreOptions::default())
        .err()
        .expect("refused");
    assert!(
        matches!(
            err,
            NodeError::NewerSchema {
                found: 99,
                supported: schema::VERSION,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_version_1_database_is_migrated_and_keeps_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(DATABASE);
    let conn = rusqlite::Connection::open(&file).unwrap();
    schema::migrate(&conn, 0, 1).unwrap();
    conn.execute(
        "INSERT INTO positions (workflow, path, step, compacted, stream, next)
         VALUES (?1, '/app/workflows/wf', 5, 0, '/app/generators/g/stream', 5)",
        [WF as i64],
    )
    .unwrap();
    drop(conn);
    let mut store = open(dir.path());
    let r = store.recover(WF).unwrap();
    assert_eq!(
        (r.step, r.produced, r.input.map(|p| p.next)),
        (5, 0, Some(5))
    );
    commit(&mut store, 6, Some(6), &[(7, Some(1), Some(1))]).unwrap();
    assert_eq!(store.recover(WF).unwrap().step, 6);
    let conn = rusqlite::Connection::open(&file).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, schema::VERSION);
}

#[test]
fn the_highest_kept_scope_is_the_unsigned_highest_per_replier_and_origin() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let kept = super::KeptReplies::open(dir.path()).unwrap();
    assert!(!kept.has_legacy_rows());
    assert_eq!(kept.highest_scope(WF, 9).unwrap(), None);
    let reply = cbor(1);
    let ask = |origin, scope| pods_sdk::AskId {
        origin,
        scope,
        partition: 0,
        seq: 0,
    };
    // Scopes stored as signed numbers: 1 << 63 and u64::MAX - 1 are negative there.
    let asked = [(9, 5), (9, 1 << 63), (9, u64::MAX - 1), (9, 7), (8, 40)];
    for (step, (origin, scope)) in (1..).zip(asked) {
        let answered = [pods_sdk::Answer {
            ask: ask(origin, scope),
            reply: &reply,
        }];
        commit_answers(&mut store, step, &answered);
    }
    assert_eq!(kept.highest_scope(WF, 9).unwrap(), Some(u64::MAX - 1));
    assert_eq!(kept.highest_scope(WF, 8).unwrap(), Some(40));
    assert_eq!(kept.highest_scope(WF, 7).unwrap(), None);
    assert_eq!(kept.highest_scope(WF + 1, 9).unwrap(), None);
}

#[test]
fn a_version_4_database_gets_its_clock_and_keeps_its_replies() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(DATABASE);
    let conn = rusqlite::Connection::open(&file).unwrap();
    schema::migrate(&conn, 0, 4).unwrap();
    conn.execute(
        "INSERT INTO answered (workflow, origin, scope, partition, seq, reply, at)
         VALUES (?1, 9, 4, 1, 2, ?2, 0)",
        rusqlite::params![WF as i64, payload::plain(&cbor(41))],
    )
    .unwrap();
    at_step_3(&conn);
    drop(conn);
    let store = open(dir.path());
    let ask = pods_sdk::AskId {
        origin: 9,
        scope: 4,
        partition: 1,
        seq: 2,
    };
    assert_eq!(store.recover(WF).unwrap().answered, vec![(ask, cbor(41))]);
    // The network's lookup finds the old row too, and a newer set beside it.
    let mut store = store;
    let newer = cbor(42);
    let answered = [pods_sdk::Answer { ask, reply: &newer }];
    commit_answers(&mut store, 4, &answered);
    let other = pods_sdk::AskId { seq: 3, ..ask };
    let kept = super::KeptReplies::open(dir.path()).unwrap();
    // Per-reply rows: the network looks every ask up.
    assert!(kept.has_legacy_rows());
    assert_eq!(kept.replies(WF, 9, 4).unwrap(), vec![(ask, cbor(42))]);
    drop(store);
    let conn = rusqlite::Connection::open(&file).unwrap();
    conn.execute("DELETE FROM answer_sets", []).unwrap();
    conn.execute(
        "INSERT INTO answered (workflow, origin, scope, partition, seq, reply, at)
         VALUES (?1, 9, 4, 1, 3, ?2, 0)",
        rusqlite::params![WF as i64, payload::plain(&cbor(43))],
    )
    .unwrap();
    drop(conn);
    assert_eq!(
        super::KeptReplies::open(dir.path())
            .unwrap()
            .replies(WF, 9, 4)
            .unwrap(),
        vec![(ask, cbor(41)), (other, cbor(43))]
    );
}

#[test]
fn a_read_only_store_reads_and_refuses_commits() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    commit(&mut store, 1, Some(1), &[(7, Some(1), Some(1))]).unwrap();
    drop(store);
    let options = StoreOptions {
        read_only: true,
        ..StoreOptions::default()
    };
    let mut store = SqliteStore::open(dir.path(), options).unwrap();
    assert_eq!(store.recover(WF).unwrap().step, 1);
    assert!(commit(&mut store, 2, Some(2), &[(7, Some(1), Some(2))]).is_err());
    assert!(
        matches!(store.last_error(), Some(NodeError::ReadOnly { .. })),
        "{:?}",
        store.last_error()
    );
    // Opening a data dir that has no database read-only does not create one.
    let empty = tempfile::tempdir().unwrap();
    let options = StoreOptions {
        read_only: true,
        ..StoreOptions::default()
    };
    assert!(SqliteStore::open(empty.path(), options).is_err());
    assert!(!empty.path().join(DATABASE).exists());
}

#[test]
fn a_full_disk_while_keeping_replies_is_disk_full() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    let options = StoreOptions {
        max_pages: Some(20),
        ..StoreOptions::default()
    };
    let mut store = SqliteStore::open(dir.path(), options).unwrap();
    let reply = vec![7u8; 2_000];
    let mut result = Ok(());
    for step in 1..=100u64 {
        let answered: Vec<pods_sdk::Answer<'_>> = (0..8u32)
            .map(|seq| pods_sdk::Answer {
                ask: pods_sdk::AskId {
                    origin: 9,
                    scope: step,
                    partition: 0,
                    seq,
                },
                reply: &reply,
            })
            .collect();
        result = commit_step(&mut store, (step, step), None, &[], &answered);
        if result.is_err() {
            break;
        }
    }
    assert!(result.is_err(), "the page limit was never reached");
    assert!(
        matches!(store.last_error(), Some(NodeError::DiskFull { .. })),
        "{:?}",
        store.last_error()
    );
}

#[test]
fn a_full_disk_fails_the_commit_and_keeps_every_earlier_one() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    // The empty schema takes 17 pages (one per table and index, and the schema's own).
    let options = StoreOptions {
        max_pages: Some(19),
        ..StoreOptions::default()
    };
    let mut store = SqliteStore::open(dir.path(), options).unwrap();
    let big: Vec<(u64, Option<u64>, Option<i64>)> =
        (0..200).map(|k| (7, Some(k), Some(k as i64))).collect();
    let mut committed = 0;
    let mut failed = false;
    for step in 1..=100 {
        if commit(&mut store, step, Some(step), &big).is_err() {
            failed = true;
            break;
        }
        committed = step;
    }
    assert!(failed, "the page limit was never reached");
    assert!(committed > 0, "commits fit before the limit");
    assert!(
        matches!(store.last_error(), Some(NodeError::DiskFull { .. })),
        "{:?}",
        store.last_error()
    );
    assert!(
        store
            .last_error()
            .map(|e| e.to_string())
            .unwrap_or_default()
            .contains("disk is full")
    );
    let r = store.recover(WF).unwrap();
    assert_eq!(r.step, committed);
    assert_eq!(r.input.map(|p| p.next), Some(committed));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Whatever the sequence of commits and compactions, recovery gives the values a plain
    /// fold of the commits gives.
    #[test]
    fn recovery_equals_the_fold_of_the_commits(
        steps in prop::collection::vec(
            (prop::collection::vec((0u64..3, proptest::option::of(0u64..5), proptest::option::of(-5i64..5)), 0..6), any::<bool>()),
            1..12,
        ),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(dir.path());
        let mut model: BTreeMap<(u64, Option<Key>), Vec<u8>> = BTreeMap::new();
        for (i, (writes, compact)) in steps.iter().enumerate() {
            let step = i as u64 + 1;
            commit(&mut store, step, Some(step), writes).unwrap();
            for (state, key, value) in writes {
                let slot = (*state, key.map(Key));
                match value {
                    Some(v) => { model.insert(slot, cbor(*v)); }
                    None => { model.remove(&slot); }
                }
            }
            if *compact {
                store.compact(WF).unwrap();
            }
        }
        let r = open(dir.path()).recover(WF).unwrap();
        prop_assert_eq!(r.values, model);
        prop_assert_eq!(r.step, steps.len() as u64);
    }
}

#[test]
fn an_atom_tried_by_three_launches_in_a_row_without_a_commit_is_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    let workflow = Path::parse("/app/workflows/wf").unwrap();
    let stream = Path::parse("/app/generators/g/stream").unwrap();
    let mut verdicts = Vec::new();
    for _launch in 0..5 {
        // Each launch is a fresh handle on the file, as after a crash.
        let mut store = open(dir.path());
        verdicts.push(store.attempt(&workflow, WF, &stream, 7).unwrap());
    }
    assert_eq!(
        verdicts,
        vec![
            Attempt::Run,
            Attempt::Run,
            Attempt::Run,
            Attempt::Quarantine { crashes: 3 },
            Attempt::Quarantine { crashes: 4 },
        ]
    );
    // Another atom starts the count again.
    let mut store = open(dir.path());
    assert_eq!(
        store.attempt(&workflow, WF, &stream, 8).unwrap(),
        Attempt::Run
    );
    assert_eq!(
        store.attempt(&workflow, WF, &stream, 7).unwrap(),
        Attempt::Run
    );
}

#[test]
fn an_atom_set_aside_is_kept_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let workflow = Path::parse("/app/workflows/wf").unwrap();
    let stream = Path::parse("/app/generators/g/stream").unwrap();
    store
        .set_aside(&workflow, WF, &stream, 7, b"atom bytes", "it crashed")
        .unwrap();
    // Set aside again (a crash before the step past it committed): one entry, the latest.
    store
        .set_aside(&workflow, WF, &stream, 7, b"atom bytes", "it crashed again")
        .unwrap();
    let q = store.quarantined().unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(
        (q[0].workflow.as_str(), q[0].stream.as_str(), q[0].offset),
        ("/app/workflows/wf", "/app/generators/g/stream", 7)
    );
    assert_eq!(
        (q[0].atom.as_slice(), q[0].reason.as_str()),
        (&b"atom bytes"[..], "it crashed again")
    );
}

#[test]
fn the_connection_commits_as_the_options_say() {
    for (synchronous, level) in [(Synchronous::Full, 2), (Synchronous::Normal, 1)] {
        let dir = tempfile::tempdir().unwrap();
        let options = StoreOptions {
            synchronous,
            ..StoreOptions::default()
        };
        let store = SqliteStore::open(dir.path(), options).unwrap();
        let found: i64 = store
            .conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(found, level, "{synchronous:?}");
    }
}
