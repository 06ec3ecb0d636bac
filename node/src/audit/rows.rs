//! Entries and the head as rows of the audit database. A row that cannot be read as an entry
//! (a value of the wrong type or size, text that is not UTF-8 or JSON) is read as an entry no
//! key signed, so that verifying names it instead of stopping.

use pods_policy::audit::{Entry, Head, canonical_json};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, Row, params};

/// The columns of an entry, in the order [`entry_of`] reads them.
pub(crate) const ENTRY_COLUMNS: &str = "seq, at, actor, action, detail, prev, hash, signature";

/// Writes `entry` and the head after it in one transaction.
pub(crate) fn append(conn: &mut Connection, entry: &Entry, head: &Head) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.execute(
        "INSERT INTO entries (seq, at, actor, action, detail, prev, hash, signature)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            entry.seq as i64,
            entry.at as i64,
            entry.actor,
            entry.action,
            canonical_json(&entry.detail),
            &entry.prev[..],
            &entry.hash[..],
            entry.signature,
        ],
    )?;
    tx.execute(
        "INSERT INTO head (id, count, hash, signature) VALUES (0, ?1, ?2, ?3)
         ON CONFLICT (id) DO UPDATE SET count = excluded.count, hash = excluded.hash,
             signature = excluded.signature",
        params![head.count as i64, &head.hash[..], head.signature],
    )?;
    tx.commit()
}

/// The signed head, if the file has one; a head that cannot be read is returned as one no key
/// signed.
pub(crate) fn head(conn: &Connection) -> rusqlite::Result<Option<Head>> {
    conn.query_row(
        "SELECT count, hash, signature FROM head WHERE id = 0",
        [],
        |r| {
            let read = (|| {
                Some(Head {
                    count: integer(r.get_ref(0).ok()?)?,
                    hash: array(r.get_ref(1).ok()?)?,
                    signature: blob(r.get_ref(2).ok()?)?,
                })
            })();
            Ok(read.unwrap_or(Head {
                count: 0,
                hash: [0; 32],
                signature: Vec::new(),
            }))
        },
    )
    .optional()
}

/// The seq and hash of the last entry row, if any (as stored, unchecked; a value of the wrong
/// type reads as one that matches no head).
pub(crate) fn last(conn: &Connection) -> rusqlite::Result<Option<(u64, Vec<u8>)>> {
    conn.query_row(
        "SELECT seq, hash FROM entries ORDER BY seq DESC LIMIT 1",
        [],
        |r| {
            Ok((
                integer(r.get_ref(0)?).unwrap_or(u64::MAX),
                blob(r.get_ref(1)?).unwrap_or_default(),
            ))
        },
    )
    .optional()
}

/// The entry in `row` (selected as [`ENTRY_COLUMNS`]).
pub(crate) fn entry_of(row: &Row<'_>) -> rusqlite::Result<Entry> {
    let seq = integer(row.get_ref(0)?).unwrap_or(u64::MAX);
    let read = (|| {
        Some(Entry {
            seq,
            at: integer(row.get_ref(1).ok()?)?,
            actor: text(row.get_ref(2).ok()?)?,
            action: text(row.get_ref(3).ok()?)?,
            detail: serde_json::from_str(&text(row.get_ref(4).ok()?)?).ok()?,
            prev: array(row.get_ref(5).ok()?)?,
            hash: array(row.get_ref(6).ok()?)?,
            signature: blob(row.get_ref(7).ok()?)?,
        })
    })();
    Ok(read.unwrap_or_else(|| unreadable(seq)))
}

/// What stands for a row that is not an entry: no key signed it, and its hash matches nothing.
fn unreadable(seq: u64) -> Entry {
    Entry {
        seq,
        at: 0,
        actor: String::new(),
        action: String::new(),
        detail: serde_json::Value::Null,
        prev: [0; 32],
        hash: [0; 32],
        signature: Vec::new(),
    }
}

fn integer(v: ValueRef<'_>) -> Option<u64> {
    match v {
        ValueRef::Integer(i) => u64::try_from(i).ok(),
        _ => None,
    }
}

fn text(v: ValueRef<'_>) -> Option<String> {
    match v {
        ValueRef::Text(t) => String::from_utf8(t.to_vec()).ok(),
        _ => None,
    }
}

fn blob(v: ValueRef<'_>) -> Option<Vec<u8>> {
    match v {
        ValueRef::Blob(b) => Some(b.to_vec()),
        _ => None,
    }
}

fn array(v: ValueRef<'_>) -> Option<[u8; 32]> {
    blob(v).and_then(|b| <[u8; 32]>::try_from(b).ok())
}
