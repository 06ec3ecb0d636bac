//! Atoms as the runtime holds them: in columns (values; keys and envelopes only once some
//! event has one), type-erased behind [`Batch`] so that tasks, streams and units move them
//! without knowing the event type. Typed code converts at the edges with one downcast per atom.
//!
//! Columns keep per-event work small: a map over non-personal, unkeyed events touches the
//! values alone, and a non-personal atom carries no envelope column at all.

mod halves;

use std::any::Any;
use std::sync::Arc;

use crate::data::{Data, Envelope, Event, Key};
use crate::gate::{AtomGate, Decision, Redaction, redact_value};

/// One atom's events of type `T`, by column.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(bound = "T: Data")]
pub(crate) struct Columns<T> {
    /// The events' values.
    pub values: Vec<T>,
    /// The events' keys; `None` while every key is `Key(0)`.
    pub keys: Option<Vec<Key>>,
    /// The events' envelopes; `None` while no event is personal.
    pub envelopes: Option<Vec<Option<Arc<Envelope>>>>,
}

impl<T> Default for Columns<T> {
    fn default() -> Self {
        Columns {
            values: Vec::new(),
            keys: None,
            envelopes: None,
        }
    }
}

impl<T> Columns<T> {
    /// Non-personal events with key 0.
    pub(crate) fn of_values(values: Vec<T>) -> Columns<T> {
        Columns {
            values,
            keys: None,
            envelopes: None,
        }
    }

    /// Columns of room for `n` events.
    pub(crate) fn with_capacity(n: usize) -> Columns<T> {
        Columns::of_values(Vec::with_capacity(n))
    }

    /// The events as rows.
    pub(crate) fn from_events(events: Vec<Event<T>>) -> Columns<T> {
        let mut c = Columns::with_capacity(events.len());
        for e in events {
            c.push(e.value, e.key, e.envelope);
        }
        c
    }

    /// The events as rows.
    pub(crate) fn into_events(self) -> Vec<Event<T>> {
        self.into_rows()
            .map(|(value, key, envelope)| Event {
                key,
                envelope,
                value,
            })
            .collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.values.len()
    }

    /// The events as (value, key, envelope), in order.
    #[inline]
    pub(crate) fn into_rows(self) -> impl Iterator<Item = (T, Key, Option<Arc<Envelope>>)> {
        let mut keys = self.keys.map(Vec::into_iter);
        let mut envelopes = self.envelopes.map(Vec::into_iter);
        self.values.into_iter().map(move |value| {
            let key = keys.as_mut().and_then(Iterator::next).unwrap_or_default();
            let envelope = envelopes.as_mut().and_then(Iterator::next).flatten();
            (value, key, envelope)
        })
    }

    /// Appends one event, starting the key or envelope column when first needed.
    #[inline]
    pub(crate) fn push(&mut self, value: T, key: Key, envelope: Option<Arc<Envelope>>) {
        let n = self.values.len();
        if key != Key(0) || self.keys.is_some() {
            self.keys.get_or_insert_with(|| vec![Key(0); n]).push(key);
        }
        if envelope.is_some() || self.envelopes.is_some() {
            self.envelopes
                .get_or_insert_with(|| vec![None; n])
                .push(envelope);
        }
        self.values.push(value);
    }

    /// Keeps the events for which `keep(index, value)` holds, in order, in every column.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(usize, &T) -> bool) {
        if self.keys.is_none() && self.envelopes.is_none() {
            let mut i = 0;
            self.values.retain(|v| {
                let k = keep(i, v);
                i += 1;
                k
            });
            return;
        }
        let mask: Vec<bool> = self
            .values
            .iter()
            .enumerate()
            .map(|(i, v)| keep(i, v))
            .collect();
        retain_by(&mut self.values, &mask);
        if let Some(keys) = &mut self.keys {
            retain_by(keys, &mask);
        }
        if let Some(envelopes) = &mut self.envelopes {
            retain_by(envelopes, &mask);
        }
    }

    /// Appends `other`'s events after these.
    pub(crate) fn extend(&mut self, mut other: Columns<T>) {
        let (n, m) = (self.values.len(), other.values.len());
        if self.keys.is_some() || other.keys.is_some() {
            let mut theirs = other.keys.take().unwrap_or_else(|| vec![Key(0); m]);
            self.keys
                .get_or_insert_with(|| vec![Key(0); n])
                .append(&mut theirs);
        }
        if self.envelopes.is_some() || other.envelopes.is_some() {
            let mut theirs = other.envelopes.take().unwrap_or_else(|| vec![None; m]);
            self.envelopes
                .get_or_insert_with(|| vec![None; n])
                .append(&mut theirs);
        }
        self.values.append(&mut other.values);
    }
}

