//! The registry's table of subjects: open addressing with linear probing over slots of two
//! cache lines, each holding the id's full hash, the id itself (inline up to 30 bytes) and the
//! subject's state with the gate's terms first. Finding a subject reads one slot (rarely the
//! next), where a map with separate control bytes and keys on the heap reads three places.

use std::fmt;
use std::hash::BuildHasher;

use super::SubjectState;

/// Subject ids of up to this many bytes (most) are held in the slot itself.
const INLINE: usize = 30;

/// A subject's id as the table holds it.
#[derive(Clone, PartialEq, Eq)]
enum Key {
    Inline(u8, [u8; INLINE]),
    Heap(Box<[u8]>),
}

impl Key {
    fn new(id: &[u8]) -> Key {
        match u8::try_from(id.len()) {
            Ok(n) if id.len() <= INLINE => {
                let mut inline = [0; INLINE];
                inline[..id.len()].copy_from_slice(id);
                Key::Inline(n, inline)
            }
            _ => Key::Heap(id.into()),
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Key::Inline(n, bytes) => &bytes[..usize::from(*n).min(INLINE)],
            Key::Heap(bytes) => bytes,
        }
    }
}

/// One slot: empty while `hash` is 0 (a subject's hash always has its top bit set).
#[derive(Clone)]
#[repr(C, align(128))]
struct Slot {
    hash: u64,
    key: Key,
    state: SubjectState,
}

impl Default for Slot {
    fn default() -> Slot {
        Slot {
            hash: 0,
            key: Key::Inline(0, [0; INLINE]),
            state: SubjectState::default(),
        }
    }
}

/// Subjects by id. At most three quarters of the slots are taken; the table doubles first.
#[derive(Clone, Default)]
pub(super) struct Table {
    slots: Vec<Slot>,
    len: usize,
    hasher: foldhash::fast::RandomState,
}

impl Table {
    pub(super) fn len(&self) -> usize {
        self.len
    }

    fn hash(&self, id: &[u8]) -> u64 {
        self.hasher.hash_one(id) | 1 << 63
    }

    /// The slot holding `id`, or the empty slot where it would go (`None`: no slots yet).
    fn find(&self, id: &[u8], hash: u64) -> Option<usize> {
        let mask = self.slots.len().checked_sub(1)?;
        let mut i = hash as usize & mask;
        loop {
            let slot = &self.slots[i];
            if slot.hash == 0 || (slot.hash == hash && slot.key.bytes() == id) {
                return Some(i);
            }
            i = (i + 1) & mask;
        }
    }

    pub(super) fn get(&self, id: &str) -> Option<&SubjectState> {
        self.get_hashed(id, self.hash(id.as_bytes()))
    }

    /// The hash `id` is found by ([`Table::get_hashed`]).
    pub(super) fn hash_of(&self, id: &str) -> u64 {
        self.hash(id.as_bytes())
    }

    /// Asks the memory for the home slot of `hash` without waiting for it, so that the reads
    /// of many lookups overlap.
    pub(super) fn prefetch(&self, hash: u64) {
        if let Some(mask) = self.slots.len().checked_sub(1) {
            let home = hash as usize & mask;
            prefetch(&self.slots[home]);
            prefetch(&self.slots[(home + 1) & mask]);
        }
    }

    /// [`Table::get`] with the hash [`Table::hash_of`] gave.
    pub(super) fn get_hashed(&self, id: &str, hash: u64) -> Option<&SubjectState> {
        let slot = &self.slots[self.find(id.as_bytes(), hash)?];
        (slot.hash != 0).then_some(&slot.state)
    }

    #[cfg(test)]
    pub(super) fn get_mut(&mut self, id: &str) -> Option<&mut SubjectState> {
        let hash = self.hash(id.as_bytes());
        let i = self.find(id.as_bytes(), hash)?;
        let slot = &mut self.slots[i];
        (slot.hash != 0).then_some(&mut slot.state)
    }

