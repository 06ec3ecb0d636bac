//! Asks this node sends to peers' portals, as a pure state machine: asks in, wire batches and
//! answers out. Per peer, asks leave in the order they were asked, one batch in flight at a
//! time (what queues meanwhile goes as the next batch), so a replier applies them in order. A
//! batch lost (no connection, a reset stream) or refused for a while (`Busy`, `Unavailable`)
//! goes again, with exponential backoff, ahead of newer asks, until each ask's deadline
//! (then the runtime gives its continuation `Timeout`); the same ids every time, so the peer
//! applies each ask once.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use pods_sdk::{AskId, Envelope};

use super::wire::{ErrorCode, Response, WireAsk, WireError};

/// First wait before a peer's asks are sent again; it doubles with each failure in a row.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// Longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Most asks in one request.
pub const MAX_BATCH: usize = 1024;
/// About the most request bytes in one request (an ask larger than that goes alone).
pub const MAX_BATCH_BYTES: usize = 256 << 10;

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
        /// Where it went, `/peers/<name>/<path there>`, for the error's message (empty with a
        /// reply).
        portal: String,
        /// The reply's CBOR, or why there is none.
        result: Result<Vec<u8>, WireError>,
    },
}

struct Pending {
    ask: RemoteAsk,
    /// Which submission of its id this is: a lane's entry of an earlier one (forgotten at
    /// its deadline, then asked again) is skipped.
    seq: u64,
    /// Sent alone (its batch's response was too large).
    solo: bool,
}

/// One peer's asks: waiting in order, and the batch in flight.
#[derive(Default)]
struct Lane {
    /// Asks by id and submission ([`Pending::seq`]); entries of asks no longer pending wait
    /// here until the lane sends or drops them.
    waiting: VecDeque<(AskId, u64)>,
    in_flight: Option<(u64, Vec<(AskId, u64)>)>,
    /// No batch before this (after failures).
    blocked_until: Option<Instant>,
    failures: u32,
}

/// The asks in flight to peers.
#[derive(Default)]
pub struct Outbox {
    pending: HashMap<AskId, Pending, foldhash::fast::RandomState>,
    /// Every pending ask by deadline, soonest first: what [`Outbox::poll`] forgets and
    /// [`Outbox::next_wakeup`] waits for, without walking all the asks (the shell asks for
    /// the next wakeup after every event).
    deadlines: BTreeSet<(Instant, AskId)>,
    lanes: HashMap<String, Lane>,
    next_batch: u64,
    next_seq: u64,
}

impl Outbox {
    /// Takes new asks; sends them at once to peers with nothing in flight.
    pub fn submit(&mut self, asks: Vec<RemoteAsk>, now: Instant) -> Vec<Action> {
        let mut peers = Vec::new();
        for ask in asks {
            // The same id again (a replayed atom): one ask, already on its way.
            if self.pending.contains_key(&ask.id) {
                continue;
            }
            let seq = self.next_seq;
            self.next_seq += 1;
            match self.lanes.get_mut(&ask.peer) {
                Some(lane) => lane.waiting.push_back((ask.id, seq)),
                None => {
                    let mut lane = Lane::default();
                    lane.waiting.push_back((ask.id, seq));
                    self.lanes.insert(ask.peer.clone(), lane);
                }
            }
            if !peers.contains(&ask.peer) {
                peers.push(ask.peer.clone());
            }
            self.deadlines.insert((ask.deadline, ask.id));
            self.pending.insert(
                ask.id,
                Pending {
                    ask,
                    seq,
                    solo: false,
                },
            );
        }
        let mut out = Vec::new();
        for peer in peers {
            out.extend(self.send(&peer, now));
        }
        out
    }

    /// Handles the response to `batch`: answers; transient refusals wait to go again first.
    pub fn on_response(&mut self, batch: u64, response: Response, now: Instant) -> Vec<Action> {
        let Some((peer, ids)) = self.take_batch(batch) else {
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
            Response::Atoms(_) | Response::Erased(_) | Response::Rectified { .. } => {
                let e = WireError::new(ErrorCode::Malformed, "not replies, in answer to asks");
                vec![Err(e); ids.len()]
            }
        };
        let mut out = Vec::new();
        let mut again = Vec::new();
        for ((id, seq), outcome) in ids.into_iter().zip(outcomes) {
            match outcome {
                Err(e) if e.code.is_transient() => again.push((id, seq)),
                // Too large together (the request, or the replies): each goes alone; alone
                // and still too large, it fails.
                Err(e)
                    if e.code == ErrorCode::TooLarge
                        && self.pending.get(&id).is_some_and(|p| !p.solo) =>
                {
                    if let Some(p) = self.pending.get_mut(&id) {
                        p.solo = true;
                    }
                    again.push((id, seq));
                }
                result => {
                    if let Some(p) = self.pending.remove(&id) {
                        self.deadlines.remove(&(p.ask.deadline, id));
                        // Only an error's message names the portal.
                        let portal = match &result {
                            Ok(_) => String::new(),
                            Err(_) => format!("/peers/{}{}", p.ask.peer, p.ask.portal),
                        };
                        out.push(Action::Answer { id, portal, result });
                    }
                }
            }
        }
        if again.is_empty() {
            if let Some(lane) = self.lanes.get_mut(&peer) {
                lane.failures = 0;
            }
            out.extend(self.send(&peer, now));
        } else {
            self.back_off(&peer, again, now);
        }
        out
    }

