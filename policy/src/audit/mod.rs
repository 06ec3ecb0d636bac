//! The node's audit log, as pure logic: entries, their hash chain and signatures, and the
//! check that finds the first entry edited, removed, inserted or moved. Storage is the
//! node's; nothing here reads files or clocks (the time of an act is given).
//!
//! Each [`Entry`] records one administrative act (`peer.add`, `policy.load`,
//! `consent.grant`, `subject.erase`, `data.import`, `subject.export`, `gate.denied`, ...).
//! Its hash is SHA-256 over a length-prefixed encoding of its `seq`, time, actor, action,
//! detail (as [`canonical_json`]) and the previous entry's hash; the node's ed25519 key signs
//! that hash. A [`Chain`] makes the entries; a signed [`Head`] (count and last hash), kept
//! apart from the entries, shows entries cut off the end.
//!
//! ```
//! use pods_policy::audit::{Chain, Signer, TamperKind, verify, verify_against};
//! use serde_json::json;
//!
//! let signer = Signer::from_seed(&[42; 32])?;
//! let mut chain = Chain::new();
//! let mut log = vec![
//!     chain.append(&signer, 1_700_000_000, "admin", "peer.add", json!({"name": "b"})),
//!     chain.append(&signer, 1_700_000_060, "admin", "policy.load", json!({"version": 2})),
//!     chain.append(&signer, 1_700_000_120, "admin", "peer.remove", json!({"name": "b"})),
//! ];
//! let head = chain.head(&signer);
//! let key = signer.public_key();
//! assert_eq!(verify_against(log.clone(), &key, &head)?.count, 3);
//!
//! // A changed detail is found, and named.
//! log[1].detail = json!({"version": 3});
//! let tamper = verify(log.clone(), &key).unwrap_err();
//! assert_eq!((tamper.seq, tamper.kind), (1, TamperKind::Edited));
//!
//! // The last entry cut off shows only against the head.
//! log.truncate(1);
//! assert!(verify(log.clone(), &key).is_ok());
//! let tamper = verify_against(log, &key, &head).unwrap_err();
//! assert_eq!((tamper.seq, tamper.kind), (1, TamperKind::Removed));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod chain;
mod entry;
mod error;
mod hex;
mod signer;
mod verify;

#[cfg(test)]
mod tests;

pub use chain::{Chain, Head};
pub use entry::{Entry, GENESIS, canonical_json, hash_of};
pub use error::AuditError;
pub use hex::{decode as from_hex, encode as to_hex};
pub use signer::{Signer, signed_by};
pub use verify::{Tamper, TamperKind, Verified, verify, verify_against};
