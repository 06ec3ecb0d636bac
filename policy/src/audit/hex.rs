//! Lowercase hex for the byte fields of entries and heads in JSON.

/// Bytes as lowercase hex.
pub fn encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

/// Hex (either case) as bytes; `None` if it is not an even number of hex digits.
pub fn decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16);
    text.as_bytes()
        .chunks(2)
        .map(|pair| Some((digit(pair[0])? << 4 | digit(pair[1])?) as u8))
        .collect()
}

/// Serde for `[u8; 32]` as hex.
pub mod array {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    /// Writes the array as hex.
    pub fn serialize<S: Serializer>(bytes: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::encode(bytes))
    }

    /// Reads 64 hex digits.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(d)?;
        super::decode(&text)
            .and_then(|v| <[u8; 32]>::try_from(v).ok())
            .ok_or_else(|| D::Error::custom("expected 64 hex digits"))
    }
}

/// Serde for `Vec<u8>` as hex.
pub mod bytes {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    /// Writes the bytes as hex.
    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::encode(bytes))
    }

    /// Reads hex digits.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        super::decode(&text).ok_or_else(|| D::Error::custom("expected hex digits"))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_round_trips_and_refuses_what_is_not_hex() {
        assert_eq!(super::encode(&[0, 0xab, 0x7f]), "00ab7f");
        assert_eq!(super::decode("00AB7f"), Some(vec![0, 0xab, 0x7f]));
        assert_eq!(super::decode("abc"), None);
        assert_eq!(super::decode("zz"), None);
    }
}
