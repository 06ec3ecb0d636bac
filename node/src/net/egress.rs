//! What leaves the node to a peer: replies to a peer's asks that carry an envelope pass the
//! gate with the export's rule at send time (an export with no rule sends none), and what
//! is sent is recorded in the lineage, as are the subjects of the stream atoms a peer pulls.

use std::collections::BTreeSet;

use ciborium::Value;
use pods_policy::Verdict;
use pods_sdk::{AskId, Envelope};

use super::shell::Shell;
use super::wire::{ErrorCode, WireError};

/// An inbound ask's destination and envelope, kept until its reply leaves.
#[derive(Clone, Debug)]
pub(crate) struct Egress {
    /// The asking peer's name.
    pub peer: String,
    /// The exported portal asked.
    pub portal: String,
    /// The ask's envelope.
    pub envelope: Option<Envelope>,
}

/// The subjects named by the envelopes of an encoded atom (the sdk's columns: a map whose
/// `envelopes` entry lists an envelope or null per event). Bytes that do not hold the text
/// `subject` are not parsed; bytes that are not CBOR name nobody.
pub(crate) fn atom_subjects(atom: &[u8]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if !atom.windows(7).any(|w| w == b"subject") {
        return out;
    }
    if let Ok(value) = ciborium::from_reader::<Value, _>(atom) {
        collect(&value, &mut out, 0);
    }
    out
}

/// Most nesting followed looking for the envelopes.
const MAX_DEPTH: usize = 8;

fn collect(value: &Value, out: &mut BTreeSet<String>, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    match value {
        Value::Map(entries) => {
            for (k, v) in entries {
                match (k.as_text(), v) {
                    (Some("envelopes"), Value::Array(list)) => {
                        out.extend(list.iter().filter_map(subject_of));
                    }
                    (_, Value::Map(_) | Value::Array(_)) => collect(v, out, depth + 1),
                    _ => {}
                }
            }
        }
        Value::Array(items) => {
            for v in items {
                collect(v, out, depth + 1);
            }
        }
        Value::Tag(_, inner) => collect(inner, out, depth + 1),
        _ => {}
    }
}

fn subject_of(envelope: &Value) -> Option<String> {
    let Value::Map(fields) = envelope else {
        return None;
    };
    fields.iter().find_map(|(k, v)| match (k.as_text(), v) {
        (Some("subject"), Value::Text(s)) => Some(s.clone()),
        _ => None,
    })
}

impl Shell {
    /// The reply to inbound ask `id` as it may leave: a personal reply passes the export's
    /// rule (or is withheld) and, sent, is recorded in the lineage.
    pub(super) fn reply_out(
        &mut self,
        id: AskId,
        outcome: Result<Vec<u8>, WireError>,
    ) -> Result<Vec<u8>, WireError> {
        let Some(egress) = self.egress.remove(&id) else {
            return outcome;
        };
        let reply = outcome?;
        let Some(envelope) = &egress.envelope else {
            return Ok(reply);
        };
        match self.privacy.egress(&egress.portal, Some(envelope)) {
            Verdict::Admit => {
                let subject = envelope.subject.0.as_str();
                if let Err(e) = self
                    .privacy
                    .record_lineage(&egress.peer, &egress.portal, [subject])
                {
                    // Not recorded, not sent: an erasure must find every recipient.
                    tracing::error!(error = %e, "cannot record where a reply goes; it is withheld");
                    return Err(WireError::new(ErrorCode::Unavailable, e.to_string()));
                }
                Ok(reply)
            }
            // A reply is opaque here: what a redaction would remove cannot be cut out of it.
            verdict => {
                tracing::debug!(portal = %egress.portal, peer = %egress.peer, ?verdict, "a personal reply was withheld by the export's policy");
                Err(WireError::new(
                    ErrorCode::NotAllowed,
                    format!(
                        "{}: the reply is personal data the export's purpose does not allow sending",
                        egress.portal
                    ),
                ))
            }
        }
    }

    /// Records the subjects of the atoms `peer` pulls from `stream` (one transaction).
    pub(super) fn stream_lineage(
        &self,
        peer: &str,
        stream: &str,
        atoms: &[(u64, Vec<u8>)],
    ) -> Result<(), crate::error::NodeError> {
        let mut subjects = BTreeSet::new();
        for (_, atom) in atoms {
            subjects.extend(atom_subjects(atom));
        }
        if subjects.is_empty() {
            return Ok(());
        }
        self.privacy
            .record_lineage(peer, stream, subjects.iter().map(String::as_str))
            .inspect_err(|e| {
                tracing::error!(%stream, error = %e, "cannot record the lineage of pulled atoms; they are not sent");
            })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde::Serialize;

    use super::*;
    use crate::privacy::Row;

    /// The sdk's columns as they are encoded (same field names and shapes).
    #[derive(Serialize)]
    struct Columns {
        values: Vec<Row>,
        keys: Option<Vec<u64>>,
        envelopes: Option<Vec<Option<Arc<Envelope>>>>,
    }

    fn row(pid: &str) -> Row {
        let mut r = Row::new();
        r.insert("pid".into(), pid.into());
        r.insert("name".into(), format!("{pid} MARKER").into());
        r
    }

    #[test]
    fn the_subjects_of_an_atom_come_from_its_envelopes() {
        let atom = crate::net::wire::encode(&Columns {
            values: vec![row("ann"), row("ops"), row("bob"), row("ann")],
            keys: Some(vec![1, 2, 3, 1]),
            envelopes: Some(vec![
                Some(Arc::new(Envelope::new("ann", &["health"]).collected_at(5))),
                None,
                Some(Arc::new(Envelope::new("bob", &["contact"]))),
                Some(Arc::new(Envelope::new("ann", &["health"]))),
            ]),
        });
        let got: Vec<String> = atom_subjects(&atom).into_iter().collect();
        assert_eq!(got, ["ann", "bob"]);
    }

    #[test]
    fn atoms_without_envelopes_name_nobody_and_are_not_parsed() {
        let plain = crate::net::wire::encode(&Columns {
            values: vec![row("subject")],
            keys: None,
            envelopes: None,
        });
        assert!(atom_subjects(&plain).is_empty());
        let impersonal = crate::net::wire::encode(&Columns {
            values: vec![],
            keys: None,
            envelopes: None,
        });
        assert!(atom_subjects(&impersonal).is_empty());
        assert!(atom_subjects(b"\xffsubject garbage").is_empty());
    }
}
