//! Vectors of field elements with a compact wire form: one CBOR byte string holding the
//! fixed-width encodings back to back (8 bytes per fast-field element, 32 per scalar).

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::element::Element;

/// A vector of field elements, serialized as a single byte string.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Vector<E: Element>(pub Vec<E>);

impl<E: Element> Vector<E> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the vector is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The encoded bytes (the payload of the CBOR byte string).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.0.len().saturating_mul(E::BYTES));
        for e in &self.0 {
            e.write(&mut out);
        }
        out
    }

    /// Parses the encoded bytes; `None` if the length is not a multiple of the element width
    /// or an element is not canonical.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if !bytes.len().is_multiple_of(E::BYTES) {
            return None;
        }
        bytes
            .chunks_exact(E::BYTES)
            .map(E::read)
            .collect::<Option<Vec<E>>>()
            .map(Vector)
    }
}

impl<E: Element> Serialize for Vector<E> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.to_bytes())
    }
}

struct VectorVisitor<E>(PhantomData<E>);

impl<E: Element> Visitor<'_> for VectorVisitor<E> {
    type Value = Vector<E>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a byte string of canonical {} encodings", E::NAME)
    }

    fn visit_bytes<Er: de::Error>(self, v: &[u8]) -> Result<Self::Value, Er> {
        Vector::from_bytes(v).ok_or_else(|| Er::custom(format!("non-canonical {}", E::NAME)))
    }

    fn visit_byte_buf<Er: de::Error>(self, v: Vec<u8>) -> Result<Self::Value, Er> {
        self.visit_bytes(&v)
    }
}

impl<'de, E: Element> Deserialize<'de> for Vector<E> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_byte_buf(VectorVisitor(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::Fp;

    #[test]
    fn cbor_roundtrip_is_compact() {
        let v = Vector((0..1000u64).map(Fp::new).collect());
        let mut buf = Vec::new();
        assert!(ciborium::into_writer(&v, &mut buf).is_ok());
        assert_eq!(buf.len(), 8000 + 3); // header: major type 2, two-byte length
        let back: Result<Vector<Fp>, _> = ciborium::from_reader(&buf[..]);
        assert_eq!(back.ok(), Some(v));
    }

    #[test]
    fn ragged_or_non_canonical_bytes_are_refused() {
        assert_eq!(Vector::<Fp>::from_bytes(&[0; 9]), None);
        assert_eq!(Vector::<Fp>::from_bytes(&[0xff; 8]), None);
        assert_eq!(Vector::<Fp>::from_bytes(&[]), Some(Vector(Vec::new())));
    }
}
