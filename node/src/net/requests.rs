//! Requests about a data subject that this node owes its peers (one machine for erasures,
//! another for rectifications), as a pure state machine: pending (subject, peer) pairs in,
//! requests out, acknowledgements and failures back in, `now` passed in.
//!
//! The pairs come from `policy.db` (the erasures or rectifications whose peers have not
//! acknowledged), so a restart picks them up again. One request per pair is in flight at a time; a failure (no
//! connection, a timeout, a refusal, a bad acknowledgement) sends it again after an
//! exponential backoff, capped at [`MAX_BACKOFF`], until the peer acknowledges. Each pair's
//! acknowledgement is reported once.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// First wait before a request is sent again; it doubles with each failure in a row.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// Longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Most requests in flight at once.
pub const MAX_IN_FLIGHT: usize = 64;
/// Most pairs tracked at once (the rest are taken as earlier ones finish).
pub const MAX_PAIRS: usize = 4096;

/// A subject a peer owes an erasure or a rectification of.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pair {
    /// The subject's id.
    pub subject: String,
    /// The peer's name.
    pub peer: String,
}

impl From<(String, String)> for Pair {
    /// A (subject, peer) pair as `policy.db` lists them.
    fn from((subject, peer): (String, String)) -> Pair {
        Pair { subject, peer }
    }
}

/// What the shell must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Ask `pair.peer` about `pair.subject`; report the outcome with `id`.
    Send {
        /// Correlates the outcome ([`PeerRequests::acknowledged`], [`PeerRequests::failed`]).
        id: u64,
        /// What to ask.
        pair: Pair,
    },
}

#[derive(Debug)]
struct Entry {
    /// The request in flight, if any.
    in_flight: Option<u64>,
    /// No request before this.
    not_before: Instant,
    failures: u32,
}

/// The requests of one kind owed to peers.
#[derive(Debug, Default)]
pub struct PeerRequests {
    pairs: BTreeMap<Pair, Entry>,
    sent: HashMap<u64, Pair>,
    next_id: u64,
}

impl PeerRequests {
    /// Takes the pairs still pending in `policy.db`: new ones are due now, and the ones no
    /// longer listed (acknowledged elsewhere, or gone) are dropped.
    pub fn sync(&mut self, pending: impl IntoIterator<Item = Pair>, now: Instant) {
        let listed: BTreeMap<Pair, ()> = pending
            .into_iter()
            .take(MAX_PAIRS)
            .map(|p| (p, ()))
            .collect();
        self.pairs.retain(|p, _| listed.contains_key(p));
        self.sent.retain(|_, p| listed.contains_key(p));
        for (p, ()) in listed {
            self.pairs.entry(p).or_insert(Entry {
                in_flight: None,
                not_before: now,
                failures: 0,
            });
        }
    }

    /// The requests due at `now` (at most [`MAX_IN_FLIGHT`] in flight).
    pub fn poll(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        for (pair, e) in &mut self.pairs {
            if self.sent.len() >= MAX_IN_FLIGHT {
                break;
            }
            if e.in_flight.is_some() || e.not_before > now {
                continue;
            }
            let id = self.next_id;
            self.next_id += 1;
            e.in_flight = Some(id);
            self.sent.insert(id, pair.clone());
            out.push(Action::Send {
                id,
                pair: pair.clone(),
            });
        }
        out
    }

    /// The request `id` was acknowledged: returns its pair the first time, `None` for an id
    /// that is not in flight (a late duplicate, or a pair dropped meanwhile).
    pub fn acknowledged(&mut self, id: u64) -> Option<Pair> {
        let pair = self.sent.remove(&id)?;
        self.pairs.remove(&pair);
        Some(pair)
    }

    /// The request `id` failed: its pair goes again after a backoff.
    pub fn failed(&mut self, id: u64, now: Instant) {
        let Some(pair) = self.sent.remove(&id) else {
            return;
        };
        if let Some(e) = self.pairs.get_mut(&pair) {
            e.in_flight = None;
            e.failures = e.failures.saturating_add(1);
            e.not_before = now + backoff(e.failures);
        }
    }

    /// `peer` connected (again): its pairs waiting for a backoff are due now, with their
    /// failures forgotten, so a peer back after a long outage is not kept waiting up to
    /// [`MAX_BACKOFF`] more.
    pub fn connected(&mut self, peer: &str, now: Instant) {
        for (pair, e) in &mut self.pairs {
            if pair.peer == peer && e.in_flight.is_none() {
                e.not_before = e.not_before.min(now);
                e.failures = 0;
            }
        }
    }

    /// The request `id`'s pair, while it is in flight.
    pub fn pair(&self, id: u64) -> Option<&Pair> {
        self.sent.get(&id)
    }

    /// When a request waiting for its backoff is due next.
    pub fn next_wakeup(&self) -> Option<Instant> {
        self.pairs
            .values()
            .filter(|e| e.in_flight.is_none())
            .map(|e| e.not_before)
            .min()
    }

    /// The pairs not acknowledged yet.
    pub fn pending(&self) -> impl Iterator<Item = &Pair> {
        self.pairs.keys()
    }
}

/// The wait after `failures` failures in a row.
pub fn backoff(failures: u32) -> Duration {
    let doubled = FIRST_BACKOFF.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    doubled.min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests;
