//! How a workflow's steps commit: a lone step at once; steps taken together (a group of queued
//! atoms, or steps held while continuations wait) as one record, when the commit protocol
//! ([`super::commit`]) says so. The commit holds the last value of each state the steps wrote,
//! the input position after the last, the atoms they produced and the replies they gave.

use super::{Parallel, StepInput, StepOutput, WorkflowInstance, commit};
use crate::batch::Batch;
use crate::error::TaskError;
use crate::portal::{AskId, ReplyMsg};
use crate::storage::{Commit, InputPosition, OutputAtom, Storage};

/// What a step taken and not committed yet records in its commit, besides its state writes
/// (which stay tracked in the tasks until the commit).
pub(crate) struct StepRecord {
    /// The input position after it, if it consumed a stream atom.
    pub(super) position: Option<InputPosition>,
    /// The offset its output atom gets, if it produced one.
    pub(super) offset: Option<u64>,
    /// Replies its replier tasks gave, encoded (when recorded).
    pub(super) answers: Vec<(AskId, Vec<u8>)>,
    /// Asks it sent.
    pub(super) asks: usize,
}

impl WorkflowInstance {
    /// Runs one step in every partition and commits it; returns what is released now (in
    /// order). On failure nothing of the step is committed or released. How and when it
    /// commits is the commit protocol's ([`commit`]): at once, or staged and flushed later.
    pub(crate) fn step(
        &mut self,
        input: StepInput,
        storage: &mut dyn Storage,
        par: &Parallel,
    ) -> Result<Vec<StepOutput>, TaskError> {
        match self.run_steps(std::iter::once(input), storage, par) {
            (_, Some(e)) => Err(e),
            (released, None) => Ok(released),
        }
    }

    /// Runs one step per stream atom, in order, and commits them together (group commit).
    /// Returns what is released, and the error that ended the group early, if any: the steps
    /// before it still commit (unless they are held for replies), and a failed flush commits
    /// none.
    pub(crate) fn step_group(
        &mut self,
        atoms: Vec<(Box<dyn Batch>, InputPosition)>,
        storage: &mut dyn Storage,
        par: &Parallel,
    ) -> (Vec<StepOutput>, Option<TaskError>) {
        let inputs = atoms
            .into_iter()
            .map(|(batch, position)| StepInput::Atom(batch, position));
        self.run_steps(inputs, storage, par)
    }

    /// Steps staged and not flushed yet (they wait for replies).
    pub(crate) fn unflushed(&self) -> usize {
        self.protocol.unflushed()
    }

    /// Runs `inputs` as steps taken together, following the commit protocol: a lone step
    /// commits at once; staged steps commit as one, with the last value of each state they
    /// wrote, when the protocol says so.
    fn run_steps(
        &mut self,
        inputs: impl ExactSizeIterator<Item = StepInput>,
        storage: &mut dyn Storage,
        par: &Parallel,
    ) -> (Vec<StepOutput>, Option<TaskError>) {
        if self.protocol.holds() != holds(storage) {
            self.protocol = commit::CommitProtocol::new(holds(storage));
        }
        let staged = self.protocol.stages(inputs.len());
        let mut released = Vec::with_capacity(inputs.len());
        let mut error = None;
        for input in inputs {
            let (out, record) = match self.take_step(input, storage, par) {
                Ok(taken) => taken,
                Err(e) => {
                    error = Some(e);
                    break;
                }
            };
            if staged {
                let (now, later) = self.split(out);
                released.extend(now);
                self.protocol.staged((later, record));
                continue;
            }
            let lone = [(out, record)];
            if let Err(e) = self.commit(&lone, storage) {
                error = Some(e);
                break;
            }
            let [(out, _)] = lone;
            released.push(out);
        }
        // A failed step leaves its partial writes in the tables: nothing staged with it can
        // commit (it was never released either), and the workflow fails.
        if error.is_some() {
            self.protocol.abandoned();
            return (Vec::new(), error);
        }
        if self.protocol.flush_due(self.pending()) {
            let hold = self.protocol.holds();
            let held = std::mem::replace(&mut self.protocol, commit::CommitProtocol::new(hold));
            let result = self.commit(held.held(), storage);
            self.protocol = held;
            if let Err(e) = result {
                self.protocol.abandoned();
                return (Vec::new(), Some(e));
            }
            released.extend(self.protocol.flushed().into_iter().map(|(out, _)| out));
        }
        (released, None)
    }

    /// Commits `steps` (taken since the last commit, in order) as one: the last value of each
    /// state they wrote, the input position after the last that consumed a stream atom, the
    /// atoms they produced, the replies they gave.
    fn commit(
        &mut self,
        steps: &[(StepOutput, StepRecord)],
        storage: &mut dyn Storage,
    ) -> Result<(), TaskError> {
        let mut writes = Vec::new();
        if storage.keeps_state() {
            for p in &self.parts {
                for t in p.tasks() {
                    t.writes(&mut writes);
                }
            }
        }
        let logged = self.log_output.load(std::sync::atomic::Ordering::Acquire);
        let mut outputs = Vec::new();
        let (mut output_events, mut asks, mut replies) = (0, 0, 0);
        for (out, record) in steps {
            if let (Some(batch), Some(offset)) = (out.output.as_deref(), record.offset) {
                output_events += batch.len();
                if logged {
                    outputs.push(OutputAtom {
                        stream: &self.out,
                        offset,
                        batch,
                    });
                }
            }
            asks += record.asks;
            replies += out.replies.len();
        }
        let answered: Vec<crate::storage::Answer<'_>> = steps
            .iter()
            .flat_map(|(_, r)| &r.answers)
            .map(|(ask, reply)| crate::storage::Answer { ask: *ask, reply })
            .collect();
        let input = steps.iter().rev().find_map(|(_, r)| r.position.clone());
        let step = self.step;
        let commit = Commit {
            workflow: &self.path,
            workflow_id: self.origin,
            step,
            steps: steps.len() as u64,
            input,
            writes: &writes,
            output_events,
            outputs: &outputs,
            asks,
            replies,
            answered: &answered,
        };
        storage
            .commit(&commit)
            .map_err(|e| TaskError::new(format!("commit of step {step} failed: {e}")))?;
        drop(writes);
        for p in &mut self.parts {
            p.committed();
        }
        Ok(())
    }

    /// Splits what a staged step produced into what leaves now and what waits for the flush.
    /// When steps are held for replies, its asks leave now, and its replies to its own asks
    /// (the same commit covers both ends); otherwise everything waits.
    fn split(&self, out: StepOutput) -> (Option<StepOutput>, StepOutput) {
        if !self.protocol.holds() {
            return (None, out);
        }
        let (mine, others): (Vec<ReplyMsg>, Vec<ReplyMsg>) = out
            .replies
            .into_iter()
            .partition(|r| r.to.workflow == self.path);
        let now = StepOutput {
            output: None,
            asks: out.asks,
            replies: mine,
        };
        let later = StepOutput {
            output: out.output,
            asks: Vec::new(),
            replies: others,
        };
        (Some(now), later)
    }
}

/// Whether steps on `storage` hold their commit while continuations wait.
pub(super) fn holds(storage: &dyn Storage) -> bool {
    storage.holds_asking_atoms()
}
