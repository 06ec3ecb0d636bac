//! Ask deadlines: every ask routed to a portal gets one; an ask still unanswered when it passes
//! is answered with [`AskError::Timeout`], once, and a reply arriving later finds no
//! continuation waiting and is dropped. Time is real in the threaded runtime and virtual in the
//! deterministic one, which moves it to the next deadline when nothing else can run.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::ask_map::AskMap;
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

/// An ask in deadline order: when its deadline passes, the run it belongs to (whom to answer),
/// and whether its reply (or a later watch of the same ask) already came.
struct Entry {
    at: Duration,
    id: AskId,
    run: u64,
    answered: bool,
}

/// Whom a run of consecutively watched asks (one asker to one portal, as a step's asks come)
/// answers on timeout: kept once per run, so watching an ask clones no path.
struct Run {
    to: Origin,
    portal: Path,
}

/// The deadlines of the asks in flight. Asks get deadlines in the order they are routed, with
/// one limit, so a queue keeps them in deadline order; the map finds an ask's entry by its
/// place in the queue, so an answer marks the entry without searching and answered entries
/// leave when they reach the front (the queue stays as long as the asks really in flight, plus
/// the answered ones behind an older one still waiting).
pub(crate) struct Deadlines {
    /// How long an ask waits for its reply; `None`: forever.
    limit: Option<Duration>,
    clock: Clock,
    /// Entries in deadline order; the front one is always still waiting.
    order: VecDeque<Entry>,
    /// How many entries have left the front of `order` since the start: the place of
    /// `order[i]` is `gone + i`.
    gone: u64,
    /// The runs of the entries in `order`, in order (the run of `runs[i]` is `runs_gone + i`).
    runs: VecDeque<Run>,
    runs_gone: u64,
    /// The place in `order` of each ask still waiting.
    waiting: AskMap<u64>,
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
            gone: 0,
            runs: VecDeque::new(),
            runs_gone: 0,
            waiting: AskMap::default(),
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

    /// Starts the clock of `ask` (routed now). An ask watched again waits from now: its
    /// earlier entry counts as answered.
    pub(crate) fn watch(&mut self, ask: &AskMsg) {
        let Some(limit) = self.limit else { return };
        let at = self.now().saturating_add(limit);
        let place = self.gone + self.order.len() as u64;
        if let Some(earlier) = self.waiting.insert(ask.id, place) {
            self.mark(earlier);
        }
        let same_run = self
            .runs
            .back()
            .is_some_and(|r| r.to == ask.from && r.portal == ask.portal);
        if !same_run {
            self.runs.push_back(Run {
                to: ask.from.clone(),
                portal: ask.portal.clone(),
            });
        }
        self.order.push_back(Entry {
            at,
            id: ask.id,
            run: self.runs_gone + self.runs.len() as u64 - 1,
            answered: false,
        });
        self.drop_answered();
        self.compact_if_crowded();
    }

    /// Stops the clock of `ask`: its reply (or error) is on its way.
    pub(crate) fn answered(&mut self, ask: &AskId) {
        if let Some(place) = self.waiting.remove(ask) {
            self.mark(place);
            self.drop_answered();
            self.compact_if_crowded();
        }
    }

    /// Answered asks (and earlier watches of asks watched again) behind one still waiting stay
    /// queued; when they outnumber the waiting ones, the queue keeps only those (so one stuck
    /// ask cannot make it grow with every ask answered or watched again meanwhile).
    fn compact_if_crowded(&mut self) {
        if self.order.len() > 2 * self.waiting.len() + 1_024 {
            self.compact();
        }
    }

    /// Keeps only the entries still waiting, and their runs.
    fn compact(&mut self) {
        self.order.retain(|e| !e.answered);
        let mut runs = VecDeque::new();
        let mut last = None;
        for (i, e) in self.order.iter_mut().enumerate() {
            self.waiting.insert(e.id, self.gone + i as u64);
            if last != Some(e.run) {
                last = Some(e.run);
                let old = e.run.checked_sub(self.runs_gone).map(|i| i as usize);
                if let Some(run) = old.and_then(|i| self.runs.get(i)) {
                    runs.push_back(Run {
                        to: run.to.clone(),
                        portal: run.portal.clone(),
                    });
                }
            }
            e.run = (self.runs_gone + runs.len() as u64).saturating_sub(1);
        }
        self.runs = runs;
    }

    /// Drops the runs before the front entry's (all of them once no entry is left).
    fn drop_runs(&mut self) {
        let keep_from = self
            .order
            .front()
            .map_or(self.runs_gone + self.runs.len() as u64, |e| e.run);
        while self.runs_gone < keep_from && self.runs.pop_front().is_some() {
            self.runs_gone += 1;
        }
    }

    /// Marks the entry at `place` answered.
    fn mark(&mut self, place: u64) {
        let index = place.checked_sub(self.gone).map(|i| i as usize);
        if let Some(entry) = index.and_then(|i| self.order.get_mut(i)) {
            entry.answered = true;
        }
    }

    /// Drops the entries at the front of the queue whose asks were answered (or watched again
    /// later, which queued another entry).
    fn drop_answered(&mut self) {
        let mut dropped = false;
        while self.order.front().is_some_and(|e| e.answered) {
            self.order.pop_front();
            self.gone += 1;
            dropped = true;
        }
        if dropped {
            self.drop_runs();
        }
    }

