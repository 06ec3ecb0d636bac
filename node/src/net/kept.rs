//! Which asks from peers may have a kept reply, without reading the store for each request.
//!
//! A replier keeps its replies to a peer's asks by (replier, origin, scope). An ask that
//! arrives for the first time has none, and the scopes of the asks an origin makes from its
//! stream atoms only grow (a scope is the atom's offset). So the network remembers, per
//! replier and origin, a bound at or above every scope kept: read from the store the first
//! time the pair is seen in a run, raised for each ask handed to the replier (whose reply may
//! be kept from then on). An ask in a scope above the bound cannot have a kept reply and is not
//! looked up; any other ask is. Rows the store drops later only leave the bound higher than it
//! need be.

use std::collections::HashMap;

/// The per-(replier, origin) bounds on the scopes of kept replies.
#[derive(Debug, Default)]
pub struct KeptBounds {
    /// `None`: nothing kept for the pair; `Some(b)`: no scope above `b` kept.
    bounds: HashMap<(u64, u64), Option<u64>, foldhash::fast::RandomState>,
}

impl KeptBounds {
    /// Whether an ask of `origin` in `scope` to `replier` may have a kept reply. The first
    /// question about a pair reads the highest kept scope with `highest`; an error there
    /// answers yes (look it up) and is asked again next time.
    pub fn may_have<E>(
        &mut self,
        replier: u64,
        origin: u64,
        scope: u64,
        highest: impl FnOnce() -> Result<Option<u64>, E>,
    ) -> bool {
        let bound = match self.bounds.get(&(replier, origin)) {
            Some(bound) => *bound,
            None => match highest() {
                Ok(bound) => {
                    self.bounds.insert((replier, origin), bound);
                    bound
                }
                Err(_) => return true,
            },
        };
        bound.is_some_and(|b| scope <= b)
    }

    /// Records that an ask of `origin` in `scope` went to `replier`, which may keep its reply
    /// from now on. Only pairs asked about with [`KeptBounds::may_have`] are tracked (the
    /// others are read from the store when first asked about, which then holds the reply).
    pub fn handed(&mut self, replier: u64, origin: u64, scope: u64) {
        if let Some(bound) = self.bounds.get_mut(&(replier, origin)) {
            *bound = Some(bound.map_or(scope, |b| b.max(scope)));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    fn never() -> Result<Option<u64>, ()> {
        panic!("the store is read once per pair")
    }

    #[test]
    fn rising_scopes_are_looked_up_only_where_a_reply_may_be_kept() {
        let mut b = KeptBounds::default();
        // Nothing kept: a new scope is not looked up; the store is read once.
        assert!(!b.may_have(1, 7, 0, || Ok::<_, ()>(None)));
        b.handed(1, 7, 0);
        // Scope 0 went to the replier: asked again, it is looked up; scope 1 is not.
        assert!(b.may_have(1, 7, 0, never));
        assert!(!b.may_have(1, 7, 1, never));
        b.handed(1, 7, 1);
        assert!(b.may_have(1, 7, 1, never));
        assert!(!b.may_have(1, 7, 2, never));
        // Another replier or origin is its own pair.
        assert!(b.may_have(2, 7, 0, || Ok::<_, ()>(Some(5))));
        assert!(!b.may_have(2, 7, 6, never));
        assert!(!b.may_have(1, 8, 0, || Ok::<_, ()>(None)));
        assert_eq!(b.bounds.len(), 3);
    }

    #[test]
    fn a_store_that_cannot_be_read_means_look_it_up_and_read_again() {
        let mut b = KeptBounds::default();
        assert!(b.may_have(1, 7, 3, || Err("locked")));
        assert!(b.bounds.is_empty());
        // Handed before the pair is known: not tracked, so the store is read next time.
        b.handed(1, 7, 3);
        assert!(b.may_have(1, 7, 3, || Ok::<_, ()>(Some(3))));
        assert!(!b.may_have(1, 7, 4, never));
    }

    #[test]
    fn the_highest_unsigned_scope_bounds_every_scope() {
        let mut b = KeptBounds::default();
        assert!(b.may_have(1, 7, u64::MAX, || Ok::<_, ()>(Some(u64::MAX))));
        assert!(b.may_have(1, 7, 0, never));
        assert!(b.may_have(1, 7, 1 << 63, never));
    }

    #[derive(Clone, Debug)]
    enum Op {
        /// A request's asks (origin, scope) arrive: each is checked, then those without a
        /// kept reply are handed to the replier, together (as the network does).
        Request(Vec<(u64, u64)>),
        /// The replier commits the reply of the oldest ask handed and not yet kept.
        Keep,
        /// The store drops a kept reply (tidy-up).
        Drop(usize),
        /// The node restarts: the bounds are forgotten, the store stays.
        Restart,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => proptest::collection::vec(
                (0u64..3, prop_oneof![0u64..20, any::<u64>()]),
                1..4,
            )
            .prop_map(Op::Request),
            3 => Just(Op::Keep),
            1 => any::<usize>().prop_map(Op::Drop),
            1 => Just(Op::Restart),
        ]
    }

    proptest! {
        /// Whatever the order of asks, commits, tidy-ups and restarts, an ask whose reply is
        /// kept is always looked up (no kept reply is missed, so no ask is applied twice).
        #[test]
        fn no_kept_reply_is_missed(
            kept0 in proptest::collection::btree_set((0u64..3, 0u64..40), 0..6),
            ops in proptest::collection::vec(op(), 1..80),
        ) {
            let mut store: BTreeSet<(u64, u64)> = kept0;
            let mut handed: Vec<(u64, u64)> = Vec::new();
            let mut bounds = KeptBounds::default();
            for op in ops {
                match op {
                    Op::Request(asks) => {
                        let mut now_handed = Vec::new();
                        for (origin, scope) in asks {
                            let highest = || {
                                let kept = store.iter().filter(|k| k.0 == origin);
                                Ok::<_, ()>(kept.map(|k| k.1).max())
                            };
                            let may = bounds.may_have(9, origin, scope, highest);
                            if store.contains(&(origin, scope)) {
                                // Answered from the store, if looked up.
                                prop_assert!(may, "kept reply of {origin}/{scope} missed");
                            } else {
                                now_handed.push((origin, scope));
                            }
                        }
                        for (origin, scope) in now_handed {
                            bounds.handed(9, origin, scope);
                            handed.push((origin, scope));
                        }
                    }
                    Op::Keep => {
                        if !handed.is_empty() {
                            store.insert(handed.remove(0));
                        }
                    }
                    Op::Drop(i) => {
                        if let Some(k) = store.iter().nth(i % store.len().max(1)).copied() {
                            store.remove(&k);
                        }
                    }
                    Op::Restart => {
                        // Asks in the replier not yet committed are lost with it.
                        handed.clear();
                        bounds = KeptBounds::default();
                    }
                }
            }
        }
    }
}
