//! Storage: what a workflow commits per atom, behind a trait. This crate has the in-memory
//! implementation; `pods-node` implements it on SQLite.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use crate::data::{Data, Key, KeyBuild, StableHasher, SubjectId};
use crate::error::StorageError;
use crate::path::Path;

/// The name of one state of one task: workflow path, task index in the workflow, state name.
/// Its `id` is a stable hash of the three, so a store can key values by it across restarts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateName {
    /// The workflow.
    pub workflow: Path,
    /// The task's index within the workflow (its position in build order).
    pub task: u32,
    /// The name given to the state handle.
    pub name: Arc<str>,
    /// Stable hash of the above.
    pub id: u64,
}

impl StateName {
    /// The name of a per-task state of partition `partition` (partition 0's is the plain name).
    pub(crate) fn in_partition(
        workflow: Path,
        task: u32,
        name: Arc<str>,
        partition: u32,
    ) -> StateName {
        let mut h = StableHasher::default();
        workflow.as_str().hash(&mut h);
        task.hash(&mut h);
        name.hash(&mut h);
        if partition > 0 {
            partition.hash(&mut h);
        }
        StateName {
            id: h.finish(),
            workflow,
            task,
            name,
        }
    }
}

/// A state value the store may encode (CBOR) if it keeps bytes.
pub trait StateValue {
    /// Appends the value's CBOR encoding to `out`.
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), String>;
}

impl<V: Data> StateValue for V {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), String> {
        ciborium::into_writer(self, out).map_err(|e| e.to_string())
    }
}

/// One state change of a step: the value now held for a key (`None`: removed).
pub struct StateWrite<'a> {
    /// Which state.
    pub state: &'a StateName,
    /// The key, for per-key state; `None` for per-task state.
    pub key: Option<Key>,
    /// The new value, or `None` when removed.
    pub value: Option<&'a dyn StateValue>,
    /// Whose personal data the value is, for a per-key value that personal events wrote
    /// (`None`: no personal event wrote it). A store seals a subject's value under that
    /// subject's key, so that erasing them makes every stored copy unreadable.
    pub owner: Option<ValueOwner<'a>>,
}

/// Whose personal data a per-key state value is. The runtime tracks it from the envelopes of
/// the events whose handlers wrote the value: while they all carried one subject, the value is
/// that subject's (derived per-subject state, removed when they are erased); once events of
/// a second subject wrote it, it is shared (an aggregate over people, which no single
/// erasure removes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueOwner<'a> {
    /// Only this subject's events wrote the value.
    Subject(&'a SubjectId),
    /// Events of several subjects wrote it.
    Shared,
}

/// Where a workflow's input stood after a step: the stream and the offset of the next atom.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputPosition {
    /// The stream consumed.
    pub stream: Path,
    /// Offset of the next atom to consume.
    pub next: u64,
}

/// An atom a step produced, as a store sees it: its stream, its offset there, and its bytes.
#[derive(Clone, Copy)]
pub struct OutputAtom<'a> {
    /// The workflow's output stream.
    pub stream: &'a Path,
    /// The atom's offset in it (the workflow's output atoms committed before it).
    pub offset: u64,
    pub(crate) batch: &'a dyn crate::batch::Batch,
}

impl OutputAtom<'_> {
    /// Appends the atom's encoding (CBOR), as [`Storage::replay`] must return it.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), String> {
        self.batch.encode(out)
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.batch.len()
    }

    /// Whether the atom has no events (never, for a produced atom).
    pub fn is_empty(&self) -> bool {
        self.batch.len() == 0
    }
}

/// A reply a replier gave, kept with its step's commit so that the same ask asked again (by
/// an asking atom replayed after a crash) gets this reply without being applied twice.
#[derive(Clone, Copy, Debug)]
pub struct Answer<'a> {
    /// The ask answered.
    pub ask: crate::portal::AskId,
    /// The reply's encoding (CBOR).
    pub reply: &'a [u8],
}

/// What a sequencer or a splitter moved from one of its inputs, logged at once: the input
/// position after the atom, and the atoms it became on the unit's output streams. Replaying
/// from the log gives the same order (a sequencer's choices) and the same parts.
pub struct Moved<'a> {
    /// The sequencer or splitter.
    pub unit: &'a Path,
    /// The unit's reading of that input ([`consumer_id`]): its position is kept as a
    /// workflow's is.
    pub consumer_id: u64,
    /// Where the input stands after the atom.
    pub input: &'a InputPosition,
    /// Each atom it became: its stream, its offset there, its encoding.
    pub outputs: &'a [(&'a Path, u64, &'a [u8])],
}

/// The id under which a store keeps the input position of `unit` (a sequencer or splitter)
/// on `input`.
pub fn consumer_id(unit: &Path, input: &Path) -> u64 {
    let mut h = StableHasher::default();
    unit.as_str().hash(&mut h);
    input.as_str().hash(&mut h);
    h.finish()
}