    /// Whether an ask is waiting for its reply.
    pub(crate) fn pending(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// How long until the next deadline passes (zero if one has), if an ask is waiting.
    pub(crate) fn next_in(&self) -> Option<Duration> {
        let front = self.order.front()?;
        Some(front.at.saturating_sub(self.now()))
    }

    /// Moves virtual time to the next deadline (no effect on real time); whether one exists.
    pub(crate) fn skip_to_next(&mut self) -> bool {
        let Some(at) = self.order.front().map(|e| e.at) else {
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
        while self.order.front().is_some_and(|e| e.at <= now) {
            let Some(entry) = self.order.pop_front() else {
                break;
            };
            self.gone += 1;
            if entry.answered {
                continue;
            }
            self.waiting.remove(&entry.id);
            let index = entry.run.checked_sub(self.runs_gone).map(|i| i as usize);
            let run = index.and_then(|i| self.runs.get(i));
            debug_assert!(run.is_some(), "an entry in the queue lost its run");
            let Some(run) = run else {
                self.drop_answered();
                continue;
            };
            let after_ms = self.limit.map_or(0, |l| l.as_millis() as u64);
            out.push(ReplyMsg {
                id: entry.id,
                to: run.to.clone(),
                reply: Err(AskError::Timeout {
                    portal: run.portal.to_string(),
                    after_ms,
                }),
                envelope: None,
            });
            self.drop_answered();
        }
        self.drop_runs();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(seq: u32) -> AskMsg {
        asked_by("/a/workflows/w", seq)
    }

    fn asked_by(workflow: &str, seq: u32) -> AskMsg {
        AskMsg {
            id: AskId::numbered(seq),
            portal: Path::placeholder("/a/portals/p"),
            from: Origin {
                workflow: Path::placeholder(workflow),
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
    fn one_stuck_ask_does_not_keep_every_earlier_watch_of_another_queued() {
        let mut d = Deadlines::virtual_time(Some(Duration::from_secs(30)));
        d.watch(&ask(0));
        for _ in 0..100_000 {
            d.watch(&ask(1));
        }
        assert!(d.order.len() <= 1_027, "{} entries queued", d.order.len());
        assert!(d.skip_to_next());
        let due: Vec<u32> = d.expired().iter().map(|r| r.id.seq).collect();
        assert_eq!(due, vec![0, 1], "each times out once");
        assert!(!d.pending() && d.order.is_empty() && d.runs.is_empty());
    }

    #[test]
    fn without_a_limit_asks_wait_forever() {
        let mut d = Deadlines::virtual_time(None);
        d.watch(&ask(0));
        assert!(!d.pending());
        assert_eq!(d.next_in(), None);
    }

    #[test]
    fn each_timeout_goes_to_its_own_asker_and_runs_leave_with_their_asks() {
        let mut d = Deadlines::virtual_time(Some(Duration::from_millis(100)));
        let askers = ["/a/workflows/x", "/a/workflows/y", "/a/workflows/x"];
        for (run, asker) in askers.iter().enumerate() {
            for seq in 0..3 {
                d.watch(&asked_by(asker, 10 * run as u32 + seq));
            }
        }
        assert_eq!(d.runs.len(), 3, "one run per consecutive asker");
        // The whole first run is answered: its entries and its run leave.
        for seq in 0..3 {
            d.answered(&asked_by("/a/workflows/x", seq).id);
        }
        assert_eq!((d.order.len(), d.runs.len()), (6, 2));
        d.answered(&asked_by("/a/workflows/y", 11).id);
        assert!(d.skip_to_next());
        let out = d.expired();
        let got: Vec<(u32, &str)> = out
            .iter()
            .map(|r| (r.id.seq, r.to.workflow.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (10, "/a/workflows/y"),
                (12, "/a/workflows/y"),
                (20, "/a/workflows/x"),
                (21, "/a/workflows/x"),
                (22, "/a/workflows/x"),
            ]
        );
        assert!(d.order.is_empty() && d.runs.is_empty() && !d.pending());
    }

    #[test]
    fn an_ask_watched_again_waits_from_then_and_times_out_once() {
        let mut d = Deadlines::virtual_time(Some(Duration::from_millis(100)));
        d.watch(&ask(0));
        d.watch(&ask(1));
        if let Clock::Virtual(now) = &mut d.clock {
            *now = Duration::from_millis(60);
        }
        d.watch(&ask(0));
        if let Clock::Virtual(now) = &mut d.clock {
            *now = Duration::from_millis(100);
        }
        let first: Vec<u32> = d.expired().iter().map(|r| r.id.seq).collect();
        assert_eq!(first, vec![1], "ask 0 waits from its second watch");
        assert_eq!(d.next_in(), Some(Duration::from_millis(60)));
        assert!(d.skip_to_next());
        let second: Vec<u32> = d.expired().iter().map(|r| r.id.seq).collect();
        assert_eq!(second, vec![0]);
        assert!(d.expired().is_empty() && !d.pending() && d.runs.is_empty());
    }

    #[test]
    fn compacting_behind_a_stuck_ask_keeps_whom_it_answers() {
        let mut d = Deadlines::virtual_time(Some(Duration::from_secs(30)));
        d.watch(&asked_by("/a/workflows/stuck", 0));
        for seq in 1..5_000 {
            let asker = if seq % 2 == 0 {
                "/a/workflows/x"
            } else {
                "/a/workflows/y"
            };
            d.watch(&asked_by(asker, seq));
            d.answered(&asked_by(asker, seq).id);
        }
        assert!(d.runs.len() <= 1_026, "{} runs kept", d.runs.len());
        assert!(d.skip_to_next());
        let out = d.expired();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].to.workflow.as_str(), "/a/workflows/stuck");
        assert!(d.runs.is_empty());
    }
}
