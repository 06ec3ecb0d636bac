//! Just enough CBOR to seal an atom in place: item heads, item boundaries, and the heads to
//! write. Sealing and opening find the items they change by their byte spans and copy every
//! other byte as it is, so an atom is neither decoded into a tree nor encoded again.

use std::ops::Range;

use super::SealError;

/// Major type of byte strings.
pub(crate) const BYTES: u8 = 2;
/// Major type of text strings.
pub(crate) const TEXT: u8 = 3;
/// Major type of arrays.
pub(crate) const ARRAY: u8 = 4;
/// Major type of maps.
pub(crate) const MAP: u8 = 5;
/// Major type of tags.
pub(crate) const TAG: u8 = 6;
/// The simple value null.
pub(crate) const NULL: u8 = 0xf6;
/// The end of an item of indefinite length.
pub(crate) const BREAK: u8 = 0xff;

/// Deepest nesting read (deeper items are refused rather than risking the stack).
const MAX_DEPTH: u32 = 128;

/// The head of an item: its major type, its argument (`None`: indefinite length) and the
/// head's length in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Head {
    pub major: u8,
    pub arg: Option<u64>,
    pub len: usize,
}

/// The head of the item at `at`.
pub(crate) fn head(bytes: &[u8], at: usize) -> Result<Head, SealError> {
    let first = *bytes.get(at).ok_or_else(|| cut("an item"))?;
    let (major, info) = (first >> 5, first & 0x1f);
    let extra = match info {
        0..24 => {
            return Ok(Head {
                major,
                arg: Some(u64::from(info)),
                len: 1,
            });
        }
        24 => 1,
        25 => 2,
        26 => 4,
        27 => 8,
        31 if (BYTES..=MAP).contains(&major) => {
            return Ok(Head {
                major,
                arg: None,
                len: 1,
            });
        }
        _ => return Err(malformed(format!("bad item head {first:#04x}"))),
    };
    let arg = bytes
        .get(at + 1..at + 1 + extra)
        .ok_or_else(|| cut("an item head"))?
        .iter()
        .fold(0u64, |n, b| (n << 8) | u64::from(*b));
    Ok(Head {
        major,
        arg: Some(arg),
        len: 1 + extra,
    })
}

/// Where the item at `at` ends.
pub(crate) fn skip(bytes: &[u8], at: usize) -> Result<usize, SealError> {
    skip_at(bytes, at, 0)
}

fn skip_at(bytes: &[u8], at: usize, depth: u32) -> Result<usize, SealError> {
    if depth > MAX_DEPTH {
        return Err(malformed("items nested too deep".to_owned()));
    }
    let h = head(bytes, at)?;
    let body = at + h.len;
    match (h.major, h.arg) {
        (BYTES | TEXT, Some(n)) => {
            let end = usize::try_from(n)
                .ok()
                .and_then(|n| body.checked_add(n))
                .filter(|end| *end <= bytes.len())
                .ok_or_else(|| cut("a string"))?;
            Ok(end)
        }
        (ARRAY | MAP, Some(n)) => {
            let items = if h.major == MAP {
                n.saturating_mul(2)
            } else {
                n
            };
            let mut end = body;
            for _ in 0..items {
                // Each item takes a byte at least: a count beyond the bytes left ends here.
                end = skip_at(bytes, end, depth + 1)?;
            }
            Ok(end)
        }
        // Indefinite strings, arrays and maps: items (chunks) until the break.
        (BYTES..=MAP, None) => {
            let mut end = body;
            while *bytes.get(end).ok_or_else(|| cut("an indefinite item"))? != BREAK {
                end = skip_at(bytes, end, depth + 1)?;
            }
            Ok(end + 1)
        }
        (TAG, _) => skip_at(bytes, body, depth + 1),
        _ => Ok(body),
    }
}

/// The items of an array, or the entries of a map (key, value, key, ...).
pub(crate) struct Items {
    /// The span of the array's (map's) head.
    pub head: Range<usize>,
    /// The span of each item.
    pub items: Vec<Range<usize>>,
    /// Where the array (map) ends.
    pub end: usize,
}

/// The items of the array (or the entries of the map) at `at`.
pub(crate) fn items(bytes: &[u8], at: usize) -> Result<Items, SealError> {
    let h = head(bytes, at)?;
    let body = at + h.len;
    let mut items = Vec::new();
    let mut end = body;
    match h.arg {
        Some(n) => {
            let n = if h.major == MAP {
                n.saturating_mul(2)
            } else {
                n
            };
            for _ in 0..n {
                let next = skip(bytes, end)?;
                items.push(end..next);
                end = next;
            }
        }
        None => {
            while *bytes.get(end).ok_or_else(|| cut("an indefinite item"))? != BREAK {
                let next = skip(bytes, end)?;
                items.push(end..next);
                end = next;
            }
            end += 1;
        }
    }
    Ok(Items {
        head: at..body,
        items,
        end,
    })
}

