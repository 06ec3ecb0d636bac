//! The moves of sequencers and splitters: their output atoms and input position, logged
//! together.

use pods_sdk::Moved;
use rusqlite::params;

use super::{SqliteStore, payload, signed};
use crate::error::NodeError;

impl SqliteStore {
    /// Logs a sequencer's or splitter's move in one transaction: its output atoms, the heads
    /// of their streams, and its input position; every 256 moves on an input, the atoms of
    /// that input every reader has passed are dropped.
    pub(super) fn try_log_moved(&mut self, moved: &Moved<'_>) -> Result<(), NodeError> {
        let file = self.file.clone();
        let sql = |e| NodeError::sqlite(&file, e);
        let tx = self.conn.transaction().map_err(sql)?;
        for (stream, offset, atom) in moved.outputs {
            log_atom(&tx, stream.as_str(), *offset, atom).map_err(sql)?;
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
        tx.commit().map_err(sql)
    }
}

/// Logs atom `offset` of `stream` in `tx`, with the head of that stream's log.
pub(super) fn log_atom(
    tx: &rusqlite::Transaction<'_>,
    stream: &str,
    offset: u64,
    atom: &[u8],
) -> rusqlite::Result<()> {
    tx.prepare_cached("INSERT INTO atoms (stream, offset, atom) VALUES (?1, ?2, ?3)")?
        .execute(params![stream, signed(offset), payload::seal(atom)])?;
    tx.prepare_cached(
        "INSERT INTO heads (stream, next) VALUES (?1, ?2)
         ON CONFLICT (stream) DO UPDATE SET next = excluded.next",
    )?
    .execute(params![stream, signed(offset + 1)])?;
    Ok(())
}
