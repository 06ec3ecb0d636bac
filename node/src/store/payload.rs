//! The payload layer: every event payload and state value that the store writes passes through
//! here. Each payload starts with a tag byte naming how it is stored: 0, as it is; 1, an atom
//! whose personal events are sealed under their data subjects' keys (`seal/`), so that erasing
//! a subject (destroying its key) makes them unreadable; 2, a per-key state value that only one
//! subject's events wrote, sealed under that subject's key; 3, a state value that events of
//! several subjects wrote (plain: an aggregate over people, kept through an erasure). Tags this
//! build does not know are refused, so a file written by a later build is reported, not
//! misread.
//!
//! Kept replies carry no envelope to say whose data they are, and stay plain.

use std::borrow::Cow;
use std::path::Path;

use super::seal::{self, KeySource, SealError};
use crate::error::NodeError;

/// Tag of a payload stored as it is.
const PLAIN: u8 = 0;

/// Tag of an atom whose personal events are sealed.
const SEALED: u8 = 1;

/// Tag of a state value of one subject, sealed under their key.
const OWNED: u8 = 2;

/// Tag of a state value that several subjects' events wrote, as it is.
const SHARED: u8 = 3;

/// Why a stored payload cannot be written or opened.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PayloadError {
    /// The payload is empty (it has no tag).
    #[error("empty payload")]
    Empty,
    /// The payload is stored in a way this build does not know.
    #[error("payload stored with unknown tag {0}")]
    UnknownTag(u8),
    /// A sealed payload where only plain ones are stored.
    #[error("a sealed payload where plain ones are stored")]
    UnexpectedSeal,
    /// Sealing or opening failed.
    #[error(transparent)]
    Seal(#[from] SealError),
}

impl PayloadError {
    /// The store's error for payload `what` of `file`.
    pub(crate) fn at(self, file: &Path, what: &str) -> NodeError {
        match self {
            PayloadError::Seal(SealError::Sqlite(e)) => NodeError::sqlite(file, e),
            e => NodeError::BadRecord {
                file: file.to_path_buf(),
                what: what.to_owned(),
                detail: e.to_string(),
            },
        }
    }
}

/// Wraps `plain` for storage, as it is.
pub(crate) fn plain(plain: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(plain.len() + 1);
    out.push(PLAIN);
    out.extend_from_slice(plain);
    out
}

/// Starts a plain payload in `out` (its tag); the bytes follow.
pub(crate) fn begin(out: &mut Vec<u8>) {
    out.push(PLAIN);
}

/// The stored form of `atom` (the sdk's CBOR): sealed if it holds personal events.
pub(crate) fn stored_atom(atom: &[u8], keys: &mut dyn KeySource) -> Result<Vec<u8>, PayloadError> {
    Ok(match seal::seal_atom(atom, keys)? {
        Some(sealed) => tagged(SEALED, &sealed),
        None => plain(atom),
    })
}

/// Seals the personal events of `stored`, a plain payload holding an atom (started with
/// [`begin`]), in place; an atom without personal events is left as it is.
pub(crate) fn seal_stored(
    stored: &mut Vec<u8>,
    keys: &mut dyn KeySource,
) -> Result<(), PayloadError> {
    let atom = match stored.split_first() {
        None => return Err(PayloadError::Empty),
        Some((&PLAIN, atom)) => atom,
        Some((&tag, _)) => return Err(PayloadError::UnknownTag(tag)),
    };
    if let Some(sealed) = seal::seal_atom(atom, keys)? {
        *stored = tagged(SEALED, &sealed);
    }
    Ok(())
}

fn tagged(tag: u8, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 1);
    out.push(tag);
    out.extend_from_slice(bytes);
    out
}

/// The bytes of a stored plain payload (a state value or a reply).
pub(crate) fn open(stored: &[u8]) -> Result<&[u8], PayloadError> {
    match stored.split_first() {
        None => Err(PayloadError::Empty),
        Some((&PLAIN, rest)) => Ok(rest),
        Some((&SEALED | &OWNED | &SHARED, _)) => Err(PayloadError::UnexpectedSeal),
        Some((&tag, _)) => Err(PayloadError::UnknownTag(tag)),
    }
}

/// The stored form of a state value (its CBOR, `value`) whose data is `owner`'s, appended to
/// `out`: sealed under the subject's key for one subject's value, tagged shared for a value
/// of several, plain otherwise.
pub(crate) fn store_value(
    value: &[u8],
    owner: Option<pods_sdk::ValueOwner<'_>>,
    keys: &mut dyn KeySource,
    out: &mut Vec<u8>,
) -> Result<(), PayloadError> {
    match owner {
        None => {
            out.push(PLAIN);
            out.extend_from_slice(value);
        }
        Some(pods_sdk::ValueOwner::Shared) => {
            out.push(SHARED);
            out.extend_from_slice(value);
        }
        Some(pods_sdk::ValueOwner::Subject(subject)) => {
            out.push(OWNED);
            seal::seal_value(&subject.0, value, keys, out)?;
        }
    }
    Ok(())
}

/// A stored state value, read back.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum StoredValue<'a> {
    /// The value's CBOR, and whose data it is: `None` for a value no personal event wrote,
    /// `Some(None)` for a shared one, `Some(Some(subject))` for one subject's.
    Value(Cow<'a, [u8]>, Option<Option<String>>),
    /// A value sealed under a key that is gone: its subject was erased.
    Erased,
}

/// A stored state value (written by [`store_value`], or plain by an earlier build).
pub(crate) fn open_value<'a>(
    stored: &'a [u8],
    keys: &mut dyn KeySource,
) -> Result<StoredValue<'a>, PayloadError> {
    match stored.split_first() {
        None => Err(PayloadError::Empty),
        Some((&PLAIN, rest)) => Ok(StoredValue::Value(Cow::Borrowed(rest), None)),
        Some((&SHARED, rest)) => Ok(StoredValue::Value(Cow::Borrowed(rest), Some(None))),
        Some((&OWNED, rest)) => Ok(match seal::open_value(rest, keys)? {
            Some((subject, value)) => StoredValue::Value(Cow::Owned(value), Some(Some(subject))),
            None => StoredValue::Erased,
        }),
        Some((&SEALED, _)) => Err(PayloadError::UnexpectedSeal),
        Some((&tag, _)) => Err(PayloadError::UnknownTag(tag)),
    }
}

/// The atom (the sdk's CBOR) of a stored atom: opened if sealed, without the events of
/// subjects whose keys are gone.
pub(crate) fn open_atom<'a>(
    stored: &'a [u8],
    keys: &mut dyn KeySource,
) -> Result<Cow<'a, [u8]>, PayloadError> {
    match stored.split_first() {
        None => Err(PayloadError::Empty),
        Some((&PLAIN, rest)) => Ok(Cow::Borrowed(rest)),
        Some((&SEALED, rest)) => Ok(Cow::Owned(seal::open_atom(rest, keys)?)),
        Some((&tag, _)) => Err(PayloadError::UnknownTag(tag)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_unknown_tags_are_refused() {
        let stored = plain(b"value");
        assert_eq!(open(&stored).ok(), Some(&b"value"[..]));
        assert!(matches!(open(&[]), Err(PayloadError::Empty)));
        assert!(matches!(open(&[7, 1, 2]), Err(PayloadError::UnknownTag(7))));
        assert!(matches!(
            open(&[SEALED, 1]),
            Err(PayloadError::UnexpectedSeal)
        ));
    }
}