/// The text of the text string at `span` (definite length), if it is one.
pub(crate) fn text<'a>(bytes: &'a [u8], span: &Range<usize>) -> Option<&'a str> {
    let h = head(bytes, span.start).ok()?;
    if h.major != TEXT || h.arg.is_none() {
        return None;
    }
    std::str::from_utf8(bytes.get(span.start + h.len..span.end)?).ok()
}

/// The content of the byte string at `span` (definite length), if it is one.
pub(crate) fn byte_string<'a>(bytes: &'a [u8], span: &Range<usize>) -> Option<&'a [u8]> {
    let h = head(bytes, span.start).ok()?;
    if h.major != BYTES || h.arg.is_none() {
        return None;
    }
    bytes.get(span.start + h.len..span.end)
}

/// Appends the head of an item of major type `major` with argument `arg`, in its shortest form.
pub(crate) fn write_head(out: &mut Vec<u8>, major: u8, arg: u64) {
    let m = major << 5;
    match arg {
        0..24 => out.push(m | arg as u8),
        24..=0xff => out.extend_from_slice(&[m | 24, arg as u8]),
        0x100..=0xffff => {
            out.push(m | 25);
            out.extend_from_slice(&(arg as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(m | 26);
            out.extend_from_slice(&(arg as u32).to_be_bytes());
        }
        _ => {
            out.push(m | 27);
            out.extend_from_slice(&arg.to_be_bytes());
        }
    }
}

/// Bytes with some spans replaced (the spans must not overlap). The replacements are written
/// into one buffer, so editing an atom allocates no memory per item.
pub(crate) struct Edits<'a> {
    bytes: &'a [u8],
    /// The replacements' bytes.
    buffer: Vec<u8>,
    /// Each span replaced, and where its replacement lies in `buffer`.
    edits: Vec<(Range<usize>, Range<usize>)>,
}

impl<'a> Edits<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Edits<'a> {
        Edits {
            bytes,
            buffer: Vec::new(),
            edits: Vec::new(),
        }
    }

    /// The buffer to write replacements into (see [`Edits::replace`]).
    pub(crate) fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.buffer
    }

    /// Replaces the bytes of `span` with `with`, a range of the buffer.
    pub(crate) fn replace(&mut self, span: Range<usize>, with: Range<usize>) {
        self.edits.push((span, with));
    }

    /// Replaces the bytes of `span` with the bytes `write` appends to the buffer.
    pub(crate) fn replace_with<E>(
        &mut self,
        span: Range<usize>,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        let start = self.buffer.len();
        write(&mut self.buffer)?;
        let with = start..self.buffer.len();
        self.edits.push((span, with));
        Ok(())
    }

    /// Removes the bytes of `span`.
    pub(crate) fn remove(&mut self, span: Range<usize>) {
        self.edits.push((span, 0..0));
    }

    /// The bytes with every replacement made.
    pub(crate) fn apply(mut self) -> Vec<u8> {
        self.edits.sort_unstable_by_key(|(span, _)| span.start);
        let mut out = Vec::with_capacity(self.bytes.len() + self.buffer.len());
        let mut at = 0;
        for (span, with) in &self.edits {
            out.extend_from_slice(&self.bytes[at..span.start]);
            out.extend_from_slice(&self.buffer[with.clone()]);
            at = span.end;
        }
        out.extend_from_slice(&self.bytes[at..]);
        out
    }
}

/// The span of the value of the entry of the map at `at` whose key is the text `name`.
pub(crate) fn entry(
    bytes: &[u8],
    at: usize,
    name: &str,
) -> Result<Option<Range<usize>>, SealError> {
    let h = head(bytes, at)?;
    if h.major != MAP {
        return Err(malformed("not a map".to_owned()));
    }
    let mut end = at + h.len;
    let mut left = h.arg;
    while left.map_or(bytes.get(end) != Some(&BREAK), |n| n > 0) {
        left = left.map(|n| n - 1);
        let key = end..skip(bytes, end)?;
        let value = key.end..skip(bytes, key.end)?;
        if text(bytes, &key) == Some(name) {
            return Ok(Some(value));
        }
        end = value.end;
    }
    Ok(None)
}

