//! Whether the partitions of a partitioned workflow's step run at once on helper threads or one
//! after another on the stepping thread, chosen by measuring both ([`Chooser`]). Handing a
//! stage to a helper and waiting for it costs microseconds, and where other threads (the
//! generator, other workflows) keep the cores busy, running the partitions at once can be
//! slower than running them in turn: on a machine of two cores, the pipeline of the threaded
//! benchmark with two partitions ran at 33–45 M events/s at once and 63 M one after another.
//! So the workflow tries each way, keeps the faster one, and tries the other again now and
//! then, since the load changes. A pure state machine: step times in, the way to run out.

/// How many measured steps a trial of one way takes.
pub(crate) const TRIAL: u32 = 8;
/// How many steps run the chosen way before the other is tried again.
pub(crate) const KEEP: u32 = 512;

/// How the partitions of a step run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Way {
    /// One after another on the stepping thread.
    InTurn,
    /// At once, on the stepping thread and helper threads.
    AtOnce,
}

impl Way {
    fn other(self) -> Way {
        match self {
            Way::InTurn => Way::AtOnce,
            Way::AtOnce => Way::InTurn,
        }
    }

    fn index(self) -> usize {
        match self {
            Way::InTurn => 0,
            Way::AtOnce => 1,
        }
    }
}

/// The time steps of one way took, and the events they held.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Cost {
    nanos: u64,
    events: u64,
}

impl Cost {
    /// `true` if this costs less per event than `other` (compared without rounding).
    fn cheaper_than(self, other: Cost) -> bool {
        u128::from(self.nanos) * u128::from(other.events)
            < u128::from(other.nanos) * u128::from(self.events)
    }
}

/// The choice of a workflow's way of running partitions: [`Chooser::way`] for the next step,
/// [`Chooser::record`] once it ran.
#[derive(Debug)]
pub(crate) struct Chooser {
    way: Way,
    /// The current phase is a trial (else the chosen way's run).
    trying: bool,
    /// Steps left to measure in this phase.
    left: u32,
    /// The next step is the first since the way changed: its time holds the change (helper
    /// threads waking, or starting) and is not counted.
    settling: bool,
    /// Per way, what its last phase cost (`None`: never measured).
    last: [Option<Cost>; 2],
    /// What this phase has cost so far.
    phase: Cost,
}

impl Default for Chooser {
    fn default() -> Chooser {
        Chooser {
            way: Way::AtOnce,
            trying: true,
            left: TRIAL,
            settling: true,
            last: [None; 2],
            phase: Cost::default(),
        }
    }
}

impl Chooser {
    /// The way the next step runs.
    pub(crate) fn way(&self) -> Way {
        self.way
    }

    /// Counts a step of `events` that ran `way` in `nanos`. A step run another way than
    /// [`Chooser::way`] gave (the helpers could not start) is not counted.
    pub(crate) fn record(&mut self, way: Way, events: u64, nanos: u64) {
        if way != self.way || events == 0 {
            return;
        }
        if std::mem::take(&mut self.settling) {
            return;
        }
        self.phase.nanos = self.phase.nanos.saturating_add(nanos);
        self.phase.events = self.phase.events.saturating_add(events);
        self.left -= 1;
        if self.left > 0 {
            return;
        }
        let cost = std::mem::take(&mut self.phase);
        self.last[self.way.index()] = Some(cost);
        let other = self.way.other();
        match (self.trying, self.last[other.index()]) {
            // A run of the chosen way ends, or the first trial: try the other.
            (false, _) | (true, None) => self.switch(other, true),
            // A trial ends: keep the cheaper way for a while.
            (true, Some(known)) => {
                let way = if known.cheaper_than(cost) {
                    other
                } else {
                    self.way
                };
                self.switch(way, false);
            }
        }
    }

