//! Sealing and opening atoms, against keys in memory and in a database.

use std::collections::HashMap;

use proptest::prelude::*;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

use super::atom::{SEALED_VALUE, may_be_personal};
use super::cipher::SubjectKey;
use super::keys::{CACHED_KEYS, DbKeys, KeyCache};
use super::*;

/// The sdk's columns of an atom, as its CBOR spells them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Atom {
    values: Vec<Visit>,
    keys: Option<Vec<u64>>,
    envelopes: Option<Vec<Option<Envelope>>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Envelope {
    subject: String,
    categories: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    collected: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Visit {
    note: String,
    pulse: i64,
}

/// Keys in memory; erasing removes one.
pub(super) struct MemoryKeys {
    keys: HashMap<Digest, SubjectKey>,
    rng: SystemRandom,
}

impl MemoryKeys {
    pub(super) fn new() -> MemoryKeys {
        MemoryKeys {
            keys: HashMap::new(),
            rng: SystemRandom::new(),
        }
    }
    pub(super) fn erase(&mut self, subject: &str) {
        self.keys.remove(&digest(subject));
    }
}

impl KeySource for MemoryKeys {
    fn sealing_key(&mut self, d: &Digest) -> Result<SubjectKey, SealError> {
        if let Some(k) = self.keys.get(d) {
            return Ok(k.clone());
        }
        let (k, _) = SubjectKey::generate(&self.rng)?;
        self.keys.insert(*d, k.clone());
        Ok(k)
    }
    fn opening_key(&mut self, d: &Digest) -> Result<Option<SubjectKey>, SealError> {
        Ok(self.keys.get(d).cloned())
    }
    fn random(&self) -> &dyn SecureRandom {
        &self.rng
    }
}

fn cbor<T: Serialize>(v: &T) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(v, &mut out).unwrap();
    out
}

fn decode(bytes: &[u8]) -> Atom {
    ciborium::from_reader(bytes).unwrap()
}

