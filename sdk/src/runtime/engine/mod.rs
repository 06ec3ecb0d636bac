//! One workflow instance as a step machine: a step takes one atom (a stream atom, a batch of
//! asks, or a batch of replies), runs the task graph over it in every partition, stage by
//! stage, commits once for all partitions, and returns what the step produced. Both runtimes
//! drive workflows through it; they differ only in how the partitions of a stage run (one after
//! another, or at once on helper threads where that is asked for or measured faster).

mod choose;
pub(crate) mod commit;
mod helpers;
mod partition;
mod plan;
mod settle;

use std::sync::Arc;

use crate::batch::{Batch, partition_of};
use crate::builder::spec::WorkflowSpec;
use crate::error::TaskError;
use crate::gate::PolicyGate;
use crate::path::Path;
use crate::portal::{AskId, AskMsg, ReplyMsg};
use crate::remote::Encoded;
use crate::storage::{InputPosition, Storage};
pub(crate) use partition::Partition;
use partition::{Pre, append};
use plan::Plan;
use settle::{StepRecord, holds};

/// What a step processes.
pub(crate) enum StepInput {
    /// A stream atom (already admitted by the policy gate), and the input position after it.
    Atom(Box<dyn Batch>, InputPosition),
    /// Asks for the replier task at this node.
    Asks(usize, Vec<AskMsg>),
    /// Replies for the workflow's asking tasks.
    Replies(Vec<ReplyMsg>),
    /// No atom: the input moves to this position past an atom set aside (quarantined), which
    /// no task sees.
    Skip(InputPosition),
}

/// What a committed step produced, to be released.
pub(crate) struct StepOutput {
    pub output: Option<Box<dyn Batch>>,
    pub asks: Vec<AskMsg>,
    pub replies: Vec<ReplyMsg>,
}

/// How the partitions of one stage run.
pub(crate) enum Parallel {
    /// One after another, in order (the deterministic runtime).
    Sequential,
    /// At once: partition 0 on the stepping thread, the others on helper threads the workflow
    /// starts on its first partitioned step, named `<name>-<i>` (the threaded runtime).
    Threads {
        /// The helper threads' name prefix.
        name: Arc<str>,
        /// Events (or asks, or replies) a step needs before its partitions run on several
        /// threads; smaller steps run them one after another on the stepping thread.
        min_step: usize,
        /// Such steps run their partitions at once or in turn, whichever the workflow
        /// measured faster lately ([`choose`]); else always at once.
        measured: bool,
    },
}

pub(crate) struct WorkflowInstance {
    pub path: Path,
    parts: Vec<Partition>,
    plan: Arc<Plan>,
    step: u64,
    origin: u64,
    /// Threads running partitions 1.. at once, once a threaded runtime asked for them.
    helpers: Option<helpers::Helpers>,
    /// Starting helper threads failed once; partitions run on the stepping thread.
    no_helpers: bool,
    /// Whether a large step runs its partitions at once or in turn, where that is measured.
    chooser: choose::Chooser,
    /// The output stream.
    out: Path,
    /// Output atoms committed so far: the offset of the next one.
    produced: u64,
    /// Whether the output stream has consumers, so that its atoms go to the store's log.
    pub(crate) log_output: Arc<std::sync::atomic::AtomicBool>,
    /// The commit protocol's state: the steps staged, what they hold and what they record.
    protocol: commit::CommitProtocol<(StepOutput, StepRecord)>,
    /// Replies given in earlier runs that the store still keeps, by ask: an ask asked again
    /// gets its reply without being applied again.
    answered: std::collections::HashMap<AskId, Vec<u8>>,
    /// Replies to asks of this step answered from `answered`.
    deduped: Vec<ReplyMsg>,
    /// Why an answered ask's reply cannot be given again, if it cannot.
    dedup_error: Option<TaskError>,
    /// The gate's erasure count ([`PolicyGate::erasures`]) when the state was last purged of
    /// erased subjects' values.
    purged: u64,
}

impl WorkflowInstance {
    pub(crate) fn new(spec: &WorkflowSpec) -> WorkflowInstance {
        let p = spec.partitions.max(1);
        WorkflowInstance {
            path: spec.path.clone(),
            parts: (0..p).map(|i| Partition::new(spec, i as u32)).collect(),
            plan: Arc::new(Plan::new(spec)),
            step: 0,
            origin: spec.path.stable_id(),
            helpers: None,
            no_helpers: false,
            chooser: choose::Chooser::default(),
            out: spec.stream.clone(),
            produced: 0,
            log_output: Arc::default(),
            protocol: commit::CommitProtocol::new(false),
            answered: std::collections::HashMap::new(),
            deduped: Vec::new(),
            dedup_error: None,
            purged: 0,
        }
    }

