//! One atom's changelog record: the step, the input position after it, and every state value
//! it wrote, encoded as CBOR. Values are the state's CBOR encoding wrapped by the payload layer.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Bytes that encode as one CBOR byte string (not an array of integers).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Bytes(pub Vec<u8>);

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Bytes;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
                Ok(Bytes(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Bytes, E> {
                Ok(Bytes(v))
            }
        }
        d.deserialize_bytes(Visitor)
    }
}

/// One state change: which state, which key (`None` for per-task state), the new value
/// (`None`: removed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Write {
    pub state: u64,
    pub key: Option<u64>,
    pub value: Option<Bytes>,
}

/// What one committed atom changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Record {
    pub step: u64,
    /// The input stream and the offset of its next atom, for a stream atom.
    pub input: Option<(String, u64)>,
    pub writes: Vec<Write>,
}

impl Record {
    pub(crate) fn encode(&self) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        ciborium::into_writer(self, &mut out).map_err(|e| e.to_string())?;
        Ok(out)
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Record, String> {
        ciborium::from_reader(bytes).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn records_survive_encoding(
            step in any::<u64>(),
            input in proptest::option::of(("[a-z/]{1,20}", any::<u64>())),
            writes in prop::collection::vec(
                (any::<u64>(), proptest::option::of(any::<u64>()), proptest::option::of(prop::collection::vec(any::<u8>(), 0..40))),
                0..20,
            ),
        ) {
            let record = Record {
                step,
                input,
                writes: writes
                    .into_iter()
                    .map(|(state, key, value)| Write { state, key, value: value.map(Bytes) })
                    .collect(),
            };
            let bytes = record.encode().unwrap();
            prop_assert_eq!(Record::decode(&bytes).unwrap(), record);
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(Record::decode(&[0xff, 0x00, 0x13]).is_err());
        assert!(Record::decode(&[]).is_err());
    }
}
