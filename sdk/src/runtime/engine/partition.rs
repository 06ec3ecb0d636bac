//! One partition of a workflow instance: its own task instances (and so its own state), run
//! stage by stage over the partition's share of each step.

use std::panic::{AssertUnwindSafe, catch_unwind};

use super::panic_message;
use super::plan::Plan;
use crate::batch::Batch;
use crate::builder::spec::WorkflowSpec;
use crate::error::TaskError;
use crate::portal::{AskMsg, ReplyMsg};
use crate::task::Task;
use crate::task::effects::Effects;

struct Node {
    inputs: Vec<usize>,
    task: Option<Box<dyn Task>>,
    non_personal: bool,
}

/// One batch per partition, `None` where nothing goes.
pub(super) type Parts = Vec<Option<Box<dyn Batch>>>;

/// Work handed to a task before its regular input in a step.
pub(super) enum Pre {
    Asks(Vec<AskMsg>),
    Replies(Vec<ReplyMsg>),
}

/// One partition: task instances, the step's effects, and buffers reused from step to step.
pub(crate) struct Partition {
    nodes: Vec<Node>,
    pub(super) fx: Effects,
    /// Per node: its output in this step.
    pub(super) outputs: Vec<Option<Box<dyn Batch>>>,
    /// Per node: asks or replies to handle before its input.
    pub(super) pre: Vec<Option<Pre>>,
    /// Per node: consumers that have not read its output yet in this step.
    remaining: Vec<usize>,
    /// After a stage: per exchanged node, its output split by destination partition.
    pub(super) outbox: Vec<(usize, Parts)>,
    /// Before a stage: per exchanged node, the parts sent here, in source-partition order.
    pub(super) inbox: Vec<(usize, Vec<Box<dyn Batch>>)>,
    /// The failure of this partition's share of the step.
    pub(super) error: Option<TaskError>,
}