    /// Before a step: if subjects were erased since the last look, removes the per-key values
    /// only their events wrote, in every partition. The removals commit with the step, and no
    /// task sees the values again. Returns how many went.
    pub(crate) fn purge_erased(&mut self, gate: &dyn PolicyGate) -> usize {
        let erasures = gate.erasures();
        if erasures == self.purged {
            return 0;
        }
        let erased = |s: &crate::data::SubjectId| gate.is_erased(s);
        let removed: usize = self.parts.iter_mut().map(|p| p.purge(&erased)).sum();
        self.purged = erasures;
        if removed > 0 {
            tracing::info!(workflow = %self.path, removed, "state of erased subjects removed");
        }
        removed
    }

    /// Continuations waiting for replies, over all tasks of all partitions.
    pub(crate) fn pending(&self) -> usize {
        self.parts.iter().map(|p| p.pending()).sum()
    }

    /// Resumes from what the workflow committed in an earlier run: its step count and the
    /// state values of every partition's tasks (before its first step).
    pub(crate) fn restore(&mut self, recovery: &crate::storage::Recovery) {
        self.step = recovery.step;
        self.produced = recovery.produced;
        self.answered = recovery.answered.iter().cloned().collect();
        let n = self.parts.len();
        for p in &mut self.parts {
            p.restore(recovery, n);
        }
    }

    /// The workflow path's stable id.
    pub(crate) fn origin(&self) -> u64 {
        self.origin
    }

    /// Stops the helper threads, if any (they start again when needed).
    pub(crate) fn stop_helpers(&mut self) {
        self.helpers = None;
    }

