//! Rectification of logged atoms: a data subject's corrected record values replace the old
//! ones in every atom the store keeps. An event is corrected when its envelope names the
//! subject and its value is a record (a CBOR map with text keys) holding a corrected column:
//! that column's value is replaced, or removed when the correction removes it. Columns the
//! event's record does not have are not added (a copy of part of a record, made by a
//! workflow, keeps its shape), and values of other shapes are left as they are.

use ciborium::Value;

use super::SealError;

/// One correction: a column and its new value (`None`: removed).
pub type Correction = (String, Option<Value>);

/// `atom` (the sdk's CBOR of an atom, opened) with `subject`'s records corrected; `None` if
/// none of its events changed.
pub(crate) fn rectify_atom(
    atom: &[u8],
    subject: &str,
    changes: &[Correction],
) -> Result<Option<Vec<u8>>, SealError> {
    let malformed = |what: &str| SealError::Malformed(format!("rectifying an atom: {what}"));
    let mut tree: Value =
        ciborium::from_reader(atom).map_err(|e| malformed(&format!("not CBOR ({e})")))?;
    let Value::Map(columns) = &mut tree else {
        return Err(malformed("not a map of columns"));
    };
    let mut values = None;
    let mut envelopes = None;
    for (name, column) in columns.iter_mut() {
        match (name.as_text(), column) {
            (Some("values"), Value::Array(v)) => values = Some(v),
            (Some("envelopes"), Value::Array(e)) => envelopes = Some(e),
            _ => {}
        }
    }
    let (Some(values), Some(envelopes)) = (values, envelopes) else {
        return Ok(None);
    };
    if values.len() != envelopes.len() {
        return Err(malformed("values and envelopes differ in length"));
    }
    let mut changed = false;
    for (value, envelope) in values.iter_mut().zip(envelopes.iter()) {
        if subject_of(envelope) != Some(subject) {
            continue;
        }
        let Value::Map(fields) = value else { continue };
        for (column, new) in changes {
            let at = fields
                .iter()
                .position(|(k, _)| k.as_text() == Some(column.as_str()));
            match (at, new) {
                (Some(i), Some(new)) if fields[i].1 != *new => {
                    fields[i].1 = new.clone();
                    changed = true;
                }
                (Some(i), None) => {
                    fields.remove(i);
                    changed = true;
                }
                _ => {}
            }
        }
    }
    if !changed {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(atom.len());
    ciborium::into_writer(&tree, &mut out).map_err(|e| malformed(&e.to_string()))?;
    Ok(Some(out))
}

/// The subject an envelope (a CBOR map, or null) names.
fn subject_of(envelope: &Value) -> Option<&str> {
    let Value::Map(entries) = envelope else {
        return None;
    };
    entries
        .iter()
        .find(|(k, _)| k.as_text() == Some("subject"))
        .and_then(|(_, v)| v.as_text())
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Atom {
        values: Vec<Value>,
        keys: Option<Vec<u64>>,
        envelopes: Option<Vec<Option<Envelope>>>,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Envelope {
        subject: String,
        categories: Vec<String>,
    }

    fn record(pairs: &[(&str, &str)]) -> Value {
        Value::Map(
            pairs
                .iter()
                .map(|(k, v)| (Value::Text((*k).into()), Value::Text((*v).into())))
                .collect(),
        )
    }

    fn envelope(s: &str) -> Option<Envelope> {
        Some(Envelope {
            subject: s.into(),
            categories: vec!["contact.name".into()],
        })
    }

    fn cbor(a: &Atom) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::into_writer(a, &mut out).unwrap();
        out
    }

    #[test]
    fn only_the_subjects_records_with_the_column_are_corrected() {
        let atom = Atom {
            values: vec![
                record(&[("pid", "ann"), ("name", "Ann A"), ("pulse", "70")]),
                record(&[("pid", "bob"), ("name", "Bob B")]),
                record(&[("pid", "ann"), ("pulse", "71")]),
                Value::Text("ann's note".into()),
                record(&[("name", "no subject")]),
            ],
            keys: Some(vec![1, 2, 3, 4, 5]),
            envelopes: Some(vec![
                envelope("ann"),
                envelope("bob"),
                envelope("ann"),
                envelope("ann"),
                None,
            ]),
        };
        let changes = vec![
            ("name".to_owned(), Some(Value::Text("Ann B".into()))),
            ("pulse".to_owned(), None),
        ];
        let out = rectify_atom(&cbor(&atom), "ann", &changes)
            .unwrap()
            .unwrap();
        let got: Atom = ciborium::from_reader(out.as_slice()).unwrap();
        let want = Atom {
            values: vec![
                record(&[("pid", "ann"), ("name", "Ann B")]),
                record(&[("pid", "bob"), ("name", "Bob B")]),
                record(&[("pid", "ann")]),
                Value::Text("ann's note".into()),
                record(&[("name", "no subject")]),
            ],
            ..atom
        };
        assert_eq!(got, want);
        // Nothing of cy's, and a correction already in place: no new atom.
        assert_eq!(rectify_atom(&out, "cy", &changes).unwrap(), None);
        assert_eq!(rectify_atom(&out, "ann", &changes).unwrap(), None);
    }

    #[test]
    fn atoms_without_envelopes_are_left_and_damage_is_an_error() {
        let plain = Atom {
            values: vec![record(&[("name", "x")])],
            keys: None,
            envelopes: None,
        };
        let changes = vec![("name".to_owned(), None)];
        assert_eq!(rectify_atom(&cbor(&plain), "ann", &changes).unwrap(), None);
        assert!(matches!(
            rectify_atom(&[0xff, 0x00], "ann", &changes),
            Err(SealError::Malformed(_))
        ));
        let uneven = Atom {
            values: vec![record(&[("name", "x")])],
            keys: None,
            envelopes: Some(vec![envelope("ann"), envelope("ann")]),
        };
        assert!(matches!(
            rectify_atom(&cbor(&uneven), "ann", &changes),
            Err(SealError::Malformed(_))
        ));
    }
}
