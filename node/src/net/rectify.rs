//! Rectification between nodes, in the shell: answering a peer's request to correct this
//! node's copies of a subject's records (those it mirrors from that peer: correct them, audit
//! it, answer), and driving the rectifications'
//! [`PeerRequests`](super::requests::PeerRequests) machine for the requests this node owes.

use std::time::Instant;

use libp2p::PeerId;
use libp2p::request_response::ResponseChannel;
use serde_json::{Map, Value};

use super::erase::{Answer, MAX_CARRIED};
use super::requests::{Action, Pair};
use super::shell::{Sent, Shell};
use super::wire::{self, ErrorCode, Frame, Request, RequestBody, Response, VERSION, WireError};

impl Shell {
    /// A peer asks this node to correct its copies of `subject`'s records with `changes` (a
    /// JSON object): checked, then corrected off the swarm's task and answered (through
    /// [`Command::Answered`](super::shell::Command::Answered)). Only what this node
    /// mirrors from that peer is corrected, so a peer cannot change data it did not send; one
    /// request per (peer, subject) at a time, so corrections apply in the order they were sent.
    pub(super) fn rectify_in(
        &mut self,
        peer: PeerId,
        name: &str,
        subject: String,
        changes: &str,
        channel: ResponseChannel<Frame>,
    ) {
        let refuse = |code, message: String| Response::Refused(WireError::new(code, message));
        let changes: Map<String, Value> = match serde_json::from_str(changes) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "refused a rectification request");
                let r = refuse(
                    ErrorCode::Malformed,
                    format!("the corrections are not a JSON object: {e}"),
                );
                return self.send_response(channel, &r);
            }
        };
        let streams = self.mirrored_from(name);
        if streams.is_empty() {
            tracing::warn!(%peer, "refused a rectification request for data it never sent");
            let r = refuse(
                ErrorCode::NotAllowed,
                format!(
                    "this node mirrors nothing from {name}: it corrects only copies of what a peer sent it"
                ),
            );
            return self.send_response(channel, &r);
        }
        let busy = self.subject_channels.len() >= MAX_CARRIED
            || self
                .rectifying
                .values()
                .any(|(n, s)| n == name && *s == subject);
        if busy {
            let r = refuse(
                ErrorCode::Busy,
                "a rectification of this subject (or too many requests) is in progress here".into(),
            );
            return self.send_response(channel, &r);
        }
        let key = self.park(channel);
        self.rectifying
            .insert(key, (name.to_owned(), subject.clone()));
        let answer = Answer::new(key, self.tx.clone());
        let (privacy, audit) = (self.privacy.clone(), self.audit.clone());
        let actor = format!("peer:{name}");
        tokio::task::spawn_blocking(move || {
            let response = match privacy.rectify_copies(&subject, &changes, &streams) {
                Ok(atoms) => {
                    let digest = pods_policy::audit::to_hex(&pods_policy::subject_digest(&subject));
                    let columns: Vec<&String> = changes.keys().collect();
                    let detail = serde_json::json!({
                        "subject": digest, "columns": columns, "atoms": atoms, "streams": streams,
                    });
                    if let Err(e) = audit.record(&actor, "subject.rectify", detail) {
                        tracing::error!(error = %e, "a peer's rectification could not be audited");
                    }
                    Response::Rectified { atoms }
                }
                Err(e) => {
                    tracing::error!(%peer, error = %e, "a peer's rectification request failed here");
                    Response::Refused(WireError::new(ErrorCode::Unavailable, e.to_string()))
                }
            };
            answer.send(response);
        });
    }

    /// The logs of the streams this node mirrors from the peer `name` (each import's
    /// generator's stream).
    fn mirrored_from(&self, name: &str) -> Vec<String> {
        let settings = crate::config::read(&self.settings);
        settings
            .imports
            .iter()
            .filter(|i| {
                i.from
                    .strip_prefix("/peers/")
                    .and_then(|r| r.split_once('/'))
                    .is_some_and(|(n, _)| n == name)
            })
            .map(|i| format!("{}/stream", i.into.trim_end_matches('/')))
            .collect()
    }

    /// Takes the pending pairs from `policy.db` again and sends what is due.
    pub(super) fn rectifications_changed(&mut self) {
        match self.privacy.pending_peer_rectifications() {
            Ok(pairs) => self
                .rectifications
                .sync(pairs.into_iter().map(Pair::from), Instant::now()),
            Err(e) => {
                tracing::error!(error = %e, "cannot read the pending rectification requests");
            }
        }
        self.rectifications_due();
    }

    /// Sends the rectification requests that are due, each with the corrections pending now.
    pub(super) fn rectifications_due(&mut self) {
        let now = Instant::now();
        for Action::Send { id, pair } in self.rectifications.poll(now) {
            let changes = match self.privacy.peer_rectification(&pair.subject, &pair.peer) {
                Ok(Some(changes)) => changes,
                // Answered or erased meanwhile.
                Ok(None) => {
                    self.rectifications.acknowledged(id);
                    continue;
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot read a pending rectification");
                    self.rectifications.failed(id, now);
                    continue;
                }
            };
            let Some((peer_id, _)) = self.by_name.get(&pair.peer) else {
                tracing::debug!(peer = %pair.peer, "a rectification request waits for an unknown peer");
                self.rectifications.failed(id, now);
                continue;
            };
            let request = Request {
                version: VERSION,
                body: RequestBody::Rectify {
                    subject: pair.subject,
                    changes: changes.clone(),
                },
            };
            let frame = Frame::Bytes(wire::encode(&request));
            let rid = self.swarm.behaviour_mut().rr.send_request(peer_id, frame);
            self.batches.insert(rid, Sent::Rectify(id, changes));
        }
    }

    /// The answer to the rectification request `id`, which carried `sent`: done once the
    /// peer corrected; anything else is retried after a backoff.
    pub(super) fn rectification_response(&mut self, id: u64, sent: &str, response: Response) {
        let now = Instant::now();
        let Some(pair) = self.rectifications.pair(id).cloned() else {
            return;
        };
        let atoms = match response {
            Response::Rectified { atoms } => atoms,
            Response::Refused(e) if e.code == ErrorCode::NotAllowed => {
                return self.rectification_refused(id, &pair, &e);
            }
            Response::Refused(e) => {
                tracing::debug!(peer = %pair.peer, error = %e, "a rectification request was refused; it goes again");
                return self.rectifications.failed(id, now);
            }
            _ => return self.rectifications.failed(id, now),
        };
        match self
            .privacy
            .rectification_answered(&pair.subject, &pair.peer, sent)
        {
            Ok(done) => {
                self.rectifications.acknowledged(id);
                let digest =
                    pods_policy::audit::to_hex(&pods_policy::subject_digest(&pair.subject));
                // `done: false`: the answer was to corrections since merged with newer ones.
                let detail = serde_json::json!({
                    "subject": digest, "peer": pair.peer, "atoms": atoms, "done": done,
                });
                if let Err(e) = self
                    .audit
                    .record("node", "subject.rectify.acknowledged", detail)
                {
                    tracing::error!(error = %e, "a rectification's answer could not be audited");
                }
                tracing::info!(subject = %digest, peer = %pair.peer, atoms, "a peer corrected its copies");
                if !done {
                    // More corrections were queued while this one travelled: they go next.
                    self.rectifications_changed();
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "a rectification's answer could not be recorded; it is asked again");
                self.rectifications.failed(id, now);
            }
        }
    }

    /// The peer refused the rectification request `id` for good (it mirrors nothing from this
    /// node, or not any more): dropped, and audited.
    fn rectification_refused(&mut self, id: u64, pair: &Pair, e: &WireError) {
        tracing::warn!(peer = %pair.peer, error = %e, "a peer refused to correct its copies");
        if let Err(err) = self
            .privacy
            .rectification_refused(&pair.subject, &pair.peer)
        {
            tracing::error!(error = %err, "a refused rectification could not be dropped; it is asked again");
            return self.rectifications.failed(id, Instant::now());
        }
        self.rectifications.acknowledged(id);
        let digest = pods_policy::audit::to_hex(&pods_policy::subject_digest(&pair.subject));
        let detail = serde_json::json!({"subject": digest, "peer": pair.peer, "error": e.message});
        if let Err(err) = self.audit.record("node", "subject.rectify.refused", detail) {
            tracing::error!(error = %err, "a refused rectification could not be audited");
        }
    }
}
