//! Ask deadlines: every ask routed to a portal gets one; an ask still unanswered when it passes
//! is answered with [`AskError::Timeout`], once, and a reply arriving later finds no
//! continuation waiting and is dropped. Time is real in the threaded runtime and virtual in the
//! deterministic one, which moves it to the next deadline when nothing else can run.

use std::collections::{BTreeSet, HashMap};
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

/// The deadlines of the asks in flight.
pub(crate) struct Deadlines {
    /// How long an ask waits for its reply; `None`: forever.
    limit: Option<Duration>,
    clock: Clock,
    order: BTreeSet<(Duration, AskId)>,
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
            order: BTreeSet::new(),
            waiting: HashMap::default(),
        }
    }

    /// Changes how long asks routed from now on wait.
    pub(crate) fn set_limit(&mut self, limit: Option<Duration>) {
        self.limit = limit;
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
        if let Some(old) = self.waiting.insert(ask.id, waiting) {
            self.order.remove(&(old.at, ask.id));
        }
        self.order.insert((at, ask.id));
    }

    /// Stops the clock of `ask`: its reply (or error) is on its way.
    pub(crate) fn answered(&mut self, ask: &AskId) {
        if let Some(w) = self.waiting.remove(ask) {
            self.order.remove(&(w.at, *ask));
        }
    }

    /// Whether an ask is waiting for its reply.
    pub(crate) fn pending(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// How long until the next deadline passes (zero if one has), if an ask is waiting.
    pub(crate) fn next_in(&self) -> Option<Duration> {
        let (at, _) = self.order.first()?;
        Some(at.saturating_sub(self.now()))
    }

    /// Moves virtual time to the next deadline (no effect on real time); whether one exists.
    pub(crate) fn skip_to_next(&mut self) -> bool {
        let Some(&(at, _)) = self.order.first() else {
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
        while let Some(&(at, id)) = self.order.first() {
            if at > now {
                break;
            }
            self.order.pop_first();
            if let Some(w) = self.waiting.remove(&id) {
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
    fn without_a_limit_asks_wait_forever() {
        let mut d = Deadlines::virtual_time(None);
        d.watch(&ask(0));
        assert!(!d.pending());
        assert_eq!(d.next_in(), None);
    }
}
