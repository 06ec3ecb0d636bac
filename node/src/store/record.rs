//! One atom's changelog record: the step, the input position after it, and every state value
//! it wrote. A compact binary layout (little-endian), since records are written once per atom
//! and read at every recovery: a version byte; the step (8 bytes); the input (a flag byte,
//! then the stream's length (4 bytes), its text and the next offset (8 bytes)); the number of
//! writes (4 bytes); per write the state id (8), a key flag and key (1 + 8), and a value flag,
//! length (4) and bytes (the payload layer's). Every length is checked when reading.

/// The layout's version (the first byte).
const LAYOUT: u8 = 1;

/// Stored bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Bytes(pub Vec<u8>);

/// One state change: which state, which key (`None` for per-task state), the new value
/// (`None`: removed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Write {
    pub state: u64,
    pub key: Option<u64>,
    pub value: Option<Bytes>,
}

/// What one committed atom changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    pub step: u64,
    /// The input stream and the offset of its next atom, for a stream atom.
    pub input: Option<(String, u64)>,
    pub writes: Vec<Write>,
}

fn len32(n: usize) -> Result<[u8; 4], String> {
    u32::try_from(n)
        .map(u32::to_le_bytes)
        .map_err(|_| format!("a length of {n} bytes does not fit a record"))
}

impl Record {
    /// The record's bytes, through [`RecordWriter`] (which the commit path uses directly).
    #[cfg(test)]
    pub(crate) fn encode(&self) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        let input = self.input.as_ref().map(|(s, n)| (s.as_str(), *n));
        let mut writer = RecordWriter::begin(&mut out, self.step, input)?;
        for w in &self.writes {
            let value = w.value.as_ref().map(|v| {
                move |out: &mut Vec<u8>| {
                    out.extend_from_slice(&v.0);
                    Ok(())
                }
            });
            writer.write(w.state, w.key, value)?;
        }
        writer.finish();
        Ok(out)
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Record, String> {
        let mut r = Reader { bytes, at: 0 };
        let layout = r.byte()?;
        if layout != LAYOUT {
            return Err(format!("record layout {layout} is not known to this build"));
        }
        let step = r.u64()?;
        let input = match r.byte()? {
            0 => None,
            1 => {
                let n = r.u32()? as usize;
                let text = std::str::from_utf8(r.take(n)?)
                    .map_err(|e| format!("stream name: {e}"))?
                    .to_owned();
                Some((text, r.u64()?))
            }
            f => return Err(format!("bad input flag {f}")),
        };
        let n = r.u32()? as usize;
        // Each write takes at least 10 bytes: a count beyond that is damage, not a reason to
        // reserve memory.
        if n > r.left() / 10 {
            return Err(format!("{n} writes cannot fit in {} bytes", r.left()));
        }
        let mut writes = Vec::with_capacity(n);
        for _ in 0..n {
            let state = r.u64()?;
            let key = match r.byte()? {
                0 => None,
                1 => Some(r.u64()?),
                f => return Err(format!("bad key flag {f}")),
            };
            let value = match r.byte()? {
                0 => None,
                1 => {
                    let len = r.u32()? as usize;
                    Some(Bytes(r.take(len)?.to_vec()))
                }
                f => return Err(format!("bad value flag {f}")),
            };
            writes.push(Write { state, key, value });
        }
        if r.left() != 0 {
            return Err(format!("{} bytes after the last write", r.left()));
        }
        Ok(Record {
            step,
            input,
            writes,
        })
    }
}

/// Writes a record in the layout above straight into a buffer, one write at a time,
/// so a commit encodes each value once, where it is stored.
pub(crate) struct RecordWriter<'a> {
    out: &'a mut Vec<u8>,
    count_at: usize,
    count: u32,
}

