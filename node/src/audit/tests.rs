//! The audit log on a real `audit.db`: appends across reopenings, the tail, and each kind of
//! change made to the file with SQL found and named by the offline check.

use std::path::Path;

use pods_policy::audit::{Chain, Signer, TamperKind, hash_of};
use rusqlite::{Connection, params};
use serde_json::json;

use super::*;
use crate::identity::create_identity;

/// A data dir with an identity and an audit log of `n` entries.
fn node_with_log(n: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let key = create_identity(dir.path()).unwrap();
    let log = AuditLog::open(dir.path(), &key).unwrap();
    for i in 0..n {
        log.record_at(
            1_700_000_000 + i,
            "admin",
            "peer.add",
            json!({"name": format!("p{i}")}),
        )
        .unwrap();
    }
    dir
}

fn sql(dir: &Path, statements: &str) {
    let conn = Connection::open(dir.join(AUDIT_DATABASE)).unwrap();
    conn.execute_batch(statements).unwrap();
}

fn tampered(dir: &Path) -> (u64, TamperKind) {
    match verify_dir(dir) {
        Err(NodeError::AuditTampered { file, tamper }) => {
            assert_eq!(file, dir.join(AUDIT_DATABASE));
            (tamper.seq, tamper.kind)
        }
        other => panic!("expected a tampered log, got {other:?}"),
    }
}

/// Writes a row for an entry signed by another key, at `seq` after `prev`.
fn insert_forged(dir: &Path, seq: u64, prev: [u8; 32]) {
    let other = Signer::from_seed(&[3; 32]).unwrap();
    let e = Chain::resume(seq, prev).append(&other, 1, "admin", "peer.remove", json!({}));
    let conn = Connection::open(dir.join(AUDIT_DATABASE)).unwrap();
    conn.execute(
        "INSERT INTO entries VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            seq as i64,
            1,
            e.actor,
            e.action,
            "{}",
            &e.prev[..],
            &e.hash[..],
            e.signature
        ],
    )
    .unwrap();
}

fn hash_at(dir: &Path, seq: i64) -> [u8; 32] {
    let conn = Connection::open(dir.join(AUDIT_DATABASE)).unwrap();
    let h: Vec<u8> = conn
        .query_row("SELECT hash FROM entries WHERE seq = ?1", [seq], |r| {
            r.get(0)
        })
        .unwrap();
    h.try_into().unwrap()
}

#[test]
fn a_log_continues_across_reopenings_and_verifies_offline() {
    let dir = node_with_log(3);
    let key = load_identity(dir.path()).unwrap();
    let log = AuditLog::open(dir.path(), &key).unwrap();
    let e = log
        .record("admin", "peer.remove", json!({"name": "p0"}))
        .unwrap();
    assert_eq!(e.seq, 3);
    // While the log is open for writing (a running node), the check reads a snapshot.
    assert_eq!(verify_dir(dir.path()).unwrap().count, 4);
    drop(log);
    let v = verify_dir(dir.path()).unwrap();
    assert_eq!((v.count, v.head), (4, e.hash));
}

#[test]
fn the_tail_is_the_last_entries_oldest_first() {
    let dir = node_with_log(5);
    let log = AuditLog::open(dir.path(), &load_identity(dir.path()).unwrap()).unwrap();
    let tail = log.tail(2).unwrap();
    assert_eq!(tail.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![3, 4]);
    assert_eq!(tail[1].detail, json!({"name": "p4"}));
    assert_eq!(log.tail(100).unwrap().len(), 5);
    assert!(log.tail(0).unwrap().is_empty());
}

#[test]
fn an_edited_row_is_named() {
    let dir = node_with_log(5);
    sql(
        dir.path(),
        r#"UPDATE entries SET detail = '{"name":"mallory"}' WHERE seq = 2"#,
    );
    assert_eq!(tampered(dir.path()), (2, TamperKind::Edited));

    let dir = node_with_log(5);
    sql(
        dir.path(),
        "UPDATE entries SET at = 'yesterday' WHERE seq = 3",
    );
    assert_eq!(tampered(dir.path()), (3, TamperKind::Edited));
}

#[test]
fn a_row_hashed_again_or_signed_otherwise_fails_its_signature() {
    let dir = node_with_log(4);
    let prev = hash_at(dir.path(), 1);
    let detail = json!({"name": "mallory"});
    let hash = hash_of(2, 1_700_000_002, "admin", "peer.add", &detail, &prev);
    let conn = Connection::open(dir.path().join(AUDIT_DATABASE)).unwrap();
    conn.execute(
        "UPDATE entries SET detail = ?1, hash = ?2 WHERE seq = 2",
        params![detail.to_string(), &hash[..]],
    )
    .unwrap();
    drop(conn);
    assert_eq!(tampered(dir.path()), (2, TamperKind::BadSignature));

    let dir = node_with_log(4);
    sql(
        dir.path(),
        "UPDATE entries SET signature = zeroblob(64) WHERE seq = 0",
    );
    assert_eq!(tampered(dir.path()), (0, TamperKind::BadSignature));
}