/// Everything one step (atom) of a workflow changes, committed at once; or several steps
/// taken together (a group of queued atoms, or an asking atom with the steps that ran its
/// continuations), committed as one.
pub struct Commit<'a> {
    /// The workflow.
    pub workflow: &'a Path,
    /// The workflow path's [`Path::stable_id`], for keying without hashing the path again.
    pub workflow_id: u64,
    /// The workflow's step number (of the last step committed).
    pub step: u64,
    /// Steps this commit covers (the last is `step`).
    pub steps: u64,
    /// The input position after the steps, if one consumed a stream atom; `None` for ask and
    /// reply batches.
    pub input: Option<InputPosition>,
    /// The state changes: the last value of each (state, key) the steps wrote.
    pub writes: &'a [StateWrite<'a>],
    /// Number of events in the produced atoms (0: none produced).
    pub output_events: usize,
    /// The produced atoms, in order, for a store that logs the workflow's output stream (given
    /// when the stream has consumers, so that they can read them again after a restart).
    pub outputs: &'a [OutputAtom<'a>],
    /// Number of asks sent by the steps.
    pub asks: usize,
    /// Number of replies sent when the commit succeeds.
    pub replies: usize,
    /// The replies the workflow's replier tasks gave in the step, for a store that holds
    /// asking atoms ([`Storage::holds_asking_atoms`]; empty otherwise).
    pub answered: &'a [Answer<'a>],
}

/// What a workflow committed in an earlier run of the node, to resume from: its last step,
/// where its input stood after it, and every state value it held (the state's CBOR encoding,
/// by [`StateName::id`] and key; `None` for per-task state).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// The last committed step (0: none).
    pub step: u64,
    /// Where the workflow's input stood after that step, if it has consumed a stream atom.
    pub input: Option<InputPosition>,
    /// Every state value held.
    pub values: std::collections::BTreeMap<(u64, Option<Key>), Vec<u8>>,
    /// Output atoms committed (the offset the next one gets).
    pub produced: u64,
    /// Replies the workflow gave that the store still keeps, by ask.
    pub answered: Vec<(crate::portal::AskId, Vec<u8>)>,
    /// Whose personal data the values in `values` are, for those personal events wrote
    /// ([`StateWrite::owner`]): `Some(subject)` for one subject's, `None` for shared ones.
    /// Values of erased subjects are not in `values` at all.
    pub owners: std::collections::BTreeMap<(u64, Option<Key>), Option<SubjectId>>,
}

