//! A map keyed by ask id, for the asks in flight. The asks of one scope (the atom, request or
//! reply a workflow was processing) are numbered from 0, so they are kept in one vector per
//! scope: finding an ask costs a lookup in a small map of scopes and an index, instead of a
//! probe of a large table whose entries come and go at random places. A long vector that has
//! become mostly empty (one ask of a big fan-out still waiting) moves what it still holds to a
//! plain map, so a scope never costs much more than its asks in flight.

use std::collections::HashMap;

use crate::data::MixBuild;
use crate::portal::AskId;

/// Asks numbered at or past this are kept in a plain map (no vector of that length).
const DENSE: u32 = 1 << 16;

/// A scope's vector at least this long whose values fill less than a sixteenth of it moves
/// them to the plain map.
const THIN: usize = 1 << 12;

/// Values by ask id.
pub(crate) struct AskMap<V> {
    scopes: HashMap<(u64, u64, u32), Scope<V>, MixBuild>,
    sparse: HashMap<AskId, V, MixBuild>,
    len: usize,
}

/// The values of one scope's asks, by number.
struct Scope<V> {
    slots: Vec<Option<V>>,
    live: usize,
}

impl<V> Default for AskMap<V> {
    fn default() -> Self {
        AskMap {
            scopes: HashMap::default(),
            sparse: HashMap::default(),
            len: 0,
        }
    }
}

fn scope_of(id: &AskId) -> (u64, u64, u32) {
    (id.origin, id.scope, id.partition)
}

impl<V> AskMap<V> {
    /// Sets the value of `id`; returns the one it replaces.
    pub(crate) fn insert(&mut self, id: AskId, value: V) -> Option<V> {
        // Past the dense range, already in the plain map (its scope was thinned), or far into
        // a scope that has no vector (none is started that long for one ask): the plain map.
        let sparse = id.seq >= DENSE
            || (!self.sparse.is_empty() && self.sparse.contains_key(&id))
            || (id.seq as usize >= THIN && !self.scopes.contains_key(&scope_of(&id)));
        let old = if sparse {
            self.sparse.insert(id, value)
        } else {
            let scope = self.scopes.entry(scope_of(&id)).or_insert(Scope {
                slots: Vec::new(),
                live: 0,
            });
            let at = id.seq as usize;
            if scope.slots.len() <= at {
                scope.slots.resize_with(at + 1, || None);
            }
            let old = scope.slots[at].replace(value);
            if old.is_none() {
                scope.live += 1;
            }
            old
        };
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Takes the value of `id` out.
    pub(crate) fn remove(&mut self, id: &AskId) -> Option<V> {
        let old = match self.remove_dense(id) {
            Some(v) => Some(v),
            None if !self.sparse.is_empty() => self.sparse.remove(id),
            None => None,
        };
        if old.is_some() {
            self.len -= 1;
        }
        old
    }

    /// Takes the value of `id` out of its scope's vector, if it is there.
    fn remove_dense(&mut self, id: &AskId) -> Option<V> {
        if id.seq >= DENSE {
            return None;
        }
        let key = scope_of(id);
        let scope = self.scopes.get_mut(&key)?;
        let old = scope.slots.get_mut(id.seq as usize)?.take()?;
        scope.live -= 1;
        if scope.live == 0 {
            self.scopes.remove(&key);
        } else if scope.slots.len() >= THIN && scope.live * 16 < scope.slots.len() {
            self.thin(key);
        }
        Some(old)
    }

    /// Moves the values of a mostly empty scope to the plain map.
    fn thin(&mut self, key: (u64, u64, u32)) {
        let Some(scope) = self.scopes.remove(&key) else {
            return;
        };
        let (origin, scope_id, partition) = key;
        for (seq, slot) in scope.slots.into_iter().enumerate() {
            if let Some(v) = slot {
                let id = AskId {
                    origin,
                    scope: scope_id,
                    partition,
                    seq: seq as u32,
                };
                self.sparse.insert(id, v);
            }
        }
    }

    /// The value of `id`.
    #[cfg(test)]
    pub(crate) fn get(&self, id: &AskId) -> Option<&V> {
        let dense = self
            .scopes
            .get(&scope_of(id))
            .and_then(|s| s.slots.get(id.seq as usize)?.as_ref());
        dense.or_else(|| self.sparse.get(id))
    }

    /// The value of `id`, to change.
    pub(crate) fn get_mut(&mut self, id: &AskId) -> Option<&mut V> {
        // An id is in one place only (`insert` keeps it where it is): the plain map, usually
        // empty, is asked first so that the scope is looked up once.
        if !self.sparse.is_empty() && self.sparse.contains_key(id) {
            return self.sparse.get_mut(id);
        }
        let scope = self.scopes.get_mut(&scope_of(id))?;
        scope.slots.get_mut(id.seq as usize)?.as_mut()
    }

    /// How many asks have a value.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether no ask has a value.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    fn id(scope: u64, seq: u32) -> AskId {
        AskId {
            origin: 9,
            scope,
            partition: (scope % 2) as u32,
            seq,
        }
    }