#[test]
fn a_deleted_row_is_named_in_the_middle_and_at_the_end() {
    let dir = node_with_log(5);
    sql(dir.path(), "DELETE FROM entries WHERE seq = 2");
    assert_eq!(tampered(dir.path()), (2, TamperKind::Removed));

    let dir = node_with_log(5);
    sql(dir.path(), "DELETE FROM entries WHERE seq >= 3");
    assert_eq!(tampered(dir.path()), (3, TamperKind::Removed));
    // The node refuses to continue a log cut short.
    let key = load_identity(dir.path()).unwrap();
    match AuditLog::open(dir.path(), &key) {
        Err(NodeError::AuditTampered { tamper, .. }) => {
            assert_eq!((tamper.seq, tamper.kind), (3, TamperKind::Removed))
        }
        other => panic!("expected a refusal, got {other:?}"),
    }

    let dir = node_with_log(5);
    sql(
        dir.path(),
        "DELETE FROM entries WHERE seq = 2; UPDATE entries SET seq = seq - 1 WHERE seq > 2",
    );
    assert_eq!(tampered(dir.path()), (2, TamperKind::Removed));

    let dir = node_with_log(5);
    sql(
        dir.path(),
        "DELETE FROM entries WHERE seq = 4; DELETE FROM head",
    );
    assert_eq!(tampered(dir.path()), (4, TamperKind::HeadMissing));
}

#[test]
fn an_inserted_row_is_named() {
    let dir = node_with_log(4);
    let prev = hash_at(dir.path(), 3);
    insert_forged(dir.path(), 4, prev);
    assert_eq!(tampered(dir.path()), (4, TamperKind::Inserted));

    // In the middle: the later rows moved up to make room.
    let dir = node_with_log(4);
    let prev = hash_at(dir.path(), 1);
    sql(
        dir.path(),
        "UPDATE entries SET seq = seq + 10 WHERE seq >= 2; UPDATE entries SET seq = seq - 9 WHERE seq >= 12",
    );
    insert_forged(dir.path(), 2, prev);
    assert_eq!(tampered(dir.path()), (2, TamperKind::Inserted));

    // A copy of a genuine row, replayed at the end.
    let dir = node_with_log(3);
    sql(
        dir.path(),
        "INSERT INTO entries SELECT 3, at, actor, action, detail, prev, hash, signature FROM entries WHERE seq = 1",
    );
    assert_eq!(tampered(dir.path()), (3, TamperKind::Inserted));
}

#[test]
fn swapped_rows_are_reordered() {
    let dir = node_with_log(5);
    sql(
        dir.path(),
        "UPDATE entries SET seq = -1 WHERE seq = 1;
         UPDATE entries SET seq = 1 WHERE seq = 3;
         UPDATE entries SET seq = 3 WHERE seq = -1;",
    );
    assert_eq!(tampered(dir.path()), (1, TamperKind::Reordered));
}

#[test]
fn a_last_row_of_the_wrong_type_is_named_on_opening() {
    let dir = node_with_log(3);
    sql(dir.path(), "UPDATE entries SET hash = 'text' WHERE seq = 2");
    let key = load_identity(dir.path()).unwrap();
    match AuditLog::open(dir.path(), &key) {
        Err(NodeError::AuditTampered { tamper, .. }) => {
            assert_eq!((tamper.seq, tamper.kind), (2, TamperKind::Edited))
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_changed_head_is_named() {
    let dir = node_with_log(3);
    sql(dir.path(), "UPDATE head SET count = 2");
    assert_eq!(tampered(dir.path()), (3, TamperKind::HeadForged));
}

#[test]
fn a_foreign_or_newer_file_is_refused_naming_it() {
    let dir = node_with_log(1);
    let key = load_identity(dir.path()).unwrap();
    sql(dir.path(), "PRAGMA user_version = 99");
    let err = AuditLog::open(dir.path(), &key).expect_err("newer");
    assert!(
        matches!(err, NodeError::NewerSchema { found: 99, .. }),
        "{err}"
    );
    assert!(err.to_string().contains(AUDIT_DATABASE), "{err}");

    let dir = node_with_log(1);
    // The store's application id: a pods.db copied over audit.db.
    sql(dir.path(), "PRAGMA application_id = 1349480051");
    let err = verify_dir(dir.path()).expect_err("foreign");
    assert!(matches!(err, NodeError::Foreign { .. }), "{err}");
    assert!(err.to_string().contains(AUDIT_DATABASE), "{err}");
}

#[test]
fn a_data_dir_without_a_log_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    create_identity(dir.path()).unwrap();
    let err = verify_dir(dir.path()).expect_err("no log");
    assert!(err.to_string().contains(AUDIT_DATABASE), "{err}");
}
