//! The payload layer: every event payload and state value that the store writes passes through
//! here, so that a personal payload can be sealed under its data subject's key (and erased by
//! destroying the key). Each payload starts with a tag byte naming how it is stored; this build
//! writes plain payloads (tag 0) and refuses tags it does not know, so a file written by a later
//! build with sealed payloads is reported, not misread.

/// Tag of a payload stored as it is.
const PLAIN: u8 = 0;

/// Why a stored payload cannot be opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum PayloadError {
    /// The payload is empty (it has no tag).
    #[error("empty payload")]
    Empty,
    /// The payload is stored in a way this build does not know.
    #[error("payload stored with unknown tag {0}")]
    UnknownTag(u8),
}

/// Wraps `plain` for storage.
pub(crate) fn seal(plain: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(plain.len() + 1);
    out.push(PLAIN);
    out.extend_from_slice(plain);
    out
}

/// Starts a payload in `out` (its tag); the plain bytes follow.
pub(crate) fn begin(out: &mut Vec<u8>) {
    out.push(PLAIN);
}

/// The plain bytes of a stored payload.
pub(crate) fn open(stored: &[u8]) -> Result<&[u8], PayloadError> {
    match stored.split_first() {
        None => Err(PayloadError::Empty),
        Some((&PLAIN, rest)) => Ok(rest),
        Some((&tag, _)) => Err(PayloadError::UnknownTag(tag)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_unknown_tags_are_refused() {
        let stored = seal(b"value");
        assert_eq!(open(&stored), Ok(&b"value"[..]));
        assert_eq!(open(&[]), Err(PayloadError::Empty));
        assert_eq!(open(&[7, 1, 2]), Err(PayloadError::UnknownTag(7)));
    }
}
