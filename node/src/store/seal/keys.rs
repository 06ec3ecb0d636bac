//! Subject keys: the `subject_keys` table (a random key per subject, under the SHA-256 digest
//! of the subject's id, never the id) and a bounded cache of keys in memory, shared by the
//! store and its erasers so that an erasure takes effect in the running store at once.
//!
//! The cache never keeps a key its table no longer holds: an eraser removes the key from the
//! cache after its deletion commits and counts the erasure; keys read from the table are added
//! only if no erasure was counted since just before they were read (an erasure committed
//! after the read then finds them in the cache and removes them, or stops their adding).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use ring::rand::SecureRandom;
use rusqlite::{Connection, OptionalExtension};

use super::atom::KeySource;
use super::cipher::SubjectKey;
use super::{Digest, SealError};

/// Most keys the cache holds; past it, an arbitrary one makes room (it is read again when
/// needed).
pub(crate) const CACHED_KEYS: usize = 4_096;

/// Subject keys in memory, shared by a store and its erasers.
#[derive(Clone, Default)]
pub(crate) struct KeyCache(Arc<Mutex<Cached>>);

#[derive(Default)]
struct Cached {
    keys: HashMap<Digest, SubjectKey>,
    /// Erasures counted so far.
    erasures: u64,
}

impl KeyCache {
    fn lock(&self) -> MutexGuard<'_, Cached> {
        // The map stays consistent whatever a panicking holder did: a poisoned lock is used.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn get(&self, digest: &Digest) -> Option<SubjectKey> {
        self.lock().keys.get(digest).cloned()
    }

    fn erasures(&self) -> u64 {
        self.lock().erasures
    }

    /// Adds `found` unless an erasure was counted since `erasures`.
    fn keep(&self, erasures: u64, found: impl IntoIterator<Item = (Digest, SubjectKey)>) {
        let mut cached = self.lock();
        if cached.erasures != erasures {
            return;
        }
        for (digest, key) in found {
            if cached.keys.len() >= CACHED_KEYS
                && !cached.keys.contains_key(&digest)
                && let Some(old) = cached.keys.keys().next().copied()
            {
                cached.keys.remove(&old);
            }
            cached.keys.insert(digest, key);
        }
    }

    /// Drops the key of `digest` and counts an erasure.
    pub(crate) fn forget(&self, digest: &Digest) {
        let mut cached = self.lock();
        cached.erasures += 1;
        cached.keys.remove(digest);
    }

    /// Number of keys held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().keys.len()
    }
}

/// Subject keys read on a connection (through a shared cache, if given), and created there
/// when sealing: make it inside the transaction that stores what it seals, after that
/// transaction has taken the write lock, so a key is created with the payload that needs it.
pub(crate) struct DbKeys<'c> {
    conn: &'c Connection,
    cache: Option<&'c KeyCache>,
    /// The cache's erasures when this began.
    erasures: u64,
    rng: &'c dyn SecureRandom,
    /// Keys read or created here, and subjects found without one.
    found: HashMap<Digest, Option<SubjectKey>>,
}

/// The keys a transaction read or created, to keep in the cache once it has committed.
pub(crate) struct Found {
    erasures: u64,
    keys: Vec<(Digest, SubjectKey)>,
}

impl<'c> DbKeys<'c> {
    /// Keys on `conn`, through `cache`.
    pub(crate) fn new(
        conn: &'c Connection,
        cache: Option<&'c KeyCache>,
        rng: &'c dyn SecureRandom,
    ) -> DbKeys<'c> {
        DbKeys {
            conn,
            erasures: cache.map_or(0, KeyCache::erasures),
            cache,
            rng,
            found: HashMap::new(),
        }
    }

    /// The keys read or created, for [`Found::keep_in`] after the commit.
    pub(crate) fn found(self) -> Found {
        Found {
            erasures: self.erasures,
            keys: self
                .found
                .into_iter()
                .filter_map(|(d, k)| k.map(|k| (d, k)))
                .collect(),
        }
    }

    fn read(&self, digest: &Digest) -> Result<Option<SubjectKey>, SealError> {
        let bytes: Option<Vec<u8>> = self
            .conn
            .prepare_cached("SELECT key FROM subject_keys WHERE subject = ?1")?
            .query_row([&digest[..]], |r| r.get(0))
            .optional()?;
        bytes.map(|b| SubjectKey::from_bytes(&b)).transpose()
    }
}

impl Found {
    /// Keeps the keys in `cache` (unless a subject was erased meanwhile).
    pub(crate) fn keep_in(self, cache: &KeyCache) {
        if !self.keys.is_empty() {
            cache.keep(self.erasures, self.keys);
        }
    }
}

impl KeySource for DbKeys<'_> {
    fn sealing_key(&mut self, digest: &Digest) -> Result<SubjectKey, SealError> {
        if let Some(key) = self.opening_key(digest)? {
            return Ok(key);
        }
        let (key, bytes) = SubjectKey::generate(self.rng)?;
        // A subject erased for good gets a key that is never stored: what a step admitted
        // before the erasure and commits after it is unreadable at once.
        let refused = self
            .conn
            .prepare_cached("SELECT 1 FROM refused_keys WHERE subject = ?1")?
            .exists([&digest[..]])?;
        if refused {
            return Ok(key);
        }
        self.conn
            .prepare_cached("INSERT INTO subject_keys (subject, key) VALUES (?1, ?2)")?
            .execute([&digest[..], &bytes[..]])?;
        self.found.insert(*digest, Some(key.clone()));
        Ok(key)
    }

    fn opening_key(&mut self, digest: &Digest) -> Result<Option<SubjectKey>, SealError> {
        if let Some(known) = self.found.get(digest) {
            return Ok(known.clone());
        }
        if let Some(key) = self.cache.and_then(|c| c.get(digest)) {
            return Ok(Some(key));
        }
        let key = self.read(digest)?;
        self.found.insert(*digest, key.clone());
        Ok(key)
    }

    fn random(&self) -> &dyn SecureRandom {
        self.rng
    }
}
