//! Erasure between nodes, in the shell: answering a peer's erasure request (erase here, which
//! lists this node's own recipients in turn, audit it, answer with a signed acknowledgement),
//! and driving the [`PeerRequests`](super::requests::PeerRequests) state machine for the requests this
//! node owes its peers.

use std::time::Instant;

use libp2p::PeerId;
use libp2p::request_response::ResponseChannel;
use tokio::sync::mpsc::UnboundedSender;

use super::requests::{Action, Pair};
use super::shell::{Command, Sent, Shell};
use super::wire::{self, ErrorCode, Frame, Request, RequestBody, Response, VERSION, WireError};
use crate::privacy::Acknowledgement;

/// Most peers' erasure and rectification requests carried out at once; more get `Busy`.
pub(super) const MAX_CARRIED: usize = 16;

/// The answer to a peer's request carried out off the swarm's task: what the task sends, or
/// `Unavailable` if it ends without answering (it panicked), so that the request's place is
/// freed either way and the peer asks again.
pub(super) struct Answer {
    key: u64,
    tx: UnboundedSender<Command>,
    sent: bool,
}

impl Answer {
    pub(super) fn new(key: u64, tx: UnboundedSender<Command>) -> Answer {
        Answer {
            key,
            tx,
            sent: false,
        }
    }

    /// Sends `response` to the peer (through [`Command::Answered`]).
    pub(super) fn send(mut self, response: Response) {
        self.sent = true;
        let _ = self.tx.send(Command::Answered {
            key: self.key,
            response,
        });
    }
}

impl Drop for Answer {
    fn drop(&mut self) {
        if !self.sent {
            let response = Response::Refused(WireError::new(
                ErrorCode::Unavailable,
                "the request failed here; ask again",
            ));
            let _ = self.tx.send(Command::Answered {
                key: self.key,
                response,
            });
        }
    }
}

impl Shell {
    /// A peer asks this node to erase `subject` (any peer of `pods.toml`: `request_in` refused
    /// the others already): erased off the swarm's task, then answered (through
    /// [`Command::Answered`]).
    pub(super) fn erase_in(
        &mut self,
        peer: PeerId,
        name: &str,
        subject: String,
        channel: ResponseChannel<Frame>,
    ) {
        if self.subject_channels.len() >= MAX_CARRIED {
            let r = Response::Refused(WireError::new(
                ErrorCode::Busy,
                "too many erasure and rectification requests in progress here",
            ));
            return self.send_response(channel, &r);
        }
        let answer = Answer::new(self.park(channel), self.tx.clone());
        let (privacy, audit, tx) = (self.privacy.clone(), self.audit.clone(), self.tx.clone());
        let node = self.swarm.local_peer_id().to_string();
        let actor = format!("peer:{name}");
        tokio::task::spawn_blocking(move || {
            let response = match privacy.erase(&subject, &node, &audit) {
                Ok(receipt) => {
                    let detail = serde_json::json!({
                        "subject": receipt.subject, "erased": receipt.erased,
                        "pending": receipt.pending_peers(),
                    });
                    if let Err(e) = audit.record(&actor, "subject.erase", detail) {
                        tracing::error!(error = %e, "a peer's erasure request could not be audited");
                    }
                    Response::Erased(Acknowledgement::of(&receipt, &audit))
                }
                Err(e) => {
                    tracing::error!(%peer, error = %e, "a peer's erasure request failed here");
                    Response::Refused(WireError::new(ErrorCode::Unavailable, e.to_string()))
                }
            };
            answer.send(response);
            let _ = tx.send(Command::ErasuresChanged);
        });
    }

    /// Keeps `channel` until the request is carried out off the swarm's task; its key.
    pub(super) fn park(&mut self, channel: ResponseChannel<Frame>) -> u64 {
        let key = self.next_subject_request;
        self.next_subject_request += 1;
        self.subject_channels.insert(key, channel);
        key
    }

    /// Sends the answer to the erasure or rectification request `key`.
    pub(super) fn subject_answered(&mut self, key: u64, response: Response) {
        self.rectifying.remove(&key);
        if let Some(channel) = self.subject_channels.remove(&key) {
            self.send_response(channel, &response);
        }
    }

    /// Takes the pending pairs from `policy.db` again and sends what is due.
    pub(super) fn erasures_changed(&mut self) {
        match self.privacy.pending_peer_erasures() {
            Ok(pairs) => self
                .erasures
                .sync(pairs.into_iter().map(Pair::from), Instant::now()),
            Err(e) => tracing::error!(error = %e, "cannot read the pending erasure requests"),
        }
        self.erasures_due();
    }

    /// Sends the erasure requests that are due.
    pub(super) fn erasures_due(&mut self) {
        let now = Instant::now();
        for Action::Send { id, pair } in self.erasures.poll(now) {
            let Some((peer_id, _)) = self.by_name.get(&pair.peer) else {
                tracing::debug!(peer = %pair.peer, "an erasure request waits for an unknown peer");
                self.erasures.failed(id, now);
                continue;
            };
            let request = Request {
                version: VERSION,
                body: RequestBody::Erase {
                    subject: pair.subject,
                },
            };
            let frame = Frame::Bytes(wire::encode(&request));
            let rid = self.swarm.behaviour_mut().rr.send_request(peer_id, frame);
            self.batches.insert(rid, Sent::Erase(id));
        }
    }

    /// The answer to the erasure request `id`: a verified acknowledgement is recorded (the
    /// receipt is re-signed); anything else is retried after a backoff.
    pub(super) fn erasure_response(&mut self, id: u64, response: Response) {
        let now = Instant::now();
        let Some(pair) = self.erasures.pair(id).cloned() else {
            return;
        };
        let ack = match response {
            Response::Erased(ack) => ack,
            Response::Refused(e) => {
                tracing::debug!(peer = %pair.peer, error = %e, "an erasure request was refused; it goes again");
                return self.erasures.failed(id, now);
            }
            _ => return self.erasures.failed(id, now),
        };
        let digest = pods_policy::audit::to_hex(&pods_policy::subject_digest(&pair.subject));
        let checked = match self.by_name.get(&pair.peer) {
            Some((peer_id, _)) => ack.verify(peer_id, &digest),
            None => Err(crate::error::NodeError::Privacy("the peer is gone".into())),
        };
        if let Err(e) = checked {
            tracing::warn!(peer = %pair.peer, error = %e, "an erasure acknowledgement was rejected");
            return self.erasures.failed(id, now);
        }
        match self
            .privacy
            .acknowledge(&pair.subject, &pair.peer, &ack, &self.audit)
        {
            Ok(done) => {
                self.erasures.acknowledged(id);
                if let Some(receipt) = done {
                    let detail = serde_json::json!({
                        "subject": digest, "peer": pair.peer, "pending": receipt.pending(),
                    });
                    if let Err(e) = self
                        .audit
                        .record("node", "subject.erase.acknowledged", detail)
                    {
                        tracing::error!(error = %e, "an acknowledgement could not be audited");
                    }
                    tracing::info!(subject = %digest, peer = %pair.peer, "a peer acknowledged an erasure");
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "an acknowledgement could not be recorded; it is asked again");
                self.erasures.failed(id, now);
            }
        }
    }
}
