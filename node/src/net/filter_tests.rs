use std::collections::BTreeMap;
use std::sync::Arc;

use pods_policy::{Reason, Verdict};
use pods_sdk::{Envelope, Redaction};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

use super::*;
use crate::privacy::Row;

/// The sdk's columns as they are encoded (same field names and shapes).
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Columns {
    values: Vec<Value>,
    keys: Option<Vec<u64>>,
    envelopes: Option<Vec<Option<Arc<Envelope>>>>,
}

fn encode(c: &Columns) -> Vec<u8> {
    crate::net::wire::encode(c)
}

fn decode(bytes: &[u8]) -> Columns {
    ciborium::from_reader(bytes).unwrap()
}

fn row(pid: &str, pulse: i64) -> Value {
    let mut r = Row::new();
    r.insert("pid".into(), pid.into());
    r.insert("name".into(), format!("{pid} MARKER").into());
    r.insert("pulse".into(), pulse.into());
    Value::serialized(&r).unwrap()
}

fn env(pid: &str) -> Option<Arc<Envelope>> {
    Some(Arc::new(
        Envelope::new(pid, &["contact.name", "health.pulse"]).collected_at(7),
    ))
}

/// Ann passes, Bob is denied, Cy loses her pulse; plain events pass.
fn rule(e: Option<&Envelope>) -> Verdict {
    match e.map(|e| e.subject.0.as_str()) {
        None | Some("ann") => Verdict::Admit,
        Some("cy") => Verdict::Redact(Arc::new(Redaction {
            fields: vec!["pulse".into()],
            categories: vec!["health.pulse".into()],
        })),
        Some(_) => Verdict::Deny(Reason::NoConsent),
    }
}

#[test]
fn each_event_leaves_as_the_rule_says() {
    let atom = encode(&Columns {
        values: vec![
            row("ann", 61),
            row("bob", 72),
            Value::Integer(5.into()),
            row("cy", 80),
        ],
        keys: Some(vec![1, 2, 3, 4]),
        envelopes: Some(vec![env("ann"), env("bob"), None, env("cy")]),
    });
    let out = filter_atom(&atom, &mut rule).unwrap();
    let mut cy = row("cy", 80);
    if let Value::Map(fields) = &mut cy {
        fields.retain(|(k, _)| k.as_text() != Some("pulse"));
    }
    let cy_env = Arc::new(Envelope::new("cy", &["contact.name"]).collected_at(7));
    assert_eq!(
        decode(&out.atom),
        Columns {
            values: vec![row("ann", 61), Value::Integer(5.into()), cy],
            keys: Some(vec![1, 3, 4]),
            envelopes: Some(vec![env("ann"), None, Some(cy_env)]),
        }
    );
    assert_eq!(
        (
            out.subjects.into_iter().collect::<Vec<_>>(),
            out.withheld,
            out.redacted
        ),
        (vec!["ann".to_owned(), "cy".to_owned()], 1, 1)
    );
}

#[test]
fn an_atom_that_passes_whole_leaves_as_it_is() {
    let plain = encode(&Columns {
        values: vec![Value::Integer(1.into())],
        keys: None,
        envelopes: None,
    });
    let out = filter_atom(&plain, &mut rule).unwrap();
    assert_eq!((out.atom, out.subjects.len()), (plain, 0));
    let personal = encode(&Columns {
        values: vec![row("ann", 61)],
        keys: None,
        envelopes: Some(vec![env("ann")]),
    });
    assert_eq!(filter_atom(&personal, &mut rule).unwrap().atom, personal);
}

#[test]
fn an_atom_whose_events_are_all_withheld_leaves_empty() {
    let atom = encode(&Columns {
        values: vec![row("bob", 1), Value::Integer(2.into())],
        keys: None,
        envelopes: Some(vec![env("bob"), None]),
    });
    let mut deny = |_: Option<&Envelope>| Verdict::Deny(Reason::Undeclared);
    let out = filter_atom(&atom, &mut deny).unwrap();
    assert_eq!(
        decode(&out.atom),
        Columns {
            values: vec![],
            keys: None,
            envelopes: Some(vec![]),
        }
    );
    assert_eq!(out.withheld, 2);
    // A plain atom under a rule that takes no plain event: empty too.
    let plain = encode(&Columns {
        values: vec![Value::Integer(1.into())],
        keys: None,
        envelopes: None,
    });
    assert_eq!(
        decode(&filter_atom(&plain, &mut deny).unwrap().atom).values,
        vec![]
    );
}

