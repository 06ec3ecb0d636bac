//! The cipher under sealed values: ChaCha20-Poly1305 (ring's AEAD) under a subject's 256-bit
//! key, with a random 96-bit nonce per value and the subject's digest as associated data (a
//! sealed value moved to another subject's event does not open). A sealed value is the key's
//! id (8 bytes), the nonce (12), the ciphertext and the tag (16). The id (a hash of the key)
//! tells a value sealed under the subject's current key from one sealed under a key erased
//! before it (a subject erased, then seen again, gets a new key). Keys are random, one per
//! subject, so random nonces stay far from the birthday bound (2^32 values per key keep the
//! chance of a repeat below 2^-32).

use std::sync::Arc;

use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::SecureRandom;

use super::{Digest, SealError};

/// Bytes of a subject key.
pub(crate) const KEY_LEN: usize = 32;

/// Bytes of a key's id.
const ID_LEN: usize = 8;

/// Bytes a sealed value adds to its plaintext: the key's id, the nonce and the tag.
pub(crate) const OVERHEAD: usize = ID_LEN + NONCE_LEN + 16;

/// A subject's key, ready to seal and open.
#[derive(Clone)]
pub(crate) struct SubjectKey {
    key: Arc<LessSafeKey>,
    id: [u8; ID_LEN],
}

impl std::fmt::Debug for SubjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key's bytes.
        f.write_str("SubjectKey(..)")
    }
}

