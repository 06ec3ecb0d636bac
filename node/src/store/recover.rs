//! Reading back what a workflow committed (snapshot, changelog records after it, kept
//! replies), and compaction: folding the records into the snapshot and dropping what no reader
//! needs.

use std::path::Path;

use pods_sdk::{AskId, InputPosition, Key, Recovery, SubjectId};
use rusqlite::{OptionalExtension, params};

use super::commit::{Fold, Slots};
use super::payload::StoredValue;
use super::record::Record;
use super::seal::DbKeys;
use super::{SqliteStore, failpoint, now_seconds, payload, signed, unsigned};
use crate::error::NodeError;

impl SqliteStore {
    /// What `workflow` (by its path's stable id) has committed: snapshot, then the records
    /// after it.
    pub fn recover(&self, workflow: u64) -> Result<Recovery, NodeError> {
        let file = &self.file;
        let sql = |e| NodeError::sqlite(file, e);
        let mut recovered = Recovery::default();
        let position: Option<(i64, Option<String>, Option<i64>, i64)> = self
            .conn
            .query_row(
                "SELECT step, stream, next, produced FROM positions WHERE workflow = ?1",
                [signed(workflow)],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()
            .map_err(sql)?;
        let Some((step, stream, next, produced)) = position else {
            return Ok(recovered);
        };
        recovered.step = unsigned(step);
        recovered.produced = unsigned(produced);
        if let (Some(stream), Some(next)) = (stream, next) {
            recovered.input = Some(input_position(file, &stream, unsigned(next))?);
        }
        let mut snapshot = self
            .conn
            .prepare_cached("SELECT state, keyed, key, value FROM snapshot WHERE workflow = ?1")
            .map_err(sql)?;
        let rows = snapshot
            .query_map([signed(workflow)], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Vec<u8>>(3)?,
                ))
            })
            .map_err(sql)?;
        let mut keys = DbKeys::new(&self.conn, Some(&self.keys), &self.rng);
        for row in rows {
            let (state, keyed, key, value) = row.map_err(sql)?;
            let key = (keyed != 0).then_some(Key(unsigned(key)));
            let slot = (unsigned(state), key);
            put(
                &mut recovered,
                slot,
                Some(&value),
                &mut keys,
                file,
                "snapshot value",
            )?;
        }
        for record in self.records(workflow)? {
            for w in &record.writes {
                let slot = (w.state, w.key.map(Key));
                let value = w.value.as_ref().map(|v| v.0.as_slice());
                put(
                    &mut recovered,
                    slot,
                    value,
                    &mut keys,
                    file,
                    "changelog value",
                )?;
            }
        }
        recovered.answered = self.answers(workflow)?;
        Ok(recovered)
    }

    /// The replies `workflow` gave that are still kept, by ask (all of them: they age only while
    /// the node runs, and compaction drops the old ones).
    fn answers(&self, workflow: u64) -> Result<Vec<(AskId, Vec<u8>)>, NodeError> {
        super::answers::read(&self.conn, &self.file, workflow, None, true)
    }

    /// The oldest time (Unix seconds) of a reply still kept.
    pub(super) fn answers_since(&self) -> u64 {
        now_seconds().saturating_sub(self.answers_kept.as_secs())
    }

    /// The changelog records of `workflow`, in step order.
    fn records(&self, workflow: u64) -> Result<Vec<Record>, NodeError> {
        let file = &self.file;
        let sql = |e| NodeError::sqlite(file, e);
        let mut stmt = self
            .conn
            .prepare_cached("SELECT step, record FROM changelog WHERE workflow = ?1 ORDER BY step")
            .map_err(sql)?;
        let rows = stmt
            .query_map([signed(workflow)], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
            })
            .map_err(sql)?;
        let mut records = Vec::new();
        for row in rows {
            let (step, bytes) = row.map_err(sql)?;
            let record = Record::decode(&bytes).map_err(|detail| NodeError::BadRecord {
                file: file.clone(),
                what: format!("changelog {workflow:016x}/{step}"),
                detail,
            })?;
            records.push(record);
        }
        Ok(records)
    }

    /// Folds `workflow`'s changelog records into its snapshot and deletes them, in one
    /// transaction; returns how many records were folded.
    pub fn compact(&mut self, workflow: u64) -> Result<usize, NodeError> {
        let file = self.file.clone();
        let sql = |e| NodeError::sqlite(&file, e);
        let (count, last): (i64, Option<i64>) = self
            .conn
            .query_row(
                "SELECT count(*), max(step) FROM changelog WHERE workflow = ?1",
                [signed(workflow)],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(sql)?;
        let Some(last) = last.map(unsigned) else {
            return Ok(0);
        };
        // The last write of each slot wins. This run's commits were folded as they were made;
        // records written before it (a restart) are read back.
        let fold = self.folds.remove(&workflow).unwrap_or_default();
        let last_writes = if fold.records == unsigned(count) {
            fold.last
        } else {
            let mut folded = Slots::default();
            for record in self.records(workflow)? {
                for w in record.writes {
                    folded.insert((w.state, w.key), w.value.map(|v| v.0));
                }
            }
            folded
        };
        let kept_since = self.answers_since();
        let tx = self.conn.transaction().map_err(sql)?;
        {
            let mut upsert = tx
                .prepare_cached(
                    "INSERT INTO snapshot (workflow, state, keyed, key, value) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (workflow, state, keyed, key) DO UPDATE SET value = excluded.value",
                )
                .map_err(sql)?;
            let mut delete = tx
                .prepare_cached(
                    "DELETE FROM snapshot WHERE workflow = ?1 AND state = ?2 AND keyed = ?3 AND key = ?4",
                )
                .map_err(sql)?;
            // In key order, so the snapshot's B-tree is written front to back.
            let mut last_writes: Vec<_> = last_writes.into_iter().collect();
            last_writes.sort_unstable_by_key(|(slot, _)| *slot);
            for ((state, key), value) in last_writes {
                let (keyed, key) = (i64::from(key.is_some()), signed(key.unwrap_or(0)));
                match value {
                    Some(v) => upsert
                        .execute(params![signed(workflow), signed(state), keyed, key, v])
                        .map_err(sql)?,
                    None => delete
                        .execute(params![signed(workflow), signed(state), keyed, key])
                        .map_err(sql)?,
                };
            }
            tx.execute(
                "DELETE FROM changelog WHERE workflow = ?1 AND step <= ?2",
                params![signed(workflow), signed(last)],
            )
            .map_err(sql)?;
            tx.execute(
                "UPDATE positions SET compacted = ?2 WHERE workflow = ?1",
                params![signed(workflow), signed(last)],
            )
            .map_err(sql)?;
            failpoint::reach("compact.written");
            super::commit::tidy_up(&tx, signed(workflow), kept_since).map_err(sql)?;
        }
        tx.commit().map_err(sql)?;
        // The changelog holds nothing up to `last` now: a fresh fold, tidied.
        self.folds.insert(workflow, Fold::default());
        Ok(usize::try_from(count).unwrap_or(0))
    }
}

