//! The map from keys to a state's values: open addressing with linear probing over a dense
//! array of keys, because a per-key state lookup is the hot path of a keyed workflow.
//!
//! A lookup multiplies the key (so keys whose low bits repeat still spread), reads the key
//! array from there until it finds the key or an empty place, and then the value beside it:
//! a shorter chain of dependent loads than a general-purpose map's control bytes. The table
//! is kept at most half full, so a lookup reads one or two keys. A removal moves later keys of
//! the same run back (no tombstones). One key value marks empty places; that key itself, if
//! used, lives in a slot of its own.

/// The key value that marks an empty place.
const EMPTY: u64 = u64::MAX;

/// Places in a new map's arrays.
const FIRST_CAPACITY: usize = 16;

/// A map from `u64` keys to values of `T`.
pub(crate) struct KeyMap<T> {
    /// The key at each place, [`EMPTY`] where there is none; a power of two long.
    keys: Vec<u64>,
    /// The value at each place (present exactly where the key is not [`EMPTY`]).
    values: Vec<Option<T>>,
    /// Right shift that turns the multiplied key into a place.
    shift: u32,
    /// The value of key [`EMPTY`] itself.
    empty_key: Option<T>,
    /// Keys held.
    len: usize,
}

impl<T> Default for KeyMap<T> {
    fn default() -> Self {
        KeyMap::with_places(FIRST_CAPACITY)
    }
}

/// Where a key is, or where it would go.
enum Place {
    Found(usize),
    Vacant(usize),
}

impl<T> KeyMap<T> {
    /// An empty map with `places` places (a power of two, at least 2).
    fn with_places(places: usize) -> Self {
        KeyMap {
            keys: vec![EMPTY; places],
            values: std::iter::repeat_with(|| None).take(places).collect(),
            shift: 64 - places.trailing_zeros(),
            empty_key: None,
            len: 0,
        }
    }

