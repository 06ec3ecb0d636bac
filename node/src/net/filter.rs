//! The export's rule applied to a stream atom leaving for a peer, event by event: an encoded
//! atom (the sdk's columns: `values`, `keys`, `envelopes`) in, the atom the peer may have out.
//! Each event's envelope (or its absence) gets a verdict; a denied event is removed from every
//! column, a redacted one loses the fields of its value and the categories of its envelope the
//! verdict names. Pure: the verdicts come from the caller.

use std::collections::BTreeSet;

use ciborium::Value;
use pods_policy::Verdict;
use pods_sdk::Envelope;

/// What leaves of one atom.
#[derive(Debug, PartialEq)]
pub(crate) struct Outgoing {
    /// The atom as sent: the same bytes if every event passed whole.
    pub atom: Vec<u8>,
    /// The subjects whose events it carries.
    pub subjects: BTreeSet<String>,
    /// Events removed.
    pub withheld: u64,
    /// Events sent with fields removed.
    pub redacted: u64,
}

/// Filters `atom` with `verdict`. An envelope that does not read as one withholds its event;
/// bytes that are not an atom are an error (nothing of them is sent).
pub(crate) fn filter_atom(
    atom: &[u8],
    verdict: &mut dyn FnMut(Option<&Envelope>) -> Verdict,
) -> Result<Outgoing, String> {
    // Without the text `subject` no event has an envelope: one verdict for all of them.
    let personal = atom.windows(7).any(|w| w == b"subject");
    let plain = if personal { None } else { Some(verdict(None)) };
    if plain == Some(Verdict::Admit) {
        return Ok(Outgoing {
            atom: atom.to_vec(),
            subjects: BTreeSet::new(),
            withheld: 0,
            redacted: 0,
        });
    }
    let value: Value =
        ciborium::from_reader(atom).map_err(|e| format!("not an encoded atom: {e}"))?;
    let Value::Map(mut entries) = value else {
        return Err("not an encoded atom: not a map of columns".into());
    };
    let column =
        |entries: &mut Vec<(Value, Value)>, name: &str| -> Result<Option<Vec<Value>>, String> {
            let Some((_, v)) = entries.iter_mut().find(|(k, _)| k.as_text() == Some(name)) else {
                return Err(format!("not an encoded atom: no `{name}` column"));
            };
            match std::mem::replace(v, Value::Null) {
                Value::Array(items) => Ok(Some(items)),
                Value::Null => Ok(None),
                _ => Err(format!("not an encoded atom: `{name}` is not a list")),
            }
        };
    let values = column(&mut entries, "values")?.unwrap_or_default();
    let keys = column(&mut entries, "keys")?;
    let envelopes = column(&mut entries, "envelopes")?;
    let (has_keys, has_envelopes) = (keys.is_some(), envelopes.is_some());
    let n = values.len();
    if keys.as_ref().is_some_and(|k| k.len() != n)
        || envelopes.as_ref().is_some_and(|e| e.len() != n)
    {
        return Err("not an encoded atom: its columns differ in length".into());
    }
    let mut out = Outgoing {
        atom: Vec::new(),
        subjects: BTreeSet::new(),
        withheld: 0,
        redacted: 0,
    };
    let mut plain = plain;
    let (mut kept_values, mut kept_keys, mut kept_envelopes) = (Vec::new(), Vec::new(), Vec::new());
    let mut keys = keys.map(Vec::into_iter);
    let mut envelopes = envelopes.map(Vec::into_iter);
    for mut value in values {
        let key = keys.as_mut().and_then(Iterator::next);
        let envelope = envelopes
            .as_mut()
            .and_then(Iterator::next)
            .unwrap_or(Value::Null);
        let (decision, mut envelope) = if envelope.is_null() {
            (plain.get_or_insert_with(|| verdict(None)).clone(), None)
        } else {
            match envelope.deserialized::<Envelope>() {
                Ok(e) => (verdict(Some(&e)), Some(e)),
                Err(_) => (Verdict::Deny(pods_policy::Reason::NoSubject), None),
            }
        };
        match decision {
            Verdict::Admit => {}
            Verdict::Deny(_) => {
                out.withheld += 1;
                continue;
            }
            Verdict::Redact(r) => {
                let Value::Map(fields) = &mut value else {
                    // Not a record: its fields cannot be told apart, so none of it leaves.
                    out.withheld += 1;
                    continue;
                };
                fields
                    .retain(|(k, _)| k.as_text().is_none_or(|k| !r.fields.iter().any(|f| f == k)));
                if let Some(e) = envelope.as_mut() {
                    e.categories.retain(|c| !r.categories.contains(c));
                }
                out.redacted += 1;
            }
        }
        let envelope = match envelope {
            Some(e) => {
                out.subjects.insert(e.subject.0.clone());
                Value::serialized(&e).map_err(|e| e.to_string())?
            }
            None => Value::Null,
        };
        kept_values.push(value);
        kept_keys.extend(key);
        kept_envelopes.push(envelope);
    }
    if out.withheld == 0 && out.redacted == 0 {
        out.atom = atom.to_vec();
        return Ok(out);
    }
    for (k, v) in &mut entries {
        match k.as_text() {
            Some("values") => *v = Value::Array(std::mem::take(&mut kept_values)),
            Some("keys") if has_keys => *v = Value::Array(std::mem::take(&mut kept_keys)),
            Some("envelopes") if has_envelopes => {
                *v = Value::Array(std::mem::take(&mut kept_envelopes));
            }
            _ => {}
        }
    }
    ciborium::into_writer(&Value::Map(entries), &mut out.atom).map_err(|e| e.to_string())?;
    Ok(out)
}

#[cfg(test)]
#[path = "filter_tests.rs"]
mod tests;
