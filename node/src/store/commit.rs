//! Writing a commit: its changelog record (encoded once, owning its bytes; values of one
//! subject sealed under their key), the atoms it produced (their personal events sealed) and
//! the replies it gave, in one transaction; then folding its values for compaction.

use pods_sdk::Commit;
use rusqlite::{TransactionBehavior, params};

use super::record::RecordWriter;
use super::seal::DbKeys;
use super::{SqliteStore, failpoint, now_seconds, payload, signed, unsigned};
use crate::error::NodeError;

/// Steps of a workflow between tidy-ups, done in its commit's transaction: its input's log
/// truncated below every reader's position, and the replies kept past their time dropped.
/// They follow progress (a record may cover a group of atoms); compaction follows records.
const TIDY_EVERY: u64 = 256;

/// The commits of one workflow since its last compaction, folded as they are made.
#[derive(Default)]
pub(super) struct Fold {
    /// Records, and their bytes, left uncompacted by an earlier run (counted before this run's
    /// first commit).
    earlier: (u64, u64),
    /// Records written by this run.
    pub(super) records: u64,
    /// Their bytes.
    bytes: u64,
    /// Steps committed since the last tidy-up (or this run's start).
    untidy: u64,
    /// The last value written per slot.
    pub(super) last: Slots,
}

/// A write of a record: its (state, key) and where its value lies in the record's bytes
/// (`None`: removed).
type Span = ((u64, Option<u64>), Option<std::ops::Range<usize>>);

/// The last value written per (state, key), for compaction.
pub(super) type Slots = std::collections::HashMap<(u64, Option<u64>), Option<Vec<u8>>, SlotBuild>;

/// State ids and keys are already well-mixed hashes: a multiply-rotate combine suffices (a
/// fold takes one insert per write of every commit, so SipHash would be a real cost).
#[derive(Default, Clone, Copy)]
pub(super) struct SlotHasher(u64);

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

pub(super) type SlotBuild = std::hash::BuildHasherDefault<SlotHasher>;

/// Encodes what of `commit` is not bytes yet: its changelog record (and where each value lies
/// in it, for the fold), and the atoms it produced. Values of one subject are sealed under the
/// subject's key from `keys`, so encode inside the transaction that stores them.
fn encode(
    spare: &mut Vec<Vec<u8>>,
    file: &std::path::Path,
    commit: &Commit<'_>,
    keys: &mut DbKeys<'_>,
) -> Result<Encoded, NodeError> {
    let bad = |what: String, detail: String| NodeError::BadRecord {
        file: file.to_path_buf(),
        what,
        detail,
    };
    let mut record = spare.pop().unwrap_or_default();
    let input = commit.input.as_ref().map(|p| (p.stream.as_str(), p.next));
    let mut writer = RecordWriter::begin(&mut record, commit.step, input)
        .map_err(|d| bad(format!("changelog of {}", commit.workflow), d))?;
    let mut spans = Vec::with_capacity(commit.writes.len());
    let mut plain = Vec::new();
    let mut sealed = Vec::new();
    for w in commit.writes {
        let what = || format!("state {} of {}", w.state.name, commit.workflow);
        let span = match (w.value, w.owner) {
            // A value of one subject's (or several's): encoded, then stored as its owner says.
            (Some(v), Some(owner)) => {
                plain.clear();
                v.encode(&mut plain).map_err(|d| bad(what(), d))?;
                sealed.clear();
                payload::store_value(&plain, Some(owner), keys, &mut sealed)
                    .map_err(|e| e.at(file, &what()))?;
                writer.write(
                    w.state.id,
                    w.key.map(|k| k.0),
                    Some(|out: &mut Vec<u8>| {
                        out.extend_from_slice(&sealed);
                        Ok(())
                    }),
                )
            }
            (value, _) => {
                let value = value.map(|v| {
                    move |out: &mut Vec<u8>| {
                        payload::begin(out);
                        v.encode(out)
                    }
                });
                writer.write(w.state.id, w.key.map(|k| k.0), value)
            }
        }
        .map_err(|d| bad(what(), d))?;
        spans.push(((w.state.id, w.key.map(|k| k.0)), span));
    }
    writer.finish();
    let mut atoms = Vec::with_capacity(commit.outputs.len());
    for atom in commit.outputs {
        let mut bytes = Vec::with_capacity(1 + 16 * atom.len());
        payload::begin(&mut bytes);
        atom.encode(&mut bytes)
            .map_err(|d| bad(format!("atom {} of {}", atom.offset, atom.stream), d))?;
        atoms.push(bytes);
    }
    Ok(Encoded {
        record,
        spans,
        atoms,
    })
}