/// Durable (or in-memory) storage of workflow state: one `commit` per atom, all or nothing.
/// Nothing a step produced is visible or sent before its commit returned `Ok`.
pub trait Storage: Send {
    /// Applies all of `commit` or nothing.
    fn commit(&mut self, commit: &Commit<'_>) -> Result<(), StorageError>;

    /// Whether a workflow that asks commits an atom only once the continuations its asks
    /// registered have run, together with the steps that ran them (until then what they
    /// produced is held). A store whose commits survive the process must say yes:
    /// continuations are code and cannot be stored, so a crash replays the asking atom, which
    /// asks again with the same ids.
    fn holds_asking_atoms(&self) -> bool {
        false
    }

    /// Records that `workflow` is about to take atom `offset` of `stream`, one of the first it
    /// takes after a launch (each alone), and says whether to run it or to quarantine it: a
    /// store that survives crashes counts the launches that tried that atom without committing
    /// it, so an atom that crashed the process on every try is set aside instead of
    /// crash-looping the node. Stores that keep nothing across runs always say run.
    fn attempt(
        &mut self,
        workflow: &Path,
        workflow_id: u64,
        stream: &Path,
        offset: u64,
    ) -> Result<Attempt, StorageError> {
        let _ = (workflow, workflow_id, stream, offset);
        Ok(Attempt::Run)
    }

    /// Sets atom `offset` of `stream` (its encoding, `atom`) aside with `reason`: `workflow`
    /// moves its input past it without running it, in a step committed as any other.
    fn set_aside(
        &mut self,
        workflow: &Path,
        workflow_id: u64,
        stream: &Path,
        offset: u64,
        atom: &[u8],
        reason: &str,
    ) -> Result<(), StorageError> {
        let _ = (workflow, workflow_id, stream, offset, atom, reason);
        Ok(())
    }

    /// Whether this store keeps state values. A store that does not (the values then live
    /// only in the tasks, as with [`VolatileStorage`]) gets commits without `writes`, which
    /// spares the runtime collecting them.
    fn keeps_state(&self) -> bool {
        true
    }

    /// What `workflow` (whose path's stable id is `workflow_id`) committed in an earlier run,
    /// if anything: a runtime restores it when the workflow is launched. Stores that keep
    /// nothing across runs return `None`.
    fn recover(
        &mut self,
        _workflow: &Path,
        _workflow_id: u64,
    ) -> Result<Option<Recovery>, StorageError> {
        Ok(None)
    }

    /// Records where a workflow launched for the first time starts reading `input`, so that
    /// after a crash before its first commit it resumes there (and atoms produced meanwhile
    /// are kept for it). Stores that keep nothing across runs ignore it.
    fn begin_consumer(
        &mut self,
        _workflow: &Path,
        _workflow_id: u64,
        _input: &InputPosition,
    ) -> Result<(), StorageError> {
        Ok(())
    }

    /// Whether this store logs atoms a host feeds in ([`Storage::log_atom`]), so that they
    /// survive a crash once `Feeder::push` returned.
    fn logs_atoms(&self) -> bool {
        false
    }

    /// Logs atom `offset` of `stream` (fed by the host), durably, before the push returns.
    fn log_atom(&mut self, stream: &Path, offset: u64, atom: &[u8]) -> Result<(), StorageError> {
        let _ = (stream, offset, atom);
        Ok(())
    }

    /// Logs what a sequencer or splitter moved, durably, before the atoms reach a consumer
    /// (stores that log atoms; see [`Storage::logs_atoms`]).
    fn log_moved(&mut self, moved: &Moved<'_>) -> Result<(), StorageError> {
        let _ = moved;
        Ok(())
    }

    /// The offset after the last logged atom of `stream` (0 if none).
    fn logged_head(&mut self, stream: &Path) -> Result<u64, StorageError> {
        let _ = stream;
        Ok(0)
    }

    /// The logged atoms of `stream` from offset `from` to `to` (excluded), in order, as
    /// [`OutputAtom::encode`] wrote them.
    fn replay(&mut self, stream: &Path, from: u64, to: u64) -> Result<Vec<Vec<u8>>, StorageError> {
        let _ = (stream, from, to);
        Ok(Vec::new())
    }
}

/// What to do with a stream atom a workflow takes just after a launch ([`Storage::attempt`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// Run it.
    Run,
    /// Set it aside: earlier launches tried it `crashes` times and never committed it.
    Quarantine {
        /// Launches that tried the atom and stopped before committing it.
        crashes: u32,
    },
}

/// Storage that keeps nothing beyond the running process: state lives in the tasks' tables
/// and is lost with them; commits are counted and each workflow's input position recorded.
/// For runs that need no copy of their state (simulations, benchmarks, tests of semantics).
#[derive(Default)]
pub struct VolatileStorage {
    /// Input position per workflow, by the workflow's stable id.
    positions: HashMap<u64, InputPosition, KeyBuild>,
    commits: u64,
}

impl VolatileStorage {
    /// An empty store.
    pub fn new() -> VolatileStorage {
        VolatileStorage::default()
    }

    /// Number of commits applied.
    pub fn commits(&self) -> u64 {
        self.commits
    }

    /// The committed input position of `workflow`.
    pub fn position(&self, workflow: &Path) -> Option<&InputPosition> {
        self.positions.get(&workflow.stable_id())
    }
}

impl Storage for VolatileStorage {
    fn commit(&mut self, commit: &Commit<'_>) -> Result<(), StorageError> {
        if let Some(p) = &commit.input {
            match self.positions.get_mut(&commit.workflow_id) {
                Some(slot) if slot.stream == p.stream => slot.next = p.next,
                _ => {
                    self.positions.insert(commit.workflow_id, p.clone());
                }
            }
        }
        self.commits += 1;
        Ok(())
    }

    fn keeps_state(&self) -> bool {
        false
    }
}

/// Storage in memory: keeps every committed state value CBOR-encoded, and each workflow's
/// input position and commit count. For tests and for the deterministic runtime.
#[derive(Default)]
pub struct MemoryStorage {
    values: HashMap<(u64, Option<Key>), Vec<u8>, KeyBuild>,
    /// Scratch space: a commit's values are encoded here first, so a failure changes nothing.
    scratch: Vec<u8>,
    ends: Vec<Option<usize>>,
    names: HashMap<u64, StateName, KeyBuild>,
    /// Commit count and input positions, kept as the volatile store keeps them.
    progress: VolatileStorage,
    /// Whether asking atoms commit with their continuations, as on a store on disk.
    hold: bool,
}

impl MemoryStorage {
    /// An empty store.
    pub fn new() -> MemoryStorage {
        MemoryStorage::default()
    }

    /// An empty store on which asking atoms commit with their continuations, as on a store
    /// that survives restarts ([`Storage::holds_asking_atoms`]): for testing apps under that
    /// protocol without a disk. Staged commits apply at once.
    pub fn holding_asking_atoms() -> MemoryStorage {
        MemoryStorage {
            hold: true,
            ..MemoryStorage::default()
        }
    }