fn cut(what: &str) -> SealError {
    SealError::Malformed(format!("{what} is cut short"))
}

fn malformed(what: String) -> SealError {
    SealError::Malformed(what)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cbor(v: &ciborium::Value) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::into_writer(v, &mut out).unwrap();
        out
    }

    fn value() -> impl Strategy<Value = ciborium::Value> {
        use ciborium::Value;
        let leaf = prop_oneof![
            any::<i64>().prop_map(|n| Value::Integer(n.into())),
            any::<u64>().prop_map(|n| Value::Integer(n.into())),
            ".{0,40}".prop_map(Value::Text),
            prop::collection::vec(any::<u8>(), 0..40).prop_map(Value::Bytes),
            any::<bool>().prop_map(Value::Bool),
            Just(Value::Null),
            (-1e9f64..1e9).prop_map(Value::Float),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::vec((inner.clone(), inner.clone()), 0..6).prop_map(Value::Map),
                (any::<u64>(), inner).prop_map(|(t, v)| Value::Tag(t, Box::new(v))),
            ]
        })
    }

    proptest! {
        /// Skipping an item ends exactly where its encoding does, and the items of an array
        /// are its elements' encodings.
        #[test]
        fn items_are_skipped_whole(v in value(), w in value()) {
            let bytes = cbor(&v);
            prop_assert_eq!(skip(&bytes, 0).unwrap(), bytes.len());
            let pair = cbor(&ciborium::Value::Array(vec![v.clone(), w.clone()]));
            let Items { head: head_span, items: spans, end } = items(&pair, 0).unwrap();
            prop_assert_eq!((head_span, end), (0..1, pair.len()));
            prop_assert_eq!(&pair[spans[0].clone()], &bytes[..]);
            prop_assert_eq!(&pair[spans[1].clone()], &cbor(&w)[..]);
        }

        /// Damaged or cut bytes are an error or some item, never a panic.
        #[test]
        fn damage_never_panics(v in value(), flip in any::<prop::sample::Index>(), bits in 1u8..=255) {
            let mut bytes = cbor(&v);
            let i = flip.index(bytes.len());
            let _ = skip(&bytes[..i], 0);
            bytes[i] ^= bits;
            let _ = skip(&bytes, 0);
            let _ = items(&bytes, 0);
        }

        /// Heads are written in the shortest form (as ciborium writes an unsigned integer),
        /// and read back.
        #[test]
        fn heads_round_trip(major in 0u8..7, arg in any::<u64>()) {
            let mut out = Vec::new();
            write_head(&mut out, major, arg);
            let h = head(&out, 0).unwrap();
            prop_assert_eq!((h.major, h.arg, h.len), (major, Some(arg), out.len()));
            let n = ciborium::Value::Integer(arg.into());
            if major == 0 {
                prop_assert_eq!(out, cbor(&n));
            }
        }
    }

    #[test]
    fn entries_are_found_by_name() {
        use ciborium::Value;
        let map = cbor(&Value::Map(vec![
            (Value::Text("a".into()), Value::Array(vec![Value::Null])),
            (Value::Integer(1.into()), Value::Text("subject".into())),
            (Value::Text("subject".into()), Value::Text("ann".into())),
        ]));
        let span = entry(&map, 0, "subject").unwrap().unwrap();
        assert_eq!(text(&map, &span), Some("ann"));
        assert_eq!(entry(&map, 0, "b").unwrap(), None);
        assert!(entry(&cbor(&Value::Null), 0, "a").is_err());
        // {_ "subject": "x"} of indefinite length.
        let indefinite = [
            0xbf, 0x67, b's', b'u', b'b', b'j', b'e', b'c', b't', 0x61, b'x', 0xff,
        ];
        let span = entry(&indefinite, 0, "subject").unwrap().unwrap();
        assert_eq!(text(&indefinite, &span), Some("x"));
    }

    #[test]
    fn indefinite_items_and_deep_nesting() {
        // An indefinite array of an indefinite text of two chunks, then 1.
        let bytes = [0x9f, 0x7f, 0x61, b'a', 0x61, b'b', 0xff, 0x01, 0xff];
        assert_eq!(skip(&bytes, 0).unwrap(), bytes.len());
        let all = items(&bytes, 0).unwrap();
        assert_eq!((all.items, all.end), (vec![1..7, 7..8], bytes.len()));
        let deep = vec![0x81; 10_000];
        assert!(matches!(skip(&deep, 0), Err(SealError::Malformed(_))));
        assert!(skip(&[0x1c], 0).is_err(), "a reserved head");
        assert!(skip(&[0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 0).is_err());
    }
}
