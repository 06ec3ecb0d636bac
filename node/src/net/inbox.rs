//! Requests peers send to this node's portals, as a pure state machine: it bounds each peer's
//! requests in flight, joins an ask that arrives again while it is still open to the first
//! (so a replier never sees it twice), and assembles each request's response once every ask
//! in it has its outcome.

use std::collections::HashMap;
use std::hash::Hash;

use pods_sdk::AskId;

use super::wire::{ErrorCode, Response, WireError};

/// A request's response, ready to send.
#[derive(Debug, PartialEq)]
pub struct Done {
    /// The request ([`Inbox::begin`] returned it).
    pub request: u64,
    /// Its response.
    pub response: Response,
}

struct Open<P> {
    peer: P,
    slots: Vec<Option<Result<Vec<u8>, WireError>>>,
    left: usize,
}

/// The requests' slots waiting for one ask's outcome: mostly one, kept without a heap block.
struct Waiters {
    first: (u64, usize),
    more: Vec<(u64, usize)>,
}

/// Inbound requests in flight.
pub struct Inbox<P> {
    limit: usize,
    per_peer: HashMap<P, usize>,
    requests: HashMap<u64, Open<P>>,
    /// Asks handed to the runtime and not answered yet: who waits for each.
    waiting: HashMap<AskId, Waiters, foldhash::fast::RandomState>,
    next: u64,
}

impl<P: Clone + Eq + Hash> Inbox<P> {
    /// An inbox allowing each peer `limit` requests in flight.
    pub fn new(limit: usize) -> Inbox<P> {
        Inbox {
            limit,
            per_peer: HashMap::new(),
            requests: HashMap::new(),
            waiting: HashMap::default(),
            next: 0,
        }
    }

    /// Admits a request of `asks` asks from `peer`, or refuses it with `Busy`.
    pub fn begin(&mut self, peer: &P, asks: usize) -> Result<u64, WireError> {
        let count = self.per_peer.get(peer).copied().unwrap_or(0);
        if count >= self.limit {
            return Err(WireError::new(
                ErrorCode::Busy,
                format!(
                    "{count} requests of yours are in flight here, the most allowed; retry later"
                ),
            ));
        }
        self.per_peer.insert(peer.clone(), count + 1);
        let request = self.next;
        self.next += 1;
        self.requests.insert(
            request,
            Open {
                peer: peer.clone(),
                slots: vec![None; asks],
                left: asks,
            },
        );
        Ok(request)
    }

    /// Gives ask `index` of `request` its outcome now (refused, or answered from what the store
    /// kept).
    pub fn settle(
        &mut self,
        request: u64,
        index: usize,
        outcome: Result<Vec<u8>, WireError>,
    ) -> Option<Done> {
        self.fill(request, index, outcome);
        self.finish(request)
    }

    /// Makes ask `index` of `request` wait for the runtime's answer to `id`; true if `id` is
    /// new and must be handed to the runtime, false if it joined the same ask already open.
    pub fn wait(&mut self, request: u64, index: usize, id: AskId) -> bool {
        match self.waiting.entry(id) {
            std::collections::hash_map::Entry::Occupied(mut w) => {
                w.get_mut().more.push((request, index));
                false
            }
            std::collections::hash_map::Entry::Vacant(w) => {
                w.insert(Waiters {
                    first: (request, index),
                    more: Vec::new(),
                });
                true
            }
        }
    }

    /// Whether every ask of `request` has its outcome; if so, its response (the request ends).
    pub fn finish(&mut self, request: u64) -> Option<Done> {
        if self.requests.get(&request)?.left > 0 {
            return None;
        }
        let open = self.requests.remove(&request)?;
        if let Some(c) = self.per_peer.get_mut(&open.peer) {
            *c -= 1;
            if *c == 0 {
                self.per_peer.remove(&open.peer);
            }
        }
        let replies = open
            .slots
            .into_iter()
            .map(|s| s.unwrap_or_else(|| Err(WireError::new(ErrorCode::Unavailable, "no outcome"))))
            .collect();
        Some(Done {
            request,
            response: Response::Replies(replies),
        })
    }

