//! One atom's changelog record: the step, the input position after it, and every state value
//! it wrote. A compact binary layout (little-endian), since records are written once per atom
//! and read at every recovery: a version byte; the step (8 bytes); the input (a flag byte,
//! then the stream's length (4 bytes), its text and the next offset (8 bytes)); the number of
//! writes (4 bytes); then per write a flags byte (key present, value present, same state as
//! the write before), the state id (8, unless it is the same), the key (8, if present) and
//! the value's length (LEB128) and bytes (the payload layer's, if present). A group commit's
//! record holds one write per key its atoms touched, mostly of one state, so a write of a
//! small value takes 10 bytes besides the value. Records of layout 1 (written by earlier
//! versions: state id, key flag and key, value flag and a 4-byte length for every write) are
//! still read. Every length is checked when reading.

/// The layout's version (the first byte).
const LAYOUT: u8 = 2;
/// The layout of earlier versions, still read.
const LAYOUT_1: u8 = 1;

/// Flags of a write in layout 2.
const HAS_KEY: u8 = 1;
const HAS_VALUE: u8 = 2;
const SAME_STATE: u8 = 4;

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
        if layout != LAYOUT && layout != LAYOUT_1 {
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
        // Each write takes at least 10 bytes in layout 1, 1 in layout 2: a count beyond that
        // is damage, not a reason to reserve memory.
        let least = if layout == LAYOUT_1 { 10 } else { 1 };
        if n > r.left() / least {
            return Err(format!("{n} writes cannot fit in {} bytes", r.left()));
        }
        let mut writes = Vec::with_capacity(n);
        for _ in 0..n {
            let previous = writes.last().map(|w: &Write| w.state);
            let write = if layout == LAYOUT_1 {
                r.write_1()?
            } else {
                r.write_2(previous)?
            };
            writes.push(write);
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
    /// The state of the last write.
    state: Option<u64>,
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
            state: None,
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
        // The flags byte, set once the write's parts are known.
        let flags_at = self.out.len();
        self.out.push(0);
        let mut flags = 0;
        if self.state == Some(state) {
            flags |= SAME_STATE;
        } else {
            self.out.extend_from_slice(&state.to_le_bytes());
            self.state = Some(state);
        }
        if let Some(k) = key {
            flags |= HAS_KEY;
            self.out.extend_from_slice(&k.to_le_bytes());
        }
        let Some(value) = value else {
            self.out[flags_at] = flags;
            return Ok(None);
        };
        self.out[flags_at] = flags | HAS_VALUE;
        // Most values are short: their length is written in one byte, and moved along in
        // the rare case that it takes more.
        let len_at = self.out.len();
        self.out.push(0);
        let start = self.out.len();
        value(self.out)?;
        let len = self.out.len() - start;
        let len = u32::try_from(len)
            .map_err(|_| format!("a length of {len} bytes does not fit a record"))?;
        let mut leb = [0u8; 5];
        let used = leb128(len, &mut leb);
        if used == 1 {
            self.out[len_at] = leb[0];
            return Ok(Some(start..self.out.len()));
        }
        self.out.splice(len_at..start, leb[..used].iter().copied());
        let start = len_at + used;
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
    fn leb128(&mut self) -> Result<u32, String> {
        let mut n: u64 = 0;
        for i in 0..5 {
            let b = self.byte()?;
            n |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return u32::try_from(n).map_err(|_| format!("length {n} is too large"));
            }
        }
        Err("a length longer than 5 bytes".to_owned())
    }
    /// A write of layout 1.
    fn write_1(&mut self) -> Result<Write, String> {
        let state = self.u64()?;
        let key = match self.byte()? {
            0 => None,
            1 => Some(self.u64()?),
            f => return Err(format!("bad key flag {f}")),
        };
        let value = match self.byte()? {
            0 => None,
            1 => {
                let len = self.u32()? as usize;
                Some(Bytes(self.take(len)?.to_vec()))
            }
            f => return Err(format!("bad value flag {f}")),
        };
        Ok(Write { state, key, value })
    }
    /// A write of layout 2; `previous` is the state of the write before.
    fn write_2(&mut self, previous: Option<u64>) -> Result<Write, String> {
        let flags = self.byte()?;
        if flags & !(HAS_KEY | HAS_VALUE | SAME_STATE) != 0 {
            return Err(format!("bad write flags {flags:#x}"));
        }
        let state = if flags & SAME_STATE != 0 {
            previous.ok_or_else(|| "the first write names no state".to_owned())?
        } else {
            self.u64()?
        };
        let key = if flags & HAS_KEY != 0 {
            Some(self.u64()?)
        } else {
            None
        };
        let value = if flags & HAS_VALUE != 0 {
            let len = self.leb128()? as usize;
            Some(Bytes(self.take(len)?.to_vec()))
        } else {
            None
        };
        Ok(Write { state, key, value })
    }
}

