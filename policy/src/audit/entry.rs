//! An audit entry and its hash: SHA-256 over a canonical, length-prefixed encoding of its
//! content and the hash of the entry before it.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::hex;

/// The hash that stands before the first entry: 32 zero bytes.
pub const GENESIS: [u8; 32] = [0; 32];

/// Domain tag of an entry's hash (version 1 of the encoding).
const ENTRY_DOMAIN: &[u8] = b"pods.audit.entry.v1";

/// One administrative act, hash-chained to the act before it and signed by the node.
///
/// Its hash covers `seq`, `at`, `actor`, `action`, `detail` (as canonical JSON) and `prev`;
/// its signature is ed25519 over that hash. In JSON the byte fields are lowercase hex.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Its place in the log: 0 for the first entry, then 1, 2, ...
    pub seq: u64,
    /// When the act happened, in Unix seconds.
    pub at: u64,
    /// Who did it (`admin` for the admin API, `node` for the daemon itself).
    pub actor: String,
    /// What was done, such as `peer.add`, `policy.load`, `consent.grant`, `subject.erase`.
    pub action: String,
    /// The act's particulars (names and ids, never personal payloads).
    pub detail: serde_json::Value,
    /// The hash of the entry before it ([`GENESIS`] for the first).
    #[serde(with = "hex::array")]
    pub prev: [u8; 32],
    /// SHA-256 over its content and `prev` (see [`Entry::compute_hash`]).
    #[serde(with = "hex::array")]
    pub hash: [u8; 32],
    /// Ed25519 signature of `hash` by the node's key (64 bytes).
    #[serde(with = "hex::bytes")]
    pub signature: Vec<u8>,
}

impl Entry {
    /// The hash its content and `prev` give, whatever its `hash` field says.
    pub fn compute_hash(&self) -> [u8; 32] {
        hash_of(
            self.seq,
            self.at,
            &self.actor,
            &self.action,
            &self.detail,
            &self.prev,
        )
    }
}

/// SHA-256 over the domain tag and each field, each as an 8-byte big-endian length followed
/// by its bytes: `seq` and `at` as 8-byte big-endian integers, `actor` and `action` as UTF-8,
/// `detail` as [`canonical_json`], `prev` as its 32 bytes. No two different contents encode
/// alike.
pub fn hash_of(
    seq: u64,
    at: u64,
    actor: &str,
    action: &str,
    detail: &serde_json::Value,
    prev: &[u8; 32],
) -> [u8; 32] {
    let mut h = Sha256::new();
    for field in [
        ENTRY_DOMAIN,
        &seq.to_be_bytes(),
        &at.to_be_bytes(),
        actor.as_bytes(),
        action.as_bytes(),
        canonical_json(detail).as_bytes(),
        prev,
    ] {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field);
    }
    h.finalize().into()
}

/// A JSON value as text, the same for equal values whatever order their objects were built
/// in: no whitespace, object keys sorted by their UTF-8 bytes, strings escaped minimally
/// (`\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`, other control characters as `\u00XX`), numbers
/// as serde_json writes them (floats in their shortest round-trip form).
pub fn canonical_json(value: &serde_json::Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

fn write_value(out: &mut String, value: &serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut fields: Vec<_> = map.iter().collect();
            fields.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (key, item)) in fields.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, key);
                out.push(':');
                write_value(out, item);
            }
            out.push('}');
        }
    }
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn canonical_json_sorts_keys_and_has_no_whitespace() {
        let a = json!({"b": [1, 2.5, null], "a": {"y": true, "x": "q\"\n\u{1}"}});
        assert_eq!(
            canonical_json(&a),
            r#"{"a":{"x":"q\"\n\u0001","y":true},"b":[1,2.5,null]}"#
        );
    }

    #[test]
    fn every_field_changes_the_hash_and_fields_do_not_run_into_each_other() {
        let d = json!({"k": 1});
        let base = hash_of(1, 2, "ab", "c", &d, &GENESIS);
        assert_ne!(base, hash_of(2, 2, "ab", "c", &d, &GENESIS));
        assert_ne!(base, hash_of(1, 3, "ab", "c", &d, &GENESIS));
        assert_ne!(
            base,
            hash_of(1, 2, "a", "bc", &d, &GENESIS),
            "length-prefixed"
        );
        assert_ne!(base, hash_of(1, 2, "ab", "c", &json!({"k": 2}), &GENESIS));
        assert_ne!(base, hash_of(1, 2, "ab", "c", &d, &[1; 32]));
    }

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<u64>().prop_map(serde_json::Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(serde_json::Value::from),
            any::<String>().prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                prop::collection::btree_map(any::<String>(), inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// What is stored as text and read back hashes the same.
        #[test]
        fn canonical_json_round_trips(value in json_value()) {
            let text = canonical_json(&value);
            let back: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
            prop_assert_eq!(&back, &value);
            prop_assert_eq!(canonical_json(&back), text);
        }
    }
}
