//! A map keyed by ask id, for the asks in flight. The asks of one scope (the atom, request or
//! reply a workflow was processing) are numbered from 0, so they are kept in one vector per
//! scope: finding an ask costs a lookup in a small map of scopes and an index, instead of a
//! probe of a large table whose entries come and go at random places.

use std::collections::HashMap;

use crate::data::MixBuild;
use crate::portal::AskId;

/// Asks numbered at or past this are kept in a plain map (no vector of that length).
const DENSE: u32 = 1 << 16;

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
        let old = if id.seq >= DENSE {
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
        let old = if id.seq >= DENSE {
            self.sparse.remove(id)
        } else {
            let key = scope_of(id);
            let scope = self.scopes.get_mut(&key)?;
            let old = scope.slots.get_mut(id.seq as usize)?.take();
            if old.is_some() {
                scope.live -= 1;
                if scope.live == 0 {
                    self.scopes.remove(&key);
                }
            }
            old
        };
        if old.is_some() {
            self.len -= 1;
        }
        old
    }

    /// The value of `id`.
    #[cfg(test)]
    pub(crate) fn get(&self, id: &AskId) -> Option<&V> {
        if id.seq >= DENSE {
            return self.sparse.get(id);
        }
        let scope = self.scopes.get(&scope_of(id))?;
        scope.slots.get(id.seq as usize)?.as_ref()
    }

    /// The value of `id`, to change.
    pub(crate) fn get_mut(&mut self, id: &AskId) -> Option<&mut V> {
        if id.seq >= DENSE {
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

    proptest! {
        /// Any sequence of inserts and removals leaves the map as a plain map would.
        #[test]
        fn behaves_as_a_plain_map(
            ops in proptest::collection::vec(
                (any::<bool>(), 0u64..4, prop_oneof![0u32..40, Just(DENSE), Just(u32::MAX)], any::<u8>()),
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
            let live: usize = m.scopes.values().map(|s| s.live).sum();
            prop_assert_eq!(live + m.sparse.len(), plain.len());
            prop_assert!(m.scopes.values().all(|s| s.live > 0), "no empty scope is kept");
        }
    }
}
