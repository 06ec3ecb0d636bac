//! The node's durable store: one SQLite database (WAL) in the data dir. A workflow's commit
//! (an atom, or steps taken together) is one changelog record (the input position after it and
//! every state value it wrote) in one transaction; compaction folds a workflow's records into a
//! snapshot of its values. Recovery reads the snapshot and the records after it. The personal
//! events of every atom it keeps are sealed under their data subjects' keys (`seal/`), and an
//! [`Eraser`] destroys a subject's key.

mod activity;
mod answers;
mod checkpoint;
mod commit;
mod exports;
pub mod failpoint;
mod kept;
mod moves;
mod payload;
mod quarantine;
mod record;
mod recover;
pub(crate) mod schema;
mod seal;

use std::path::{Path, PathBuf};

use pods_sdk::{Attempt, Commit, InputPosition, Moved, Recovery, Storage, StorageError};
use ring::rand::SystemRandom;
use rusqlite::{Connection, OptionalExtension, params};

use crate::error::NodeError;
pub use activity::{Activity, WorkflowActivity};
use commit::Fold;
pub use exports::{Pulled, StreamReader};
pub use kept::KeptReplies;
pub use quarantine::Quarantined;
pub use seal::{Correction, ErasedKey, Eraser};
use seal::{DbKeys, KeyCache};

/// The database file's name in the data dir.
pub const DATABASE: &str = "pods.db";

/// How hard a commit waits for the disk (SQLite's `synchronous`; `"normal"` or `"full"` in
/// `pods.toml`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// A commit survives a crash of the process; a power loss may lose the last commits
    /// (never corrupts).
    Normal,
    /// A commit survives a power loss too (an fsync per commit).
    #[default]
    Full,
}

/// How the store's own deletions (changelog records folded into the snapshot, logs truncated,
/// snapshot values replaced, kept replies expired) are scrubbed from the file. Erasures always
/// zero what they delete, whatever this says: they run on a connection of their own with
/// SQLite's `secure_delete` on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scrub {
    /// Deleted content is zeroed in the pages the deletion writes anyway (SQLite's
    /// `secure_delete = FAST`); whole pages it frees (the overflow pages of a long record) go to
    /// the free list as they are, until reused. Personal payloads are sealed under their
    /// subjects' keys, so what lingers of them there is unreadable once the key is erased.
    InPage,
    /// Freed pages are zeroed too (`secure_delete = ON`): more I/O on every compaction.
    Full,
}

/// How to open a store.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Durability of each commit (default `Full`).
    pub synchronous: Synchronous,
    /// Open for reading only (inspection of a stopped node's data dir); commits fail.
    pub read_only: bool,
    /// Largest size of the database in pages (SQLite's `max_page_count`); `None`: no limit
    /// beyond the disk's.
    pub max_pages: Option<u64>,
    /// Changelog records (commits) of a workflow after which they are folded into its
    /// snapshot (default 256), so recovery reads a snapshot and a short tail; `0`: never.
    /// (Its input's log is truncated, and its kept replies expire, every 256 steps whatever
    /// this says.)
    pub compact_every: u64,
    /// Bytes of a workflow's changelog records after which they are folded into its snapshot
    /// even before `compact_every` records (default 4 MiB), so large records do not pile up.
    pub compact_bytes: u64,
    /// Launches in a row that may stop (crash) while a workflow processes the same atom before
    /// the next launch quarantines it instead of running it again (default 3).
    pub quarantine_after: u32,
    /// How long a replier keeps the replies it gave, so that the same ask asked again (an
    /// asking atom replayed after a crash) gets the same reply instead of being applied twice
    /// (default one hour; keep it longer than any ask's deadline).
    pub answers_kept: std::time::Duration,
    /// How the store's own deletions are scrubbed (default `InPage`).
    pub scrub: Scrub,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            synchronous: Synchronous::Full,
            read_only: false,
            max_pages: None,
            compact_every: 256,
            compact_bytes: 4 << 20,
            quarantine_after: 3,
            answers_kept: std::time::Duration::from_secs(3_600),
            scrub: Scrub::InPage,
        }
    }
}

/// The SQLite store; implements the sdk's [`Storage`].
pub struct SqliteStore {
    /// The WAL's checkpoints, on a thread of their own (`None` when read-only). Declared
    /// before `conn`, so it stops before the connection closes (and checkpoints what is left).
    _checkpointer: Option<checkpoint::Checkpointer>,
    conn: Connection,
    file: PathBuf,
    /// Record buffers of written commits, kept for their room.
    spare: Vec<Vec<u8>>,
    commits: u64,
    activity: activity::Activity,
    last_error: Option<NodeError>,
    compact_every: u64,
    compact_bytes: u64,
    quarantine_after: u32,
    answers_kept: std::time::Duration,
    /// When the store last recorded that the node runs (Unix seconds).
    alive: u64,
    /// Per workflow: this run's commits since its last compaction, folded (last write per slot).
    folds: std::collections::HashMap<u64, Fold>,
    /// The data subjects' keys in use, shared with the store's erasers.
    keys: KeyCache,
    /// Nonces and new keys.
    rng: SystemRandom,
}