fn retain_by<X>(column: &mut Vec<X>, mask: &[bool]) {
    let mut i = 0;
    column.retain(|_| {
        let k = mask.get(i).copied().unwrap_or(false);
        i += 1;
        k
    });
}

/// What the policy gate did to an atom's events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Filtered {
    /// Events dropped (denied, or not redactable).
    pub denied: u64,
    /// Events admitted with fields removed.
    pub redacted: u64,
}

/// An atom's events of some event type, behind a trait object.
pub(crate) trait Batch: Any + Send + Sync {
    /// Number of events.
    fn len(&self) -> usize;
    /// A copy of the events.
    fn clone_batch(&self) -> Box<dyn Batch>;
    /// The events, owned: without copying when this is the last reference.
    fn unshare(self: Arc<Self>) -> Box<dyn Batch>;
    /// Appends `other`'s events (of the same type) after this batch's.
    fn append(&mut self, other: Box<dyn Batch>);
    /// Removes the envelope from every event (output of a non-personal task).
    fn strip_envelopes(&mut self);
    /// Applies the gate's verdict on each event's envelope: keeps the admitted, drops the
    /// denied, redacts the rest (dropping those that cannot be redacted).
    fn filter_envelopes(&mut self, gate: &mut dyn AtomGate) -> Filtered;
    /// Splits the events by key among `parts` partitions ([`partition_of`]), keeping their
    /// order within each part; `None` where no event went.
    fn split_by_key(self: Box<Self>, parts: usize) -> Vec<Option<Box<dyn Batch>>>;
    /// Splits the events into `parts` contiguous runs of near-equal length, in order; or by
    /// key, if any event has one, so that keyed events reach the partition owning their key.
    fn split_for_partitions(self: Box<Self>, parts: usize) -> Vec<Option<Box<dyn Batch>>>;
    /// Appends the events' CBOR encoding (values, keys, envelopes) to `out`.
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), String>;
    /// Upcast for downcasting.
    fn into_any(self: Box<Self>) -> Box<dyn Any>;
    /// Upcast for downcasting a shared batch.
    fn as_any_arc(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
}

