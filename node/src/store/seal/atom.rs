//! Sealing the personal events of an atom. An atom is the sdk's CBOR of its columns: a map
//! with the text keys `values`, `keys` and `envelopes` (null while no event has a key or an
//! envelope). Sealed, each personal event's value becomes the CBOR tag [`SEALED_VALUE`] over a
//! byte string (nonce, then the ciphertext of the CBOR array `[subject, value]`, then the tag),
//! and its envelope's `subject` becomes the subject's SHA-256 digest (bytes), which names the
//! key; categories and collection time stay as they are. Non-personal events and every other
//! part of the atom are untouched. Opening reverses this; an event whose subject's key is gone
//! (erased, or replaced by a new key after an erasure) is removed from the atom, its key and
//! envelope with it, the rest kept in order.

use ciborium::Value;
use ring::rand::SecureRandom;

use super::cipher::SubjectKey;
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
/// holding the text `subject`), which only costs a parse.
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
    let mut root = parse(atom)?;
    let columns = Columns::of(&mut root)?;
    let Some(envelopes) = columns.envelopes else {
        return Ok(None);
    };
    let mut sealed = 0;
    for (value, envelope) in columns.values.iter_mut().zip(envelopes.iter_mut()) {
        let Some(subject) = subject_of(envelope)? else {
            continue;
        };
        let Value::Text(text) = std::mem::replace(subject, Value::Null) else {
            return Err(malformed("an envelope's subject is not text"));
        };
        let d = digest(&text);
        let key = keys.sealing_key(&d)?;
        let plain = encode(&Value::Array(vec![
            Value::Text(text),
            std::mem::replace(value, Value::Null),
        ]))?;
        *value = Value::Tag(
            SEALED_VALUE,
            Box::new(Value::Bytes(key.seal(keys.random(), &d, &plain)?)),
        );
        *subject = Value::Bytes(d.to_vec());
        sealed += 1;
    }
    if sealed == 0 {
        return Ok(None);
    }
    encode(&root).map(Some)
}

/// The sdk's CBOR of a sealed atom, without the events whose subjects' keys are gone.
pub(crate) fn open_atom(sealed: &[u8], keys: &mut dyn KeySource) -> Result<Vec<u8>, SealError> {
    let mut root = parse(sealed)?;
    let columns = Columns::of(&mut root)?;
    let Some(envelopes) = columns.envelopes else {
        return Err(malformed("a sealed atom without envelopes"));
    };
    let mut keep = vec![true; columns.values.len()];
    for ((value, envelope), keep) in columns
        .values
        .iter_mut()
        .zip(envelopes.iter_mut())
        .zip(&mut keep)
    {
        let Some(subject) = subject_of(envelope)? else {
            continue;
        };
        let d: Digest = match subject {
            Value::Bytes(b) => b
                .as_slice()
                .try_into()
                .map_err(|_| malformed("a subject digest is not 32 bytes"))?,
            _ => return Err(malformed("a personal event is not sealed")),
        };
        let Value::Tag(SEALED_VALUE, inner) = value else {
            return Err(malformed("a personal event's value is not sealed"));
        };
        let Value::Bytes(ciphertext) = inner.as_ref() else {
            return Err(malformed("a sealed value is not a byte string"));
        };
        let key = match keys.opening_key(&d)? {
            Some(key) if key.sealed_it(ciphertext) => key,
            _ => {
                *keep = false;
                continue;
            }
        };
        let plain = key.open(&d, ciphertext)?;
        let Value::Array(mut pair) = parse(&plain)? else {
            return Err(malformed("a sealed value is not a pair"));
        };
        let (Some(inner_value), Some(Value::Text(text)), None) =
            (pair.pop(), pair.pop(), pair.pop())
        else {
            return Err(malformed("a sealed value is not a pair"));
        };
        if digest(&text) != d {
            return Err(SealError::Tampered);
        }
        *value = inner_value;
        *subject = Value::Text(text);
    }
    if keep.contains(&false) {
        retain(columns.values, &keep);
        if let Some(k) = columns.keys {
            retain(k, &keep);
        }
        retain(envelopes, &keep);
    }
    encode(&root)
}

/// The columns of an atom, borrowed from its parsed map.
struct Columns<'a> {
    values: &'a mut Vec<Value>,
    keys: Option<&'a mut Vec<Value>>,
    envelopes: Option<&'a mut Vec<Value>>,
}

impl<'a> Columns<'a> {
    /// The columns of `root`, checked to be of one length.
    fn of(root: &'a mut Value) -> Result<Columns<'a>, SealError> {
        let Value::Map(entries) = root else {
            return Err(malformed("an atom is not a map"));
        };
        let (mut values, mut keys, mut envelopes) = (None, None, None);
        for (name, column) in entries.iter_mut() {
            let Value::Text(name) = name else { continue };
            match (name.as_str(), column) {
                ("values", Value::Array(a)) => values = Some(a),
                ("keys", Value::Array(a)) => keys = Some(a),
                ("envelopes", Value::Array(a)) => envelopes = Some(a),
                ("values", _) => return Err(malformed("the values are not an array")),
                _ => {}
            }
        }
        let values = values.ok_or_else(|| malformed("an atom without values"))?;
        let n = values.len();
        if keys.as_ref().is_some_and(|k| k.len() != n)
            || envelopes.as_ref().is_some_and(|e| e.len() != n)
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

/// The `subject` field of an envelope; `None` for a non-personal event (null).
fn subject_of(envelope: &mut Value) -> Result<Option<&mut Value>, SealError> {
    match envelope {
        Value::Null => Ok(None),
        Value::Map(fields) => fields
            .iter_mut()
            .find(|(name, _)| matches!(name, Value::Text(t) if t == "subject"))
            .map(|(_, subject)| Some(subject))
            .ok_or_else(|| malformed("an envelope without a subject")),
        _ => Err(malformed("an envelope is not a map")),
    }
}

fn retain(column: &mut Vec<Value>, keep: &[bool]) {
    let mut i = 0;
    column.retain(|_| {
        let k = keep.get(i).copied().unwrap_or(true);
        i += 1;
        k
    });
}

fn parse(bytes: &[u8]) -> Result<Value, SealError> {
    ciborium::from_reader(bytes).map_err(|e| SealError::Malformed(e.to_string()))
}

fn encode(value: &Value) -> Result<Vec<u8>, SealError> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).map_err(|e| SealError::Malformed(e.to_string()))?;
    Ok(out)
}

fn malformed(what: &str) -> SealError {
    SealError::Malformed(what.to_owned())
}
