//! Ask deadlines: every ask routed to a portal gets one; an ask still unanswered when it passes
//! is answered with [`AskError::Timeout`], once, and a reply arriving later finds no
//! continuation waiting and is dropped. Time is real in the threaded runtime and virtual in the
//! deterministic one, which moves it to the next deadline when nothing else can run.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::data::MixBuild;
use crate::error::AskError;
use crate::path::Path;
use crate::portal::{AskId, AskMsg, Origin, ReplyMsg};

/// Where time comes from.
enum Clock {
    /// Wall-clock time since this instant.
    Real(Instant),
    /// Time that moves only when told to.
    Virtual(Duration),
}

/// An ask waiting for its reply.
struct Waiting {
    at: Duration,
    to: Origin,
    portal: Path,
}

/// The deadlines of the asks in flight. Asks get deadlines in the order they are routed, with
/// one limit, so a queue keeps them in deadline order; an answered ask leaves the map at once
/// and the queue when it reaches the front (entries at the front are dropped as soon as their
/// asks are answered, so the queue stays as long as the asks really in flight, plus the
/// answered ones behind an older one still waiting).
pub(crate) struct Deadlines {
    /// How long an ask waits for its reply; `None`: forever.
    limit: Option<Duration>,
    clock: Clock,
    order: VecDeque<(Duration, AskId)>,
    waiting: HashMap<AskId, Waiting, MixBuild>,
}

impl Deadlines {
    /// Deadlines `limit` after each ask, in wall-clock time.
    pub(crate) fn real(limit: Option<Duration>) -> Deadlines {
        Deadlines::with_clock(limit, Clock::Real(Instant::now()))
    }

    /// Deadlines `limit` after each ask, in virtual time starting at zero.
    pub(crate) fn virtual_time(limit: Option<Duration>) -> Deadlines {
        Deadlines::with_clock(limit, Clock::Virtual(Duration::ZERO))
    }

    fn with_clock(limit: Option<Duration>, clock: Clock) -> Deadlines {
        Deadlines {
            limit,
            clock,
            order: VecDeque::new(),
            waiting: HashMap::default(),
        }
    }

    /// Changes how long asks routed from now on wait (a shorter limit than before times out
    /// asks behind longer-waiting ones only when those are due).
    pub(crate) fn set_limit(&mut self, limit: Option<Duration>) {
        self.limit = limit;
    }

    /// How long asks routed now wait for their reply; `None`: forever.
    pub(crate) fn limit(&self) -> Option<Duration> {
        self.limit
    }

    fn now(&self) -> Duration {
        match &self.clock {
            Clock::Real(base) => base.elapsed(),
            Clock::Virtual(now) => *now,
        }
    }

    /// Starts the clock of `ask` (routed now).
    pub(crate) fn watch(&mut self, ask: &AskMsg) {
        let Some(limit) = self.limit else { return };
        let at = self.now().saturating_add(limit);
        let waiting = Waiting {
            at,
            to: ask.from.clone(),
            portal: ask.portal.clone(),
        };
        self.waiting.insert(ask.id, waiting);
        self.order.push_back((at, ask.id));
    }

    /// Stops the clock of `ask`: its reply (or error) is on its way.
    pub(crate) fn answered(&mut self, ask: &AskId) {
        if self.waiting.remove(ask).is_some() {
            self.drop_answered();
            // Answered asks behind one still waiting stay queued; when they outnumber the
            // waiting ones, the queue keeps only those (so one stuck ask cannot make it grow
            // with every ask answered meanwhile).
            if self.order.len() > 2 * self.waiting.len() + 1_024 {
                let waiting = &self.waiting;
                self.order
                    .retain(|(at, id)| waiting.get(id).is_some_and(|w| w.at == *at));
            }
        }
    }

    /// Drops the entries at the front of the queue whose asks were answered (or watched again
    /// later, which queued another entry).
    fn drop_answered(&mut self) {
        while let Some((at, id)) = self.order.front() {
            match self.waiting.get(id) {
                Some(w) if w.at == *at => break,
                _ => {
                    self.order.pop_front();
                }
            }
        }
    }