impl SubjectKey {
    /// The key whose stored bytes are `bytes`.
    pub(crate) fn from_bytes(bytes: &[u8]) -> Result<SubjectKey, SealError> {
        if bytes.len() != KEY_LEN {
            return Err(SealError::BadKey(bytes.len()));
        }
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, bytes)
            .map_err(|_| SealError::BadKey(bytes.len()))?;
        let mut context = ring::digest::Context::new(&ring::digest::SHA256);
        context.update(b"pods subject key id\0");
        context.update(bytes);
        let mut id = [0u8; ID_LEN];
        id.copy_from_slice(&context.finish().as_ref()[..ID_LEN]);
        Ok(SubjectKey {
            key: Arc::new(LessSafeKey::new(unbound)),
            id,
        })
    }

    /// Whether `sealed` was sealed under this key (not under one erased before it).
    pub(crate) fn sealed_it(&self, sealed: &[u8]) -> bool {
        sealed.get(..ID_LEN) == Some(&self.id[..])
    }

    /// A new random key and its bytes (to store).
    pub(crate) fn generate(
        rng: &dyn SecureRandom,
    ) -> Result<(SubjectKey, [u8; KEY_LEN]), SealError> {
        let mut bytes = [0u8; KEY_LEN];
        rng.fill(&mut bytes).map_err(|_| SealError::Random)?;
        Ok((SubjectKey::from_bytes(&bytes)?, bytes))
    }

    /// `plain` sealed for the subject of `digest` with `nonce` (random: never used twice with
    /// this key): the key's id, nonce, ciphertext, tag.
    #[cfg(test)]
    pub(crate) fn seal(
        &self,
        nonce: [u8; NONCE_LEN],
        digest: &Digest,
        plain: &[u8],
    ) -> Result<Vec<u8>, SealError> {
        let mut out = Vec::with_capacity(plain.len() + OVERHEAD);
        self.seal_into(nonce, digest, &[plain], &mut out)?;
        Ok(out)
    }

    /// Appends to `out` the plaintext made of `parts` sealed as [`seal`](SubjectKey::seal)
    /// seals it, without copying the plaintext elsewhere first.
    pub(crate) fn seal_into(
        &self,
        nonce: [u8; NONCE_LEN],
        digest: &Digest,
        parts: &[&[u8]],
        out: &mut Vec<u8>,
    ) -> Result<(), SealError> {
        out.extend_from_slice(&self.id);
        out.extend_from_slice(&nonce);
        let start = out.len();
        for part in parts {
            out.extend_from_slice(part);
        }
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(digest),
                &mut out[start..],
            )
            .map_err(|_| SealError::Random)?;
        out.extend_from_slice(tag.as_ref());
        Ok(())
    }

    /// The plaintext of `sealed` (as [`seal`](SubjectKey::seal) wrote it for `digest`); an
    /// error if it was altered, cut, or sealed for another subject or under another key.
    #[cfg(test)]
    pub(crate) fn open(&self, digest: &Digest, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut out = Vec::new();
        let plain = self.open_into(digest, sealed, &mut out)?;
        Ok(out[plain].to_vec())
    }

    /// Opens `sealed` as [`open`](SubjectKey::open) does, into `out` (appended); returns where
    /// the plaintext lies in `out`.
    pub(crate) fn open_into(
        &self,
        digest: &Digest,
        sealed: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<std::ops::Range<usize>, SealError> {
        if sealed.len() < OVERHEAD || !self.sealed_it(sealed) {
            return Err(SealError::Tampered);
        }
        let (nonce, rest) = sealed[ID_LEN..].split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Tampered)?;
        let start = out.len();
        out.extend_from_slice(rest);
        let plain_len = self
            .key
            .open_in_place(nonce, Aad::from(digest), &mut out[start..])
            .map_err(|_| SealError::Tampered)?
            .len();
        out.truncate(start + plain_len);
        Ok(start..start + plain_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::{SecureRandom, SystemRandom};

    fn nonce(rng: &SystemRandom) -> [u8; NONCE_LEN] {
        let mut n = [0u8; NONCE_LEN];
        rng.fill(&mut n).unwrap();
        n
    }

    #[test]
    fn sealed_values_open_only_with_their_key_and_subject() {
        let rng = SystemRandom::new();
        let (key, bytes) = SubjectKey::generate(&rng).unwrap();
        let (other, _) = SubjectKey::generate(&rng).unwrap();
        let (a, b) = ([1u8; 32], [2u8; 32]);
        let sealed = key.seal(nonce(&rng), &a, b"pulse 72").unwrap();
        assert_eq!(sealed.len(), 8 + OVERHEAD);
        assert!(!sealed.windows(8).any(|w| w == b"pulse 72"));
        assert_eq!(key.open(&a, &sealed).unwrap(), b"pulse 72");
        assert!(key.sealed_it(&sealed) && !other.sealed_it(&sealed));
        let again = SubjectKey::from_bytes(&bytes).unwrap();
        assert!(again.sealed_it(&sealed), "the id follows from the key");
        assert_eq!(again.open(&a, &sealed).unwrap(), b"pulse 72");
        assert!(matches!(key.open(&b, &sealed), Err(SealError::Tampered)));
        assert!(matches!(other.open(&a, &sealed), Err(SealError::Tampered)));
        assert_ne!(
            key.seal(nonce(&rng), &a, b"pulse 72").unwrap(),
            sealed,
            "a fresh nonce each time"
        );
    }

    #[test]
    fn altered_or_cut_values_are_errors() {
        let rng = SystemRandom::new();
        let (key, _) = SubjectKey::generate(&rng).unwrap();
        let d = [9u8; 32];
        let sealed = key.seal(nonce(&rng), &d, b"value").unwrap();
        for i in 0..sealed.len() {
            let mut altered = sealed.clone();
            altered[i] ^= 0x40;
            let opened = key.open(&d, &altered);
            assert!(matches!(opened, Err(SealError::Tampered)), "byte {i}");
        }
        for n in 0..sealed.len() {
            let opened = key.open(&d, &sealed[..n]);
            assert!(matches!(opened, Err(SealError::Tampered)), "cut {n}");
        }
        assert!(matches!(
            SubjectKey::from_bytes(&[0; 31]),
            Err(SealError::BadKey(31))
        ));
    }
}