fn input_position(file: &Path, stream: &str, next: u64) -> Result<InputPosition, NodeError> {
    let stream = pods_sdk::Path::parse(stream).map_err(|e| NodeError::BadRecord {
        file: file.to_path_buf(),
        what: "input position".to_owned(),
        detail: e.to_string(),
    })?;
    Ok(InputPosition { stream, next })
}

/// The bytes of a stored plain payload (a state value or a kept reply).
pub(super) fn open_payload(file: &Path, what: &str, stored: &[u8]) -> Result<Vec<u8>, NodeError> {
    payload::open(stored)
        .map(<[u8]>::to_vec)
        .map_err(|e| e.at(file, what))
}

/// Sets `slot` of `recovered` to the value stored as `stored` (`None`: removed). A value sealed
/// under an erased subject's key is gone: the slot is empty, as if it had been removed.
fn put(
    recovered: &mut Recovery,
    slot: (u64, Option<Key>),
    stored: Option<&[u8]>,
    keys: &mut DbKeys<'_>,
    file: &Path,
    what: &str,
) -> Result<(), NodeError> {
    let opened = match stored {
        Some(stored) => payload::open_value(stored, keys).map_err(|e| e.at(file, what))?,
        None => StoredValue::Erased,
    };
    match opened {
        StoredValue::Value(value, owner) => {
            recovered.values.insert(slot, value.into_owned());
            match owner {
                Some(owner) => recovered.owners.insert(slot, owner.map(SubjectId)),
                None => recovered.owners.remove(&slot),
            };
        }
        StoredValue::Erased => {
            recovered.values.remove(&slot);
            recovered.owners.remove(&slot);
        }
    }
    Ok(())
}
