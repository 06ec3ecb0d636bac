//! The node's durable store: one SQLite database (WAL) in the data dir. A workflow's atom
//! commits as one changelog record (the input position after it and every state value it
//! wrote) in one transaction; compaction folds a workflow's records into a snapshot of its
//! values. Recovery reads the snapshot and the records after it.

pub mod failpoint;
mod payload;
mod record;
mod schema;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use pods_sdk::{
    AskId, Attempt, Commit, InputPosition, Key, Moved, Recovery, Storage, StorageError,
};
use rusqlite::{Connection, OptionalExtension, params};

use crate::error::NodeError;
use record::{Record, RecordWriter};

/// The database file's name in the data dir.
pub const DATABASE: &str = "pods.db";

/// How hard a commit waits for the disk (SQLite's `synchronous`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Synchronous {
    /// A commit survives a crash of the process; a power loss may lose the last commits
    /// (never corrupts).
    Normal,
    /// A commit survives a power loss too (an fsync per commit).
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
    /// Steps of a workflow (atoms, batches of asks or replies) after which its changelog
    /// records are folded into its snapshot and its input's log is truncated (default 256), so
    /// recovery reads a snapshot and a short tail; `0`: never.
    pub compact_every: u64,
    /// Launches in a row that may stop (crash) while a workflow processes the same atom before
    /// the next launch quarantines it instead of running it again (default 3).
    pub quarantine_after: u32,
    /// How long a replier keeps the replies it gave, so that the same ask asked again (an
    /// asking atom replayed after a crash) gets the same reply instead of being applied twice
    /// (default one hour; keep it longer than any ask's deadline).
    pub answers_kept: std::time::Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            synchronous: Synchronous::Full,
            read_only: false,
            max_pages: None,
            compact_every: 256,
            quarantine_after: 3,
            answers_kept: std::time::Duration::from_secs(3_600),
        }
    }
}

/// The SQLite store; implements the sdk's [`Storage`].
pub struct SqliteStore {
    conn: Connection,
    file: PathBuf,
    /// Record buffers of written commits, kept for their room.
    spare: Vec<Vec<u8>>,
    commits: u64,
    last_error: Option<NodeError>,
    compact_every: u64,
    quarantine_after: u32,
    answers_kept: std::time::Duration,
    /// Per workflow: this run's commits since its last compaction, folded (last write per slot).
    folds: std::collections::HashMap<u64, Fold>,
}

/// The commits of one workflow since its last compaction, folded as they are made.
#[derive(Default)]
struct Fold {
    /// Steps left uncompacted by an earlier run (counted at this run's first commit).
    earlier: u64,
    records: u64,
    /// Steps (atoms, reply batches) those records cover: compaction follows progress, not
    /// records, since a record may cover a group of atoms.
    steps: u64,
    last: Slots,
}

/// A write of a record: its (state, key) and where its value lies in the record's bytes
/// (`None`: removed).
type Span = ((u64, Option<u64>), Option<std::ops::Range<usize>>);

/// The last value written per (state, key), for compaction.
type Slots = std::collections::HashMap<(u64, Option<u64>), Option<Vec<u8>>, SlotBuild>;

/// State ids and keys are already well-mixed hashes: a multiply-rotate combine suffices (a
/// fold takes one insert per write of every commit, so SipHash would be a real cost).
#[derive(Default, Clone, Copy)]
struct SlotHasher(u64);

