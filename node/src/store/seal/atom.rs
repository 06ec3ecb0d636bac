//! Sealing the personal events of an atom. An atom is the sdk's CBOR of its columns: a map
//! with the text keys `values`, `keys` and `envelopes` (null while no event has a key or an
//! envelope). Sealed, each personal event's value becomes the CBOR tag [`SEALED_VALUE`] over a
//! byte string (the sealed CBOR array `[subject, value]`, see `cipher`), and its envelope's
//! `subject` becomes the subject's SHA-256 digest (a byte string), which names the key;
//! categories and collection time stay as they are. Non-personal events and every other byte
//! of the atom are untouched. Opening reverses this, giving back the atom's bytes exactly; an
//! event whose subject's key is gone (erased, or replaced by a new key after an erasure) is
//! removed from the atom, its key and envelope with it, the rest kept in order.
//!
//! Both work on byte spans (`cbor`): the items they change are replaced, everything else is
//! copied, so an atom is never decoded into a tree.

use std::ops::Range;

use ring::aead::NONCE_LEN;
use ring::rand::SecureRandom;

use super::cbor::{self, ARRAY, BREAK, BYTES, Edits, MAP, NULL, TAG};
use super::cipher::{OVERHEAD, SubjectKey};
use super::{Digest, SealError, digest};

/// The CBOR tag of a sealed value ("pods" in ASCII).
pub(crate) const SEALED_VALUE: u64 = 0x706f_6473;

/// How every atom without an envelope column ends: the text `envelopes`, then null.
const NO_ENVELOPES: &[u8] = b"\x69envelopes\xf6";

/// The CBOR text `subject`, which every envelope holds.
const SUBJECT: &[u8] = b"\x67subject";

/// Where the keys of subjects come from.
pub(crate) trait KeySource {
    /// The key to seal the data of the subject with `digest` under (created if it has none).
    fn sealing_key(&mut self, digest: &Digest) -> Result<SubjectKey, SealError>;
    /// The key of the subject with `digest`; `None` if it has none (erased).
    fn opening_key(&mut self, digest: &Digest) -> Result<Option<SubjectKey>, SealError>;
    /// The random source of nonces (and of new keys).
    fn random(&self) -> &dyn SecureRandom;
}

/// Whether `atom` may hold a personal event. `false` is certain; `true` may be wrong (a value
/// holding the text `subject`), which only costs a look at the atom's items.
pub(crate) fn may_be_personal(atom: &[u8]) -> bool {
    !atom.ends_with(NO_ENVELOPES) && contains(atom, SUBJECT)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    let Some((&first, rest)) = needle.split_first() else {
        return true;
    };
    hay.iter()
        .enumerate()
        .any(|(i, &b)| b == first && hay.get(i + 1..).is_some_and(|t| t.starts_with(rest)))
}

/// `atom` with its personal events sealed; `None` if it holds none (it is stored as it is).
pub(crate) fn seal_atom(
    atom: &[u8],
    keys: &mut dyn KeySource,
) -> Result<Option<Vec<u8>>, SealError> {
    if !may_be_personal(atom) {
        return Ok(None);
    }
    let columns = Columns::find(atom)?;
    let Some(envelopes) = &columns.envelopes else {
        return Ok(None);
    };
    let mut personal = Vec::new();
    for (i, envelope) in envelopes.items.iter().enumerate() {
        if let Some(subject) = subject_of(atom, envelope)? {
            personal.push((i, subject));
        }
    }
    if personal.is_empty() {
        return Ok(None);
    }
    // One draw from the system's random source for the whole atom.
    let mut nonces = vec![0u8; NONCE_LEN * personal.len()];
    keys.random()
        .fill(&mut nonces)
        .map_err(|_| SealError::Random)?;
    let mut edits = Edits::new(atom);
    for ((i, subject), nonce) in personal.into_iter().zip(nonces.chunks_exact(NONCE_LEN)) {
        let text = cbor::text(atom, &subject)
            .ok_or_else(|| malformed("an envelope's subject is not text"))?;
        let d = digest(text);
        let key = keys.sealing_key(&d)?;
        let value = columns.values.items[i].clone();
        let mut pair = Vec::with_capacity(1);
        cbor::write_head(&mut pair, ARRAY, 2);
        let sealed_len = pair.len() + subject.len() + value.len() + OVERHEAD;
        let mut nonce_bytes = [0u8; NONCE_LEN];
        nonce_bytes.copy_from_slice(nonce);
        let parts = [&pair[..], &atom[subject.clone()], &atom[value.clone()]];
        edits.replace_with(value, |out| {
            cbor::write_head(out, TAG, SEALED_VALUE);
            cbor::write_head(out, BYTES, sealed_len as u64);
            key.seal_into(nonce_bytes, &d, &parts, out)
        })?;
        edits.replace_with(subject, |out| {
            cbor::write_head(out, BYTES, d.len() as u64);
            out.extend_from_slice(&d);
            Ok::<(), SealError>(())
        })?;
    }
    Ok(Some(edits.apply()))
}