impl<'a> RecordWriter<'a> {
    /// Starts a record in `out` (cleared first).
    pub(crate) fn begin(
        out: &'a mut Vec<u8>,
        step: u64,
        input: Option<(&str, u64)>,
    ) -> Result<RecordWriter<'a>, String> {
        out.clear();
        out.push(LAYOUT);
        out.extend_from_slice(&step.to_le_bytes());
        match input {
            Some((stream, next)) => {
                out.push(1);
                out.extend_from_slice(&len32(stream.len())?);
                out.extend_from_slice(stream.as_bytes());
                out.extend_from_slice(&next.to_le_bytes());
            }
            None => out.push(0),
        }
        let count_at = out.len();
        out.extend_from_slice(&[0; 4]);
        Ok(RecordWriter {
            out,
            count_at,
            count: 0,
        })
    }

    /// Adds a write; `value` appends the stored value (`None`: removed). Returns where the
    /// stored value lies in the buffer.
    pub(crate) fn write(
        &mut self,
        state: u64,
        key: Option<u64>,
        value: Option<impl FnOnce(&mut Vec<u8>) -> Result<(), String>>,
    ) -> Result<Option<std::ops::Range<usize>>, String> {
        self.count = self
            .count
            .checked_add(1)
            .ok_or_else(|| "too many writes for a record".to_owned())?;
        self.out.extend_from_slice(&state.to_le_bytes());
        match key {
            Some(k) => {
                self.out.push(1);
                self.out.extend_from_slice(&k.to_le_bytes());
            }
            None => self.out.push(0),
        }
        let Some(value) = value else {
            self.out.push(0);
            return Ok(None);
        };
        self.out.push(1);
        let len_at = self.out.len();
        self.out.extend_from_slice(&[0; 4]);
        let start = self.out.len();
        value(self.out)?;
        let len = len32(self.out.len() - start)?;
        self.out[len_at..start].copy_from_slice(&len);
        Ok(Some(start..self.out.len()))
    }

    /// Ends the record (writes the count of writes).
    pub(crate) fn finish(self) {
        let count = self.count.to_le_bytes();
        self.out[self.count_at..self.count_at + 4].copy_from_slice(&count);
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn left(&self) -> usize {
        self.bytes.len() - self.at
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if n > self.left() {
            return Err(format!("truncated: {n} bytes wanted, {} left", self.left()));
        }
        let out = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(out)
    }
    fn byte(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, String> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn record() -> impl Strategy<Value = Record> {
        (
            any::<u64>(),
            proptest::option::of(("[a-z/]{1,20}", any::<u64>())),
            prop::collection::vec(
                (
                    any::<u64>(),
                    proptest::option::of(any::<u64>()),
                    proptest::option::of(prop::collection::vec(any::<u8>(), 0..40)),
                ),
                0..20,
            ),
        )
            .prop_map(|(step, input, writes)| Record {
                step,
                input,
                writes: writes
                    .into_iter()
                    .map(|(state, key, value)| Write {
                        state,
                        key,
                        value: value.map(Bytes),
                    })
                    .collect(),
            })
    }

    proptest! {
        #[test]
        fn records_survive_encoding(record in record()) {
            let bytes = record.encode().unwrap();
            prop_assert_eq!(Record::decode(&bytes).unwrap(), record);
        }

        /// Damage anywhere (a cut, a flipped byte) gives an error or another record, never a
        /// panic or an endless allocation.
        #[test]
        fn damaged_records_never_panic(record in record(), cut in any::<prop::sample::Index>(), flip in any::<prop::sample::Index>(), bits in 1u8..=255) {
            let bytes = record.encode().unwrap();
            let _ = Record::decode(&bytes[..cut.index(bytes.len() + 1)]);
            let mut flipped = bytes.clone();
            let i = flip.index(flipped.len());
            flipped[i] ^= bits;
            let _ = Record::decode(&flipped);
        }
    }

    proptest! {
        /// The writer says where each value lies in the bytes it wrote.
        #[test]
        fn the_writer_locates_every_value(record in record()) {
            let mut out = Vec::new();
            let input = record.input.as_ref().map(|(s, n)| (s.as_str(), *n));
            let mut w = RecordWriter::begin(&mut out, record.step, input).unwrap();
            let mut spans = Vec::new();
            for wr in &record.writes {
                let value = wr.value.as_ref().map(|v| {
                    let bytes = v.0.clone();
                    move |out: &mut Vec<u8>| { out.extend_from_slice(&bytes); Ok(()) }
                });
                spans.push(w.write(wr.state, wr.key, value).unwrap());
            }
            w.finish();
            prop_assert_eq!(Record::decode(&out).unwrap(), record.clone());
            for (wr, span) in record.writes.iter().zip(spans) {
                prop_assert_eq!(span.map(|r| out[r].to_vec()), wr.value.as_ref().map(|v| v.0.clone()));
            }
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(Record::decode(&[0xff, 0x00, 0x13]).is_err());
        assert!(Record::decode(&[]).is_err());
        assert!(
            Record::decode(&[LAYOUT, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]).is_err()
        );
    }
}