    /// Keys held.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.len
    }

    /// The first place to look for `key`.
    #[inline(always)]
    fn home(&self, key: u64) -> usize {
        (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> self.shift) as usize
    }

    /// Where `key` (not [`EMPTY`]) is, or the empty place that ends its run.
    #[inline(always)]
    fn place(&self, key: u64) -> Place {
        let mask = self.keys.len() - 1;
        let mut i = self.home(key);
        loop {
            let k = self.keys[i];
            if k == key {
                return Place::Found(i);
            }
            if k == EMPTY {
                return Place::Vacant(i);
            }
            i = (i + 1) & mask;
        }
    }

    /// The value of `key`.
    #[inline]
    pub(crate) fn get(&self, key: u64) -> Option<&T> {
        if key == EMPTY {
            return self.empty_key.as_ref();
        }
        match self.place(key) {
            Place::Found(i) => self.values[i].as_ref(),
            Place::Vacant(_) => None,
        }
    }

    /// The value of `key`, made with `make` if it has none.
    #[inline(always)]
    pub(crate) fn get_or_insert_with(&mut self, key: u64, make: impl FnOnce() -> T) -> &mut T {
        if key == EMPTY {
            if self.empty_key.is_none() {
                self.len += 1;
            }
            return self.empty_key.get_or_insert_with(make);
        }
        let i = match self.place(key) {
            Place::Found(i) => i,
            Place::Vacant(i) => self.claim(key, i),
        };
        self.values[i].get_or_insert_with(make)
    }

    /// Takes the empty place `i` for `key` (after growing, another place), returning it; its
    /// value is still to be set.
    #[cold]
    fn claim(&mut self, key: u64, i: usize) -> usize {
        self.len += 1;
        let i = if self.len * 2 > self.keys.len() {
            self.grow();
            match self.place(key) {
                Place::Found(i) | Place::Vacant(i) => i,
            }
        } else {
            i
        };
        self.keys[i] = key;
        i
    }

    /// Doubles the arrays and places every key again.
    fn grow(&mut self) {
        let mut bigger = KeyMap::with_places(self.keys.len() * 2);
        let keys = std::mem::take(&mut self.keys);
        let values = std::mem::take(&mut self.values);
        for (key, value) in keys.into_iter().zip(values) {
            if key == EMPTY {
                continue;
            }
            if let (Place::Vacant(i), Some(value)) = (bigger.place(key), value) {
                bigger.keys[i] = key;
                bigger.values[i] = Some(value);
            }
        }
        self.keys = bigger.keys;
        self.values = bigger.values;
        self.shift = bigger.shift;
    }

    /// Sets the value of `key`, returning the one it replaced.
    pub(crate) fn insert(&mut self, key: u64, value: T) -> Option<T> {
        if key == EMPTY {
            let old = self.empty_key.replace(value);
            if old.is_none() {
                self.len += 1;
            }
            return old;
        }
        match self.place(key) {
            Place::Found(i) => self.values[i].replace(value),
            Place::Vacant(i) => {
                let i = self.claim(key, i);
                self.values[i] = Some(value);
                None
            }
        }
    }

    /// Removes the value of `key`, returning it.
    pub(crate) fn remove(&mut self, key: u64) -> Option<T> {
        if key == EMPTY {
            let old = self.empty_key.take();
            if old.is_some() {
                self.len -= 1;
            }
            return old;
        }
        let Place::Found(mut hole) = self.place(key) else {
            return None;
        };
        let old = self.values[hole].take();
        self.keys[hole] = EMPTY;
        self.len -= 1;
        // Later keys of the run whose home is not between the hole and them move back into
        // it, so that every key stays reachable from its home without crossing an empty place.
        let mask = self.keys.len() - 1;
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
            let k = self.keys[j];
            if k == EMPTY {
                break;
            }
            let home = self.home(k);
            // Whether `home` lies cyclically in (hole, j]: then the key stays.
            let stays = if hole <= j {
                hole < home && home <= j
            } else {
                hole < home || home <= j
            };
            if !stays {
                self.keys[hole] = k;
                self.keys[j] = EMPTY;
                let moved = self.values[j].take();
                self.values[hole] = moved;
                hole = j;
            }
        }
        old
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn keys_are_found_after_growing_and_removing() {
        let mut m: KeyMap<u64> = KeyMap::default();
        for k in 0..1000u64 {
            *m.get_or_insert_with(k * 1024, || 0) += k;
        }
        assert_eq!(m.len(), 1000);
        assert!(m.keys.len() >= 2000, "at most half full");
        for k in 0..1000u64 {
            assert_eq!(m.get(k * 1024), Some(&k));
        }
        for k in (0..1000u64).step_by(2) {
            assert_eq!(m.remove(k * 1024), Some(k));
        }
        assert_eq!(m.len(), 500);
        for k in 0..1000u64 {
            let expected = (k % 2 == 1).then_some(k);
            assert_eq!(m.get(k * 1024).copied(), expected);
        }
    }

    #[test]
    fn the_marker_key_and_zero_are_keys_like_any_other() {
        let mut m: KeyMap<&str> = KeyMap::default();
        assert_eq!(m.insert(EMPTY, "max"), None);
        assert_eq!(m.insert(0, "zero"), None);
        assert_eq!(m.insert(EMPTY, "max again"), Some("max"));
        assert_eq!(
            (m.get(EMPTY), m.get(0), m.len()),
            (Some(&"max again"), Some(&"zero"), 2)
        );
        assert_eq!(m.remove(EMPTY), Some("max again"));
        assert_eq!(m.get(EMPTY), None);
        assert_eq!(m.remove(EMPTY), None);
        assert_eq!(m.len(), 1);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Upsert(u64, u32),
        Insert(u64, u32),
        Remove(u64),
        Get(u64),
    }

    /// Keys that collide: a few values of the multiplied key's high bits, the marker, 0.
    fn key() -> impl Strategy<Value = u64> {
        prop_oneof![
            0u64..40,
            (0u64..40).prop_map(|k| k << 58),
            Just(EMPTY),
            Just(EMPTY - 1),
            any::<u64>(),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (key(), any::<u32>()).prop_map(|(k, v)| Op::Upsert(k, v)),
            1 => (key(), any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
            2 => key().prop_map(Op::Remove),
            2 => key().prop_map(Op::Get),
        ]
    }

    proptest! {
        /// Any sequence of operations gives what a `HashMap` gives, and every key held stays
        /// reachable (removals shift runs back correctly, growth places every key again).
        #[test]
        fn behaves_as_a_hash_map(ops in proptest::collection::vec(op(), 1..400)) {
            let mut m: KeyMap<u32> = KeyMap::default();
            let mut model: HashMap<u64, u32> = HashMap::new();
            for op in ops {
                match op {
                    Op::Upsert(k, v) => {
                        let slot = m.get_or_insert_with(k, || 0);
                        *slot = slot.wrapping_add(v);
                        let e = model.entry(k).or_insert(0);
                        *e = e.wrapping_add(v);
                    }
                    Op::Insert(k, v) => prop_assert_eq!(m.insert(k, v), model.insert(k, v)),
                    Op::Remove(k) => prop_assert_eq!(m.remove(k), model.remove(&k)),
                    Op::Get(k) => prop_assert_eq!(m.get(k), model.get(&k)),
                }
                prop_assert_eq!(m.len(), model.len());
            }
            for (k, v) in &model {
                prop_assert_eq!(m.get(*k), Some(v));
            }
            let held = m.keys.iter().filter(|k| **k != EMPTY).count();
            prop_assert_eq!(held + usize::from(m.empty_key.is_some()), model.len());
            prop_assert!(held * 2 <= m.keys.len(), "at most half full");
        }
    }
}