    /// Handles a lost request (no connection, a timeout, a reset stream): its asks go again
    /// later, before newer ones.
    pub fn on_failure(&mut self, batch: u64, now: Instant) {
        if let Some((peer, ids)) = self.take_batch(batch) {
            self.back_off(&peer, ids, now);
        }
    }

    /// Forgets the asks past their deadline; sends what waited for a backoff to end. A lane
    /// skips the forgotten asks when it next sends (they are no longer pending).
    pub fn poll(&mut self, now: Instant) -> Vec<Action> {
        while let Some(&(deadline, id)) = self.deadlines.first()
            && deadline <= now
        {
            self.deadlines.pop_first();
            self.pending.remove(&id);
        }
        let peers: Vec<String> = self.lanes.keys().cloned().collect();
        let mut out = Vec::new();
        for peer in peers {
            if let Some(lane) = self.lanes.get_mut(&peer) {
                // Forgotten asks leave the lane when it sends; a lane that cannot send (a peer
                // away) drops them once they outnumber the asks still pending, so the cost is
                // paid once per many asks and the lane stays bounded.
                if lane.waiting.len() > 2 * self.pending.len() + 64 {
                    lane.waiting
                        .retain(|(id, seq)| self.pending.get(id).is_some_and(|p| p.seq == *seq));
                }
                if lane.blocked_until.is_some_and(|t| t <= now) {
                    lane.blocked_until = None;
                }
            }
            out.extend(self.send(&peer, now));
        }
        self.lanes
            .retain(|_, l| !l.waiting.is_empty() || l.in_flight.is_some());
        out
    }

    /// When [`Outbox::poll`] has something to do next: a backoff's end or a deadline. Costs
    /// one step per peer, whatever the number of asks.
    pub fn next_wakeup(&self) -> Option<Instant> {
        let backoffs = self.lanes.values().filter_map(|l| l.blocked_until);
        let deadline = self.deadlines.first().map(|(at, _)| *at);
        backoffs.chain(deadline).min()
    }

    /// Asks not yet answered.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether every ask was answered or given up.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    fn take_batch(&mut self, batch: u64) -> Option<(String, Vec<(AskId, u64)>)> {
        let (peer, lane) = self
            .lanes
            .iter_mut()
            .find(|(_, l)| l.in_flight.as_ref().is_some_and(|(b, _)| *b == batch))?;
        let (_, ids) = lane.in_flight.take()?;
        Some((peer.clone(), ids))
    }

    /// Puts `ids` (still pending) back at the front of `peer`'s lane, in order, and blocks
    /// the lane for a growing wait.
    fn back_off(&mut self, peer: &str, ids: Vec<(AskId, u64)>, now: Instant) {
        let lane = self.lanes.entry(peer.to_owned()).or_default();
        for (id, seq) in ids.into_iter().rev() {
            if self.pending.get(&id).is_some_and(|p| p.seq == seq) {
                lane.waiting.push_front((id, seq));
            }
        }
        let wait = FIRST_BACKOFF
            .saturating_mul(1u32 << lane.failures.min(16))
            .min(MAX_BACKOFF);
        lane.failures += 1;
        lane.blocked_until = Some(now + wait);
    }

    /// Sends `peer`'s next batch if nothing of it is in flight and it is not backing off.
    fn send(&mut self, peer: &str, now: Instant) -> Option<Action> {
        let lane = self.lanes.get_mut(peer)?;
        if lane.in_flight.is_some() || lane.blocked_until.is_some_and(|t| t > now) {
            return None;
        }
        let mut asks = Vec::new();
        let mut ids = Vec::new();
        let mut bytes = 0;
        while let Some(&(id, seq)) = lane.waiting.front() {
            let Some(p) = self.pending.get(&id).filter(|p| p.seq == seq) else {
                lane.waiting.pop_front(); // answered or forgotten meanwhile
                continue;
            };
            let size = p.ask.request.len() + p.ask.portal.len() + 64;
            let full = !ids.is_empty()
                && (p.solo || ids.len() >= MAX_BATCH || bytes + size > MAX_BATCH_BYTES);
            if full {
                break;
            }
            lane.waiting.pop_front();
            bytes += size;
            ids.push((id, seq));
            asks.push(WireAsk {
                id,
                portal: p.ask.portal.clone(),
                request: p.ask.request.clone(),
                envelope: p.ask.envelope.clone(),
            });
            if p.solo {
                break;
            }
        }
        if ids.is_empty() {
            return None;
        }
        let batch = self.next_batch;
        self.next_batch += 1;
        lane.in_flight = Some((batch, ids));
        Some(Action::Send {
            batch,
            peer: peer.to_owned(),
            asks,
        })
    }
}

#[cfg(test)]
mod tests;
