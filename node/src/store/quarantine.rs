//! Quarantine: the atoms each workflow tried at its last launches, and the atoms set aside
//! because the process stopped while processing them on several launches in a row.

use rusqlite::{OptionalExtension, params};

use super::seal::DbKeys;
use super::{SqliteStore, now_seconds, payload, signed, unsigned};
use crate::error::NodeError;

impl SqliteStore {
    /// The atoms set aside because the process stopped while processing them on
    /// `quarantine_after` launches in a row, oldest first.
    pub fn quarantined(&self) -> Result<Vec<Quarantined>, NodeError> {
        let file = &self.file;
        let sql = |e| NodeError::sqlite(file, e);
        let mut stmt = self
            .conn
            .prepare(
                "SELECT path, stream, offset, atom, reason, at FROM quarantine ORDER BY at, path, offset",
            )
            .map_err(sql)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Vec<u8>>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, i64>(5)?,
                ))
            })
            .map_err(sql)?;
        let mut keys = DbKeys::new(&self.conn, Some(&self.keys), &self.rng);
        let mut out = Vec::new();
        for row in rows {
            let (workflow, stream, offset, atom, reason, at) = row.map_err(sql)?;
            let atom = payload::open_atom(&atom, &mut keys)
                .map_err(|e| e.at(file, "quarantined atom"))?
                .into_owned();
            out.push(Quarantined {
                workflow,
                stream,
                offset: unsigned(offset),
                atom,
                reason,
                at_unix_seconds: unsigned(at),
            });
        }
        keys.found().keep_in(&self.keys);
        Ok(out)
    }

    /// Sets atom `offset` of `stream` aside for `workflow` (its personal events sealed).
    pub(super) fn try_set_aside(
        &mut self,
        workflow: &pods_sdk::Path,
        workflow_id: u64,
        stream: &pods_sdk::Path,
        offset: u64,
        atom: &[u8],
        reason: &str,
    ) -> Result<(), NodeError> {
        self.sealing(|tx, keys, file| {
            let stored =
                payload::stored_atom(atom, keys).map_err(|e| e.at(file, "quarantined atom"))?;
            tx.execute(
                "INSERT INTO quarantine (workflow, path, stream, offset, atom, reason, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (workflow, stream, offset) DO UPDATE SET atom = excluded.atom,
                     reason = excluded.reason, at = excluded.at",
                params![
                    signed(workflow_id),
                    workflow.as_str(),
                    stream.as_str(),
                    signed(offset),
                    stored,
                    reason,
                    signed(now_seconds())
                ],
            )
            .map_err(|e| NodeError::sqlite(file, e))?;
            Ok(())
        })
    }

    pub(super) fn try_attempt(
        &mut self,
        workflow_id: u64,
        stream: &str,
        offset: u64,
    ) -> Result<u32, NodeError> {
        let file = self.file.clone();
        let sql = |e| NodeError::sqlite(&file, e);
        let tx = self.conn.transaction().map_err(sql)?;
        let earlier: Option<(String, i64, i64)> = tx
            .query_row(
                "SELECT stream, offset, launches FROM attempts WHERE workflow = ?1",
                [signed(workflow_id)],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(sql)?;
        let launches = match earlier {
            Some((s, o, n)) if s == stream && unsigned(o) == offset => unsigned(n) + 1,
            _ => 1,
        };
        tx.execute(
            "INSERT INTO attempts (workflow, stream, offset, launches) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (workflow) DO UPDATE SET stream = excluded.stream,
                 offset = excluded.offset, launches = excluded.launches",
            params![
                signed(workflow_id),
                stream,
                signed(offset),
                signed(launches)
            ],
        )
        .map_err(sql)?;
        tx.commit().map_err(sql)?;
        Ok(u32::try_from(launches).unwrap_or(u32::MAX))
    }
}

/// An atom set aside by quarantine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quarantined {
    /// The workflow that could not process it.
    pub workflow: String,
    /// The stream it came from.
    pub stream: String,
    /// Its offset there.
    pub offset: u64,
    /// Its encoding (CBOR), as the stream's log holds it.
    pub atom: Vec<u8>,
    /// Why it was set aside.
    pub reason: String,
    /// When, in seconds since the Unix epoch.
    pub at_unix_seconds: u64,
}