    /// Takes one step in every partition, without committing it: returns what it produced and
    /// what its commit records.
    fn take_step(
        &mut self,
        input: StepInput,
        storage: &mut dyn Storage,
        par: &Parallel,
    ) -> Result<(StepOutput, StepRecord), TaskError> {
        let step = self.step + 1;
        if let StepInput::Skip(position) = input {
            self.step = step;
            let out = StepOutput {
                output: None,
                asks: Vec::new(),
                replies: Vec::new(),
            };
            let record = StepRecord {
                position: Some(position),
                offset: None,
                answers: Vec::new(),
                asks: 0,
            };
            return Ok((out, record));
        }
        let track = storage.keeps_state();
        // Asks made over a stream atom are scoped by the atom's offset, so a replayed atom asks
        // with the same ids; handlers answering or continuing asks enter scopes of their own.
        let scope = match &input {
            StepInput::Atom(_, position) => {
                (AskId::atom_scope(position.next.saturating_sub(1)), true)
            }
            // Asks made here outside a handler answering or continuing an ask (downstream of
            // one, or in `on_atom_complete`) get a scope a replay would not give them again.
            _ => {
                let fallback = AskId {
                    origin: self.origin,
                    scope: step,
                    partition: 0,
                    seq: u32::MAX,
                };
                (fallback.scope_of(), false)
            }
        };
        let record = holds(storage);
        for p in &mut self.parts {
            p.begin(scope, (track, record), &self.plan);
        }
        let size = match &input {
            StepInput::Atom(b, _) => b.len(),
            StepInput::Asks(_, asks) => asks.len(),
            StepInput::Replies(replies) => replies.len(),
            StepInput::Skip(_) => 0,
        };
        let position = self.distribute(input);
        if let Some(e) = self.dedup_error.take() {
            self.deduped.clear();
            return Err(e);
        }
        let n = self.parts.len();
        // Handing a stage to another thread has a fixed cost; small steps run their partitions
        // one after another on this thread, and larger ones as measured faster, where asked.
        let large = matches!(par, Parallel::Threads { min_step, .. } if size >= *min_step);
        let measured = large && n > 1 && matches!(par, Parallel::Threads { measured: true, .. });
        let way = self.chooser.way();
        let parallel = large && (!measured || way == choose::Way::AtOnce);
        let started = measured.then(std::time::Instant::now);
        if n == 1 {
            self.parts[0].run(&self.plan.all, &[], 1);
        } else {
            if let (Parallel::Threads { name, .. }, None, true, false) =
                (par, &self.helpers, parallel, self.no_helpers)
            {
                match helpers::Helpers::spawn(n - 1, name) {
                    Ok(helpers) => self.helpers = Some(helpers),
                    // Not fatal: the partitions run one after another on this thread.
                    Err(e) => {
                        tracing::warn!(workflow = %self.path, error = %e, "cannot start partition threads");
                        self.no_helpers = true;
                    }
                }
            }
            for s in 0..self.plan.stages.len() {
                match (&mut self.helpers, parallel) {
                    (Some(helpers), true) => {
                        helpers.run_stage(&mut self.parts, &self.plan, s)?;
                    }
                    _ => {
                        let exchange = self.plan.exchange_after(s);
                        for p in &mut self.parts {
                            p.run(&self.plan.stages[s], exchange, n);
                        }
                    }
                }
                if self.parts.iter().any(|p| p.error.is_some()) {
                    break;
                }
                self.exchange();
            }
        }
        if let Some(t) = started {
            let nanos = u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX);
            self.chooser.record(way, size as u64, nanos);
        }
        if let Some(e) = self.parts.iter_mut().find_map(|p| p.error.take()) {
            return Err(e);
        }
        let mut output = None;
        if let Some(sink) = self.plan.sink {
            for p in &mut self.parts {
                append(&mut output, p.outputs.get_mut(sink).and_then(Option::take));
            }
        }
        let output = output.filter(|b| b.len() > 0);
        let mut asks = std::mem::take(&mut self.parts[0].fx.asks);
        let mut replies = std::mem::take(&mut self.parts[0].fx.replies);
        let mut answers = std::mem::take(&mut self.parts[0].fx.answers);
        for p in &mut self.parts[1..] {
            asks.append(&mut p.fx.asks);
            replies.append(&mut p.fx.replies);
            answers.append(&mut p.fx.answers);
        }
        replies.append(&mut self.deduped);
        self.step = step;
        let offset = output.is_some().then_some(self.produced);
        if output.is_some() {
            self.produced += 1;
        }
        let record = StepRecord {
            position,
            offset,
            answers,
            asks: asks.len(),
        };
        Ok((
            StepOutput {
                output,
                asks,
                replies,
            },
            record,
        ))
    }

    /// Hands each partition its share of the step's input; returns the input position.
    fn distribute(&mut self, input: StepInput) -> Option<InputPosition> {
        let n = self.parts.len();
        match input {
            StepInput::Atom(batch, pos) => {
                if batch.len() > 0 {
                    if n == 1 {
                        self.parts[0].outputs[0] = Some(batch);
                    } else {
                        for (p, share) in batch.split_for_partitions(n).into_iter().enumerate() {
                            self.parts[p].outputs[0] = share;
                        }
                    }
                }
                Some(pos)
            }
            StepInput::Asks(node, asks) => {
                for mut ask in asks {
                    if let Some(bytes) = self.answered.get(&ask.id) {
                        // Another process decodes the reply itself: it gets the kept bytes.
                        if ask.from.is_external() {
                            self.deduped.push(ReplyMsg {
                                id: ask.id,
                                to: ask.from,
                                reply: Ok(Box::new(Encoded(bytes.clone()))),
                                envelope: ask.envelope,
                            });
                            continue;
                        }
                        let task = self.parts[0].task(node);
                        match task.and_then(|t| t.decode_reply(bytes)) {
                            Some(Ok(value)) => {
                                self.deduped.push(ReplyMsg {
                                    id: ask.id,
                                    to: ask.from,
                                    reply: Ok(value),
                                    envelope: ask.envelope,
                                });
                                continue;
                            }
                            Some(Err(e)) => {
                                let message =
                                    format!("the kept reply to ask {} is unreadable: {e}", ask.id);
                                self.dedup_error = Some(TaskError::new(message));
                                continue;
                            }
                            None => {}
                        }
                    }
                    let to = if n == 1 {
                        0
                    } else {
                        let key = self.parts[0].task(node).and_then(|t| t.ask_key(&mut ask));
                        key.map_or(0, |k| partition_of(k, n))
                    };
                    if let Some(slot) = self.parts[to].pre.get_mut(node) {
                        match slot {
                            Some(Pre::Asks(v)) => v.push(ask),
                            _ => *slot = Some(Pre::Asks(vec![ask])),
                        }
                    }
                }
                None
            }
            StepInput::Skip(position) => Some(position),
            StepInput::Replies(replies) => {
                for r in replies {
                    let to = (r.to.partition as usize).min(n - 1);
                    let Some(slot) = self.parts[to].pre.get_mut(r.to.task as usize) else {
                        continue;
                    };
                    match slot {
                        Some(Pre::Replies(v)) => v.push(r),
                        _ => *slot = Some(Pre::Replies(vec![r])),
                    }
                }
                None
            }
        }
    }

    /// Moves the parts each partition sent to each other partition after a stage.
    fn exchange(&mut self) {
        let n = self.parts.len();
        for src in 0..n {
            let outbox = std::mem::take(&mut self.parts[src].outbox);
            for (node, split) in outbox {
                for (dst, part) in split.into_iter().enumerate() {
                    let Some(part) = part else { continue };
                    let inbox = &mut self.parts[dst].inbox;
                    match inbox.iter_mut().find(|(j, _)| *j == node) {
                        Some((_, v)) => v.push(part),
                        None => inbox.push((node, vec![part])),
                    }
                }
            }
        }
    }
}

/// The text of a panic's payload.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_owned())
}