    /// The runtime answered `id`: every request waiting for it gets the outcome; returns those
    /// now complete.
    pub fn answered(&mut self, id: AskId, outcome: Result<Vec<u8>, WireError>) -> Vec<Done> {
        let mut done = Vec::new();
        let Some(Waiters { first, mut more }) = self.waiting.remove(&id) else {
            return done;
        };
        // In order; the last waiter (mostly the only one) takes the outcome, the others copies.
        let last = more.pop();
        let (copies, last) = match last {
            Some(last) => (std::iter::once(first).chain(more).collect(), last),
            None => (Vec::new(), first),
        };
        for (request, index) in copies {
            self.fill(request, index, outcome.clone());
            done.extend(self.finish(request));
        }
        let (request, index) = last;
        self.fill(request, index, outcome);
        done.extend(self.finish(request));
        done
    }

    /// Requests in flight from `peer`.
    pub fn in_flight(&self, peer: &P) -> usize {
        self.per_peer.get(peer).copied().unwrap_or(0)
    }

    fn fill(&mut self, request: u64, index: usize, outcome: Result<Vec<u8>, WireError>) {
        if let Some(open) = self.requests.get_mut(&request)
            && let Some(slot) = open.slots.get_mut(index)
            && slot.is_none()
        {
            *slot = Some(outcome);
            open.left -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(seq: u32) -> AskId {
        AskId {
            origin: 1,
            scope: 2,
            partition: 0,
            seq,
        }
    }

    #[test]
    fn a_request_completes_when_every_ask_has_its_outcome() {
        let mut inbox = Inbox::new(4);
        let r = inbox.begin(&"bob", 3).unwrap();
        let refused = WireError::new(ErrorCode::NotAllowed, "no");
        assert_eq!(inbox.settle(r, 1, Err(refused.clone())), None);
        assert!(inbox.wait(r, 0, id(0)));
        assert!(inbox.wait(r, 2, id(2)));
        assert_eq!(inbox.answered(id(2), Ok(vec![2])), vec![]);
        let done = inbox.answered(id(0), Ok(vec![0]));
        assert_eq!(
            done,
            vec![Done {
                request: r,
                response: Response::Replies(vec![Ok(vec![0]), Err(refused), Ok(vec![2])])
            }]
        );
        assert_eq!(inbox.in_flight(&"bob"), 0);
    }

    #[test]
    fn an_ask_arriving_again_while_open_joins_the_first() {
        let mut inbox = Inbox::new(4);
        let a = inbox.begin(&"bob", 1).unwrap();
        let b = inbox.begin(&"bob", 1).unwrap();
        assert!(inbox.wait(a, 0, id(5)), "handed to the runtime");
        assert!(!inbox.wait(b, 0, id(5)), "not handed again");
        let done = inbox.answered(id(5), Ok(vec![9]));
        assert_eq!(done.len(), 2);
        assert!(
            done.iter()
                .all(|d| d.response == Response::Replies(vec![Ok(vec![9])]))
        );
    }

    #[test]
    fn a_peer_over_its_limit_is_busy_and_others_are_not() {
        let mut inbox = Inbox::new(2);
        let first = inbox.begin(&"bob", 0).unwrap();
        inbox.begin(&"bob", 1).unwrap();
        assert_eq!(
            inbox.begin(&"bob", 1).map_err(|e| e.code),
            Err(ErrorCode::Busy)
        );
        assert!(
            inbox.begin(&"carol", 1).is_ok(),
            "another peer is not held back"
        );
        assert!(
            inbox.finish(first).is_some(),
            "an empty request completes at once"
        );
        assert!(inbox.begin(&"bob", 1).is_ok(), "room again");
    }
}
