//! The replies a replier kept, so that an ask sent again (after a lost reply, or a crash of
//! either node) gets the reply committed the first time. A commit keeps the replies it gave to
//! the asks of one asking atom (one origin and scope) as one row of `answer_sets`: the ask ids'
//! partitions and positions with the replies, CBOR in one payload. Stores written before
//! schema version 7 hold a row per reply in `answered`; both are read, the newer winning.

use std::collections::BTreeMap;
use std::path::Path;

use pods_sdk::{Answer, AskId};
use rusqlite::{Connection, Transaction, params};
use serde_bytes::{ByteBuf, Bytes};

use super::recover::open_payload;
use super::{payload, signed, unsigned};
use crate::error::NodeError;

/// One kept reply in a set: the ask's partition and position, and the reply's bytes.
type Kept<B> = (u32, u32, B);

/// The per-reply rows of older stores, of a workflow and of one asking atom of it.
const ROWS: &str = "SELECT origin, scope, partition, seq, reply FROM answered WHERE workflow = ?1";
const ROWS_OF_ATOM: &str = "SELECT origin, scope, partition, seq, reply FROM answered
     WHERE workflow = ?1 AND origin = ?2 AND scope = ?3";
/// The sets of a workflow and of one asking atom of it, oldest first.
const SETS: &str =
    "SELECT origin, scope, step, replies FROM answer_sets WHERE workflow = ?1 ORDER BY step";
const SETS_OF_ATOM: &str = "SELECT origin, scope, step, replies FROM answer_sets
     WHERE workflow = ?1 AND origin = ?2 AND scope = ?3 ORDER BY step";

/// Keeps the replies `workflow` gave in the commit of `step`, one row per asking atom. A
/// failed write is the store's error (`DiskFull`, `ReadOnly`, …), as for the commit's other rows.
pub(super) fn write(
    tx: &Transaction<'_>,
    file: &Path,
    workflow: i64,
    step: u64,
    answered: &[Answer<'_>],
    now: u64,
) -> Result<(), NodeError> {
    let mut sets: BTreeMap<(u64, u64), Vec<Kept<&Bytes>>> = BTreeMap::new();
    for a in answered {
        let reply = Bytes::new(a.reply);
        sets.entry((a.ask.origin, a.ask.scope)).or_default().push((
            a.ask.partition,
            a.ask.seq,
            reply,
        ));
    }
    for ((origin, scope), replies) in sets {
        let mut blob = Vec::new();
        payload::begin(&mut blob);
        ciborium::into_writer(&replies, &mut blob).map_err(|e| NodeError::BadRecord {
            file: file.to_path_buf(),
            what: format!("replies of step {step}"),
            detail: e.to_string(),
        })?;
        tx.prepare_cached(
            "INSERT OR REPLACE INTO answer_sets (workflow, origin, scope, step, replies, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .and_then(|mut s| {
            s.execute(params![
                workflow,
                signed(origin),
                signed(scope),
                signed(step),
                blob,
                signed(now)
            ])
        })
        .map_err(|e| NodeError::sqlite(file, e))?;
    }
    Ok(())
}

/// The replies `workflow` kept, all of them or only those to asks of `origin` in `scope`; a
/// reply kept twice (asked again and answered again) is the later one.
///
/// `legacy` false skips the per-reply rows of older stores: a store that had none when it was
/// opened gets none (this build writes sets only).
pub(super) fn read(
    conn: &Connection,
    file: &Path,
    workflow: u64,
    atom: Option<(u64, u64)>,
    legacy: bool,
) -> Result<Vec<(AskId, Vec<u8>)>, NodeError> {
    let sql = |e| NodeError::sqlite(file, e);
    let mut out: BTreeMap<AskId, Vec<u8>> = BTreeMap::new();
    let w = signed(workflow);
    // Two forms of each query, so that a lookup by atom uses the primary key.
    let (rows, sets, params) = match atom {
        Some((origin, scope)) => (
            ROWS_OF_ATOM,
            SETS_OF_ATOM,
            vec![w, signed(origin), signed(scope)],
        ),
        None => (ROWS, SETS, vec![w]),
    };
    let params = rusqlite::params_from_iter(params);
    if legacy {
        read_rows(conn, file, rows, params.clone(), &mut out)?;
    }
    let mut sets = conn.prepare_cached(sets).map_err(sql)?;
    let found = sets
        .query_map(params, |r| {
            Ok((
                unsigned(r.get(0)?),
                unsigned(r.get(1)?),
                r.get::<_, i64>(2)?,
                r.get::<_, Vec<u8>>(3)?,
            ))
        })
        .map_err(sql)?;
    for row in found {
        let (origin, scope, step, stored) = row.map_err(sql)?;
        let what = format!("kept replies of step {step}");
        let bytes = open_payload(file, &what, &stored)?;
        let replies: Vec<Kept<ByteBuf>> =
            ciborium::from_reader(&bytes[..]).map_err(|e| NodeError::BadRecord {
                file: file.to_path_buf(),
                what: what.clone(),
                detail: e.to_string(),
            })?;
        for (partition, seq, reply) in replies {
            let id = AskId {
                origin,
                scope,
                partition,
                seq,
            };
            out.insert(id, reply.into_vec());
        }
    }
    Ok(out.into_iter().collect())
}

