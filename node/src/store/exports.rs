//! Exported streams at the store: each peer allowed to read one is a reader with a position,
//! as a local consumer is, so the stream's log keeps what it has not acknowledged (up to the
//! log horizon); [`StreamReader`] reads the log beside the running store.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};

use super::seal::DbKeys;
use super::{SqliteStore, payload, schema, signed, unsigned};
use crate::error::NodeError;

/// Label of remote readers' rows in `positions`: their path starts with it.
const REMOTE: &str = "/peers/";

impl SqliteStore {
    /// Registers reader `reader` (named `label`, under `/peers/`) of `stream`, at the oldest
    /// atom its log still holds; a reader registered before keeps its position.
    pub fn register_reader(
        &mut self,
        reader: u64,
        label: &str,
        stream: &str,
    ) -> Result<(), NodeError> {
        let first = self.first_offset(stream)?;
        let bad_path = |e: pods_sdk::Error| NodeError::Config(e.to_string());
        let label = pods_sdk::Path::parse(&format!("{REMOTE}{label}")).map_err(bad_path)?;
        let input = pods_sdk::InputPosition {
            stream: pods_sdk::Path::parse(stream).map_err(bad_path)?,
            next: first,
        };
        // A reader's row is a consumer's row: the same insert, kept if it exists.
        pods_sdk::Storage::begin_consumer(self, &label, reader, &input).map_err(|e| {
            NodeError::Sqlite {
                file: self.file().to_path_buf(),
                detail: e.to_string(),
            }
        })
    }

    /// Records that `reader` has every atom of `stream` below `next` (if a reader is given:
    /// `(reader, next)`), moves readers further
    /// than `horizon` atoms behind the log's end up to it, and drops the atoms every reader
    /// (local consumers included) is past.
    pub fn acknowledge(
        &mut self,
        reader: Option<(u64, u64)>,
        stream: &str,
        horizon: u64,
    ) -> Result<(), NodeError> {
        let file = self.file().to_path_buf();
        let sql = |e| NodeError::sqlite(&file, e);
        let tx = self.conn.transaction().map_err(sql)?;
        if let Some((reader, next)) = reader {
            tx.execute(
                "UPDATE positions SET next = max(next, ?2) WHERE workflow = ?1",
                params![signed(reader), signed(next)],
            )
            .map_err(sql)?;
        }
        let end: Option<i64> = tx
            .query_row(
                "SELECT max(offset) + 1 FROM atoms WHERE stream = ?1",
                params![stream],
                |r| r.get(0),
            )
            .map_err(sql)?;
        if let Some(end) = end {
            let floor = end - i64::try_from(horizon).unwrap_or(i64::MAX).min(end);
            tx.execute(
                "UPDATE positions SET next = ?2 WHERE stream = ?1 AND next < ?2 AND path LIKE '/peers/%'",
                params![stream, floor],
            )
            .map_err(sql)?;
        }
        tx.execute(
            "DELETE FROM atoms WHERE stream = ?1
               AND offset < (SELECT min(next) FROM positions WHERE stream = ?1)",
            params![stream],
        )
        .map_err(sql)?;
        tx.commit().map_err(sql)
    }

    /// The oldest offset the log of `stream` holds (its end if it holds none).
    fn first_offset(&self, stream: &str) -> Result<u64, NodeError> {
        let sql = |e| NodeError::sqlite(self.file(), e);
        let first: Option<i64> = self
            .conn
            .query_row(
                "SELECT min(offset) FROM atoms WHERE stream = ?1",
                params![stream],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql)?
            .flatten();
        match first {
            Some(f) => Ok(unsigned(f)),
            None => produced(&self.conn, stream).map_err(sql),
        }
    }
}

/// Atoms the workflow producing `stream` has committed (0 if none).
fn produced(conn: &Connection, stream: &str) -> rusqlite::Result<u64> {
    let n: Option<i64> = conn
        .query_row(
            "SELECT produced FROM positions WHERE path || '/stream' = ?1",
            params![stream],
            |r| r.get(0),
        )
        .optional()?;
    Ok(n.map_or(0, unsigned))
}

/// Reads the logs of exported streams on its own connection (WAL lets it read while the
/// store writes). Sealed atoms are opened with the subject keys as each pull finds them in
/// the database, so an erasure applies from the next pull on.
pub struct StreamReader {
    conn: Connection,
    file: PathBuf,
    rng: ring::rand::SystemRandom,
}

/// What a pull finds in a stream's log.
#[derive(Debug, PartialEq, Eq)]
pub enum Pulled {
    /// The atoms from the offset asked, in order (none yet: empty).
    Atoms(Vec<(u64, Vec<u8>)>),
    /// The log no longer holds the offset asked; it starts at `first`.
    Truncated {
        /// The oldest offset held.
        first: u64,
    },
}

impl StreamReader {
    /// Opens the stream logs of the node in `dir` (its store must exist).
    pub fn open(dir: &Path) -> Result<StreamReader, NodeError> {
        let file = dir.join(super::DATABASE);
        let conn = schema::open(&file, true)?;
        Ok(StreamReader {
            conn,
            file,
            rng: ring::rand::SystemRandom::new(),
        })
    }

    /// Up to `max_atoms` atoms (and about `max_bytes`) of `stream` from offset `from` on,
    /// read in one transaction (so what was produced and what was dropped agree).
    pub fn pull(
        &mut self,
        stream: &str,
        from: u64,
        max_atoms: u32,
        max_bytes: usize,
    ) -> Result<Pulled, NodeError> {
        let file = self.file.clone();
        let sql = |e| NodeError::sqlite(&file, e);
        let tx = self.conn.transaction().map_err(sql)?;
        let mut atoms = Vec::new();
        {
            let mut keys = DbKeys::new(&tx, None, &self.rng);
            let mut stmt = tx
                .prepare_cached(
                    "SELECT offset, atom FROM atoms WHERE stream = ?1 AND offset >= ?2 ORDER BY offset LIMIT ?3",
                )
                .map_err(sql)?;
            let rows = stmt
                .query_map(
                    params![stream, signed(from), i64::from(max_atoms.max(1))],
                    |r| Ok((unsigned(r.get(0)?), r.get::<_, Vec<u8>>(1)?)),
                )
                .map_err(sql)?;
            let mut bytes = 0;
            for row in rows {
                let (offset, stored) = row.map_err(sql)?;
                let expected = from + atoms.len() as u64;
                if offset != expected {
                    if atoms.is_empty() {
                        return Ok(Pulled::Truncated { first: offset });
                    }
                    break;
                }
                let atom = payload::open_atom(&stored, &mut keys)
                    .map_err(|e| e.at(&file, "stream atom"))?
                    .into_owned();
                bytes += atom.len();
                atoms.push((offset, atom));
                if bytes >= max_bytes {
                    break;
                }
            }
        }
        if atoms.is_empty() {
            // Nothing at or after `from`: new atoms may not exist yet, or all were dropped.
            let produced = produced(&tx, stream).map_err(sql)?;
            if from < produced {
                return Ok(Pulled::Truncated { first: produced });
            }
        }
        Ok(Pulled::Atoms(atoms))
    }
}