    /// The state of `id`, added empty if it has none.
    pub(super) fn entry(&mut self, id: &str) -> &mut SubjectState {
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow();
        }
        let hash = self.hash(id.as_bytes());
        let i = self.find(id.as_bytes(), hash).unwrap_or_default();
        let slot = &mut self.slots[i];
        if slot.hash == 0 {
            slot.hash = hash;
            slot.key = Key::new(id.as_bytes());
            self.len += 1;
        }
        &mut slot.state
    }

    /// Removes `id`, moving back the slots after it that belong before the hole.
    pub(super) fn remove(&mut self, id: &str) -> Option<SubjectState> {
        let hash = self.hash(id.as_bytes());
        let mut hole = self.find(id.as_bytes(), hash)?;
        if self.slots[hole].hash == 0 {
            return None;
        }
        let removed = std::mem::take(&mut self.slots[hole]);
        self.len -= 1;
        let mask = self.slots.len() - 1;
        let mut i = hole;
        loop {
            i = (i + 1) & mask;
            let h = self.slots[i].hash;
            if h == 0 {
                break;
            }
            // The slot may move back to the hole unless its home lies after the hole, up to it.
            let home = h as usize & mask;
            let stays = if hole <= i {
                hole < home && home <= i
            } else {
                hole < home || home <= i
            };
            if !stays {
                self.slots.swap(hole, i);
                hole = i;
            }
        }
        Some(removed.state)
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &SubjectState> {
        self.slots.iter().filter(|s| s.hash != 0).map(|s| &s.state)
    }

    fn grow(&mut self) {
        let size = (self.slots.len() * 2).max(16);
        let mut slots = Vec::with_capacity(size);
        advise_huge_pages(&slots);
        slots.resize(size, Slot::default());
        let old = std::mem::replace(&mut self.slots, slots);
        let mask = size - 1;
        for slot in old.into_iter().filter(|s| s.hash != 0) {
            let mut i = slot.hash as usize & mask;
            while self.slots[i].hash != 0 {
                i = (i + 1) & mask;
            }
            self.slots[i] = slot;
        }
    }
}

/// Asks the kernel to back the (not yet touched) memory of `slots` with huge pages, where it is
/// large enough: every lookup in a table of a million subjects reads a page of its own, and with
/// 4 KiB pages each would also miss the TLB.
fn advise_huge_pages(slots: &Vec<Slot>) {
    const HUGE: usize = 2 << 20;
    let bytes = slots.capacity() * std::mem::size_of::<Slot>();
    if bytes < 2 * HUGE {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        const PAGE: usize = 4096;
        let start = slots.as_ptr() as usize;
        let aligned = start.next_multiple_of(PAGE);
        let len = (start + bytes).saturating_sub(aligned) / PAGE * PAGE;
        // SAFETY: the range lies within the vector's allocation, which lives across the call;
        // MADV_HUGEPAGE changes how the kernel backs the pages, never their contents.
        let done = unsafe { libc::madvise(aligned as *mut libc::c_void, len, libc::MADV_HUGEPAGE) };
        if done != 0 {
            tracing::debug!(
                "no huge pages for the consent registry: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

/// Asks the memory for both cache lines of `slot`, without waiting for them.
#[inline(always)]
fn prefetch(slot: &Slot) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let p = std::ptr::from_ref(slot).cast::<i8>();
        // SAFETY: a prefetch reads nothing and cannot fault; `p` and `p + 64` lie in `slot`
        // (a slot is 128 bytes).
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(p);
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(64));
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = slot;
}

impl fmt::Debug for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let subjects = self.slots.iter().filter(|s| s.hash != 0);
        f.debug_map()
            .entries(subjects.map(|s| (String::from_utf8_lossy(s.key.bytes()), &s.state)))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    /// Ids short and long (past the inline bytes).
    fn id(i: u8) -> String {
        if i.is_multiple_of(5) {
            format!("a-subject-whose-id-is-longer-than-thirty-bytes-{i}")
        } else {
            format!("s{i}")
        }
    }

    proptest! {
        /// The table holds what a map holds, through additions, changes and removals (with
        /// growth and wrapping around the end).
        #[test]
        fn the_table_holds_what_a_map_holds(
            ops in prop::collection::vec((0..3u8, 0..60u8), 0..400),
        ) {
            let mut table = Table::default();
            let mut model: HashMap<String, bool> = HashMap::new();
            for (op, i) in ops {
                let id = id(i);
                match op {
                    0 => {
                        let flag = i % 2 == 0;
                        table.entry(&id).restricted = flag;
                        model.insert(id.clone(), flag);
                    }
                    1 => {
                        prop_assert_eq!(
                            table.remove(&id).map(|s| s.restricted),
                            model.remove(&id)
                        );
                    }
                    _ => {
                        if let Some(s) = table.get_mut(&id) {
                            s.restricted = !s.restricted;
                        }
                        if let Some(m) = model.get_mut(&id) {
                            *m = !*m;
                        }
                    }
                }
                prop_assert_eq!(table.len(), model.len());
            }
            for i in 0..60 {
                let id = id(i);
                prop_assert_eq!(table.get(&id).map(|s| s.restricted), model.get(&id).copied());
            }
            prop_assert_eq!(table.values().count(), model.len());
        }
    }

    #[test]
    fn a_slot_is_two_cache_lines() {
        assert_eq!(std::mem::size_of::<Slot>(), 128);
    }
}