/// SQLite keeps integers signed; keys and ids are unsigned 64-bit hashes, stored bit for bit.
fn signed(n: u64) -> i64 {
    n as i64
}

fn unsigned(n: i64) -> u64 {
    n as u64
}

impl SqliteStore {
    /// Opens the store in `dir` (creating the directory and the database if absent). Refuses a
    /// foreign, damaged or newer database with a typed error, and never starts empty over an
    /// existing file.
    pub fn open(dir: &Path, options: StoreOptions) -> Result<SqliteStore, NodeError> {
        if !options.read_only {
            std::fs::create_dir_all(dir).map_err(|e| NodeError::DataDir {
                path: dir.to_path_buf(),
                reason: e.to_string(),
            })?;
        }
        let file = dir.join(DATABASE);
        let mut conn = schema::open(&file, options.read_only)?;
        let sql = |e| NodeError::sqlite(&file, e);
        let mut checkpointer = None;
        if !options.read_only {
            let level = match options.synchronous {
                Synchronous::Normal => "NORMAL",
                Synchronous::Full => "FULL",
            };
            conn.pragma_update(None, "synchronous", level)
                .map_err(sql)?;
            // Under `NORMAL` no commit waits for the disk but the one that checkpoints: the
            // checkpoint moves to a thread of its own. Under `FULL` every commit waits for an
            // fsync of the WAL, and a concurrent checkpoint's writes would queue before each
            // of them (one atom per commit ran 30 % slower so): SQLite checkpoints inline.
            if options.synchronous == Synchronous::Normal {
                checkpointer = Some(checkpoint::Checkpointer::start(&file, level, &mut conn)?);
            }
            if options.scrub == Scrub::InPage {
                conn.pragma_update(None, "secure_delete", "FAST")
                    .map_err(sql)?;
            }
        }
        if let Some(pages) = options.max_pages {
            conn.pragma_update(None, "max_page_count", signed(pages))
                .map_err(sql)?;
        }
        let alive = if options.read_only {
            0
        } else {
            seal::complete_pending(&conn, &file)?;
            age_by_uptime(&conn).map_err(sql)?
        };
        Ok(SqliteStore {
            _checkpointer: checkpointer,
            alive,
            conn,
            file,
            spare: Vec::new(),
            commits: 0,
            activity: activity::Activity::default(),
            last_error: None,
            compact_every: options.compact_every,
            compact_bytes: options.compact_bytes,
            quarantine_after: options.quarantine_after,
            answers_kept: options.answers_kept,
            folds: std::collections::HashMap::new(),
            keys: KeyCache::default(),
            rng: SystemRandom::new(),
        })
    }

    /// An eraser of data subjects' keys in this store, usable from other threads while the
    /// store runs (the running store sees each erasure at once).
    pub fn eraser(&self) -> Eraser {
        Eraser::new(self.file.clone(), self.keys.clone())
    }

    /// The database file.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// What each workflow committed (shared: it follows later commits).
    pub fn activity(&self) -> Activity {
        self.activity.clone()
    }

    /// Number of commits written since the store was opened.
    pub fn commits(&self) -> u64 {
        self.commits
    }

    /// The typed error of the last failed commit (the sdk sees it as text).
    pub fn last_error(&self) -> Option<&NodeError> {
        self.last_error.as_ref()
    }

    /// Records a failed commit's typed error and turns it into the sdk's error.
    fn failed(&mut self, e: NodeError, workflow: &str, step: u64) -> StorageError {
        let message = e.to_string();
        tracing::error!(error = %message, workflow, step, "commit failed");
        self.last_error = Some(e);
        StorageError::Backend(message)
    }
}

/// How often (seconds, at most) a commit records that the node runs.
const ALIVE_EVERY: u64 = 10;

/// Kept replies age only while the node runs: moves their times forward by how long the node
/// was down (since it last recorded that it ran; a record up to `ALIVE_EVERY` old counts the
/// downtime long, which keeps replies longer, never shorter). Returns now.
fn age_by_uptime(conn: &Connection) -> rusqlite::Result<u64> {
    let now = now_seconds();
    let alive: Option<i64> = conn
        .query_row("SELECT alive FROM clock WHERE id = 0", [], |r| r.get(0))
        .optional()?;
    let tx = conn.unchecked_transaction()?;
    if let Some(alive) = alive.map(unsigned)
        && now > alive
    {
        answers::age(&tx, now - alive)?;
    }
    tx.execute(
        "INSERT INTO clock (id, alive) VALUES (0, ?1)
         ON CONFLICT (id) DO UPDATE SET alive = excluded.alive",
        [signed(now)],
    )?;
    tx.commit()?;
    Ok(now)
}