    fn switch(&mut self, way: Way, trying: bool) {
        self.settling |= way != self.way;
        self.way = way;
        self.trying = trying;
        self.left = if trying { TRIAL } else { KEEP };
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A workflow whose steps cost `per_event` ns per event run in turn or at once, and the
    /// first step after a change of way 1 ms more.
    #[derive(Default)]
    struct Sim {
        c: Chooser,
        last: Option<Way>,
    }

    impl Sim {
        /// Runs `steps` steps of `events` each, the ways costing `in_turn` and `at_once` ns per
        /// event; returns the steps run each way.
        fn run(&mut self, steps: u32, events: u64, [in_turn, at_once]: [u64; 2]) -> [u32; 2] {
            let mut taken = [0; 2];
            for _ in 0..steps {
                let way = self.c.way();
                let per = if way == Way::InTurn { in_turn } else { at_once };
                let penalty = if self.last == Some(way) { 0 } else { 1_000_000 };
                self.c.record(way, events, per * events + penalty);
                taken[way.index()] += 1;
                self.last = Some(way);
            }
            taken
        }
    }

    #[test]
    fn tries_both_ways_then_keeps_the_cheaper() {
        let mut c = Sim::default();
        assert_eq!(c.c.way(), Way::AtOnce);
        // The first trial: one unmeasured step, then TRIAL measured ones.
        let taken = c.run(TRIAL + 1, 1_000, [10, 20]);
        assert_eq!(taken, [0, TRIAL + 1]);
        assert_eq!(c.c.way(), Way::InTurn);
        let taken = c.run(TRIAL + 1, 1_000, [10, 20]);
        assert_eq!(taken, [TRIAL + 1, 0]);
        // Settled on the cheaper way, which needs no switch, so no step is left out.
        assert_eq!(c.c.way(), Way::InTurn);
        let taken = c.run(KEEP, 1_000, [10, 20]);
        assert_eq!(taken, [KEEP, 0]);
        // Then the other way is tried again, and loses again.
        assert_eq!(c.c.way(), Way::AtOnce);
        let taken = c.run(TRIAL + 1, 1_000, [10, 20]);
        assert_eq!(taken, [0, TRIAL + 1]);
        assert_eq!(c.c.way(), Way::InTurn);
    }

    #[test]
    fn follows_a_change_of_load() {
        let mut c = Sim::default();
        c.run(2 * TRIAL + 2, 1_000, [10, 20]);
        assert_eq!(c.c.way(), Way::InTurn);
        // At once becomes the cheaper way: it wins its next trial.
        c.run(KEEP + TRIAL + 1, 1_000, [10, 5]);
        assert_eq!(c.c.way(), Way::AtOnce);
        let taken = c.run(KEEP, 1_000, [10, 5]);
        assert_eq!(taken, [0, KEEP]);
    }

    #[test]
    fn the_step_after_a_change_is_not_counted() {
        let mut c = Chooser::default();
        // Helpers starting make the first step at once very slow; the rest are fast.
        c.record(Way::AtOnce, 1_000, 1_000_000_000);
        for _ in 0..TRIAL {
            c.record(Way::AtOnce, 1_000, 5_000);
        }
        for _ in 0..=TRIAL {
            c.record(Way::InTurn, 1_000, 10_000);
        }
        assert_eq!(c.way(), Way::AtOnce);
    }

    #[test]
    fn steps_of_another_way_are_ignored() {
        let mut c = Chooser::default();
        for _ in 0..100 {
            c.record(Way::InTurn, 1_000, 1);
        }
        assert_eq!(c.way(), Way::AtOnce);
        assert_eq!(c.left, TRIAL);
    }

    proptest! {
        /// Whatever the two ways cost, once both were tried the chooser keeps the cheaper
        /// way, and runs the costlier one only in its trials: TRIAL + 1 steps in every
        /// KEEP + TRIAL + 2 (give or take the trial under way when the run ends).
        #[test]
        fn the_costlier_way_runs_only_in_trials(
            in_turn in 1..1_000u64,
            at_once in 1..1_000u64,
            events in 1..5_000u64,
            rounds in 1..6u32,
        ) {
            prop_assume!(in_turn != at_once);
            let mut c = Sim::default();
            c.run(2 * (TRIAL + 1), events, [in_turn, at_once]);
            let cheaper = if in_turn < at_once { Way::InTurn } else { Way::AtOnce };
            prop_assert_eq!(c.c.way(), cheaper);
            let taken = c.run(rounds * (KEEP + TRIAL + 2), events, [in_turn, at_once]);
            let costlier = taken[cheaper.other().index()];
            prop_assert!(
                costlier.abs_diff(rounds * (TRIAL + 1)) <= TRIAL + 1,
                "{} steps the costlier way in {} rounds", costlier, rounds
            );
        }
    }
}
