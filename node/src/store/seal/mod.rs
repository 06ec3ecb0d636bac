//! Crypto-shredding of personal payloads: the personal events of every atom the store keeps
//! (logged stream atoms, moves of sequencers and splitters, quarantined atoms) are sealed
//! under a key of their data subject (`atom`, `cipher`); the keys live in the database
//! (`keys`), and erasing a subject destroys its key (`erase`), which makes every payload sealed
//! for it unreadable wherever it lies, without finding and rewriting each one. Per-key state
//! values that one subject's events wrote are sealed the same way, one value at a time
//! (`value`).

mod atom;
mod cbor;
mod cipher;
mod erase;
mod keys;
mod rectify;
mod value;

pub(crate) use atom::{KeySource, open_atom, seal_atom};
pub(crate) use erase::complete_pending;
pub use erase::{ErasedKey, Eraser};
pub(crate) use keys::{DbKeys, KeyCache};
pub use rectify::Correction;
pub(crate) use value::{open_value, seal_value};

/// The SHA-256 digest of a data subject's id: what the store keeps in place of the id.
pub(crate) type Digest = [u8; 32];

/// The digest of `subject`.
pub(crate) fn digest(subject: &str) -> Digest {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, subject.as_bytes()).as_ref());
    out
}

/// Why a payload cannot be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SealError {
    /// The atom's CBOR is not in the shape of the sdk's columns.
    #[error("malformed atom: {0}")]
    Malformed(String),
    /// A sealed value does not authenticate: it was altered or cut.
    #[error("a sealed value was altered")]
    Tampered,
    /// A stored subject key has the wrong length.
    #[error("a subject key of {0} bytes (32 expected)")]
    BadKey(usize),
    /// The system's random source failed.
    #[error("the system's random source failed")]
    Random,
    /// Reading or storing a key failed.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

#[cfg(test)]
pub(crate) mod tests;