impl Partition {
    pub(super) fn new(spec: &WorkflowSpec, index: u32) -> Partition {
        let nodes = spec
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| Node {
                inputs: n.inputs.clone(),
                task: n.factory.as_ref().map(|f| {
                    let mut task = f(&spec.path, i as u32);
                    task.place(index, spec.partitions.max(1) as u32);
                    task
                }),
                non_personal: n.non_personal,
            })
            .collect();
        Partition {
            nodes,
            fx: Effects::new(spec.path.clone(), spec.path.stable_id(), index),
            outputs: Vec::new(),
            pre: Vec::new(),
            remaining: Vec::new(),
            outbox: Vec::new(),
            inbox: Vec::new(),
            error: None,
        }
    }

    /// Starts a step whose asks have scope `scope`: forgets the last step's buffers and
    /// effects.
    pub(super) fn begin(
        &mut self,
        (scope, replayable): (u64, bool),
        (track, record): (bool, bool),
        plan: &Plan,
    ) {
        let n = self.nodes.len();
        self.fx.begin(scope, replayable);
        self.fx.track_writes = track;
        self.fx.record_answers = record;
        self.outputs.clear();
        self.outputs.resize_with(n, || None);
        self.pre.clear();
        self.pre.resize_with(n, || None);
        self.remaining.clear();
        self.remaining.extend_from_slice(&plan.consumers);
        self.outbox.clear();
        self.inbox.clear();
        self.error = None;
    }

    /// The task at `node`, if any.
    pub(super) fn task(&self, node: usize) -> Option<&dyn Task> {
        self.nodes.get(node).and_then(|n| n.task.as_deref())
    }

    /// Every task instance, for collecting writes and confirming commits.
    pub(super) fn tasks(&self) -> impl Iterator<Item = &dyn Task> {
        self.nodes.iter().filter_map(|n| n.task.as_deref())
    }

    /// Tells every task that the step committed.
    pub(super) fn committed(&mut self) {
        for t in self.nodes.iter_mut().filter_map(|n| n.task.as_mut()) {
            t.committed();
        }
    }

    /// Removes the per-key values of erased subjects from every task ([`Task::purge`]).
    pub(super) fn purge(&mut self, erased: &dyn Fn(&crate::data::SubjectId) -> bool) -> usize {
        self.nodes
            .iter_mut()
            .filter_map(|n| n.task.as_mut())
            .map(|t| t.purge(erased))
            .sum()
    }

    /// Restores state committed in an earlier run into every task.
    pub(super) fn restore(&mut self, recovery: &crate::storage::Recovery, partitions: usize) {
        for t in self.nodes.iter_mut().filter_map(|n| n.task.as_mut()) {
            t.restore(recovery, partitions);
        }
    }

    /// Continuations waiting for replies in this partition.
    pub(super) fn pending(&self) -> usize {
        self.tasks().map(|t| t.pending()).sum()
    }

    /// Runs `nodes` (one stage, or every node) over what reached them, catching panics; then
    /// splits the outputs of `exchange` nodes among `parts` partitions.
    pub(super) fn run(&mut self, nodes: &[usize], exchange: &[usize], parts: usize) {
        for (node, batches) in std::mem::take(&mut self.inbox) {
            let mut acc = self.outputs.get_mut(node).and_then(Option::take);
            for b in batches {
                append(&mut acc, Some(b));
            }
            if let Some(slot) = self.outputs.get_mut(node) {
                *slot = acc;
            }
        }
        let ran = catch_unwind(AssertUnwindSafe(|| self.run_tasks(nodes)));
        if let Err(panic) = ran {
            let message = panic_message(&*panic);
            self.error = Some(TaskError::new(format!("task panicked: {message}")));
        }
        if let Some(e) = self.fx.error.take() {
            self.error.get_or_insert(e);
        }
        if self.error.is_some() {
            return;
        }
        for &node in exchange {
            let split = match self.outputs.get_mut(node).and_then(Option::take) {
                Some(batch) => batch.split_by_key(parts),
                None => (0..parts).map(|_| None).collect(),
            };
            self.outbox.push((node, split));
        }
    }

    fn run_tasks(&mut self, order: &[usize]) {
        let fx = &mut self.fx;
        for &i in order {
            let input = gather(
                &self.nodes[i].inputs,
                &mut self.outputs,
                &mut self.remaining,
            );
            let work = self.pre[i].take();
            if input.is_none() && work.is_none() {
                continue;
            }
            let node = &mut self.nodes[i];
            let Some(task) = node.task.as_mut() else {
                continue;
            };
            fx.task = i as u32;
            fx.non_personal = node.non_personal;
            task.begin(fx);
            let mut out: Option<Box<dyn Batch>> = match work {
                Some(Pre::Asks(asks)) => task.handle_asks(asks, fx),
                Some(Pre::Replies(replies)) => task.handle_replies(replies, fx),
                None => None,
            };
            if let Some(batch) = input.filter(|_| !fx.failed()) {
                append(&mut out, task.process(batch, fx));
            }
            if !fx.failed() {
                append(&mut out, task.on_atom_complete(fx));
            }
            if fx.failed() {
                return;
            }
            if let Some(b) = out.as_mut().filter(|_| node.non_personal) {
                b.strip_envelopes();
            }
            self.outputs[i] = out.filter(|b| b.len() > 0);
        }
    }
}

pub(super) fn append(acc: &mut Option<Box<dyn Batch>>, more: Option<Box<dyn Batch>>) {
    match (acc.as_mut(), more) {
        (_, None) => {}
        (Some(a), Some(b)) => a.append(b),
        (None, Some(b)) => *acc = Some(b),
    }
}

/// The concatenated outputs of `inputs`; the last consumer of an output takes it, earlier ones
/// copy it.
fn gather(
    inputs: &[usize],
    outputs: &mut [Option<Box<dyn Batch>>],
    remaining: &mut [usize],
) -> Option<Box<dyn Batch>> {
    let mut acc = None;
    for &j in inputs {
        remaining[j] = remaining[j].saturating_sub(1);
        let batch = if remaining[j] == 0 {
            outputs[j].take()
        } else {
            outputs[j].as_ref().map(|b| b.clone_batch())
        };
        append(&mut acc, batch);
    }
    acc
}
