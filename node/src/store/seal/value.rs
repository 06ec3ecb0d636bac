//! Sealing one state value under its owner's key: per-key state that only one subject's
//! events wrote is that subject's data, so it is stored as the subject's digest (32 bytes,
//! naming the key) followed by the sealed plaintext: the subject id's length (4 bytes,
//! little-endian), the id, then the value's CBOR. Erasing the subject destroys the key, and
//! every stored copy of the value (changelog records, snapshot) stops opening.

use ring::aead::NONCE_LEN;

use super::atom::KeySource;
use super::cipher::OVERHEAD;
use super::{Digest, SealError, digest};

/// `value` (CBOR) of `subject`, sealed: appended to `out`.
pub(crate) fn seal_value(
    subject: &str,
    value: &[u8],
    keys: &mut dyn KeySource,
    out: &mut Vec<u8>,
) -> Result<(), SealError> {
    let d = digest(subject);
    let key = keys.sealing_key(&d)?;
    let mut nonce = [0u8; NONCE_LEN];
    keys.random()
        .fill(&mut nonce)
        .map_err(|_| SealError::Random)?;
    let len = u32::try_from(subject.len())
        .map_err(|_| SealError::Malformed("a subject id too long to seal".into()))?;
    out.reserve(d.len() + 4 + subject.len() + value.len() + OVERHEAD);
    out.extend_from_slice(&d);
    key.seal_into(
        nonce,
        &d,
        &[&len.to_le_bytes(), subject.as_bytes(), value],
        out,
    )
}

/// The subject and value (CBOR) of a value [`seal_value`] sealed; `None` if the subject's key
/// is gone (erased, or replaced by a new key after an erasure).
pub(crate) fn open_value(
    sealed: &[u8],
    keys: &mut dyn KeySource,
) -> Result<Option<(String, Vec<u8>)>, SealError> {
    if sealed.len() < 32 {
        return Err(SealError::Malformed(
            "a sealed value without its digest".into(),
        ));
    }
    let (d, ciphertext) = sealed.split_at(32);
    let mut digest_bytes: Digest = [0; 32];
    digest_bytes.copy_from_slice(d);
    let key = match keys.opening_key(&digest_bytes)? {
        Some(key) if key.sealed_it(ciphertext) => key,
        _ => return Ok(None),
    };
    let mut plain = Vec::with_capacity(ciphertext.len());
    let range = key.open_into(&digest_bytes, ciphertext, &mut plain)?;
    let plain = &plain[range];
    let bad = || SealError::Malformed("a sealed value's subject does not add up".into());
    let (len, rest) = plain.split_first_chunk::<4>().ok_or_else(bad)?;
    let len = u32::from_le_bytes(*len) as usize;
    if rest.len() < len {
        return Err(bad());
    }
    let (subject, value) = rest.split_at(len);
    let subject = std::str::from_utf8(subject).map_err(|_| bad())?;
    // The digest is the associated data: a value moved under another subject's digest does
    // not open at all; this only guards against a seal made with the wrong id.
    if digest(subject) != digest_bytes {
        return Err(bad());
    }
    Ok(Some((subject.to_owned(), value.to_vec())))
}

#[cfg(test)]
mod tests {
    use super::super::tests::MemoryKeys;
    use super::*;

    #[test]
    fn a_sealed_value_opens_with_its_subject_until_they_are_erased() {
        let mut keys = MemoryKeys::new();
        let mut ann = Vec::new();
        seal_value("ann", b"ANN-VALUE", &mut keys, &mut ann).unwrap();
        let mut bob = Vec::new();
        seal_value("bob", b"BOB-VALUE", &mut keys, &mut bob).unwrap();
        assert!(
            !ann.windows(9).any(|w| w == b"ANN-VALUE"),
            "sealed, not in clear"
        );
        assert_eq!(
            open_value(&ann, &mut keys).unwrap(),
            Some(("ann".to_owned(), b"ANN-VALUE".to_vec()))
        );
        keys.erase("ann");
        assert_eq!(open_value(&ann, &mut keys).unwrap(), None, "erased");
        assert_eq!(
            open_value(&bob, &mut keys).unwrap(),
            Some(("bob".to_owned(), b"BOB-VALUE".to_vec()))
        );
        // Seen again after the erasure: a new key, which does not open the old value.
        let mut again = Vec::new();
        seal_value("ann", b"NEW", &mut keys, &mut again).unwrap();
        assert_eq!(open_value(&ann, &mut keys).unwrap(), None);
        assert_eq!(
            open_value(&again, &mut keys).unwrap(),
            Some(("ann".to_owned(), b"NEW".to_vec()))
        );
    }

    #[test]
    fn altered_cut_or_moved_values_are_errors() {
        let mut keys = MemoryKeys::new();
        let mut sealed = Vec::new();
        seal_value("ann", b"value", &mut keys, &mut sealed).unwrap();
        let mut altered = sealed.clone();
        let last = altered.len() - 1;
        altered[last] ^= 1;
        assert!(matches!(
            open_value(&altered, &mut keys),
            Err(SealError::Tampered)
        ));
        assert!(matches!(
            open_value(&sealed[..20], &mut keys),
            Err(SealError::Malformed(_))
        ));
        assert!(matches!(
            open_value(&sealed[..60], &mut keys),
            Err(SealError::Tampered)
        ));
        // Under bob's digest, ann's ciphertext names a key bob does not have: nothing opens.
        seal_value("bob", b"x", &mut keys, &mut Vec::new()).unwrap();
        let mut moved = digest("bob").to_vec();
        moved.extend_from_slice(&sealed[32..]);
        assert_eq!(open_value(&moved, &mut keys).unwrap(), None);
    }
}