/// The highest scope, unsigned, of the sets `workflow` kept for asks of `origin` (`None`:
/// none). Scopes are stored as signed numbers, so the unsigned highest is the highest negative
/// one if there is any, else the highest one; each is one step down the primary key.
pub(super) fn highest_scope(
    conn: &Connection,
    file: &Path,
    workflow: u64,
    origin: u64,
) -> Result<Option<u64>, NodeError> {
    let sql = |e| NodeError::sqlite(file, e);
    let (w, o) = (signed(workflow), signed(origin));
    for query in [
        "SELECT scope FROM answer_sets WHERE workflow = ?1 AND origin = ?2 AND scope < 0
         ORDER BY scope DESC LIMIT 1",
        "SELECT scope FROM answer_sets WHERE workflow = ?1 AND origin = ?2
         ORDER BY scope DESC LIMIT 1",
    ] {
        let mut statement = conn.prepare_cached(query).map_err(sql)?;
        let mut rows = statement.query(params![w, o]).map_err(sql)?;
        if let Some(row) = rows.next().map_err(sql)? {
            return Ok(Some(unsigned(row.get(0).map_err(sql)?)));
        }
    }
    Ok(None)
}

/// The per-reply rows of stores older than schema 7 into `out` (see [`read`]).
fn read_rows(
    conn: &Connection,
    file: &Path,
    query: &str,
    params: impl rusqlite::Params,
    out: &mut BTreeMap<AskId, Vec<u8>>,
) -> Result<(), NodeError> {
    let sql = |e| NodeError::sqlite(file, e);
    let mut rows = conn.prepare_cached(query).map_err(sql)?;
    let found = rows
        .query_map(params, |r| {
            let id = AskId {
                origin: unsigned(r.get(0)?),
                scope: unsigned(r.get(1)?),
                partition: u32::try_from(r.get::<_, i64>(2)?).unwrap_or(u32::MAX),
                seq: u32::try_from(r.get::<_, i64>(3)?).unwrap_or(u32::MAX),
            };
            Ok((id, r.get::<_, Vec<u8>>(4)?))
        })
        .map_err(sql)?;
    for row in found {
        let (id, stored) = row.map_err(sql)?;
        out.insert(id, open_payload(file, "kept reply", &stored)?);
    }
    Ok(())
}

/// Whether the store holds per-reply rows of a store older than schema 7.
pub(super) fn has_legacy(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row("SELECT EXISTS (SELECT 1 FROM answered)", [], |r| r.get(0))
}

/// Moves the times of every kept reply forward by `seconds` (the node was down that long).
pub(super) fn age(tx: &Transaction<'_>, seconds: u64) -> rusqlite::Result<()> {
    tx.execute("UPDATE answered SET at = at + ?1", [signed(seconds)])?;
    tx.execute("UPDATE answer_sets SET at = at + ?1", [signed(seconds)])?;
    Ok(())
}

/// Drops the replies of `workflow` kept since before `since`, and those to asks over atoms
/// their asker has committed past (scopes below 2^63 are atom offsets: stored signed, they are
/// the non-negative ones), which no replay asks again.
pub(super) fn drop_old(tx: &Transaction<'_>, workflow: u64, since: u64) -> rusqlite::Result<()> {
    for table in ["answered", "answer_sets"] {
        // Cached by its text: prepared once per connection, not at every tidy-up.
        let sql = format!(
            "DELETE FROM {table} WHERE workflow = ?1 AND (at < ?2 OR (scope >= 0
               AND scope < coalesce((SELECT next FROM positions
                                     WHERE positions.workflow = {table}.origin), 0)))"
        );
        tx.prepare_cached(&sql)?
            .execute(params![signed(workflow), signed(since)])?;
    }
    Ok(())
}