/// Now, in seconds since the Unix epoch.
fn now_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Storage for SqliteStore {
    fn commit(&mut self, commit: &Commit<'_>) -> Result<(), StorageError> {
        match self.write(commit) {
            Ok(()) => {
                self.last_error = None;
                let atoms = commit.input.as_ref().map(|p| p.next);
                let now_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64);
                self.activity
                    .committed(commit.workflow.as_str(), commit.step, atoms, now_ms);
                Ok(())
            }
            Err(e) => Err(self.failed(e, commit.workflow.as_str(), commit.step)),
        }
    }

    fn holds_asking_atoms(&self) -> bool {
        true
    }

    fn attempt(
        &mut self,
        workflow: &pods_sdk::Path,
        workflow_id: u64,
        stream: &pods_sdk::Path,
        offset: u64,
    ) -> Result<Attempt, StorageError> {
        let launches = self
            .try_attempt(workflow_id, stream.as_str(), offset)
            .map_err(|e| StorageError::Backend(e.to_string()))?;
        let crashes = launches - 1;
        if self.quarantine_after > 0 && crashes >= self.quarantine_after {
            return Ok(Attempt::Quarantine { crashes });
        }
        if crashes > 0 {
            tracing::warn!(%workflow, %stream, offset, crashes, "retrying an atom earlier launches stopped on");
        }
        Ok(Attempt::Run)
    }

    fn set_aside(
        &mut self,
        workflow: &pods_sdk::Path,
        workflow_id: u64,
        stream: &pods_sdk::Path,
        offset: u64,
        atom: &[u8],
        reason: &str,
    ) -> Result<(), StorageError> {
        match self.try_set_aside(workflow, workflow_id, stream, offset, atom, reason) {
            Ok(()) => Ok(()),
            Err(e) => Err(self.failed(e, workflow.as_str(), 0)),
        }
    }

    fn recover(
        &mut self,
        workflow: &pods_sdk::Path,
        workflow_id: u64,
    ) -> Result<Option<Recovery>, StorageError> {
        match SqliteStore::recover(self, workflow_id) {
            Ok(r) if r.step == 0 && r.input.is_none() => Ok(None),
            Ok(r) => {
                let atoms = r.input.as_ref().map(|p| p.next);
                self.activity.recovered(workflow.as_str(), r.step, atoms);
                Ok(Some(r))
            }
            Err(e) => Err(StorageError::Backend(e.to_string())),
        }
    }

    fn logs_atoms(&self) -> bool {
        true
    }

    fn log_atom(
        &mut self,
        stream: &pods_sdk::Path,
        offset: u64,
        atom: &[u8],
    ) -> Result<(), StorageError> {
        self.try_log_atom(stream.as_str(), offset, atom)
            .map_err(|e| StorageError::Backend(e.to_string()))
    }

    fn log_moved(&mut self, moved: &Moved<'_>) -> Result<(), StorageError> {
        match self.try_log_moved(moved) {
            Ok(()) => Ok(()),
            Err(e) => Err(self.failed(e, moved.unit.as_str(), 0)),
        }
    }

    fn logged_head(&mut self, stream: &pods_sdk::Path) -> Result<u64, StorageError> {
        self.conn
            .query_row(
                "SELECT next FROM heads WHERE stream = ?1",
                [stream.as_str()],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map(|n| n.map_or(0, unsigned))
            .map_err(|e| StorageError::Backend(NodeError::sqlite(&self.file, e).to_string()))
    }

    fn begin_consumer(
        &mut self,
        workflow: &pods_sdk::Path,
        workflow_id: u64,
        input: &InputPosition,
    ) -> Result<(), StorageError> {
        self.conn
            .execute(
                "INSERT INTO positions (workflow, path, step, compacted, stream, next, produced)
                 VALUES (?1, ?2, 0, 0, ?3, ?4, 0) ON CONFLICT (workflow) DO NOTHING",
                params![
                    signed(workflow_id),
                    workflow.as_str(),
                    input.stream.as_str(),
                    signed(input.next)
                ],
            )
            .map(|_| ())
            .map_err(|e| StorageError::Backend(NodeError::sqlite(&self.file, e).to_string()))
    }

    fn replay(
        &mut self,
        stream: &pods_sdk::Path,
        from: u64,
        to: u64,
    ) -> Result<Vec<Vec<u8>>, StorageError> {
        let file = self.file.clone();
        let fail = |e: NodeError| StorageError::Backend(e.to_string());
        let sql = |e| fail(NodeError::sqlite(&file, e));
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT atom FROM atoms WHERE stream = ?1 AND offset >= ?2 AND offset < ?3 ORDER BY offset",
            )
            .map_err(sql)?;
        let rows = stmt
            .query_map(params![stream.as_str(), signed(from), signed(to)], |r| {
                r.get::<_, Vec<u8>>(0)
            })
            .map_err(sql)?;
        let mut keys = DbKeys::new(&self.conn, Some(&self.keys), &self.rng);
        let mut atoms = Vec::new();
        for row in rows {
            let stored = row.map_err(sql)?;
            let atom = payload::open_atom(&stored, &mut keys)
                .map_err(|e| fail(e.at(&file, "logged atom")))?;
            atoms.push(atom.into_owned());
        }
        keys.found().keep_in(&self.keys);
        Ok(atoms)
    }
}

#[cfg(test)]
mod compaction_tests;
#[cfg(test)]
mod erasure_tests;
#[cfg(test)]
mod tests;
