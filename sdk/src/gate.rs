//! The policy gate: the check every event of every atom passes when a workflow admits it.

use std::sync::Arc;

use crate::data::{Data, Envelope, SubjectId};
use crate::path::Path;

/// The gate's verdict on one event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The event enters the workflow.
    Admit,
    /// The event is dropped before any task sees it.
    Deny,
    /// The event enters with some fields removed (see [`Redaction`]).
    Redact(Arc<Redaction>),
}

/// What a redacting gate removes from an event: top-level fields of its value, and the
/// categories those fields held from its envelope. An event whose value is not a record (a
/// struct or map), or whose type cannot do without one of the fields (make such fields
/// `Option`), is dropped instead: redaction never lets a removed field through.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Redaction {
    /// Names of the fields removed from the value.
    pub fields: Vec<String>,
    /// Categories removed from the envelope.
    pub categories: Vec<String>,
}

/// The gate's check for the events of one atom: it may read the clock and resolve the
/// workflow's purpose once per atom rather than once per event.
pub trait AtomGate {
    /// The verdict for one event of the atom.
    fn check(&mut self, envelope: Option<&Envelope>) -> Decision;

    /// The verdicts for the atom's events whose envelopes are `envelopes`, in order, appended
    /// to `out`. The default asks [`AtomGate::check`] for each; a gate overrides it to work on
    /// the events together (to overlap the memory reads of many events).
    fn check_all(&mut self, envelopes: &[Option<Arc<Envelope>>], out: &mut Vec<Decision>) {
        out.extend(envelopes.iter().map(|e| self.check(e.as_deref())));
    }
}

/// A function from an envelope to a verdict is a per-atom check (for tests and simple gates).
impl<F: FnMut(Option<&Envelope>) -> Decision> AtomGate for F {
    fn check(&mut self, envelope: Option<&Envelope>) -> Decision {
        self(envelope)
    }
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

    /// The verdict for a request asked of `portal`, whose replier runs in `workflow`. The
    /// default treats it as an event consumed by the workflow; a gate overrides it to apply
    /// the portal's own purpose. A request is admitted whole or not at all: a redaction
    /// verdict refuses it.
    fn admit_ask(&self, workflow: &Path, portal: &Path, envelope: Option<&Envelope>) -> Decision {
        let _ = portal;
        self.admit(workflow, envelope)
    }

    /// The verdict for a reply arriving at `workflow` (the asker's): a reply carries the
    /// envelope of the data it was made from, so an app cannot launder data through another
    /// app's portal. A reply is admitted whole or not at all; the continuation of a refused
    /// one gets [`AskError::ReplyDenied`](crate::AskError::ReplyDenied).
    fn admit_reply(&self, workflow: &Path, envelope: Option<&Envelope>) -> Decision {
        self.admit(workflow, envelope)
    }

    /// The check for one atom consumed by `workflow`. The default asks [`PolicyGate::admit`]
    /// for each event; a gate overrides it to do per-atom work (time, purpose lookup) once.
    fn for_atom<'a>(&'a self, workflow: &'a Path) -> Box<dyn AtomGate + 'a> {
        Box::new(EachEvent {
            gate: self,
            workflow,
        })
    }

    /// A count that grows with every erasure of a data subject. A workflow compares it with
    /// the count it last saw before each step; when it grew, it removes the per-key values
    /// that only erased subjects' events wrote ([`PolicyGate::is_erased`]). A gate that never
    /// erases keeps the default, 0.
    fn erasures(&self) -> u64 {
        0
    }

    /// Whether `subject` was erased, so that state derived from their data goes too.
    fn is_erased(&self, subject: &SubjectId) -> bool {
        let _ = subject;
        false
    }
}

/// A shared gate is a gate, so that its owner can keep a handle on it (to change its rules or
/// read its counts) while the runtime uses it.
impl<G: PolicyGate + ?Sized> PolicyGate for Arc<G> {
    fn admit(&self, workflow: &Path, envelope: Option<&Envelope>) -> Decision {
        (**self).admit(workflow, envelope)
    }
    fn admits_everything(&self) -> bool {
        (**self).admits_everything()
    }
    fn admit_ask(&self, workflow: &Path, portal: &Path, envelope: Option<&Envelope>) -> Decision {
        (**self).admit_ask(workflow, portal, envelope)
    }
    fn admit_reply(&self, workflow: &Path, envelope: Option<&Envelope>) -> Decision {
        (**self).admit_reply(workflow, envelope)
    }
    fn for_atom<'a>(&'a self, workflow: &'a Path) -> Box<dyn AtomGate + 'a> {
        (**self).for_atom(workflow)
    }
    fn erasures(&self) -> u64 {
        (**self).erasures()
    }
    fn is_erased(&self, subject: &SubjectId) -> bool {
        (**self).is_erased(subject)
    }
}

/// The default per-atom check: one call of `admit` per event.
struct EachEvent<'a, G: ?Sized> {
    gate: &'a G,
    workflow: &'a Path,
}

impl<G: PolicyGate + ?Sized> AtomGate for EachEvent<'_, G> {
    fn check(&mut self, envelope: Option<&Envelope>) -> Decision {
        self.gate.admit(self.workflow, envelope)
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

/// Removes `fields` from `value` (through its serde form); `false` if it cannot: the value is
/// not a record, or its type needs one of the fields.
pub(crate) fn redact_value<T: Data>(value: &mut T, fields: &[String]) -> bool {
    use ciborium::Value;
    let Ok(Value::Map(entries)) = Value::serialized(&*value) else {
        return false;
    };
    let kept: Vec<(Value, Value)> = entries
        .into_iter()
        .filter(|(k, _)| !matches!(k, Value::Text(name) if fields.contains(name)))
        .collect();
    match Value::Map(kept).deserialized::<T>() {
        Ok(redacted) => {
            *value = redacted;
            true
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    struct Visit {
        name: String,
        heart_rate: Option<u32>,
    }

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    struct Strict {
        name: String,
        heart_rate: u32,
    }

    #[test]
    fn optional_fields_are_removed_and_required_ones_refuse() {
        let mut v = Visit {
            name: "ann".into(),
            heart_rate: Some(71),
        };
        assert!(redact_value(&mut v, &["heart_rate".to_owned()]));
        assert_eq!(v.heart_rate, None);
        let mut s = Strict {
            name: "ann".into(),
            heart_rate: 71,
        };
        assert!(!redact_value(&mut s, &["heart_rate".to_owned()]));
        assert_eq!(s.heart_rate, 71);
        let mut n = 5i64;
        assert!(!redact_value(&mut n, &["x".to_owned()]));
    }
}
