//! Events, their privacy envelope, keys, and what a stream carries.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// What an event's value must be: serializable (for logs and the wire), cloneable and sendable.
///
/// Implemented for every type with these bounds; users never implement it by hand.
pub trait Data: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {}
impl<T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static> Data for T {}

/// The key of an event: a 64-bit hash of what `key_by` returned; per-key state and partition
/// routing use it. Events that were never keyed carry key 0.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Key(pub u64);

impl Key {
    /// Hashes any value to a key with a fixed hash function, so keys are stable across runs and
    /// machines (for a given Rust version's `Hash` implementations).
    pub fn of<K: Hash + ?Sized>(value: &K) -> Key {
        let mut h = StableHasher::default();
        value.hash(&mut h);
        Key(h.finish())
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// A fixed, seedless 64-bit hasher: FNV-1a over bytes, a multiply per machine word, and a
/// short finaliser so that both the low bits (partition routing) and the high bits (hash
/// tables) are well mixed.
#[derive(Clone, Copy)]
pub(crate) struct StableHasher(u64);

impl Default for StableHasher {
    fn default() -> Self {
        StableHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for StableHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    #[inline]
    fn write_i64(&mut self, n: i64) {
        self.write_u64(n as u64);
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    fn write_i32(&mut self, n: i32) {
        self.write_u64(n as u64);
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
    // Every integer width goes through `write_u64`, so keys do not depend on the machine's
    // byte order or word size.
    fn write_u8(&mut self, n: u8) {
        self.write_u64(u64::from(n));
    }
    fn write_i8(&mut self, n: i8) {
        self.write_u64(n as u64);
    }
    fn write_u16(&mut self, n: u16) {
        self.write_u64(u64::from(n));
    }
    fn write_i16(&mut self, n: i16) {
        self.write_u64(n as u64);
    }
    fn write_u128(&mut self, n: u128) {
        self.write_u64(n as u64);
        self.write_u64((n >> 64) as u64);
    }
    fn write_i128(&mut self, n: i128) {
        self.write_u128(n as u128);
    }
    fn write_isize(&mut self, n: isize) {
        self.write_u64(n as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        // Fold the well-mixed high half into the low bits (which partition routing uses),
        // then spread once more for the high bits (which hash tables use).
        let h = self.0 ^ (self.0 >> 32);
        h.wrapping_mul(0xbf58_476d_1ce4_e5b9) ^ (h >> 29)
    }
}

/// splitmix64's finaliser: a bijection with good avalanche.
#[inline]
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A hasher for maps keyed by [`Key`] (already well mixed).
#[derive(Default, Clone, Copy)]
pub(crate) struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }
    /// Keys and state ids are already well-mixed hashes: combining by rotate and xor keeps a
    /// single word as it is, so a lookup by key costs no hashing at all.
    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.0 = self.0.rotate_left(29) ^ n;
    }
    #[inline]
    fn write_u8(&mut self, n: u8) {
        self.write_u64(u64::from(n));
    }
    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
    #[inline]
    fn write_isize(&mut self, n: isize) {
        self.write_u64(n as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A fast multiply-rotate hasher for small in-memory maps whose keys are not already hashes
/// (ask ids, counters). Not for keys an adversary chooses freely.
#[derive(Default, Clone, Copy)]
pub(crate) struct MixHasher(u64);

impl Hasher for MixHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }
    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    #[inline]
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

/// `BuildHasher` for [`MixHasher`].
pub(crate) type MixBuild = std::hash::BuildHasherDefault<MixHasher>;

/// `BuildHasher` for [`KeyHasher`].
pub(crate) type KeyBuild = std::hash::BuildHasherDefault<KeyHasher>;

/// The person an event is about (a GDPR data subject).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SubjectId(pub String);

impl fmt::Display for SubjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The privacy envelope of a personal event: whose data it is and which data categories it
/// holds (dotted names such as `health.heart_rate`). The runtime carries it from a task's input
/// event to every event the task emits for it, and through portals to replies.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Envelope {
    /// The data subject.
    pub subject: SubjectId,
    /// The data categories the event holds.
    pub categories: Vec<String>,
    /// When the data was collected (seconds since the Unix epoch), if known: retention counts
    /// from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collected: Option<u64>,
}

impl Envelope {
    /// An envelope for `subject` holding the given categories.
    pub fn new(subject: impl Into<String>, categories: &[&str]) -> Envelope {
        Envelope {
            subject: SubjectId(subject.into()),
            categories: categories.iter().map(|c| (*c).to_owned()).collect(),
            collected: None,
        }
    }

    /// The same envelope, stating when the data was collected (seconds since the Unix epoch).
    pub fn collected_at(mut self, seconds: u64) -> Envelope {
        self.collected = Some(seconds);
        self
    }
}

/// One event in an atom: the user's value, its key, and its envelope if it is personal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event<T> {
    /// The event's key (see [`Key`]).
    pub key: Key,
    /// The envelope naming the data subject and categories; `None` for non-personal data.
    pub envelope: Option<Arc<Envelope>>,
    /// The user's value.
    pub value: T,
}

impl<T> Event<T> {
    /// A non-personal event with key 0.
    pub fn new(value: T) -> Event<T> {
        Event {
            key: Key(0),
            envelope: None,
            value,
        }
    }

    /// A personal event about the envelope's subject.
    pub fn personal(value: T, envelope: Envelope) -> Event<T> {
        Event {
            key: Key(0),
            envelope: Some(Arc::new(envelope)),
            value,
        }
    }
}

/// What a reader of a stream sees: atoms in order, then at most one end marker.
#[derive(Clone, Debug, PartialEq)]
pub enum StreamItem<T> {
    /// One atom's events, in order.
    Atom(Vec<Event<T>>),
    /// The stream has ended; nothing follows.
    Seal,
    /// The producing workflow failed with this message; nothing follows.
    Error(String),
}

impl<T> StreamItem<T> {
    /// The atom's values, or `None` for an end marker.
    pub fn values(&self) -> Option<Vec<T>>
    where
        T: Clone,
    {
        match self {
            StreamItem::Atom(events) => Some(events.iter().map(|e| e.value.clone()).collect()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_and_spread_low_bits() {
        assert_eq!(Key::of(&42u64), Key::of(&42u64));
        assert_ne!(Key::of(&1u64), Key::of(&2u64));
        let mut buckets = [0u32; 4];
        for i in 0..4000u64 {
            buckets[(Key::of(&i).0 % 4) as usize] += 1;
        }
        for b in buckets {
            assert!(
                (900..1100).contains(&b),
                "unbalanced partition buckets {buckets:?}"
            );
        }
    }

    #[test]
    fn string_keys_hash_by_content() {
        assert_eq!(Key::of("alice"), Key::of(&String::from("alice")));
        assert_ne!(Key::of("alice"), Key::of("bob"));
    }
}