impl SqliteStore {
    /// Writes `commit` in one transaction (its record, the atoms it produced, the replies it
    /// gave, its position), then folds its values for compaction.
    pub(super) fn write(&mut self, commit: &Commit<'_>) -> Result<(), NodeError> {
        let file = self.file.clone();
        let sql = |e| NodeError::sqlite(&file, e);
        let workflow_id = signed(commit.workflow_id);
        let now = now_seconds();
        let steps = commit.steps.max(1);
        let tidy = self.fold_of(commit.workflow_id)?.untidy + steps >= TIDY_EVERY;
        let kept_since = self.answers_since();
        // The write lock first: the subject keys read for sealing are then current.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql)?;
        let mut keys = DbKeys::new(&tx, Some(&self.keys), &self.rng);
        let mut encoded = encode(&mut self.spare, &file, commit, &mut keys)?;
        failpoint::reach("commit.encoded");
        tx.prepare_cached("INSERT INTO changelog (workflow, step, record) VALUES (?1, ?2, ?3)")
            .and_then(|mut s| s.execute(params![workflow_id, signed(commit.step), encoded.record]))
            .map_err(sql)?;
        for (atom, bytes) in commit.outputs.iter().zip(&mut encoded.atoms) {
            payload::seal_stored(bytes, &mut keys)
                .map_err(|e| e.at(&file, &format!("atom {} of {}", atom.offset, atom.stream)))?;
            tx.prepare_cached("INSERT INTO atoms (stream, offset, atom) VALUES (?1, ?2, ?3)")
                .and_then(|mut s| {
                    s.execute(params![atom.stream.as_str(), signed(atom.offset), &*bytes])
                })
                .map_err(sql)?;
        }
        let found = keys.found();
        super::answers::write(&tx, &file, workflow_id, commit.step, commit.answered, now)?;
        let (stream, next) = commit
            .input
            .as_ref()
            .map(|p| (p.stream.as_str(), signed(p.next)))
            .unzip();
        let produced = commit.outputs.last().map(|a| signed(a.offset + 1));
        tx.prepare_cached(
            "INSERT INTO positions (workflow, path, step, compacted, stream, next, produced)
             VALUES (?1, ?2, ?3, 0, ?4, ?5, coalesce(?6, 0))
             ON CONFLICT (workflow) DO UPDATE SET step = excluded.step,
                 stream = coalesce(excluded.stream, stream), next = coalesce(excluded.next, next),
                 produced = coalesce(?6, produced)",
        )
        .and_then(|mut s| {
            s.execute(params![
                workflow_id,
                commit.workflow.as_str(),
                signed(commit.step),
                stream,
                next,
                produced
            ])
        })
        .map_err(sql)?;
        if tidy {
            tidy_up(&tx, workflow_id, kept_since).map_err(sql)?;
        }
        let alive = now >= self.alive + super::ALIVE_EVERY;
        if alive {
            tx.execute("UPDATE clock SET alive = ?1 WHERE id = 0", [signed(now)])
                .map_err(sql)?;
        }
        failpoint::reach("commit.written");
        tx.commit().map_err(sql)?;
        found.keep_in(&self.keys);
        failpoint::reach("commit.done");
        if alive {
            self.alive = now;
        }
        self.commits += 1;
        self.fold(commit, encoded, tidy);
        Ok(())
    }

    /// The fold of `workflow`, begun (with what earlier runs left in its changelog) if this
    /// run has not committed for it yet.
    fn fold_of(&mut self, workflow: u64) -> Result<&mut Fold, NodeError> {
        if !self.folds.contains_key(&workflow) {
            let (records, bytes): (i64, i64) = self
                .conn
                .query_row(
                    "SELECT count(*), coalesce(sum(length(record)), 0) FROM changelog
                     WHERE workflow = ?1",
                    [signed(workflow)],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(|e| NodeError::sqlite(&self.file, e))?;
            let fold = Fold {
                earlier: (unsigned(records.max(0)), unsigned(bytes.max(0))),
                ..Fold::default()
            };
            self.folds.insert(workflow, fold);
        }
        Ok(self.folds.entry(workflow).or_default())
    }

    /// Folds a written commit's values into its workflow's fold (`tidied`: the commit tidied
    /// up), and compacts the workflow once enough records have gathered.
    fn fold(&mut self, commit: &Commit<'_>, encoded: Encoded, tidied: bool) {
        let workflow_id = commit.workflow_id;
        // Begun by `write`, before the commit.
        let fold = self.folds.entry(workflow_id).or_default();
        fold.records += 1;
        fold.bytes += encoded.record.len() as u64;
        fold.untidy = if tidied {
            0
        } else {
            fold.untidy + commit.steps.max(1)
        };
        for (slot, span) in encoded.spans {
            let value = fold.last.entry(slot).or_insert(None);
            match span.and_then(|r| encoded.record.get(r)) {
                // The slot's buffer is reused: no allocation once a key has been written.
                Some(v) => {
                    let buffer = value.get_or_insert_with(Vec::new);
                    buffer.clear();
                    buffer.extend_from_slice(v);
                }
                None => *value = None,
            }
        }
        let (records, bytes) = (fold.earlier.0 + fold.records, fold.earlier.1 + fold.bytes);
        let mut record = encoded.record;
        record.clear();
        self.spare.push(record);
        if self.compact_every > 0 && (records >= self.compact_every || bytes >= self.compact_bytes)
        {
            // The commit stands whatever happens here; a failed compaction is retried later.
            if let Err(e) = self.compact(workflow_id) {
                tracing::warn!(error = %e, workflow = %commit.workflow, "compaction failed");
            }
        }
    }
}

/// Truncates `workflow`'s input log below every reader's position and drops the replies it
/// kept since before `kept_since` (or to asks their askers have committed past), in `tx`.
pub(super) fn tidy_up(
    tx: &rusqlite::Transaction<'_>,
    workflow: i64,
    kept_since: u64,
) -> rusqlite::Result<()> {
    // Replies older than the time they are kept for go; so do the replies to asks over atoms
    // their asker has committed past.
    super::answers::drop_old(tx, unsigned(workflow), kept_since)?;
    // Atoms of its input that every consumer has committed past are not needed again.
    tx.prepare_cached(
        "DELETE FROM atoms WHERE stream = (SELECT stream FROM positions WHERE workflow = ?1)
           AND offset < (SELECT min(next) FROM positions
                         WHERE stream = (SELECT stream FROM positions WHERE workflow = ?1))",
    )?
    .execute([workflow])?;
    Ok(())
}

/// What of a commit the store encodes before writing it.
struct Encoded {
    /// The changelog record.
    record: Vec<u8>,
    /// Where each written value lies in the record.
    spans: Vec<Span>,
    /// The produced atoms' stored bytes, in the order of `Commit::outputs`.
    atoms: Vec<Vec<u8>>,
}