fn found(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Builds an atom from (note, key, subject) rows.
fn atom(rows: &[(&str, u64, Option<&str>)]) -> Atom {
    let mut a = Atom {
        values: Vec::new(),
        keys: None,
        envelopes: None,
    };
    for (i, (note, key, subject)) in rows.iter().enumerate() {
        a.values.push(Visit {
            note: (*note).to_owned(),
            pulse: 60 + i as i64,
        });
        if *key != 0 || a.keys.is_some() {
            a.keys.get_or_insert_with(|| vec![0; i]).push(*key);
        }
        let envelope = subject.map(|s| Envelope {
            subject: s.to_owned(),
            categories: vec!["health.pulse".to_owned()],
            collected: (i % 2 == 0).then_some(1_700_000_000 + i as u64),
        });
        if envelope.is_some() || a.envelopes.is_some() {
            a.envelopes
                .get_or_insert_with(|| vec![None; i])
                .push(envelope);
        }
    }
    a
}

/// `a` without the events of `subjects`, in order, every column aligned.
fn without(a: &Atom, subjects: &[&str]) -> Atom {
    let gone: Vec<bool> = (0..a.values.len())
        .map(|i| {
            a.envelopes
                .as_ref()
                .and_then(|e| e[i].as_ref())
                .is_some_and(|e| subjects.contains(&e.subject.as_str()))
        })
        .collect();
    fn keep<X>(column: &mut Vec<X>, gone: &[bool]) {
        let mut i = 0;
        column.retain(|_| {
            i += 1;
            !gone[i - 1]
        });
    }
    let mut out = a.clone();
    keep(&mut out.values, &gone);
    if let Some(k) = &mut out.keys {
        keep(k, &gone);
    }
    if let Some(e) = &mut out.envelopes {
        keep(e, &gone);
    }
    out
}

#[test]
fn personal_values_are_sealed_and_open_again() {
    let a = atom(&[
        ("MARK-ann-1", 5, Some("ann@example.org")),
        ("CTRL-plain-1", 0, None),
        ("MARK-bob-1", 7, Some("bob@example.org")),
        ("MARK-ann-2", 5, Some("ann@example.org")),
    ]);
    let mut keys = MemoryKeys::new();
    let sealed = seal_atom(&cbor(&a), &mut keys)
        .unwrap()
        .expect("personal: sealed");
    for secret in [
        "MARK-ann-1",
        "MARK-bob-1",
        "MARK-ann-2",
        "ann@example.org",
        "bob@example.org",
    ] {
        assert!(!found(&sealed, secret), "{secret} in clear");
    }
    assert!(
        found(&sealed, "CTRL-plain-1"),
        "a non-personal value stays as it is"
    );
    assert!(found(&sealed, "health.pulse"), "categories stay in clear");
    assert_eq!(keys.keys.len(), 2, "a key per subject");
    assert_eq!(
        open_atom(&sealed, &mut keys).unwrap(),
        cbor(&a),
        "the very bytes back"
    );
}

#[test]
fn an_erased_key_drops_exactly_its_subjects_events() {
    let a = atom(&[
        ("a1", 1, Some("ann")),
        ("p1", 2, None),
        ("b1", 3, Some("bob")),
        ("a2", 4, Some("ann")),
        ("c1", 5, Some("cy")),
    ]);
    let mut keys = MemoryKeys::new();
    let sealed = seal_atom(&cbor(&a), &mut keys).unwrap().unwrap();
    keys.erase("ann");
    let opened = decode(&open_atom(&sealed, &mut keys).unwrap());
    assert_eq!(opened, without(&a, &["ann"]));
    assert_eq!(
        opened
            .values
            .iter()
            .map(|v| v.note.as_str())
            .collect::<Vec<_>>(),
        ["p1", "b1", "c1"]
    );
    assert_eq!(opened.keys, Some(vec![2, 3, 5]));
    // Seen again after the erasure: a new key, under which only the new events open.
    let later = atom(&[("a3", 0, Some("ann"))]);
    let sealed_later = seal_atom(&cbor(&later), &mut keys).unwrap().unwrap();
    assert_eq!(decode(&open_atom(&sealed, &mut keys).unwrap()), opened);
    assert_eq!(decode(&open_atom(&sealed_later, &mut keys).unwrap()), later);
    keys.erase("bob");
    keys.erase("cy");
    let rest = decode(&open_atom(&sealed, &mut keys).unwrap());
    assert_eq!(rest.values.len(), 1, "the non-personal event stays");
    assert_eq!(rest.envelopes, Some(vec![None]));
}

/// The sealed atom's parsed CBOR, and the indices of its sealed values.
fn sealed_values(sealed: &[u8]) -> (ciborium::Value, Vec<usize>) {
    let root: ciborium::Value = ciborium::from_reader(sealed).unwrap();
    let mut at = Vec::new();
    if let ciborium::Value::Map(entries) = &root
        && let Some((_, ciborium::Value::Array(values))) = entries.first()
    {
        for (i, v) in values.iter().enumerate() {
            if matches!(v, ciborium::Value::Tag(SEALED_VALUE, _)) {
                at.push(i);
            }
        }
    }
    (root, at)
}

fn values_mut(root: &mut ciborium::Value) -> &mut Vec<ciborium::Value> {
    match root {
        ciborium::Value::Map(entries) => match &mut entries[0].1 {
            ciborium::Value::Array(values) => values,
            _ => panic!("values"),
        },
        _ => panic!("map"),
    }
}

#[test]
fn tampered_ciphertext_is_a_typed_error() {
    let a = atom(&[("a1", 0, Some("ann")), ("b1", 0, Some("bob"))]);
    let mut keys = MemoryKeys::new();
    let sealed = seal_atom(&cbor(&a), &mut keys).unwrap().unwrap();
    let (mut root, at) = sealed_values(&sealed);
    assert_eq!(at, [0, 1]);
    if let ciborium::Value::Tag(_, inner) = &mut values_mut(&mut root)[0]
        && let ciborium::Value::Bytes(b) = inner.as_mut()
    {
        let last = b.len() - 1;
        b[last] ^= 1;
    }
    let opened = open_atom(&cbor(&root), &mut keys);
    assert!(matches!(opened, Err(SealError::Tampered)), "{opened:?}");

    // A sealed value moved to another subject's event never opens there: it reads as sealed
    // under a key that subject no longer has, and is left out.
    let (mut root, _) = sealed_values(&sealed);
    values_mut(&mut root).swap(0, 1);
    let opened = decode(&open_atom(&cbor(&root), &mut keys).unwrap());
    assert!(opened.values.is_empty(), "{opened:?}");

    // Damage anywhere: an error or an atom, never a panic.
    for i in 0..sealed.len() {
        let mut damaged = sealed.clone();
        damaged[i] ^= 0x21;
        let _ = open_atom(&damaged, &mut keys);
        let _ = open_atom(&sealed[..i], &mut keys);
    }
    assert!(matches!(
        open_atom(b"\x01\x02", &mut keys),
        Err(SealError::Malformed(_))
    ));
}

#[test]
fn atoms_without_personal_events_stay_plain() {
    let mut keys = MemoryKeys::new();
    let plain = atom(&[("x", 0, None), ("y", 3, None)]);
    assert!(
        !may_be_personal(&cbor(&plain)),
        "no envelope column: no parse"
    );
    assert_eq!(seal_atom(&cbor(&plain), &mut keys).unwrap(), None);
    // An envelope column without envelopes, and a value holding the text "subject".
    let mut mixed = atom(&[("subject", 0, Some("ann")), ("subject", 0, None)]);
    mixed.values.remove(0);
    mixed.envelopes.as_mut().unwrap().remove(0);
    assert!(
        may_be_personal(&cbor(&mixed)),
        "a false positive costs a parse"
    );
    assert_eq!(seal_atom(&cbor(&mixed), &mut keys).unwrap(), None);
    assert!(keys.keys.is_empty(), "no key made for a plain atom");
    // Through the payload layer: tag 0, the bytes as they are.
    let stored = crate::store::payload::stored_atom(&cbor(&plain), &mut keys).unwrap();
    assert_eq!(stored[0], 0);
    assert_eq!(&stored[1..], cbor(&plain));
    let opened = crate::store::payload::open_atom(&stored, &mut keys).unwrap();
    assert!(matches!(opened, std::borrow::Cow::Borrowed(_)), "no copy");
}

#[test]
fn columns_of_indefinite_length_are_sealed_and_opened() {
    // {"values": [_ "a-1", "x-1"], "keys": null, "envelopes": [_ {"subject": "ann",
    // "categories": []}, null]}, with arrays of indefinite length.
    let mut bytes = vec![0xa3];
    let text = |out: &mut Vec<u8>, t: &str| {
        out.push(0x60 + t.len() as u8);
        out.extend_from_slice(t.as_bytes());
    };
    text(&mut bytes, "values");
    bytes.push(0x9f);
    text(&mut bytes, "a-1");
    text(&mut bytes, "x-1");
    bytes.push(0xff);
    text(&mut bytes, "keys");
    bytes.push(0xf6);
    text(&mut bytes, "envelopes");
    bytes.push(0x9f);
    bytes.push(0xa2);
    text(&mut bytes, "subject");
    text(&mut bytes, "ann");
    text(&mut bytes, "categories");
    bytes.push(0x80);
    bytes.push(0xf6);
    bytes.push(0xff);
    let mut keys = MemoryKeys::new();
    let sealed = seal_atom(&bytes, &mut keys).unwrap().unwrap();
    assert!(!found(&sealed, "a-1") && found(&sealed, "x-1"));
    assert_eq!(open_atom(&sealed, &mut keys).unwrap(), bytes);
    keys.erase("ann");
    let opened: ciborium::Value =
        ciborium::from_reader(&open_atom(&sealed, &mut keys).unwrap()[..]).unwrap();
    let expected: ciborium::Value = ciborium::from_reader(
        &b"\xa3\x66values\x9f\x63x-1\xff\x64keys\xf6\x69envelopes\x9f\xf6\xff"[..],
    )
    .unwrap();
    assert_eq!(opened, expected);
}

fn db() -> rusqlite::Connection {
    let conn = rusqlite::Connection::open_in_memory().unwrap();
    conn.execute_batch(
        "CREATE TABLE subject_keys (subject BLOB PRIMARY KEY, key BLOB NOT NULL);
         CREATE TABLE refused_keys (subject BLOB PRIMARY KEY) WITHOUT ROWID;",
    )
    .unwrap();
    conn
}

#[test]
fn keys_are_made_once_per_subject_and_kept_in_the_cache_after_the_commit() {
    let conn = db();
    let cache = KeyCache::default();
    let rng = SystemRandom::new();
    let a = atom(&[("a1", 0, Some("ann")), ("a2", 0, Some("ann"))]);
    let mut keys = DbKeys::new(&conn, Some(&cache), &rng);
    let sealed = seal_atom(&cbor(&a), &mut keys).unwrap().unwrap();
    keys.found().keep_in(&cache);
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM subject_keys", [], |r| r.get(0))
        .unwrap();
    assert_eq!((rows, cache.len()), (1, 1));
    let stored: Vec<u8> = conn
        .query_row("SELECT subject FROM subject_keys", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored, digest("ann"), "the digest, never the id");
    // Another reader without the cache finds the key in the table.
    let mut fresh = DbKeys::new(&conn, None, &rng);
    assert_eq!(decode(&open_atom(&sealed, &mut fresh).unwrap()), a);
    // Erased: gone from the table and the cache, the events are left out.
    cache.forget(&digest("ann"));
    conn.execute("DELETE FROM subject_keys", []).unwrap();
    let mut keys = DbKeys::new(&conn, Some(&cache), &rng);
    assert!(
        open_atom(&sealed, &mut keys)
            .map(|o| decode(&o).values.is_empty())
            .unwrap()
    );
}

#[test]
fn keys_read_before_an_erasure_are_not_cached_after_it() {
    let conn = db();
    let cache = KeyCache::default();
    let rng = SystemRandom::new();
    let mut keys = DbKeys::new(&conn, Some(&cache), &rng);
    keys.sealing_key(&digest("ann")).unwrap();
    let found = keys.found();
    // An erasure commits and forgets the key before the sealing transaction's keys are kept.
    cache.forget(&digest("ann"));
    found.keep_in(&cache);
    assert_eq!(cache.len(), 0);
}

#[test]
fn the_cache_is_bounded() {
    let cache = KeyCache::default();
    let conn = db();
    let rng = SystemRandom::new();
    let mut keys = DbKeys::new(&conn, Some(&cache), &rng);
    for i in 0..CACHED_KEYS + 10 {
        keys.sealing_key(&digest(&i.to_string())).unwrap();
    }
    keys.found().keep_in(&cache);
    assert_eq!(cache.len(), CACHED_KEYS);
}

fn rows() -> impl Strategy<Value = Vec<(String, u64, Option<usize>)>> {
    prop::collection::vec(
        (
            "[a-z]{0,12}",
            prop_oneof![Just(0u64), any::<u64>()],
            prop::option::of(0usize..5),
        ),
        0..24,
    )
}

const SUBJECTS: [&str; 5] = ["ann", "bob", "cy", "dee", "eve@example.org"];

proptest! {
    /// Opening a sealed atom after erasing any set of subjects gives the atom without their
    /// events, in order; sealing never leaves a personal value in clear.
    #[test]
    fn opened_atoms_are_the_originals_minus_the_erased_subjects(
        rows in rows(),
        erased in prop::collection::vec(any::<bool>(), 5),
    ) {
        let rows: Vec<(String, u64, Option<&str>)> = rows
            .into_iter()
            .enumerate()
            .map(|(i, (note, key, who))| (format!("{note}#{i:04}!"), key, who.map(|w| SUBJECTS[w])))
            .collect();
        let refs: Vec<(&str, u64, Option<&str>)> =
            rows.iter().map(|(n, k, s)| (n.as_str(), *k, *s)).collect();
        let a = atom(&refs);
        let mut keys = MemoryKeys::new();
        let bytes = cbor(&a);
        let sealed = seal_atom(&bytes, &mut keys).unwrap();
        match &sealed {
            Some(sealed) => {
                for (note, _, who) in &refs {
                    prop_assert_eq!(found(sealed, note), who.is_none(), "{}", note);
                }
            }
            None => {
                prop_assert!(refs.iter().all(|(_, _, s)| s.is_none()));
                prop_assert!(keys.keys.is_empty());
            }
        }
        let gone: Vec<&str> = SUBJECTS
            .iter()
            .zip(&erased)
            .filter(|(_, e)| **e)
            .map(|(s, _)| *s)
            .collect();
        for s in &gone {
            keys.erase(s);
        }
        let opened = match &sealed {
            Some(sealed) => decode(&open_atom(sealed, &mut keys).unwrap()),
            None => decode(&bytes),
        };
        prop_assert_eq!(opened, without(&a, &gone));
    }
}