    /// Whether an ask is waiting for its reply.
    pub(crate) fn pending(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// How long until the next deadline passes (zero if one has), if an ask is waiting.
    pub(crate) fn next_in(&self) -> Option<Duration> {
        let (at, _) = self.order.front()?;
        Some(at.saturating_sub(self.now()))
    }

    /// Moves virtual time to the next deadline (no effect on real time); whether one exists.
    pub(crate) fn skip_to_next(&mut self) -> bool {
        let Some(&(at, _)) = self.order.front() else {
            return false;
        };
        if let Clock::Virtual(now) = &mut self.clock {
            *now = (*now).max(at);
        }
        true
    }

    /// The timeout answers of every ask whose deadline has passed.
    pub(crate) fn expired(&mut self) -> Vec<ReplyMsg> {
        let now = self.now();
        let mut out = Vec::new();
        self.drop_answered();
        while let Some(&(at, id)) = self.order.front() {
            if at > now {
                break;
            }
            self.order.pop_front();
            let due = self.waiting.get(&id).is_some_and(|w| w.at == at);
            if due && let Some(w) = self.waiting.remove(&id) {
                let after_ms = self.limit.map_or(0, |l| l.as_millis() as u64);
                out.push(ReplyMsg {
                    id,
                    to: w.to,
                    reply: Err(AskError::Timeout {
                        portal: w.portal.to_string(),
                        after_ms,
                    }),
                    envelope: None,
                });
            }
            self.drop_answered();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(seq: u32) -> AskMsg {
        AskMsg {
            id: AskId {
                origin: 1,
                scope: 2,
                partition: 0,
                seq,
            },
            portal: Path::placeholder("/a/portals/p"),
            from: Origin {
                workflow: Path::placeholder("/a/workflows/w"),
                partition: 0,
                task: 1,
            },
            request: Box::new(()),
            envelope: None,
        }
    }

    #[test]
    fn an_unanswered_ask_times_out_once_and_an_answered_one_never() {
        let mut d = Deadlines::virtual_time(Some(Duration::from_millis(100)));
        d.watch(&ask(0));
        d.watch(&ask(1));
        d.answered(&ask(1).id);
        assert!(d.expired().is_empty(), "nothing is due before the deadline");
        assert_eq!(d.next_in(), Some(Duration::from_millis(100)));
        assert!(d.skip_to_next());
        let out = d.expired();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].id, ask(0).id);
        assert!(matches!(
            &out[0].reply,
            Err(AskError::Timeout { after_ms: 100, .. })
        ));
        assert!(d.expired().is_empty(), "a timeout is given once");
        assert!(!d.pending());
        assert!(!d.skip_to_next());
    }

    #[test]
    fn answered_asks_leave_the_queue_from_its_front() {
        let mut d = Deadlines::virtual_time(Some(Duration::from_millis(100)));
        for seq in 0..1_000 {
            d.watch(&ask(seq));
        }
        d.answered(&ask(1).id);
        assert_eq!(
            d.order.len(),
            1_000,
            "behind a waiting ask, an answered one stays"
        );
        d.answered(&ask(0).id);
        assert_eq!(d.order.len(), 998, "both leave once the front is answered");
        for seq in 2..1_000 {
            d.answered(&ask(seq).id);
        }
        assert!(d.order.is_empty() && !d.pending());
    }

    #[test]
    fn one_stuck_ask_does_not_keep_every_answered_one_queued() {
        let mut d = Deadlines::virtual_time(Some(Duration::from_secs(30)));
        d.watch(&ask(0));
        for seq in 1..100_000 {
            d.watch(&ask(seq));
            d.answered(&ask(seq).id);
        }
        assert!(d.order.len() <= 1_026, "{} entries queued", d.order.len());
        assert!(d.pending());
        assert!(d.skip_to_next());
        assert_eq!(d.expired().len(), 1, "the stuck ask still times out");
    }

    #[test]
    fn without_a_limit_asks_wait_forever() {
        let mut d = Deadlines::virtual_time(None);
        d.watch(&ask(0));
        assert!(!d.pending());
        assert_eq!(d.next_in(), None);
    }
}
