//! The moves of sequencers and splitters, and the atoms fed by the host: their atoms (their
//! personal events sealed) logged with the heads of their streams, and a move's input
//! position with them.

use pods_sdk::Moved;
use std::path::Path;

use rusqlite::{Transaction, TransactionBehavior, params};

use super::seal::DbKeys;
use super::{SqliteStore, payload, signed};
use crate::error::NodeError;

impl SqliteStore {
    /// Runs `write` in one transaction that may seal payloads: the write lock is taken
    /// first, so the subject keys it reads are current, and the keys it read or made are
    /// cached once the transaction commits.
    pub(super) fn sealing<R>(
        &mut self,
        write: impl FnOnce(&Transaction<'_>, &mut DbKeys<'_>, &Path) -> Result<R, NodeError>,
    ) -> Result<R, NodeError> {
        let file = self.file.clone();
        let sql = |e| NodeError::sqlite(&file, e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql)?;
        let mut keys = DbKeys::new(&tx, Some(&self.keys), &self.rng);
        let done = write(&tx, &mut keys, &file)?;
        let found = keys.found();
        tx.commit().map_err(sql)?;
        found.keep_in(&self.keys);
        Ok(done)
    }

    /// Logs atom `offset` of `stream` (fed by the host) in one transaction.
    pub(super) fn try_log_atom(
        &mut self,
        stream: &str,
        offset: u64,
        atom: &[u8],
    ) -> Result<(), NodeError> {
        self.sealing(|tx, keys, file| log_atom(tx, keys, file, stream, offset, atom))
    }

    /// Logs a sequencer's or splitter's move in one transaction: its output atoms, the heads
    /// of their streams, and its input position; every 256 moves on an input, the atoms of
    /// that input every reader has passed are dropped.
    pub(super) fn try_log_moved(&mut self, moved: &Moved<'_>) -> Result<(), NodeError> {
        self.sealing(|tx, keys, file| {
            let sql = |e| NodeError::sqlite(file, e);
            for (stream, offset, atom) in moved.outputs {
                log_atom(tx, keys, file, stream.as_str(), *offset, atom)?;
            }
            tx.prepare_cached(
                "INSERT INTO positions (workflow, path, step, compacted, stream, next, produced)
                 VALUES (?1, ?2, 0, 0, ?3, ?4, 0)
                 ON CONFLICT (workflow) DO UPDATE SET stream = excluded.stream, next = excluded.next",
            )
            .and_then(|mut s| {
                s.execute(params![
                    signed(moved.consumer_id),
                    moved.unit.as_str(),
                    moved.input.stream.as_str(),
                    signed(moved.input.next)
                ])
            })
            .map_err(sql)?;
            if moved.input.next.is_multiple_of(256) {
                tx.execute(
                    "DELETE FROM atoms WHERE stream = ?1
                       AND offset < (SELECT min(next) FROM positions WHERE stream = ?1)",
                    [moved.input.stream.as_str()],
                )
                .map_err(sql)?;
            }
            Ok(())
        })
    }
}

/// Logs atom `offset` of `stream` in `tx` (its personal events sealed with `keys`, made on
/// `tx`), with the head of that stream's log.
fn log_atom(
    tx: &rusqlite::Transaction<'_>,
    keys: &mut DbKeys<'_>,
    file: &std::path::Path,
    stream: &str,
    offset: u64,
    atom: &[u8],
) -> Result<(), NodeError> {
    let stored = payload::stored_atom(atom, keys).map_err(|e| e.at(file, "atom to log"))?;
    let sql = |e| NodeError::sqlite(file, e);
    tx.prepare_cached("INSERT INTO atoms (stream, offset, atom) VALUES (?1, ?2, ?3)")
        .and_then(|mut s| s.execute(params![stream, signed(offset), stored]))
        .map_err(sql)?;
    tx.prepare_cached(
        "INSERT INTO heads (stream, next) VALUES (?1, ?2)
         ON CONFLICT (stream) DO UPDATE SET next = excluded.next",
    )
    .and_then(|mut s| s.execute(params![stream, signed(offset + 1)]))
    .map_err(sql)?;
    Ok(())
}