/// The sdk's CBOR of a sealed atom, without the events whose subjects' keys are gone.
pub(crate) fn open_atom(sealed: &[u8], keys: &mut dyn KeySource) -> Result<Vec<u8>, SealError> {
    let columns = Columns::find(sealed)?;
    let Some(envelopes) = &columns.envelopes else {
        return Err(malformed("a sealed atom without envelopes"));
    };
    let mut edits = Edits::new(sealed);
    let mut gone = vec![false; columns.values.items.len()];
    for (i, envelope) in envelopes.items.iter().enumerate() {
        let Some(subject) = subject_of(sealed, envelope)? else {
            continue;
        };
        let d: Digest = cbor::byte_string(sealed, &subject)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| malformed("a personal event is not sealed"))?;
        let value = columns.values.items[i].clone();
        let tag = cbor::head(sealed, value.start)?;
        if tag.major != TAG || tag.arg != Some(SEALED_VALUE) {
            return Err(malformed("a personal event's value is not sealed"));
        }
        let ciphertext = cbor::byte_string(sealed, &(value.start + tag.len..value.end))
            .ok_or_else(|| malformed("a sealed value is not a byte string"))?;
        let key = match keys.opening_key(&d)? {
            Some(key) if key.sealed_it(ciphertext) => key,
            _ => {
                gone[i] = true;
                continue;
            }
        };
        // The associated data (the digest) binds the pair to this subject: the subject in it
        // is the one whose digest names the key.
        let plain = key.open_into(&d, ciphertext, edits.buffer())?;
        let buffer = edits.buffer();
        let pair = cbor::head(buffer, plain.start)?;
        let parts = cbor::items(buffer, plain.start)?;
        let (Some(text), Some(inner)) = (parts.items.first(), parts.items.get(1)) else {
            return Err(malformed("a sealed value is not a pair"));
        };
        if pair.major != ARRAY || parts.items.len() != 2 || parts.end != plain.end {
            return Err(malformed("a sealed value is not a pair"));
        }
        cbor::text(buffer, text).ok_or_else(|| malformed("a sealed subject is not text"))?;
        let (text, inner) = (text.clone(), inner.clone());
        edits.replace(value, inner);
        edits.replace(subject, text);
    }
    if gone.contains(&true) {
        for column in [
            Some(&columns.values),
            columns.keys.as_ref(),
            Some(envelopes),
        ]
        .into_iter()
        .flatten()
        {
            column.remove(sealed, &gone, &mut edits)?;
        }
    }
    Ok(edits.apply())
}

/// One column of an atom: the span of its array's head and of each item.
struct Column {
    head: Range<usize>,
    items: Vec<Range<usize>>,
}

impl Column {
    /// Removes the items `gone` marks, and counts the rest in the array's head.
    fn remove(&self, bytes: &[u8], gone: &[bool], edits: &mut Edits<'_>) -> Result<(), SealError> {
        let mut kept = 0u64;
        for (item, gone) in self.items.iter().zip(gone) {
            if *gone {
                edits.remove(item.clone());
            } else {
                kept += 1;
            }
        }
        // An array of indefinite length does not count its items.
        if cbor::head(bytes, self.head.start)?.arg.is_some() {
            edits.replace_with(self.head.clone(), |out| {
                cbor::write_head(out, ARRAY, kept);
                Ok::<(), SealError>(())
            })?;
        }
        Ok(())
    }
}

/// The columns of an atom (`keys` and `envelopes` absent while null), checked to be of one
/// length.
struct Columns {
    values: Column,
    keys: Option<Column>,
    envelopes: Option<Column>,
}

impl Columns {
    fn find(atom: &[u8]) -> Result<Columns, SealError> {
        let map = cbor::head(atom, 0)?;
        if map.major != MAP {
            return Err(malformed("an atom is not a map"));
        }
        let (mut values, mut keys, mut envelopes) = (None, None, None);
        // One walk over the atom: each column's items are found as it is skipped.
        let mut at = map.len;
        let mut left = map.arg;
        while left.map_or(atom.get(at) != Some(&BREAK), |n| n > 0) {
            left = left.map(|n| n - 1);
            let name = at..cbor::skip(atom, at)?;
            at = name.end;
            let slot = match cbor::text(atom, &name) {
                Some("values") => &mut values,
                Some("keys") => &mut keys,
                Some("envelopes") => &mut envelopes,
                _ => {
                    at = cbor::skip(atom, at)?;
                    continue;
                }
            };
            *slot = match cbor::head(atom, at)?.major {
                ARRAY => {
                    let column = cbor::items(atom, at)?;
                    at = column.end;
                    Some(Column {
                        head: column.head,
                        items: column.items,
                    })
                }
                _ if atom.get(at) == Some(&NULL) => {
                    at += 1;
                    None
                }
                _ => return Err(malformed("a column is not an array")),
            };
        }
        let values = values.ok_or_else(|| malformed("an atom without values"))?;
        let n = values.items.len();
        if [&keys, &envelopes]
            .into_iter()
            .flatten()
            .any(|c| c.items.len() != n)
        {
            return Err(malformed("columns of different lengths"));
        }
        Ok(Columns {
            values,
            keys,
            envelopes,
        })
    }
}

/// The span of the `subject` of the envelope at `envelope`; `None` for a non-personal event
/// (null).
fn subject_of(atom: &[u8], envelope: &Range<usize>) -> Result<Option<Range<usize>>, SealError> {
    if atom.get(envelope.start) == Some(&NULL) {
        return Ok(None);
    }
    if cbor::head(atom, envelope.start)?.major != MAP {
        return Err(malformed("an envelope is not a map"));
    }
    match cbor::entry(atom, envelope.start, "subject")? {
        Some(subject) => Ok(Some(subject)),
        None => Err(malformed("an envelope without a subject")),
    }
}

fn malformed(what: &str) -> SealError {
    SealError::Malformed(what.to_owned())
}
