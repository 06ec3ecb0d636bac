//! The commit protocol of one workflow, as a state machine without I/O: the engine tells it
//! what each step produced and how many continuations wait; it says when the staged steps are
//! flushed (made durable together) and what is released then.
//!
//! - A step alone on a store that does not hold asking atoms commits at once; what it
//!   produced is released at once (the protocol is not involved).
//! - Steps of a group (several queued atoms) are staged; the group is flushed at its end.
//! - On a store that holds asking atoms, every step is staged; its asks and its replies to its
//!   own asks leave at once, everything else it produced is held, and the stage is flushed
//!   when no continuation waits (so a crash replays every step since the last flush: the
//!   asking atoms ask again with the same ids and get the repliers' kept replies).
//! - A failed step or flush drops the stage and what it held; nothing of it was visible.

/// The state of one workflow's stage.
pub(crate) struct CommitProtocol<T> {
    /// Whether steps are held until no continuation waits.
    hold: bool,
    /// What the staged steps hold, in step order.
    held: Vec<T>,
}

impl<T> CommitProtocol<T> {
    /// A protocol for a store that holds asking atoms (`hold`) or not.
    pub(crate) fn new(hold: bool) -> CommitProtocol<T> {
        CommitProtocol {
            hold,
            held: Vec::new(),
        }
    }

    /// Whether steps are held until no continuation waits.
    pub(crate) fn holds(&self) -> bool {
        self.hold
    }

    /// Whether the next step is staged (`false`: it commits at once); `steps`: how many steps
    /// are taken together.
    pub(crate) fn stages(&self, steps: usize) -> bool {
        self.hold || steps > 1 || !self.held.is_empty()
    }

    /// A step was staged; `held` is released at the flush.
    pub(crate) fn staged(&mut self, held: T) {
        self.held.push(held);
    }

    /// What the staged steps hold, in step order (for the flush to write).
    pub(crate) fn held(&self) -> &[T] {
        &self.held
    }

    /// Steps staged and not flushed.
    pub(crate) fn unflushed(&self) -> usize {
        self.held.len()
    }

    /// Whether to flush now, at the end of the steps taken together, with `pending`
    /// continuations waiting.
    pub(crate) fn flush_due(&self, pending: usize) -> bool {
        !self.held.is_empty() && (!self.hold || pending == 0)
    }

    /// The flush succeeded: what the flushed steps held, to release in step order.
    pub(crate) fn flushed(&mut self) -> Vec<T> {
        std::mem::take(&mut self.held)
    }

    /// The stage was dropped (a step or the flush failed): so is what it held.
    pub(crate) fn abandoned(&mut self) {
        self.held.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_group_without_holding_flushes_at_its_end_in_order() {
        let mut p = CommitProtocol::new(false);
        assert!(!p.stages(1), "a lone step commits at once");
        assert!(p.stages(3));
        for s in 1..=3 {
            p.staged(s);
        }
        assert!(p.flush_due(5), "continuations do not delay a group's flush");
        assert_eq!(p.flushed(), vec![1, 2, 3]);
        assert!(!p.flush_due(0));
    }

    #[test]
    fn held_steps_flush_only_when_no_continuation_waits() {
        let mut p = CommitProtocol::new(true);
        assert!(p.stages(1));
        p.staged("ask");
        assert!(!p.flush_due(2));
        p.staged("one reply");
        assert!(!p.flush_due(1));
        p.staged("last reply");
        assert!(p.flush_due(0));
        assert_eq!(p.flushed(), vec!["ask", "one reply", "last reply"]);
        assert_eq!(p.unflushed(), 0);
    }

    #[test]
    fn a_failure_drops_the_stage_and_what_it_held() {
        let mut p = CommitProtocol::new(true);
        p.staged(1);
        p.staged(2);
        p.abandoned();
        assert_eq!(p.unflushed(), 0);
        assert!(!p.flush_due(0));
        p.staged(3);
        assert_eq!(p.flushed(), vec![3]);
    }

    /// One step of a generated run: the continuations it registers, the replies it
    /// delivers, and whether it is the last of the steps taken together.
    #[derive(Clone, Debug)]
    struct Step {
        asks: usize,
        replies: usize,
        ends_group: bool,
    }

    fn steps() -> impl Strategy<Value = Vec<Step>> {
        prop::collection::vec(
            (0usize..3, 0usize..3, any::<bool>()).prop_map(|(asks, replies, ends_group)| Step {
                asks,
                replies,
                ends_group,
            }),
            1..40,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Whatever the steps and wherever a crash lands: every step whose held output was
        /// released is durable; the durable steps are a prefix of the steps; with holding,
        /// that prefix ends where no continuation waited (so the replay starts from a settled
        /// point and asks again only what was in flight); without holding, each group lands
        /// whole.
        #[test]
        fn released_is_durable_and_durable_ends_at_a_settled_point(
            run in steps(),
            hold in any::<bool>(),
            crash_at in 0usize..40,
        ) {
            let mut p = CommitProtocol::new(hold);
            let mut pending = 0usize;
            let mut durable = 0usize;
            let mut released: Vec<usize> = Vec::new();
            let mut settled_points = vec![0usize];
            let mut group_ends = vec![0usize];
            for (i, step) in run.iter().enumerate() {
                if i == crash_at {
                    break;
                }
                let n = i + 1;
                pending = pending.saturating_sub(step.replies) + step.asks;
                if p.stages(if step.ends_group { 1 } else { 2 }) {
                    p.staged(n);
                } else {
                    durable = n;
                    released.push(n);
                }
                if pending == 0 {
                    settled_points.push(n);
                }
                if step.ends_group {
                    group_ends.push(n);
                    if p.flush_due(pending) {
                        let flushed = p.flushed();
                        prop_assert_eq!(flushed.first().copied(), Some(durable + 1));
                        durable = n;
                        released.extend(flushed);
                    }
                }
                // A crash here loses the stage: nothing released may be in it.
                prop_assert!(released.iter().all(|s| *s <= durable));
                prop_assert_eq!(released.len(), durable, "released in order, each once");
                if hold {
                    prop_assert!(settled_points.contains(&durable));
                } else {
                    prop_assert!(group_ends.contains(&durable) || released.last() == Some(&durable));
                }
                prop_assert_eq!(p.unflushed(), n - durable);
            }
        }
    }
}
