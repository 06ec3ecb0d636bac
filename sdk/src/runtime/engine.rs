//! One workflow instance as a step machine: a step takes one atom (a stream atom, a batch of
//! asks, or a batch of replies), runs the task graph over it in topological order, commits, and
//! returns what the step produced. Both runtimes drive workflows through it.

use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::batch::Batch;
use crate::builder::spec::WorkflowSpec;
use crate::error::TaskError;
use crate::path::Path;
use crate::portal::{AskMsg, ReplyMsg};
use crate::storage::{Commit, InputPosition, Storage};
use crate::task::Task;
use crate::task::effects::Effects;

/// What a step processes.
pub(crate) enum StepInput {
    /// A stream atom (already admitted by the policy gate), and the input position after it.
    Atom(Box<dyn Batch>, InputPosition),
    /// Asks for the replier task at this node.
    Asks(usize, Vec<AskMsg>),
    /// Replies for the workflow's asking tasks.
    Replies(Vec<ReplyMsg>),
}

/// What a committed step produced, to be released.
pub(crate) struct StepOutput {
    pub output: Option<Box<dyn Batch>>,
    pub asks: Vec<AskMsg>,
    pub replies: Vec<ReplyMsg>,
}

struct Node {
    inputs: Vec<usize>,
    task: Option<Box<dyn Task>>,
    non_personal: bool,
}

/// Work handed to a task before its regular input in a step.
enum Pre {
    Asks(Vec<AskMsg>),
    Replies(Vec<ReplyMsg>),
}

/// Buffers a step needs, kept between steps so that a step allocates none of them.
#[derive(Default)]
struct Scratch {
    outputs: Vec<Option<Box<dyn Batch>>>,
    pre: Vec<Option<Pre>>,
    remaining: Vec<usize>,
}

pub(crate) struct WorkflowInstance {
    pub path: Path,
    nodes: Vec<Node>,
    /// Per node: how many consumers read its output in a step (downstream nodes and the sink).
    consumers: Vec<usize>,
    sink: Option<usize>,
    step: u64,
    fx: Effects,
    scratch: Scratch,
}

impl WorkflowInstance {
    pub(crate) fn new(spec: &WorkflowSpec) -> WorkflowInstance {
        let mut consumers = vec![0usize; spec.nodes.len()];
        for node in &spec.nodes {
            for &i in &node.inputs {
                if let Some(c) = consumers.get_mut(i) {
                    *c += 1;
                }
            }
        }
        if let Some(c) = spec.sink.and_then(|s| consumers.get_mut(s)) {
            *c += 1;
        }
        let nodes = spec
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| Node {
                inputs: n.inputs.clone(),
                task: n.factory.as_ref().map(|f| f(&spec.path, i as u32)),
                non_personal: n.non_personal,
            })
            .collect();
        WorkflowInstance {
            path: spec.path.clone(),
            nodes,
            consumers,
            sink: spec.sink,
            step: 0,
            scratch: Scratch::default(),
            fx: Effects::new(spec.path.clone(), spec.path.stable_id()),
        }
    }

    /// Continuations waiting for replies, over all tasks.
    pub(crate) fn pending(&self) -> usize {
        self.nodes
            .iter()
            .filter_map(|n| n.task.as_ref())
            .map(|t| t.pending())
            .sum()
    }

    /// Runs one step and commits it; on failure nothing of the step is committed or released.
    pub(crate) fn step(
        &mut self,
        input: StepInput,
        storage: &mut dyn Storage,
    ) -> Result<StepOutput, TaskError> {
        let step = self.step + 1;
        self.fx.begin(step);
        self.fx.track_writes = storage.keeps_state();
        let n = self.nodes.len();
        // Per-step buffers are reused (taken here, put back after the commit).
        let mut outputs = std::mem::take(&mut self.scratch.outputs);
        outputs.clear();
        outputs.resize_with(n, || None);
        let mut pre = std::mem::take(&mut self.scratch.pre);
        pre.clear();
        pre.resize_with(n, || None);
        let mut position = None;
        match input {
            StepInput::Atom(batch, pos) => {
                position = Some(pos);
                if batch.len() > 0 {
                    outputs[0] = Some(batch);
                }
            }
            StepInput::Asks(node, asks) => {
                if let Some(slot) = pre.get_mut(node) {
                    *slot = Some(Pre::Asks(asks));
                }
            }
            StepInput::Replies(replies) => {
                for r in replies {
                    let Some(slot) = pre.get_mut(r.to.task as usize) else {
                        continue;
                    };
                    match slot {
                        Some(Pre::Replies(v)) => v.push(r),
                        _ => *slot = Some(Pre::Replies(vec![r])),
                    }
                }
            }
        }
        let mut remaining = std::mem::take(&mut self.scratch.remaining);
        remaining.clear();
        remaining.extend_from_slice(&self.consumers);
        let (nodes, fx) = (&mut self.nodes, &mut self.fx);
        let ran = catch_unwind(AssertUnwindSafe(|| {
            run_tasks(nodes, fx, &mut outputs, &mut pre, &mut remaining)
        }));
        if let Err(panic) = ran {
            let message = panic_message(&*panic);
            return Err(TaskError::new(format!("task panicked: {message}")));
        }
        if let Some(e) = self.fx.error.take() {
            return Err(e);
        }
        let output = self
            .sink
            .and_then(|s| outputs.get_mut(s).and_then(Option::take))
            .filter(|b| b.len() > 0);
        let mut writes = Vec::new();
        if storage.keeps_state() {
            for node in &self.nodes {
                if let Some(t) = &node.task {
                    t.writes(&mut writes);
                }
            }
        }
        let commit = Commit {
            workflow: &self.path,
            workflow_id: self.fx.origin,
            step,
            input: position,
            writes: &writes,
            output_events: output.as_ref().map_or(0, |b| b.len()),
            asks: self.fx.asks.len(),
            replies: self.fx.replies.len(),
        };
        storage
            .commit(&commit)
            .map_err(|e| TaskError::new(format!("commit of step {step} failed: {e}")))?;
        drop(writes);
        for node in &mut self.nodes {
            if let Some(t) = &mut node.task {
                t.committed();
            }
        }
        self.step = step;
        self.scratch = Scratch {
            outputs,
            pre,
            remaining,
        };
        Ok(StepOutput {
            output,
            asks: std::mem::take(&mut self.fx.asks),
            replies: std::mem::take(&mut self.fx.replies),
        })
    }
}

/// Runs every task in topological order (node order) over what reached it.
fn run_tasks(
    nodes: &mut [Node],
    fx: &mut Effects,
    outputs: &mut [Option<Box<dyn Batch>>],
    pre: &mut [Option<Pre>],
    remaining: &mut [usize],
) {
    for i in 1..nodes.len() {
        let input = gather(&nodes[i].inputs, outputs, remaining);
        let work = pre[i].take();
        if input.is_none() && work.is_none() {
            continue;
        }
        let node = &mut nodes[i];
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
        outputs[i] = out.filter(|b| b.len() > 0);
    }
}

fn append(acc: &mut Option<Box<dyn Batch>>, more: Option<Box<dyn Batch>>) {
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

/// The text of a panic's payload.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_owned())
}
