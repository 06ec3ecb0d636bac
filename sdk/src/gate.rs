//! The policy gate: the check every event of every atom passes when a workflow admits it.

use crate::data::Envelope;
use crate::path::Path;

/// The gate's verdict on one event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The event enters the workflow.
    Admit,
    /// The event is dropped before any task sees it.
    Deny,
}

/// Decides, for each event of an atom a workflow consumes, whether it may enter. `pods-policy`
/// implements it with consent, purpose, erasure and retention; the runtime applies it when the
/// atom is admitted, so the admitted atom is what the workflow processes (and, with durable
/// storage, what is logged).
pub trait PolicyGate: Send + Sync {
    /// The verdict for one event consumed by `workflow`.
    fn admit(&self, workflow: &Path, envelope: Option<&Envelope>) -> Decision;

    /// `true` if this gate admits every event, so the runtime can skip asking it per event.
    fn admits_everything(&self) -> bool {
        false
    }
}

/// The default gate: admits everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct AllowAll;

impl PolicyGate for AllowAll {
    fn admit(&self, _workflow: &Path, _envelope: Option<&Envelope>) -> Decision {
        Decision::Admit
    }
    fn admits_everything(&self) -> bool {
        true
    }
}