#[test]
fn a_value_that_is_not_a_record_cannot_be_redacted_and_is_withheld() {
    let atom = encode(&Columns {
        values: vec![Value::Text("cy MARKER".into())],
        keys: None,
        envelopes: Some(vec![env("cy")]),
    });
    let out = filter_atom(&atom, &mut rule).unwrap();
    assert_eq!((decode(&out.atom).values.len(), out.withheld), (0, 1));
    assert!(out.subjects.is_empty());
}

#[test]
fn bytes_that_are_not_an_atom_are_an_error() {
    assert!(filter_atom(b"\xffsubject garbage", &mut rule).is_err());
    let mut deny = |_: Option<&Envelope>| Verdict::Deny(Reason::Undeclared);
    assert!(filter_atom(b"\x01\x02", &mut deny).is_err());
    let uneven = encode(&Columns {
        values: vec![row("ann", 1)],
        keys: Some(vec![1, 2]),
        envelopes: Some(vec![env("ann")]),
    });
    let e = filter_atom(&uneven, &mut rule).unwrap_err();
    assert!(e.contains("differ in length"), "{e}");
}

proptest! {
    /// For random atoms and rules, what leaves is exactly the events the rule lets through, in
    /// order, with their keys, and no field the rule removes.
    #[test]
    fn only_what_the_rule_allows_leaves(
        events in prop::collection::vec((0..5usize, any::<bool>(), 0..100i64), 0..24),
        rules in prop::collection::vec(0..3u8, 6),
    ) {
        let who = |i: usize| format!("s{i}");
        // Subject 5 stands for events without an envelope.
        let verdict_of = |i: usize| match rules[i] {
            0 => Verdict::Admit,
            1 => Verdict::Deny(Reason::NoConsent),
            _ => Verdict::Redact(Arc::new(Redaction {
                fields: vec!["name".into()],
                categories: vec!["contact.name".into()],
            })),
        };
        let mut verdict = |e: Option<&Envelope>| {
            verdict_of(e.map_or(5, |e| e.subject.0[1..].parse().unwrap()))
        };
        let values: Vec<Value> = events.iter().map(|(s, _, p)| row(&who(*s), *p)).collect();
        let keys: Vec<u64> = (0..events.len() as u64).collect();
        let envelopes: Vec<Option<Arc<Envelope>>> = events
            .iter()
            .map(|(s, personal, _)| personal.then(|| env(&who(*s))).flatten())
            .collect();
        let atom = encode(&Columns { values, keys: Some(keys), envelopes: Some(envelopes) });
        let out = filter_atom(&atom, &mut verdict).unwrap();
        let got = decode(&out.atom);
        let mut expected = Vec::new();
        for (k, (s, personal, _)) in events.iter().enumerate() {
            let i = if *personal { *s } else { 5 };
            if !matches!(verdict_of(i), Verdict::Deny(_)) {
                expected.push(k as u64);
            }
        }
        prop_assert_eq!(got.keys.clone().unwrap(), expected.clone());
        let envelopes = got.envelopes.unwrap();
        for ((k, value), e) in expected.iter().zip(&got.values).zip(&envelopes) {
            let (s, personal, _) = events[*k as usize];
            let i = if personal { s } else { 5 };
            let fields: BTreeMap<String, Value> = value.deserialized().unwrap();
            let redacted = matches!(verdict_of(i), Verdict::Redact(_));
            prop_assert_eq!(fields.contains_key("name"), !redacted);
            prop_assert_eq!(e.is_some(), personal);
            if let Some(e) = e {
                prop_assert_eq!(e.categories.contains(&"contact.name".to_owned()), !redacted);
            }
        }
        prop_assert_eq!(out.withheld as usize, events.len() - expected.len());
    }
}
