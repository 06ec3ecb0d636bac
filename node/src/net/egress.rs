//! What leaves the node to a peer: replies to a peer's asks that carry an envelope, and each
//! event of the stream atoms a peer pulls, pass the gate with the export's rule at send time
//! (an export with no rule sends no personal data), and the subjects of what is sent are
//! recorded in the lineage.

use std::collections::BTreeSet;

use pods_policy::Verdict;
use pods_sdk::{AskId, Envelope};

use super::filter::filter_atom;
use super::shell::Shell;
use super::wire::{ErrorCode, WireError};

/// A personal inbound ask's destination and envelope, kept until its reply leaves (an ask
/// without an envelope has a reply that is not personal: it leaves as it is).
#[derive(Clone, Debug)]
pub(crate) struct Egress {
    /// The asking peer's name.
    pub peer: String,
    /// The exported portal asked.
    pub portal: String,
    /// The ask's envelope.
    pub envelope: Envelope,
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
        let envelope = &egress.envelope;
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

    /// The atoms `peer` pulled from `stream` as they may leave: each event passes the export's
    /// rule now (`filter.rs`; an atom may leave empty, keeping its offset), and the subjects
    /// of what leaves are recorded in the lineage first (one transaction): an erasure must
    /// find every recipient. Nothing leaves if that record cannot be written.
    pub(super) fn atoms_out(
        &self,
        peer: &str,
        stream: &str,
        atoms: Vec<(u64, Vec<u8>)>,
    ) -> Result<Vec<(u64, Vec<u8>)>, WireError> {
        let mut subjects = BTreeSet::new();
        let (mut withheld, mut redacted) = (0, 0);
        let out = self.privacy.egress_with(stream, |verdict| {
            atoms
                .into_iter()
                .map(|(offset, atom)| {
                    let o = filter_atom(&atom, verdict).map_err(|e| {
                        tracing::error!(%stream, offset, error = %e, "a logged atom cannot be read; nothing is sent");
                        WireError::new(ErrorCode::Unavailable, format!("{stream}, atom {offset}: {e}"))
                    })?;
                    subjects.extend(o.subjects);
                    withheld += o.withheld;
                    redacted += o.redacted;
                    Ok((offset, o.atom))
                })
                .collect::<Result<Vec<_>, WireError>>()
        })?;
        if withheld + redacted > 0 {
            tracing::debug!(%stream, %peer, withheld, redacted, "the export's rule withheld or redacted events of pulled atoms");
        }
        if !subjects.is_empty() {
            self.privacy
                .record_lineage(peer, stream, subjects.iter().map(String::as_str))
                .map_err(|e| {
                    tracing::error!(%stream, error = %e, "cannot record the lineage of pulled atoms; they are not sent");
                    WireError::new(ErrorCode::Unavailable, e.to_string())
                })?;
        }
        Ok(out)
    }
}
