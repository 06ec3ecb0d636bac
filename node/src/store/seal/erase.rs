//! Erasure: destroying a data subject's key makes every payload sealed under it unreadable.
//! The key's row is deleted (the connection's `secure_delete` overwrites it with zeros) and a
//! pending erasure (a row without the subject) is recorded in the same transaction; then a checkpoint with truncation
//! copies the pages into the database file and empties the WAL, so no old frame keeps the key;
//! then the pending row goes. A crash in between leaves the pending row: the next erasure,
//! checkpoint or opening of the store completes it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use super::keys::{DbKeys, KeyCache};
use super::{Digest, digest};
use crate::error::NodeError;
use crate::store::payload::{self, PayloadError};
use crate::store::{failpoint, schema};

/// How long a statement of an eraser waits for the store's transaction to end.
const BUSY_TIMEOUT: Duration = Duration::from_secs(2);

/// Checkpoints tried (each waiting up to [`BUSY_TIMEOUT`]) before an erasure reports that the
/// WAL stayed busy.
const CHECKPOINT_TRIES: u32 = 5;

/// Erases data subjects' keys in a node's store; usable from any thread while the store runs
/// (it opens its own connection per call, and shares the store's cache of keys, so the running
/// store at once stops opening the erased subject's payloads and seals that subject's new
/// payloads under a fresh key). Get it from [`SqliteStore::eraser`](crate::SqliteStore::eraser),
/// or [`Eraser::open`] for a stopped node's data dir.
#[derive(Clone)]
pub struct Eraser {
    file: PathBuf,
    cache: KeyCache,
}

/// What an erasure found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErasedKey {
    /// Whether the subject had a key (`false`: nothing sealed for it, or erased before).
    pub existed: bool,
}

impl Eraser {
    pub(crate) fn new(file: PathBuf, cache: KeyCache) -> Eraser {
        Eraser { file, cache }
    }

    /// An eraser for the store in `dir` (which must exist), for use while no node runs there.
    pub fn open(dir: &Path) -> Result<Eraser, NodeError> {
        let file = dir.join(crate::store::DATABASE);
        if !file.is_file() {
            return Err(NodeError::DataDir {
                path: dir.to_path_buf(),
                reason: format!("no {} to erase from", crate::store::DATABASE),
            });
        }
        // Checks (and migrates) the schema once, so each call finds the key table.
        drop(schema::open(&file, false)?);
        Ok(Eraser::new(file, KeyCache::default()))
    }

    /// Destroys the key of data subject `subject`: no payload sealed for it opens again (its
    /// events are left out of every atom read back), and the key is gone from the database
    /// file and its WAL. Idempotent: erasing again completes an erasure a crash interrupted.
    pub fn erase_subject(&self, subject: &str) -> Result<ErasedKey, NodeError> {
        self.erase(subject, false)
    }

    /// Erases `subject` as [`erase_subject`](Eraser::erase_subject) does, and for good: no key
    /// is stored for them again, so a payload sealed for them later (by a step that admitted
    /// their data before the erasure and commits after it) is sealed under a key that is
    /// dropped at once, and never opens. For a node whose policy gate refuses erased subjects
    /// from then on, as the privacy layer's does.
    pub fn erase_subject_for_good(&self, subject: &str) -> Result<ErasedKey, NodeError> {
        self.erase(subject, true)
    }