    /// Number of commits applied.
    pub fn commits(&self) -> u64 {
        self.progress.commits()
    }

    /// The committed input position of `workflow`.
    pub fn position(&self, workflow: &Path) -> Option<&InputPosition> {
        self.progress.position(workflow)
    }

    /// The committed values of the state named `state` in `workflow`, decoded, by key (a
    /// per-task or per-subject state's values of every partition). Refused if two tasks of
    /// the workflow have a state of that name (the values would mix).
    pub fn values<V: Data>(
        &self,
        workflow: &str,
        state: &str,
    ) -> Result<Vec<(Option<Key>, V)>, StorageError> {
        let matching: Vec<&StateName> = self
            .names
            .values()
            .filter(|n| n.workflow.as_str() == workflow && &*n.name == state)
            .collect();
        if let Some(first) = matching.first()
            && let Some(other) = matching.iter().find(|n| n.task != first.task)
        {
            return Err(StorageError::Backend(format!(
                "tasks {} and {} of {workflow} both have a state named '{state}'",
                first.task, other.task
            )));
        }
        let mut out = Vec::new();
        for ((id, key), bytes) in &self.values {
            if matching.iter().any(|n| n.id == *id) {
                let v = ciborium::from_reader(bytes.as_slice())
                    .map_err(|e| StorageError::Backend(format!("cannot decode {state}: {e}")))?;
                out.push((*key, v));
            }
        }
        out.sort_by_key(|(k, _)| *k);
        Ok(out)
    }
}

impl Storage for MemoryStorage {
    fn commit(&mut self, commit: &Commit<'_>) -> Result<(), StorageError> {
        // Encode everything first so that a failure leaves the store unchanged.
        self.scratch.clear();
        self.ends.clear();
        for w in commit.writes {
            let end = match w.value {
                Some(v) => {
                    v.encode(&mut self.scratch)
                        .map_err(|reason| StorageError::Encode {
                            state: w.state.name.to_string(),
                            reason,
                        })?;
                    Some(self.scratch.len())
                }
                None => None,
            };
            self.ends.push(end);
        }
        let mut start = 0;
        for (w, end) in commit.writes.iter().zip(&self.ends) {
            self.names
                .entry(w.state.id)
                .or_insert_with(|| w.state.clone());
            match end {
                Some(end) => {
                    let bytes = &self.scratch[start..*end];
                    start = *end;
                    match self.values.get_mut(&(w.state.id, w.key)) {
                        Some(buf) => {
                            buf.clear();
                            buf.extend_from_slice(bytes);
                        }
                        None => {
                            self.values.insert((w.state.id, w.key), bytes.to_vec());
                        }
                    }
                }
                None => {
                    self.values.remove(&(w.state.id, w.key));
                }
            }
        }
        self.progress.commit(commit)
    }

    fn holds_asking_atoms(&self) -> bool {
        self.hold
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(store: &mut MemoryStorage, names: &[StateName], values: &[u32]) {
        let workflow = Path::parse("/app/workflows/wf").unwrap();
        let writes: Vec<StateWrite<'_>> = names
            .iter()
            .zip(values)
            .map(|(n, v)| StateWrite {
                state: n,
                key: Some(Key(u64::from(*v))),
                value: Some(v as &dyn StateValue),
                owner: None,
            })
            .collect();
        let commit = Commit {
            workflow: &workflow,
            workflow_id: workflow.stable_id(),
            step: 1,
            steps: 1,
            input: None,
            writes: &writes,
            output_events: 0,
            outputs: &[],
            asks: 0,
            replies: 0,
            answered: &[],
        };
        store.commit(&commit).unwrap();
    }

    #[test]
    fn values_of_a_state_held_per_partition_are_listed_together_and_two_tasks_are_refused() {
        let workflow = Path::parse("/app/workflows/wf").unwrap();
        let name: Arc<str> = Arc::from("seen");
        let in_partition =
            |task, p| StateName::in_partition(workflow.clone(), task, name.clone(), p);
        let mut store = MemoryStorage::new();
        commit(
            &mut store,
            &[in_partition(1, 0), in_partition(1, 1)],
            &[3, 4],
        );
        let listed = store.values::<u32>("/app/workflows/wf", "seen").unwrap();
        assert_eq!(listed, vec![(Some(Key(3)), 3), (Some(Key(4)), 4)]);
        commit(&mut store, &[in_partition(2, 0)], &[5]);
        let err = store
            .values::<u32>("/app/workflows/wf", "seen")
            .unwrap_err();
        assert!(
            err.to_string().contains("both have a state named 'seen'"),
            "{err}"
        );
    }
}
