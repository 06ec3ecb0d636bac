//! Streams this node mirrors from peers, as a pure state machine: when to pull which stream
//! from which offset, and what to do with the answer. The shell feeds the atoms to the local
//! external generator (which logs them, so the offset to pull from next is its own next
//! offset, across restarts) and reports back.

use std::time::{Duration, Instant};

use super::wire::{ErrorCode, WireError};

/// Wait before pulling a stream again when the last pull brought nothing new.
pub const IDLE_WAIT: Duration = Duration::from_millis(20);
/// Longest wait after failed pulls.
pub const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Atoms asked per pull.
pub const PULL_ATOMS: u32 = 64;

/// One mirrored stream.
#[derive(Clone, Debug, PartialEq)]
pub struct Mirror {
    /// The peer's name.
    pub peer: String,
    /// The stream's path at the peer.
    pub stream: String,
    /// The local external generator fed with its atoms.
    pub into: String,
    /// When it may be pulled next.
    pub due: Instant,
    /// Whether a pull of it is in flight.
    pub in_flight: bool,
    /// Failed pulls in a row.
    pub failures: u32,
    /// Why it stopped for good (the peer dropped atoms it had not taken, or sent one that does
    /// not decode as the generator's type), if it did.
    pub stopped: Option<String>,
}

/// What the shell must do.
#[derive(Debug, PartialEq, Eq)]
pub struct Pull {
    /// Which mirror (its index).
    pub mirror: usize,
    /// The peer's name.
    pub peer: String,
    /// The stream's path there.
    pub stream: String,
}

/// Every mirrored stream.
#[derive(Default)]
pub struct Pulls {
    mirrors: Vec<Mirror>,
}

impl Pulls {
    /// Mirrors `(peer, stream at the peer, local generator)`, all due now.
    pub fn new(imports: Vec<(String, String, String)>, now: Instant) -> Pulls {
        let mirrors = imports
            .into_iter()
            .map(|(peer, stream, into)| Mirror {
                peer,
                stream,
                into,
                due: now,
                in_flight: false,
                failures: 0,
                stopped: None,
            })
            .collect();
        Pulls { mirrors }
    }

    /// The pulls due now (each marked in flight; the shell reads the offset to pull from).
    pub fn due(&mut self, now: Instant) -> Vec<Pull> {
        let mut out = Vec::new();
        for (i, m) in self.mirrors.iter_mut().enumerate() {
            if !m.in_flight && m.stopped.is_none() && m.due <= now {
                m.in_flight = true;
                out.push(Pull {
                    mirror: i,
                    peer: m.peer.clone(),
                    stream: m.stream.clone(),
                });
            }
        }
        out
    }

    /// A pull brought `atoms` atoms, all taken: pull again at once if any came, else soon.
    pub fn fed(&mut self, mirror: usize, atoms: usize, now: Instant) {
        if let Some(m) = self.mirrors.get_mut(mirror) {
            m.in_flight = false;
            m.failures = 0;
            m.due = if atoms > 0 { now } else { now + IDLE_WAIT };
        }
    }

    /// A pull failed (no connection, a refusal, the generator full): try again later, with
    /// growing waits; `Truncated` stops the mirror for good.
    pub fn failed(&mut self, mirror: usize, error: &WireError, now: Instant) {
        let Some(m) = self.mirrors.get_mut(mirror) else {
            return;
        };
        m.in_flight = false;
        if error.code == ErrorCode::Truncated {
            m.stopped = Some(error.message.clone());
            return;
        }
        let wait = (IDLE_WAIT * 2u32.saturating_pow(m.failures.min(16))).min(MAX_BACKOFF);
        m.failures += 1;
        m.due = now + wait;
    }

    /// Stops a mirror for good, for `why`.
    pub fn stop(&mut self, mirror: usize, why: String) {
        if let Some(m) = self.mirrors.get_mut(mirror) {
            m.in_flight = false;
            m.stopped = Some(why);
        }
    }

    /// When the next pull is due, if any can be.
    pub fn next_wakeup(&self) -> Option<Instant> {
        self.mirrors
            .iter()
            .filter(|m| !m.in_flight && m.stopped.is_none())
            .map(|m| m.due)
            .min()
    }

    /// The mirrors, for status.
    pub fn mirrors(&self) -> &[Mirror] {
        &self.mirrors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pulls(now: Instant) -> Pulls {
        Pulls::new(
            vec![(
                "b".into(),
                "/s/workflows/w/stream".into(),
                "/m/generators/g".into(),
            )],
            now,
        )
    }

    #[test]
    fn a_mirror_is_pulled_once_at_a_time_at_once_while_atoms_come_then_idly() {
        let t = Instant::now();
        let mut p = pulls(t);
        assert_eq!(p.due(t).len(), 1);
        assert!(p.due(t).is_empty(), "one pull in flight at a time");
        p.fed(0, 3, t);
        assert_eq!(p.due(t).len(), 1, "atoms came: pull again at once");
        p.fed(0, 0, t);
        assert!(p.due(t).is_empty());
        assert_eq!(p.next_wakeup(), Some(t + IDLE_WAIT));
        assert_eq!(p.due(t + IDLE_WAIT).len(), 1);
    }

    #[test]
    fn failures_back_off_and_truncation_stops_the_mirror() {
        let t = Instant::now();
        let mut p = pulls(t);
        p.due(t);
        let busy = WireError::new(ErrorCode::Unavailable, "later");
        p.failed(0, &busy, t);
        assert_eq!(p.next_wakeup(), Some(t + IDLE_WAIT));
        p.due(t + IDLE_WAIT);
        p.failed(0, &busy, t);
        assert_eq!(p.next_wakeup(), Some(t + IDLE_WAIT * 2), "twice the wait");
        p.due(t + MAX_BACKOFF);
        p.failed(0, &WireError::new(ErrorCode::Truncated, "gone below 5"), t);
        assert_eq!(p.next_wakeup(), None);
        assert!(p.due(t + MAX_BACKOFF * 10).is_empty());
        assert_eq!(p.mirrors()[0].stopped.as_deref(), Some("gone below 5"));
    }
}