impl<T: Data> Batch for Columns<T> {
    fn len(&self) -> usize {
        self.values.len()
    }
    fn clone_batch(&self) -> Box<dyn Batch> {
        Box::new(self.clone())
    }
    fn unshare(self: Arc<Self>) -> Box<dyn Batch> {
        Box::new(Arc::try_unwrap(self).unwrap_or_else(|shared| (*shared).clone()))
    }
    fn append(&mut self, other: Box<dyn Batch>) {
        match other.into_any().downcast::<Columns<T>>() {
            Ok(other) => self.extend(*other),
            // The graph builder only unions flows of one type; a mismatch is a bug in the sdk.
            Err(_) => debug_assert!(false, "appending a batch of another type"),
        }
    }
    fn strip_envelopes(&mut self) {
        self.envelopes = None;
    }
    fn filter_envelopes(&mut self, gate: &mut dyn AtomGate) -> Filtered {
        let n = self.values.len();
        let mut keep = vec![true; n];
        let mut redactions: Vec<(usize, Arc<Redaction>)> = Vec::new();
        match &self.envelopes {
            // One verdict serves every event without an envelope.
            None => match gate.check(None) {
                Decision::Admit => return Filtered::default(),
                Decision::Deny => keep.fill(false),
                Decision::Redact(r) => redactions.extend((0..n).map(|i| (i, r.clone()))),
            },
            Some(envelopes) => {
                let mut decisions = Vec::with_capacity(n);
                gate.check_all(envelopes, &mut decisions);
                for (i, d) in decisions.into_iter().enumerate() {
                    match d {
                        Decision::Admit => {}
                        Decision::Deny => keep[i] = false,
                        Decision::Redact(r) => redactions.push((i, r)),
                    }
                }
            }
        }
        let mut redacted = 0;
        for (i, r) in redactions {
            if !self
                .values
                .get_mut(i)
                .is_some_and(|v| redact_value(v, &r.fields))
            {
                keep[i] = false;
                continue;
            }
            redacted += 1;
            if let Some(Some(e)) = self.envelopes.as_mut().and_then(|envs| envs.get_mut(i)) {
                let mut narrowed = (**e).clone();
                narrowed.categories.retain(|c| !r.categories.contains(c));
                *e = Arc::new(narrowed);
            }
        }
        if keep.iter().all(|k| *k) {
            return Filtered {
                denied: 0,
                redacted,
            };
        }
        self.retain(|i, _| keep[i]);
        Filtered {
            denied: (n - self.values.len()) as u64,
            redacted,
        }
    }
    fn split_by_key(self: Box<Self>, parts: usize) -> Vec<Option<Box<dyn Batch>>> {
        let parts = parts.max(1);
        if self.keys.is_none() {
            // Every key is Key(0): all events belong to one partition.
            return one_part(*self, partition_of(Key(0), parts), parts);
        }
        let Columns {
            values,
            keys,
            envelopes,
        } = *self;
        let keys = keys.unwrap_or_default();
        if parts == 2 {
            let [v0, v1] = halves::halves(values, &keys);
            let [e0, e1] = match envelopes {
                Some(e) => halves::halves(e, &keys).map(Some),
                None => [None, None],
            };
            let [k0, k1] = halves::halves(keys.iter().copied(), &keys);
            let half = |values, keys, envelopes| {
                non_empty(Columns {
                    values,
                    keys: Some(keys),
                    envelopes,
                })
            };
            return vec![half(v0, k0, e0), half(v1, k1, e1)];
        }
        // Room for an even share plus slack, so that an uneven split rarely grows a column.
        let room = values.len() / parts + values.len() / (4 * parts) + 8;
        let mut out: Vec<Columns<T>> = (0..parts)
            .map(|_| Columns {
                values: Vec::with_capacity(room),
                keys: Some(Vec::with_capacity(room)),
                envelopes: envelopes.as_ref().map(|_| Vec::with_capacity(room)),
            })
            .collect();
        match envelopes {
            None => {
                for (value, key) in values.into_iter().zip(keys) {
                    if let Some(part) = out.get_mut(partition_of(key, parts)) {
                        part.values.push(value);
                        if let Some(k) = &mut part.keys {
                            k.push(key);
                        }
                    }
                }
            }
            Some(envelopes) => {
                for ((value, key), envelope) in values.into_iter().zip(keys).zip(envelopes) {
                    if let Some(part) = out.get_mut(partition_of(key, parts)) {
                        part.values.push(value);
                        if let Some(k) = &mut part.keys {
                            k.push(key);
                        }
                        if let Some(e) = &mut part.envelopes {
                            e.push(envelope);
                        }
                    }
                }
            }
        }
        out.into_iter().map(non_empty).collect()
    }
    fn split_for_partitions(self: Box<Self>, parts: usize) -> Vec<Option<Box<dyn Batch>>> {
        let parts = parts.max(1);
        if self.keys.is_some() {
            return self.split_by_key(parts);
        }
        let mut rest = *self;
        let n = rest.values.len();
        let mut out = Vec::with_capacity(parts);
        for p in 0..parts {
            // Part p holds events [p*n/parts, (p+1)*n/parts).
            let end = (p + 1) * n / parts;
            let start = p * n / parts;
            let tail_len = n - end;
            let mut tail = Columns::of_values(rest.values.split_off(rest.values.len() - tail_len));
            if let Some(envelopes) = &mut rest.envelopes {
                tail.envelopes = Some(envelopes.split_off(envelopes.len() - tail_len));
            }
            debug_assert_eq!(rest.values.len(), end - start);
            out.push(non_empty(std::mem::replace(&mut rest, tail)));
        }
        out
    }
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), String> {
        ciborium::into_writer(self, out).map_err(|e| e.to_string())
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
    fn as_any_arc(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

/// The partition, of `parts`, that owns `key`: the key's high bits scaled to the range (the
/// low bits are left to the per-key state tables inside the partition).
#[inline]
pub(crate) fn partition_of(key: Key, parts: usize) -> usize {
    ((u128::from(key.0) * parts as u128) >> 64) as usize
}

fn non_empty<T: Data>(c: Columns<T>) -> Option<Box<dyn Batch>> {
    if c.values.is_empty() {
        None
    } else {
        Some(Box::new(c))
    }
}

/// All of `batch` in part `at`, nothing elsewhere.
fn one_part<T: Data>(batch: Columns<T>, at: usize, parts: usize) -> Vec<Option<Box<dyn Batch>>> {
    let mut out: Vec<Option<Box<dyn Batch>>> = (0..parts).map(|_| None).collect();
    if let Some(slot) = out.get_mut(at) {
        *slot = non_empty(batch);
    }
    out
}

/// Reads an atom of one stream's event type back from its [`Batch::encode`] bytes.
pub(crate) type Decode = fn(&[u8]) -> Result<Arc<dyn Batch>, String>;

/// The [`Decode`] of atoms of `T`.
pub(crate) fn decode<T: Data>(bytes: &[u8]) -> Result<Arc<dyn Batch>, String> {
    let columns: Columns<T> = ciborium::from_reader(bytes).map_err(|e| e.to_string())?;
    if columns
        .keys
        .as_ref()
        .is_some_and(|k| k.len() != columns.values.len())
        || columns
            .envelopes
            .as_ref()
            .is_some_and(|e| e.len() != columns.values.len())
    {
        return Err("columns of different lengths".to_owned());
    }
    Ok(Arc::new(columns))
}

/// Converts an erased batch into typed columns; `None` if it holds another type.
pub(crate) fn downcast<T: Data>(batch: Box<dyn Batch>) -> Option<Columns<T>> {
    batch.into_any().downcast::<Columns<T>>().ok().map(|b| *b)
}

/// Borrows a shared erased batch as typed columns; `None` if it holds another type.
pub(crate) fn downcast_shared<T: Data>(batch: &Arc<dyn Batch>) -> Option<Arc<Columns<T>>> {
    Arc::clone(batch).as_any_arc().downcast::<Columns<T>>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(admit: bool) -> Decision {
        if admit {
            Decision::Admit
        } else {
            Decision::Deny
        }
    }

    #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Visit {
        name: String,
        pulse: Option<u32>,
    }

    #[test]
    fn redaction_removes_fields_and_their_categories() {
        let visit = |pulse| Visit {
            name: "ann".into(),
            pulse,
        };
        let env = Envelope::new("ann", &["contact.name", "health.pulse"]);
        let mut a = Columns::from_events(vec![
            Event::personal(visit(Some(70)), env.clone()),
            Event::new(visit(Some(80))),
        ]);
        let r = Arc::new(Redaction {
            fields: vec!["pulse".into()],
            categories: vec!["health.pulse".into()],
        });
        let f = a.filter_envelopes(&mut |e: Option<&Envelope>| match e {
            Some(_) => Decision::Redact(r.clone()),
            None => Decision::Admit,
        });
        assert_eq!(
            f,
            Filtered {
                denied: 0,
                redacted: 1
            }
        );
        assert_eq!(
            a.into_events(),
            vec![
                Event::personal(visit(None), Envelope::new("ann", &["contact.name"])),
                Event::new(visit(Some(80))),
            ]
        );
        // A value that is not a record cannot be redacted: it is dropped.
        let mut n = Columns::from_events(vec![Event::personal(1i64, env)]);
        let f = n.filter_envelopes(&mut |_: Option<&Envelope>| Decision::Redact(r.clone()));
        assert_eq!(
            (f, n.len()),
            (
                Filtered {
                    denied: 1,
                    redacted: 0
                },
                0
            )
        );
    }

    fn personal(v: i64, who: &str) -> Event<i64> {
        Event {
            key: Key(v as u64),
            envelope: Some(Arc::new(Envelope::new(who, &["c"]))),
            value: v,
        }
    }

    #[test]
    fn rows_survive_columns_with_and_without_keys_and_envelopes() {
        let plain: Vec<Event<i64>> = (0..3).map(Event::new).collect();
        let c = Columns::from_events(plain.clone());
        assert!(c.keys.is_none() && c.envelopes.is_none());
        assert_eq!(c.into_events(), plain);
        let mixed = vec![
            Event::new(1),
            personal(2, "a"),
            Event {
                key: Key(9),
                envelope: None,
                value: 3,
            },
        ];
        assert_eq!(Columns::from_events(mixed.clone()).into_events(), mixed);
    }

    #[test]
    fn retain_and_extend_keep_columns_aligned() {
        let mut a = Columns::from_events(vec![Event::new(1), personal(2, "a"), personal(3, "b")]);
        a.retain(|_, v| *v != 2);
        assert_eq!(a.into_events(), vec![Event::new(1), personal(3, "b")]);
        let mut b = Columns::of_values(vec![7i64]);
        b.extend(Columns::from_events(vec![personal(8, "c")]));
        assert_eq!(b.into_events(), vec![Event::new(7), personal(8, "c")]);
    }

    #[test]
    fn the_gate_sees_each_envelope_and_one_verdict_for_plain_atoms() {
        let mut a = Columns::from_events(vec![Event::new(1), personal(2, "a"), personal(3, "b")]);
        let f = a.filter_envelopes(&mut |e: Option<&Envelope>| {
            verdict(e.is_none_or(|e| e.subject.0 != "a"))
        });
        assert_eq!(
            (f.denied, a.into_events()),
            (1, vec![Event::new(1), personal(3, "b")])
        );
        let mut calls = 0;
        let mut plain = Columns::of_values(vec![1i64, 2, 3]);
        let f = plain.filter_envelopes(&mut |_: Option<&Envelope>| {
            calls += 1;
            Decision::Deny
        });
        assert_eq!((f.denied, calls, plain.len()), (3, 1, 0));
    }
}