/// Writes `n` as LEB128 into `out`; returns how many bytes it took.
fn leb128(mut n: u32, out: &mut [u8; 5]) -> usize {
    let mut i = 0;
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out[i] = b;
            return i + 1;
        }
        out[i] = b | 0x80;
        i += 1;
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
                    proptest::option::of(prop::collection::vec(any::<u8>(), 0..300)),
                ),
                0..20,
            ),
            // Runs of writes to one state, as a commit's record has them.
            any::<bool>(),
        )
            .prop_map(|(step, input, writes, runs)| Record {
                step,
                input,
                writes: writes
                    .into_iter()
                    .map(|(state, key, value)| Write {
                        state: if runs { state % 3 } else { state },
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

    /// A record in layout 1, as earlier versions wrote it.
    fn encode_1(record: &Record) -> Vec<u8> {
        let mut out = vec![LAYOUT_1];
        out.extend_from_slice(&record.step.to_le_bytes());
        match &record.input {
            Some((stream, next)) => {
                out.push(1);
                out.extend_from_slice(&(stream.len() as u32).to_le_bytes());
                out.extend_from_slice(stream.as_bytes());
                out.extend_from_slice(&next.to_le_bytes());
            }
            None => out.push(0),
        }
        out.extend_from_slice(&(record.writes.len() as u32).to_le_bytes());
        for w in &record.writes {
            out.extend_from_slice(&w.state.to_le_bytes());
            match w.key {
                Some(k) => {
                    out.push(1);
                    out.extend_from_slice(&k.to_le_bytes());
                }
                None => out.push(0),
            }
            match &w.value {
                Some(v) => {
                    out.push(1);
                    out.extend_from_slice(&(v.0.len() as u32).to_le_bytes());
                    out.extend_from_slice(&v.0);
                }
                None => out.push(0),
            }
        }
        out
    }

    proptest! {
        /// Records written by earlier versions (layout 1) still read as they were written.
        #[test]
        fn records_of_layout_1_still_read(record in record()) {
            prop_assert_eq!(Record::decode(&encode_1(&record)).unwrap(), record);
        }
    }

    /// A group commit's record of 1,024 values of one state: a write takes 10 bytes besides
    /// its value (flags, key, a one-byte length), against 22 in layout 1.
    #[test]
    fn a_write_takes_ten_bytes_besides_a_small_value() {
        let record = Record {
            step: 7,
            input: None,
            writes: (0..1024u64)
                .map(|k| Write {
                    state: 42,
                    key: Some(k.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
                    value: Some(Bytes(vec![0, 0x19, 1, 0])),
                })
                .collect(),
        };
        let bytes = record.encode().unwrap();
        let header = 1 + 8 + 1 + 4;
        assert_eq!(bytes.len(), header + 8 + 1024 * (10 + 4));
        assert_eq!(encode_1(&record).len(), header + 1024 * (22 + 4));
        assert_eq!(Record::decode(&bytes).unwrap(), record);
    }

    #[test]
    fn a_first_write_without_its_state_is_damage() {
        // Layout 2, step 0, no input, one write flagged "same state" with nothing before it.
        let mut bytes = vec![LAYOUT];
        bytes.extend_from_slice(&[0; 8]);
        bytes.push(0);
        bytes.extend_from_slice(&1u32.to_le_bytes());
        bytes.push(SAME_STATE);
        assert_eq!(
            Record::decode(&bytes),
            Err("the first write names no state".to_owned())
        );
        // Unknown flags are damage too.
        let last = bytes.len() - 1;
        bytes[last] = 0x80;
        assert!(Record::decode(&bytes).is_err());
    }

    #[test]
    fn lengths_of_every_size_round_trip() {
        for n in [
            0u32,
            1,
            127,
            128,
            16_383,
            16_384,
            2_097_151,
            2_097_152,
            u32::MAX,
        ] {
            let mut buf = [0u8; 5];
            let used = leb128(n, &mut buf);
            let mut r = Reader {
                bytes: &buf[..used],
                at: 0,
            };
            assert_eq!(r.leb128(), Ok(n));
            assert_eq!(r.left(), 0);
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