    #[test]
    fn a_scope_goes_once_its_last_ask_is_removed() {
        let mut m = AskMap::default();
        assert_eq!(m.insert(id(1, 0), "a"), None);
        assert_eq!(m.insert(id(1, 5), "b"), None);
        assert_eq!(m.insert(id(1, 5), "c"), Some("b"));
        assert_eq!((m.len(), m.scopes.len()), (2, 1));
        assert_eq!(m.remove(&id(1, 0)), Some("a"));
        assert_eq!(m.remove(&id(1, 0)), None);
        assert_eq!(m.get(&id(1, 5)), Some(&"c"));
        assert_eq!(m.remove(&id(1, 5)), Some("c"));
        assert!(m.is_empty() && m.scopes.is_empty());
        assert_eq!(m.remove(&id(1, 3)), None, "an unknown scope");
    }

    #[test]
    fn asks_numbered_past_the_dense_range_are_kept_too() {
        let mut m = AskMap::default();
        m.insert(id(1, u32::MAX), 1);
        m.insert(id(1, DENSE), 2);
        assert_eq!((m.len(), m.scopes.len()), (2, 0));
        if let Some(v) = m.get_mut(&id(1, DENSE)) {
            *v = 3;
        }
        assert_eq!(m.remove(&id(1, DENSE)), Some(3));
        assert_eq!(m.get(&id(1, u32::MAX)), Some(&1));
    }

    #[test]
    fn a_mostly_empty_long_scope_moves_what_it_holds_to_the_plain_map() {
        let mut m = AskMap::default();
        let n = THIN as u32 + 100;
        for seq in 0..n {
            m.insert(id(1, seq), seq);
        }
        for seq in (0..n).filter(|s| *s != 7 && *s != n - 1) {
            assert_eq!(m.remove(&id(1, seq)), Some(seq));
        }
        assert_eq!((m.len(), m.scopes.len(), m.sparse.len()), (2, 0, 2));
        assert_eq!(m.get(&id(1, 7)), Some(&7));
        // A value set again stays where it is; a new ask far into the scope starts no vector.
        assert_eq!(m.insert(id(1, 7), 70), Some(7));
        assert_eq!(m.insert(id(1, n + 5), 1), None);
        assert_eq!((m.len(), m.scopes.len(), m.sparse.len()), (3, 0, 3));
        // A new ask early in the scope starts a short vector again.
        assert_eq!(m.insert(id(1, 3), 3), None);
        assert_eq!(m.scopes.len(), 1);
        if let Some(v) = m.get_mut(&id(1, 7)) {
            *v = 77;
        }
        for (seq, v) in [(7, 77), (n - 1, n - 1), (n + 5, 1), (3, 3)] {
            assert_eq!(m.remove(&id(1, seq)), Some(v));
        }
        assert!(m.is_empty() && m.scopes.is_empty() && m.sparse.is_empty());
    }

    proptest! {
        /// Any sequence of inserts and removals leaves the map as a plain map would.
        #[test]
        fn behaves_as_a_plain_map(
            ops in proptest::collection::vec(
                (any::<bool>(), 0u64..4, prop_oneof![0u32..40, 4_090u32..4_200, Just(DENSE), Just(u32::MAX)], any::<u8>()),
                0..300,
            )
        ) {
            let mut m = AskMap::default();
            let mut plain = HashMap::new();
            for (insert, scope, seq, value) in ops {
                let k = id(scope, seq);
                if insert {
                    prop_assert_eq!(m.insert(k, value), plain.insert(k, value));
                } else {
                    prop_assert_eq!(m.remove(&k), plain.remove(&k));
                }
                prop_assert_eq!(m.len(), plain.len());
                prop_assert_eq!(m.get(&k), plain.get(&k));
            }
            for (k, v) in &plain {
                prop_assert_eq!(m.get(k), Some(v));
            }
            let live: usize = m
                .scopes
                .values()
                .map(|s| s.slots.iter().filter(|v| v.is_some()).count())
                .sum();
            prop_assert!(m.scopes.values().all(|s| s.slots.iter().filter(|v| v.is_some()).count() == s.live));
            prop_assert_eq!(live + m.sparse.len(), plain.len());
            prop_assert!(m.scopes.values().all(|s| s.live > 0), "no empty scope is kept");
        }
    }
}