impl std::hash::Hasher for SlotHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(23) ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    fn write_u8(&mut self, n: u8) {
        self.write_u64(u64::from(n));
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type SlotBuild = std::hash::BuildHasherDefault<SlotHasher>;

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
        let conn = schema::open(&file, options.read_only)?;
        let sql = |e| NodeError::sqlite(&file, e);
        if !options.read_only {
            let level = match options.synchronous {
                Synchronous::Normal => "NORMAL",
                Synchronous::Full => "FULL",
            };
            conn.pragma_update(None, "synchronous", level)
                .map_err(sql)?;
        }
        if let Some(pages) = options.max_pages {
            conn.pragma_update(None, "max_page_count", signed(pages))
                .map_err(sql)?;
        }
        Ok(SqliteStore {
            conn,
            file,
            spare: Vec::new(),
            commits: 0,
            last_error: None,
            compact_every: options.compact_every,
            quarantine_after: options.quarantine_after,
            answers_kept: options.answers_kept,
            folds: std::collections::HashMap::new(),
        })
    }

    /// The database file.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Commits made through this handle.
    pub fn commits(&self) -> u64 {
        self.commits
    }

    /// The typed error of the last failed commit (the sdk sees it as text).
    pub fn last_error(&self) -> Option<&NodeError> {
        self.last_error.as_ref()
    }

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
        for row in rows {
            let (state, keyed, key, value) = row.map_err(sql)?;
            let key = (keyed != 0).then_some(Key(unsigned(key)));
            let value = open_payload(file, "snapshot value", &value)?;
            recovered.values.insert((unsigned(state), key), value);
        }
        for record in self.records(workflow)? {
            apply(&mut recovered.values, &record, file)?;
        }
        recovered.answered = self.answers(workflow)?;
        Ok(recovered)
    }

    /// The replies `workflow` gave that are still kept, by ask.
    fn answers(&self, workflow: u64) -> Result<Vec<(AskId, Vec<u8>)>, NodeError> {
        let file = &self.file;
        let sql = |e| NodeError::sqlite(file, e);
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT origin, scope, partition, seq, reply FROM answered
                 WHERE workflow = ?1 AND at >= ?2",
            )
            .map_err(sql)?;
        let rows = stmt
            .query_map(
                params![signed(workflow), signed(self.answers_since())],
                |r| {
                    Ok((
                        AskId {
                            origin: unsigned(r.get(0)?),
                            scope: unsigned(r.get(1)?),
                            partition: u32::try_from(r.get::<_, i64>(2)?).unwrap_or(u32::MAX),
                            seq: u32::try_from(r.get::<_, i64>(3)?).unwrap_or(u32::MAX),
                        },
                        r.get::<_, Vec<u8>>(4)?,
                    ))
                },
            )
            .map_err(sql)?;
        let mut out = Vec::new();
        for row in rows {
            let (ask, stored) = row.map_err(sql)?;
            out.push((ask, open_payload(file, "kept reply", &stored)?));
        }
        Ok(out)
    }

    /// The oldest time (Unix seconds) of a reply still kept.
    fn answers_since(&self) -> u64 {
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
            // Replies older than the time they are kept for go with the compaction.
            tx.execute(
                "DELETE FROM answered WHERE workflow = ?1 AND at < ?2",
                params![signed(workflow), signed(kept_since)],
            )
            .map_err(sql)?;
            failpoint::reach("compact.written");
            // Atoms of its input that every consumer has committed past are not needed again.
            tx.execute(
                "DELETE FROM atoms WHERE stream = (SELECT stream FROM positions WHERE workflow = ?1)
                   AND offset < (SELECT min(next) FROM positions
                                 WHERE stream = (SELECT stream FROM positions WHERE workflow = ?1))",
                params![signed(workflow)],
            )
            .map_err(sql)?;
        }
        tx.commit().map_err(sql)?;
        Ok(usize::try_from(count).unwrap_or(0))
    }

    /// Encodes `commit`: its changelog record, the atoms it produced, its position and the
    /// replies it gave.
    fn encode(&mut self, commit: &Commit<'_>) -> Result<Staged, NodeError> {
        let bad = |what: String, detail: String| NodeError::BadRecord {
            file: self.file.clone(),
            what,
            detail,
        };
        let mut record = self.spare.pop().unwrap_or_default();
        let input = commit.input.as_ref().map(|p| (p.stream.as_str(), p.next));
        let mut writer = RecordWriter::begin(&mut record, commit.step, input)
            .map_err(|d| bad(format!("changelog of {}", commit.workflow), d))?;
        // Where each written value lies in the record, for the fold after the commit.
        let mut spans = Vec::with_capacity(commit.writes.len());
        for w in commit.writes {
            let value = w.value.map(|v| {
                move |out: &mut Vec<u8>| {
                    payload::begin(out);
                    v.encode(out)
                }
            });
            let span = writer
                .write(w.state.id, w.key.map(|k| k.0), value)
                .map_err(|d| bad(format!("state {} of {}", w.state.name, commit.workflow), d))?;
            spans.push(((w.state.id, w.key.map(|k| k.0)), span));
        }
        writer.finish();
        let mut atoms = Vec::with_capacity(commit.outputs.len());
        for atom in commit.outputs {
            let mut bytes = Vec::with_capacity(1 + 16 * atom.len());
            payload::begin(&mut bytes);
            atom.encode(&mut bytes)
                .map_err(|d| bad(format!("atom {} of {}", atom.offset, atom.stream), d))?;
            atoms.push((atom.stream.as_str().to_owned(), atom.offset, bytes));
        }
        let answered = commit
            .answered
            .iter()
            .map(|a| (a.ask, payload::seal(a.reply)))
            .collect();
        Ok(Staged {
            answered,
            workflow_id: commit.workflow_id,
            workflow: commit.workflow.as_str().to_owned(),
            step: commit.step,
            steps: commit.steps.max(1),
            record,
            spans,
            input: commit
                .input
                .as_ref()
                .map(|p| (p.stream.as_str().to_owned(), p.next)),
            atoms,
        })
    }

    /// Writes encoded commits of one workflow (in step order) in one transaction, then folds
    /// their values for compaction.
    fn write_staged(&mut self, staged: Vec<Staged>) -> Result<(), NodeError> {
        let (Some(first), Some(last)) = (staged.first(), staged.last()) else {
            return Ok(());
        };
        let (workflow_id, workflow) = (first.workflow_id, last.workflow.clone());
        failpoint::reach("commit.encoded");
        let file = self.file.clone();
        let sql = |e| NodeError::sqlite(&file, e);
        let tx = self.conn.transaction().map_err(sql)?;
        let (mut input, mut produced) = (None, None);
        for c in &staged {
            tx.prepare_cached("INSERT INTO changelog (workflow, step, record) VALUES (?1, ?2, ?3)")
                .and_then(|mut s| {
                    s.execute(params![signed(c.workflow_id), signed(c.step), c.record])
                })
                .map_err(sql)?;
            for (stream, offset, bytes) in &c.atoms {
                tx.prepare_cached("INSERT INTO atoms (stream, offset, atom) VALUES (?1, ?2, ?3)")
                    .and_then(|mut s| s.execute(params![stream, signed(*offset), bytes]))
                    .map_err(sql)?;
                produced = Some(signed(offset + 1));
            }
            if let Some((stream, next)) = &c.input {
                input = Some((stream.as_str(), signed(*next)));
            }
            for (ask, reply) in &c.answered {
                tx.prepare_cached(
                    "INSERT INTO answered (workflow, origin, scope, partition, seq, reply, at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT DO UPDATE SET reply = excluded.reply, at = excluded.at",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        signed(c.workflow_id),
                        signed(ask.origin),
                        signed(ask.scope),
                        i64::from(ask.partition),
                        i64::from(ask.seq),
                        reply,
                        signed(now_seconds())
                    ])
                })
                .map_err(sql)?;
            }
        }
        let (stream, next) = input.unzip();
        tx.prepare_cached(
            "INSERT INTO positions (workflow, path, step, compacted, stream, next, produced)
             VALUES (?1, ?2, ?3, 0, ?4, ?5, coalesce(?6, 0))
             ON CONFLICT (workflow) DO UPDATE SET step = excluded.step,
                 stream = coalesce(excluded.stream, stream), next = coalesce(excluded.next, next),
                 produced = coalesce(?6, produced)",
        )
        .and_then(|mut s| {
            s.execute(params![
                signed(workflow_id),
                workflow,
                signed(last.step),
                stream,
                next,
                produced
            ])
        })
        .map_err(sql)?;
        failpoint::reach("commit.written");
        tx.commit().map_err(sql)?;
        failpoint::reach("commit.done");
        self.commits += staged.len() as u64;
        if !self.folds.contains_key(&workflow_id) {
            // Steps committed since the last compaction, by earlier runs.
            let uncompacted: i64 = self
                .conn
                .query_row(
                    "SELECT step - compacted FROM positions WHERE workflow = ?1",
                    [signed(workflow_id)],
                    |r| r.get(0),
                )
                .map_err(sql)?;
            let now: u64 = staged.iter().map(|c| c.steps).sum();
            let fold = Fold {
                earlier: unsigned(uncompacted.max(0)).saturating_sub(now),
                ..Fold::default()
            };
            self.folds.insert(workflow_id, fold);
        }
        let fold = self.folds.entry(workflow_id).or_default();
        for c in staged {
            fold.records += 1;
            fold.steps += c.steps;
            for (slot, span) in c.spans {
                let value = fold.last.entry(slot).or_insert(None);
                match span.and_then(|r| c.record.get(r)) {
                    // The slot's buffer is reused: no allocation once a key has been written.
                    Some(v) => {
                        let buffer = value.get_or_insert_with(Vec::new);
                        buffer.clear();
                        buffer.extend_from_slice(v);
                    }
                    None => *value = None,
                }
            }
            let mut record = c.record;
            record.clear();
            self.spare.push(record);
        }
        if self.compact_every > 0 && fold.earlier + fold.steps >= self.compact_every {
            // The commit stands whatever happens here; a failed compaction is retried later.
            if let Err(e) = self.compact(workflow_id) {
                tracing::warn!(error = %e, workflow = %workflow, "compaction failed");
            }
        }
        Ok(())
    }

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
        let mut out = Vec::new();
        for row in rows {
            let (workflow, stream, offset, atom, reason, at) = row.map_err(sql)?;
            out.push(Quarantined {
                workflow,
                stream,
                offset: unsigned(offset),
                atom: open_payload(file, "quarantined atom", &atom)?,
                reason,
                at_unix_seconds: unsigned(at),
            });
        }
        Ok(out)
    }

    fn try_attempt(
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

    /// Logs a sequencer's or splitter's move in one transaction: its output atoms, the heads
    /// of their streams, and its input position; every 256 moves on an input, the atoms of
    /// that input every reader has passed are dropped.
    fn try_log_moved(&mut self, moved: &Moved<'_>) -> Result<(), NodeError> {
        let file = self.file.clone();
        let sql = |e| NodeError::sqlite(&file, e);
        let tx = self.conn.transaction().map_err(sql)?;
        for (stream, offset, atom) in moved.outputs {
            tx.prepare_cached("INSERT INTO atoms (stream, offset, atom) VALUES (?1, ?2, ?3)")
                .and_then(|mut s| {
                    s.execute(params![
                        stream.as_str(),
                        signed(*offset),
                        payload::seal(atom)
                    ])
                })
                .map_err(sql)?;
            tx.prepare_cached(
                "INSERT INTO heads (stream, next) VALUES (?1, ?2)
                 ON CONFLICT (stream) DO UPDATE SET next = excluded.next",
            )
            .and_then(|mut s| s.execute(params![stream.as_str(), signed(offset + 1)]))
            .map_err(sql)?;
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

    /// Records a failed commit's typed error and turns it into the sdk's error.
    fn failed(&mut self, e: NodeError, workflow: &str, step: u64) -> StorageError {
        let message = e.to_string();
        tracing::error!(error = %message, workflow, step, "commit failed");
        self.last_error = Some(e);
        StorageError::Backend(message)
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

/// A commit encoded, its bytes owned.
struct Staged {
    workflow_id: u64,
    workflow: String,
    step: u64,
    /// Steps the commit covers.
    steps: u64,
    record: Vec<u8>,
    spans: Vec<Span>,
    /// The input position after the step: stream and next offset.
    input: Option<(String, u64)>,
    /// The atoms produced: stream, offset and stored bytes.
    atoms: Vec<(String, u64, Vec<u8>)>,
    /// Replies given, by ask (stored bytes).
    answered: Vec<(AskId, Vec<u8>)>,
}

/// Now, in seconds since the Unix epoch.
fn now_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn input_position(file: &Path, stream: &str, next: u64) -> Result<InputPosition, NodeError> {
    let stream = pods_sdk::Path::parse(stream).map_err(|e| NodeError::BadRecord {
        file: file.to_path_buf(),
        what: "input position".to_owned(),
        detail: e.to_string(),
    })?;
    Ok(InputPosition { stream, next })
}

fn open_payload(file: &Path, what: &str, stored: &[u8]) -> Result<Vec<u8>, NodeError> {
    payload::open(stored)
        .map(<[u8]>::to_vec)
        .map_err(|e| NodeError::BadRecord {
            file: file.to_path_buf(),
            what: what.to_owned(),
            detail: e.to_string(),
        })
}

/// Applies one record's writes to `values`.
fn apply(
    values: &mut BTreeMap<(u64, Option<Key>), Vec<u8>>,
    record: &Record,
    file: &Path,
) -> Result<(), NodeError> {
    for w in &record.writes {
        let slot = (w.state, w.key.map(Key));
        match &w.value {
            Some(v) => {
                values.insert(slot, open_payload(file, "changelog value", &v.0)?);
            }
            None => {
                values.remove(&slot);
            }
        }
    }
    Ok(())
}

impl Storage for SqliteStore {
    fn commit(&mut self, commit: &Commit<'_>) -> Result<(), StorageError> {
        let written = self
            .encode(commit)
            .and_then(|staged| self.write_staged(vec![staged]));
        match written {
            Ok(()) => {
                self.last_error = None;
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
        let written = self.conn.execute(
            "INSERT INTO quarantine (workflow, path, stream, offset, atom, reason, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (workflow, stream, offset) DO UPDATE SET atom = excluded.atom,
                 reason = excluded.reason, at = excluded.at",
            params![
                signed(workflow_id),
                workflow.as_str(),
                stream.as_str(),
                signed(offset),
                payload::seal(atom),
                reason,
                signed(now_seconds())
            ],
        );
        match written {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = NodeError::sqlite(&self.file, e);
                Err(self.failed(e, workflow.as_str(), 0))
            }
        }
    }

    fn recover(
        &mut self,
        _workflow: &pods_sdk::Path,
        workflow_id: u64,
    ) -> Result<Option<Recovery>, StorageError> {
        match SqliteStore::recover(self, workflow_id) {
            Ok(r) if r.step == 0 && r.input.is_none() => Ok(None),
            Ok(r) => Ok(Some(r)),
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
        let file = self.file.clone();
        let fail = |e| StorageError::Backend(NodeError::sqlite(&file, e).to_string());
        let tx = self.conn.transaction().map_err(fail)?;
        tx.prepare_cached("INSERT INTO atoms (stream, offset, atom) VALUES (?1, ?2, ?3)")
            .and_then(|mut s| {
                s.execute(params![
                    stream.as_str(),
                    signed(offset),
                    payload::seal(atom)
                ])
            })
            .map_err(fail)?;
        tx.prepare_cached(
            "INSERT INTO heads (stream, next) VALUES (?1, ?2)
             ON CONFLICT (stream) DO UPDATE SET next = excluded.next",
        )
        .and_then(|mut s| s.execute(params![stream.as_str(), signed(offset + 1)]))
        .map_err(fail)?;
        tx.commit().map_err(fail)
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
        let mut atoms = Vec::new();
        for row in rows {
            let stored = row.map_err(sql)?;
            atoms.push(open_payload(&file, "logged atom", &stored).map_err(fail)?);
        }
        Ok(atoms)
    }
}

#[cfg(test)]
mod tests;
