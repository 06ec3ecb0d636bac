//! Asks this node sends to peers' portals, as a pure state machine: asks in, wire batches and
//! answers out. An ask is sent again, with exponential backoff, after a lost connection or a
//! transient refusal, until it is answered or its deadline passes (then the runtime gives its
//! continuation `Timeout`); the same id every time, so the peer applies it once.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use pods_sdk::{AskId, Envelope};

use super::wire::{ErrorCode, Response, WireAsk, WireError};

/// First wait before an ask is sent again; it doubles with each attempt.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// Longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// An ask to a peer's portal, as the runtime hands it over.
#[derive(Clone, Debug, PartialEq)]
pub struct RemoteAsk {
    /// Its id.
    pub id: AskId,
    /// The peer's name (from `/peers/<name>/...`).
    pub peer: String,
    /// The portal's path at the peer.
    pub portal: String,
    /// The request, CBOR-encoded.
    pub request: Vec<u8>,
    /// The request's envelope.
    pub envelope: Option<Envelope>,
    /// When the runtime stops waiting for it.
    pub deadline: Instant,
}

/// What the shell must do.
#[derive(Debug, PartialEq)]
pub enum Action {
    /// Send these asks to `peer` as one request; report its fate with `batch`.
    Send {
        /// Correlates the response ([`Outbox::on_response`]).
        batch: u64,
        /// The peer's name.
        peer: String,
        /// The asks.
        asks: Vec<WireAsk>,
    },
    /// Give the runtime this outcome of ask `id`.
    Answer {
        /// The ask.
        id: AskId,
        /// Where it went: `/peers/<name>/<path there>`.
        portal: String,
        /// The reply's CBOR, or why there is none.
        result: Result<Vec<u8>, WireError>,
    },
}

struct Pending {
    ask: RemoteAsk,
    attempt: u32,
    /// The batch it was last sent in, while that is in flight.
    batch: Option<u64>,
}

/// The asks in flight to peers.
#[derive(Default)]
pub struct Outbox {
    pending: HashMap<AskId, Pending>,
    batches: HashMap<u64, Vec<AskId>>,
    /// Asks waiting to be sent again, by when.
    retries: BTreeSet<(Instant, AskId)>,
    next_batch: u64,
}

impl Outbox {
    /// Takes new asks and sends them, one batch per peer.
    pub fn submit(&mut self, asks: Vec<RemoteAsk>) -> Vec<Action> {
        let mut ids = Vec::with_capacity(asks.len());
        for ask in asks {
            let id = ask.id;
            // The same id again (a replayed atom): one ask, sent once more.
            if let Some(p) = self.pending.get(&id)
                && p.batch.is_some()
            {
                continue;
            }
            self.pending.insert(
                id,
                Pending {
                    ask,
                    attempt: 0,
                    batch: None,
                },
            );
            ids.push(id);
        }
        self.send(ids)
    }

    /// Handles the response to `batch`: answers, and transient refusals to send again.
    pub fn on_response(&mut self, batch: u64, response: Response, now: Instant) -> Vec<Action> {
        let Some(ids) = self.batches.remove(&batch) else {
            return Vec::new();
        };
        let outcomes: Vec<Result<Vec<u8>, WireError>> = match response {
            Response::Replies(r) if r.len() == ids.len() => r,
            Response::Replies(r) => {
                let e = WireError::new(
                    ErrorCode::Malformed,
                    format!("{} replies to {} asks", r.len(), ids.len()),
                );
                vec![Err(e); ids.len()]
            }
            Response::Refused(e) => vec![Err(e); ids.len()],
            Response::Atoms(_) => {
                let e = WireError::new(ErrorCode::Malformed, "atoms in answer to asks");
                vec![Err(e); ids.len()]
            }
        };
        let mut out = Vec::new();
        for (id, outcome) in ids.into_iter().zip(outcomes) {
            match outcome {
                Err(e) if e.code.is_transient() => self.later(id, now),
                result => {
                    if let Some(p) = self.pending.remove(&id) {
                        let portal = format!("/peers/{}{}", p.ask.peer, p.ask.portal);
                        out.push(Action::Answer { id, portal, result });
                    }
                }
            }
        }
        out
    }

    /// Handles a lost request (no connection, a timeout, a reset stream): its asks go again later.
    pub fn on_failure(&mut self, batch: u64, now: Instant) {
        for id in self.batches.remove(&batch).unwrap_or_default() {
            self.later(id, now);
        }
    }

    /// Sends the asks whose wait is over; forgets those past their deadline.
    pub fn poll(&mut self, now: Instant) -> Vec<Action> {
        let mut due = Vec::new();
        while let Some(&(at, id)) = self.retries.first() {
            if at > now {
                break;
            }
            self.retries.pop_first();
            match self.pending.get(&id) {
                Some(p) if p.ask.deadline <= now => {
                    self.pending.remove(&id);
                }
                Some(_) => due.push(id),
                None => {}
            }
        }
        self.send(due)
    }

    /// When [`Outbox::poll`] has something to do next.
    pub fn next_wakeup(&self) -> Option<Instant> {
        self.retries.first().map(|(at, _)| *at)
    }

    /// Asks not yet answered.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether every ask was answered or given up.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    fn later(&mut self, id: AskId, now: Instant) {
        let Some(p) = self.pending.get_mut(&id) else {
            return;
        };
        p.batch = None;
        let wait = FIRST_BACKOFF
            .saturating_mul(1u32 << p.attempt.min(16))
            .min(MAX_BACKOFF);
        p.attempt += 1;
        let at = (now + wait).min(p.ask.deadline);
        self.retries.insert((at, id));
    }

    fn send(&mut self, ids: Vec<AskId>) -> Vec<Action> {
        let mut by_peer: Vec<(String, Vec<AskId>)> = Vec::new();
        for id in ids {
            let Some(p) = self.pending.get(&id) else {
                continue;
            };
            match by_peer.iter_mut().find(|(peer, _)| *peer == p.ask.peer) {
                Some((_, v)) => v.push(id),
                None => by_peer.push((p.ask.peer.clone(), vec![id])),
            }
        }
        let mut out = Vec::new();
        for (peer, ids) in by_peer {
            let batch = self.next_batch;
            self.next_batch += 1;
            let mut asks = Vec::with_capacity(ids.len());
            for id in &ids {
                if let Some(p) = self.pending.get_mut(id) {
                    p.batch = Some(batch);
                    asks.push(WireAsk {
                        id: *id,
                        portal: p.ask.portal.clone(),
                        request: p.ask.request.clone(),
                        envelope: p.ask.envelope.clone(),
                    });
                }
            }
            self.batches.insert(batch, ids);
            out.push(Action::Send { batch, peer, asks });
        }
        out
    }
}

#[cfg(test)]
mod tests;
