//! Tasks as the runtime sees them: erased units that turn an input batch into an output batch,
//! answer asks and resume continuations.

pub(crate) mod continuations;
pub(crate) mod ctx;
pub(crate) mod effects;
pub(crate) mod handler;
pub(crate) mod state;

use crate::batch::Batch;
use crate::error::TaskError;
use crate::portal::{AskMsg, ReplyMsg};
use crate::storage::StateWrite;
use effects::Effects;

/// One task instance of a workflow (one per partition, once partitioned).
pub(crate) trait Task: Send {
    /// Called before the task runs in a step.
    fn begin(&mut self, _fx: &Effects) {}

    /// Processes the events of this step that reached the task; returns what it emitted.
    fn process(&mut self, input: Box<dyn Batch>, fx: &mut Effects) -> Option<Box<dyn Batch>>;

    /// Called once per step in which the task ran, after its input; returns what it emitted.
    fn on_atom_complete(&mut self, _fx: &mut Effects) -> Option<Box<dyn Batch>> {
        None
    }

    /// Answers a batch of asks (replier tasks only).
    fn handle_asks(&mut self, _asks: Vec<AskMsg>, fx: &mut Effects) -> Option<Box<dyn Batch>> {
        fx.fail(TaskError::new(
            "asks delivered to a task that is not a replier",
        ));
        None
    }

    /// Resumes continuations with a batch of replies (tasks that ask only).
    fn handle_replies(
        &mut self,
        _replies: Vec<ReplyMsg>,
        fx: &mut Effects,
    ) -> Option<Box<dyn Batch>> {
        fx.fail(TaskError::new(
            "replies delivered to a task that does not ask",
        ));
        None
    }

    /// The key of an ask's request, which decides the partition that answers it (replier
    /// tasks only; `None` sends the ask to partition 0). An encoded request is decoded in place.
    fn ask_key(&self, _ask: &mut AskMsg) -> Option<crate::data::Key> {
        None
    }

    /// A reply this replier task gave in an earlier run (its encoding), as a reply value again
    /// (`None`: the task is not a replier).
    fn decode_reply(&self, _bytes: &[u8]) -> Option<Result<Box<dyn std::any::Any + Send>, String>> {
        None
    }

    /// Tells the task which partition it runs in, of how many (before any step), so that its
    /// per-task and per-subject state is named apart from other partitions'.
    fn place(&mut self, _partition: u32, _partitions: u32) {}

    /// Restores state values committed in an earlier run (before any step): per-key values
    /// whose key this partition owns, and this partition's per-task values.
    fn restore(&mut self, _recovery: &crate::storage::Recovery, _partitions: usize) {}

    /// Continuations still waiting for replies.
    fn pending(&self) -> usize {
        0
    }

    /// The state changes of this step.
    fn writes<'a>(&'a self, _out: &mut Vec<StateWrite<'a>>) {}

    /// Forgets the state changes of this step once committed.
    fn committed(&mut self) {}

    /// Removes the per-key values only erased subjects' events wrote (`erased` says whom),
    /// as writes of the next commit; returns how many.
    fn purge(&mut self, _erased: &dyn Fn(&crate::data::SubjectId) -> bool) -> usize {
        0
    }
}

/// Builds a task instance for a workflow path and task index.
pub(crate) type TaskFactory =
    std::sync::Arc<dyn Fn(&crate::path::Path, u32) -> Box<dyn Task> + Send + Sync>;
