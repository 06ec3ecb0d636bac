//! The head of the log: the next sequence number and the last hash. Appending makes the
//! next entry; a [`Head`] is the same signed, kept apart so that removing the last entries
//! shows.

use sha2::{Digest, Sha256};

use super::entry::{Entry, GENESIS, hash_of};
use super::signer::{Signer, signed_by};

/// Domain tag of a head's signed digest (version 1).
const HEAD_DOMAIN: &[u8] = b"pods.audit.head.v1";

/// Where the log stands: what the next entry's `seq` and `prev` will be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chain {
    next: u64,
    last: [u8; 32],
}

impl Default for Chain {
    fn default() -> Self {
        Chain::new()
    }
}

impl Chain {
    /// An empty log's head: the first entry will be `seq` 0 after [`GENESIS`].
    pub fn new() -> Chain {
        Chain {
            next: 0,
            last: GENESIS,
        }
    }

    /// The head of a log of `count` entries whose last hash is `last` (as read back from
    /// storage, after checking its [`Head`]).
    pub fn resume(count: u64, last: [u8; 32]) -> Chain {
        Chain { next: count, last }
    }

    /// The number of entries so far (the next entry's `seq`).
    pub fn count(&self) -> u64 {
        self.next
    }

    /// The last entry's hash ([`GENESIS`] when empty).
    pub fn last_hash(&self) -> [u8; 32] {
        self.last
    }

    /// Makes the next entry, signed by `signer`, and advances the head past it. `at` is the
    /// act's time in Unix seconds.
    pub fn append(
        &mut self,
        signer: &Signer,
        at: u64,
        actor: &str,
        action: &str,
        detail: serde_json::Value,
    ) -> Entry {
        let hash = hash_of(self.next, at, actor, action, &detail, &self.last);
        let entry = Entry {
            seq: self.next,
            at,
            actor: actor.to_owned(),
            action: action.to_owned(),
            detail,
            prev: self.last,
            hash,
            signature: signer.sign(&hash),
        };
        self.next += 1;
        self.last = hash;
        entry
    }

    /// This head, signed by `signer`.
    pub fn head(&self, signer: &Signer) -> Head {
        Head {
            count: self.next,
            hash: self.last,
            signature: signer.sign(&head_digest(self.next, &self.last)),
        }
    }
}

/// A signed statement of how many entries the log holds and the last one's hash, kept beside
/// the entries and rewritten with each; the log's end cannot be cut off unseen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    /// The number of entries.
    pub count: u64,
    /// The last entry's hash ([`GENESIS`] when empty).
    pub hash: [u8; 32],
    /// Ed25519 signature of the head's digest (64 bytes).
    pub signature: Vec<u8>,
}

impl Head {
    /// Whether `public_key` signed this head.
    pub fn is_signed_by(&self, public_key: &[u8; 32]) -> bool {
        signed_by(
            public_key,
            &head_digest(self.count, &self.hash),
            &self.signature,
        )
    }
}

/// SHA-256 over the head's domain tag, count and hash, each length-prefixed like an entry's
/// fields; the tag keeps a head's signature from passing for an entry's.
fn head_digest(count: u64, hash: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    for field in [HEAD_DOMAIN, &count.to_be_bytes(), hash] {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field);
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn entries_chain_from_genesis_and_the_head_follows() {
        let signer = Signer::from_seed(&[7; 32]).unwrap();
        let mut chain = Chain::new();
        let a = chain.append(&signer, 10, "admin", "peer.add", json!({"name": "b"}));
        let b = chain.append(&signer, 11, "admin", "peer.remove", json!({"name": "b"}));
        assert_eq!((a.seq, a.prev), (0, GENESIS));
        assert_eq!((b.seq, b.prev), (1, a.hash));
        assert_eq!(a.compute_hash(), a.hash);
        assert!(signed_by(&signer.public_key(), &b.hash, &b.signature));
        assert_eq!((chain.count(), chain.last_hash()), (2, b.hash));
        let head = chain.head(&signer);
        assert!(head.is_signed_by(&signer.public_key()));
        let mut cut = head.clone();
        cut.count = 1;
        assert!(!cut.is_signed_by(&signer.public_key()));
        assert_eq!(Chain::resume(2, b.hash), chain);
    }

    #[test]
    fn an_entry_signature_does_not_pass_for_a_head() {
        let signer = Signer::from_seed(&[7; 32]).unwrap();
        let mut chain = Chain::new();
        let a = chain.append(&signer, 10, "admin", "x", json!(null));
        let forged = Head {
            count: 1,
            hash: a.hash,
            signature: a.signature.clone(),
        };
        assert!(!forged.is_signed_by(&signer.public_key()));
    }
}