    fn erase(&self, subject: &str, for_good: bool) -> Result<ErasedKey, NodeError> {
        let d = digest(subject);
        let sql = |e| NodeError::sqlite(&self.file, e);
        self.cache.forget(&d);
        let mut conn = self.connect()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql)?;
        let existed = tx
            .execute("DELETE FROM subject_keys WHERE subject = ?1", [&d[..]])
            .map_err(sql)?
            > 0;
        if for_good {
            tx.execute(
                "INSERT OR IGNORE INTO refused_keys (subject) VALUES (?1)",
                [&d[..]],
            )
            .map_err(sql)?;
        }
        tx.execute("INSERT INTO erasures DEFAULT VALUES", [])
            .map_err(sql)?;
        tx.commit().map_err(sql)?;
        // Again after the commit: a key read from the table before it is not kept.
        self.cache.forget(&d);
        failpoint::reach("erase.deleted");
        complete(&conn, &self.file)?;
        tracing::info!(subject = %short(&d), existed, "subject key erased");
        Ok(ErasedKey { existed })
    }

    /// Corrects `subject`'s records in every atom the store keeps (logged streams and
    /// quarantined atoms; see `rectify` for which events and columns), or only in those of
    /// `streams` when given, sealing the corrected atoms again, in one transaction; then
    /// checkpoints with truncation, as an erasure does, so no WAL frame keeps the old values (a
    /// crash before it completes at the next opening). Returns how many atoms changed. Atoms
    /// the running workflows hold in memory and have not read yet keep the old values.
    pub fn rectify_subject(
        &self,
        subject: &str,
        changes: &[super::rectify::Correction],
        streams: Option<&[String]>,
    ) -> Result<u64, NodeError> {
        let d = digest(subject);
        let sql = |e| NodeError::sqlite(&self.file, e);
        let mut conn = self.connect()?;
        // The rows whose sealed events may be the subject's (their digest is in them), found
        // outside the write transaction: the scan reads every logged atom, and the store's
        // commits go on meanwhile.
        let mut candidates = Vec::new();
        let only = match streams {
            // The streams' rows only, through the (stream, offset) index.
            Some(s) => format!(
                " WHERE stream IN ({})",
                vec!["?"; s.len().max(1)].join(", ")
            ),
            None => String::new(),
        };
        let names: Vec<&str> = match streams {
            Some([]) => vec![""],
            Some(s) => s.iter().map(String::as_str).collect(),
            None => Vec::new(),
        };
        for table in ["atoms", "quarantine"] {
            let mut stmt = conn
                .prepare(&format!("SELECT rowid, atom FROM {table}{only}"))
                .map_err(sql)?;
            let rows = stmt
                .query_map(rusqlite::params_from_iter(&names), |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
                })
                .map_err(sql)?;
            for row in rows {
                let (rowid, stored) = row.map_err(sql)?;
                if stored.windows(d.len()).any(|w| w == d) {
                    candidates.push((table, rowid));
                }
            }
        }
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql)?;
        let rng = ring::rand::SystemRandom::new();
        let mut keys = DbKeys::new(&tx, Some(&self.cache), &rng);
        let mut changed = 0;
        for (table, rowid) in candidates {
            let what = format!("{table} row {rowid}");
            // Gone since the scan (truncated): nothing to correct.
            let Some(stored): Option<Vec<u8>> = tx
                .query_row(
                    &format!("SELECT atom FROM {table} WHERE rowid = ?1"),
                    [rowid],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sql)?
            else {
                continue;
            };
            let atom =
                payload::open_atom(&stored, &mut keys).map_err(|e| e.at(&self.file, &what))?;
            let Some(corrected) = super::rectify::rectify_atom(&atom, subject, changes)
                .map_err(|e| PayloadError::from(e).at(&self.file, &what))?
            else {
                continue;
            };
            let sealed =
                payload::stored_atom(&corrected, &mut keys).map_err(|e| e.at(&self.file, &what))?;
            tx.execute(
                &format!("UPDATE {table} SET atom = ?1 WHERE rowid = ?2"),
                rusqlite::params![sealed, rowid],
            )
            .map_err(sql)?;
            changed += 1;
        }
        drop(keys);
        if changed > 0 {
            tx.execute("INSERT INTO erasures DEFAULT VALUES", [])
                .map_err(sql)?;
        }
        tx.commit().map_err(sql)?;
        if changed > 0 {
            complete(&conn, &self.file)?;
        }
        tracing::info!(subject = %short(&d), atoms = changed, "subject's logged records rectified");
        Ok(changed)
    }

    /// Checkpoints the WAL into the database file and truncates it, completing every erasure
    /// a crash interrupted.
    pub fn checkpoint(&self) -> Result<(), NodeError> {
        complete(&self.connect()?, &self.file)
    }

    fn connect(&self) -> Result<Connection, NodeError> {
        let conn = schema::open(&self.file, false)?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| NodeError::sqlite(&self.file, e))?;
        Ok(conn)
    }
}

/// Completes the pending erasures (if any) on `conn`: at the opening of a store.
pub(crate) fn complete_pending(conn: &Connection, file: &Path) -> Result<(), NodeError> {
    let pending: i64 = conn
        .query_row("SELECT count(*) FROM erasures", [], |r| r.get(0))
        .map_err(|e| NodeError::sqlite(file, e))?;
    if pending > 0 {
        complete(conn, file)?;
        tracing::info!(pending, "interrupted erasures completed");
    }
    Ok(())
}

/// Checkpoints with truncation (retrying while readers or a writer keep the WAL busy), then
/// drops the pending erasures it completed (not those recorded meanwhile by another eraser).
fn complete(conn: &Connection, file: &Path) -> Result<(), NodeError> {
    let sql = |e| NodeError::sqlite(file, e);
    let recorded: Option<i64> = conn
        .query_row("SELECT max(id) FROM erasures", [], |r| r.get(0))
        .map_err(sql)?;
    let mut tries = 0;
    loop {
        tries += 1;
        let busy = match conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            r.get::<_, i64>(0)
        }) {
            Ok(busy) => busy != 0,
            Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) => true,
            Err(e) => return Err(sql(e)),
        };
        if !busy {
            break;
        }
        if tries >= CHECKPOINT_TRIES {
            return Err(NodeError::Sqlite {
                file: file.to_path_buf(),
                detail: format!(
                    "the WAL stayed busy through {tries} checkpoints; the erasure is recorded \
                     and completes at the next checkpoint or opening of the store"
                ),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if let Some(recorded) = recorded {
        conn.execute("DELETE FROM erasures WHERE id <= ?1", [recorded])
            .map_err(sql)?;
    }
    Ok(())
}

/// The first bytes of a digest, in hex, to name an erasure in the log without the subject.
fn short(d: &Digest) -> String {
    d.iter().take(6).map(|b| format!("{b:02x}")).collect()
}
