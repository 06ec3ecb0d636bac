//! What one step of a workflow collects besides its output events: asks, replies, its error.

use crate::error::TaskError;
use crate::path::Path;
use crate::portal::{AskId, AskMsg, Origin, ReplyMsg};

/// The per-step side effects of a workflow, gathered while its tasks run and released only
/// when the step commits.
pub(crate) struct Effects {
    /// The workflow running the step.
    pub workflow: Path,
    /// Hash of the workflow path, the origin part of ask ids.
    pub origin: u64,
    /// The scope of the asks made now ([`AskId::scope`]).
    pub scope: u64,
    /// Whether that scope is the same in a replay: an atom's, or one entered to answer or
    /// continue an ask (not the fallback of a step over asks or replies).
    pub replayable: bool,
    /// The partition running the step.
    pub partition: u32,
    /// The task now running (its index in the workflow).
    pub task: u32,
    /// Whether the running task declared its output non-personal.
    pub non_personal: bool,
    /// Asks made in this step.
    pub asks: Vec<AskMsg>,
    /// Replies given in this step.
    pub replies: Vec<ReplyMsg>,
    /// The first failure of the step, if any.
    pub error: Option<TaskError>,
    /// Whether state writes are tracked for the commit (the storage keeps state values).
    pub track_writes: bool,
    /// Whether replies are recorded, encoded, for the commit (the storage holds asking atoms,
    /// so a replayed ask must get the same reply).
    pub record_answers: bool,
    /// Replies given in this step, encoded, by ask (when recorded).
    pub answers: Vec<(AskId, Vec<u8>)>,
    next_ask: u32,
}

impl Effects {
    pub(crate) fn new(workflow: Path, origin: u64, partition: u32) -> Effects {
        Effects {
            workflow,
            origin,
            scope: 0,
            replayable: true,
            partition,
            task: 0,
            non_personal: false,
            asks: Vec::new(),
            replies: Vec::new(),
            error: None,
            track_writes: true,
            record_answers: false,
            answers: Vec::new(),
            next_ask: 0,
        }
    }

    /// Starts a step whose asks have scope `scope` (unless a handler enters another),
    /// forgetting the previous step's effects.
    pub(crate) fn begin(&mut self, scope: u64, replayable: bool) {
        self.scope = scope;
        self.replayable = replayable;
        self.next_ask = 0;
        self.asks.clear();
        self.replies.clear();
        self.answers.clear();
        self.error = None;
    }

    /// Enters `scope` (derived from an ask being answered or continued); returns what
    /// [`Effects::leave`] restores.
    pub(crate) fn enter(&mut self, scope: u64) -> (u64, u32, bool) {
        let saved = (self.scope, self.next_ask, self.replayable);
        self.scope = scope;
        self.next_ask = 0;
        self.replayable = true;
        saved
    }

    /// Returns to the scope [`Effects::enter`] left.
    pub(crate) fn leave(&mut self, saved: (u64, u32, bool)) {
        (self.scope, self.next_ask, self.replayable) = saved;
    }

    /// The next deterministic ask id of this scope.
    pub(crate) fn next_ask_id(&mut self) -> AskId {
        let id = AskId {
            origin: self.origin,
            scope: self.scope,
            partition: self.partition,
            seq: self.next_ask,
        };
        self.next_ask += 1;
        id
    }

    /// The origin of asks made by the running task.
    pub(crate) fn origin(&self) -> Origin {
        Origin {
            workflow: self.workflow.clone(),
            partition: self.partition,
            task: self.task,
        }
    }

    /// Records a failure; the first one wins.
    #[inline]
    pub(crate) fn fail(&mut self, error: TaskError) {
        if self.error.is_none() {
            self.error = Some(error);
        }
    }

    #[inline]
    pub(crate) fn failed(&self) -> bool {
        self.error.is_some()
    }
}
