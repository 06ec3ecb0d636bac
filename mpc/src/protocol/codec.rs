//! CBOR encoding and decoding of messages, with typed errors for malformed input.

use std::io::Cursor;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// Encodes a message as CBOR.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    ciborium::into_writer(msg, &mut out).map_err(|e| Error::Encode(e.to_string()))?;
    Ok(out)
}

/// Decodes exactly one CBOR message from `bytes`. Truncated input gives
/// [`Error::Truncated`]; anything else that is not a well-formed message of type `T`
/// (including trailing bytes) gives [`Error::Malformed`]. Byte strings are read in chunks,
/// so a forged length prefix cannot make the decoder allocate more than the input's size.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    let mut cursor = Cursor::new(bytes);
    let value: T = ciborium::from_reader(&mut cursor).map_err(|e| match e {
        ciborium::de::Error::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            Error::Truncated
        }
        ciborium::de::Error::Io(io) => Error::Malformed(io.to_string()),
        ciborium::de::Error::Syntax(at) => {
            Error::Malformed(format!("CBOR syntax error at byte {at}"))
        }
        ciborium::de::Error::Semantic(_, msg) => Error::Malformed(msg),
        ciborium::de::Error::RecursionLimitExceeded => Error::Malformed("nesting too deep".into()),
    })?;
    if cursor.position() != bytes.len() as u64 {
        return Err(Error::Malformed("trailing bytes after the message".into()));
    }
    Ok(value)
}
