//! Atomic streams at run time: an append-only log of atoms with per-consumer cursors, then at
//! most one end marker. Atoms are dropped once every consumer has read them.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::batch::Batch;
use crate::path::Path;

/// How a stream ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum End {
    Seal,
    Error(String),
}

/// What a consumer reads next.
pub(crate) enum Item {
    Atom(Arc<dyn Batch>),
    End(End),
}

/// A push-based observer of a stream (test subscriptions).
/// Returns `false` once nobody listens any more, and is then dropped.
pub(crate) type Observer = Box<dyn FnMut(&Item) -> bool + Send>;

/// Cursor value of a consumer that has read the end marker.
const DONE: u64 = u64::MAX;

pub(crate) struct StreamLog {
    pub path: Path,
    atoms: VecDeque<Arc<dyn Batch>>,
    /// Offset of `atoms[0]`.
    base: u64,
    cursors: Vec<u64>,
    end: Option<End>,
    observers: Vec<Observer>,
    /// Atoms held before the producer must wait; `None`: unbounded (feedback edges).
    bound: Option<usize>,
    /// Reads logged atoms of this stream back (workflow outputs, which the store logs).
    pub decode: Option<crate::batch::Decode>,
}

impl StreamLog {
    pub(crate) fn new(path: Path) -> StreamLog {
        StreamLog {
            path,
            atoms: VecDeque::new(),
            base: 0,
            cursors: Vec::new(),
            end: None,
            observers: Vec::new(),
            bound: None,
            decode: None,
        }
    }

    /// Sets how many unread atoms the stream holds before its producer must wait.
    pub(crate) fn set_bound(&mut self, bound: Option<usize>) {
        self.bound = bound;
    }

    /// Whether the producer may append now: the stream holds fewer unread atoms than its
    /// bound (a stream without consumers keeps nothing, so it always has room).
    pub(crate) fn has_room(&self) -> bool {
        self.bound.is_none_or(|b| self.atoms.len() < b)
    }

    /// Offset the next appended atom gets.
    pub(crate) fn head(&self) -> u64 {
        self.base + self.atoms.len() as u64
    }

    /// Appends an atom (ignored after the end marker, which nothing follows); an empty atom
    /// (a step that emitted nothing) is not appended.
    pub(crate) fn push(&mut self, atom: Arc<dyn Batch>) {
        if atom.len() == 0 {
            return;
        }
        self.push_fed(atom);
    }

    /// Appends an atom even if it is empty: an atom fed at an offset keeps that offset, so
    /// that the stream's offsets stay those of the log it was fed from (an atom mirrored from
    /// another node may arrive empty, every event withheld by that node's policy).
    pub(crate) fn push_fed(&mut self, atom: Arc<dyn Batch>) {
        if self.end.is_some() {
            return;
        }
        let item = Item::Atom(atom);
        self.observers.retain_mut(|o| o(&item));
        let Item::Atom(atom) = item else { return };
        if self.cursors.iter().all(|&c| c == DONE) {
            // No consumer will read it (none, or all dropped / ended).
            self.base += 1;
        } else {
            self.atoms.push_back(atom);
        }
    }

    /// Ends the stream; only the first end counts.
    pub(crate) fn close(&mut self, end: End) {
        if self.end.is_some() {
            return;
        }
        let item = Item::End(end.clone());
        self.observers.retain_mut(|o| o(&item));
        self.end = Some(end);
    }

    /// A new consumer, reading from the next appended atom on.
    pub(crate) fn add_consumer(&mut self) -> usize {
        self.cursors.push(self.head());
        self.cursors.len() - 1
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.end.is_some()
    }

    pub(crate) fn observe(&mut self, observer: Observer) {
        self.observers.push(observer);
    }

    /// Whether consumer `c` has something to read.
    pub(crate) fn ready(&self, c: usize) -> bool {
        match self.cursors.get(c) {
            Some(&cur) if cur == DONE => false,
            Some(&cur) => cur < self.head() || self.end.is_some(),
            None => false,
        }
    }

    /// Whether consumer `c`'s next item is an atom (not the end, not nothing).
    pub(crate) fn has_atom(&self, c: usize) -> bool {
        matches!(self.cursors.get(c), Some(&cur) if cur != DONE && cur < self.head())
    }

    /// Moves consumer `c` on to offset `next` (where it stood in an earlier run), if that is
    /// ahead of it.
    pub(crate) fn resume(&mut self, c: usize, next: u64) {
        if let Some(cur) = self.cursors.get_mut(c)
            && *cur != DONE
            && *cur < next
        {
            *cur = next;
        }
    }

    /// The offset no consumer is behind of (`None` without consumers).
    pub(crate) fn min_cursor(&self) -> Option<u64> {
        self.cursors.iter().copied().filter(|&c| c != DONE).min()
    }

    /// Skips `n` atoms no consumer will read (a replayable source fast-forwarded on restart):
    /// the next appended atom gets an offset `n` higher. Only while the stream holds nothing.
    pub(crate) fn advance(&mut self, n: u64) {
        if self.atoms.is_empty() {
            self.base += n;
        }
    }

    /// The offset of the oldest atom held (or of the next appended, when none is).
    pub(crate) fn base(&self) -> u64 {
        self.base
    }

    /// Puts back, before the atoms held, the atoms from offset `from` up to the oldest held
    /// (read from the store's log after a restart, for a consumer that had not read them).
    pub(crate) fn prepend(&mut self, from: u64, atoms: Vec<Arc<dyn Batch>>) {
        if from + atoms.len() as u64 != self.base {
            return;
        }
        for atom in atoms.into_iter().rev() {
            self.atoms.push_front(atom);
        }
        self.base = from;
    }

    /// Removes consumer `c` (it reads nothing more), so atoms are no longer kept for it.
    pub(crate) fn drop_consumer(&mut self, c: usize) {
        if let Some(cur) = self.cursors.get_mut(c) {
            *cur = DONE;
        }
        self.truncate();
    }

    /// Consumer `c`'s cursor (offset of its next atom).
    pub(crate) fn cursor(&self, c: usize) -> u64 {
        self.cursors.get(c).copied().unwrap_or(DONE)
    }

    /// Reads consumer `c`'s next item and advances it.
    pub(crate) fn take(&mut self, c: usize) -> Option<Item> {
        let cur = *self.cursors.get(c)?;
        if cur == DONE {
            return None;
        }
        if cur < self.head() {
            // A cursor below the oldest atom held (never, unless a log lost atoms) reads on
            // from the oldest rather than failing.
            let cur = cur.max(self.base);
            let index = usize::try_from(cur - self.base).ok()?;
            let atom = self.atoms.get(index)?.clone();
            self.cursors[c] = cur + 1;
            self.truncate();
            return Some(Item::Atom(atom));
        }
        let end = self.end.clone()?;
        self.cursors[c] = DONE;
        Some(Item::End(end))
    }

    /// Drops atoms every consumer has read.
    fn truncate(&mut self) {
        let min = self
            .cursors
            .iter()
            .copied()
            .min()
            .unwrap_or(DONE)
            .min(self.head());
        while self.base < min && !self.atoms.is_empty() {
            self.atoms.pop_front();
            self.base += 1;
        }
    }

    /// Atoms held for consumers that have not read them yet.
    #[cfg(test)]
    pub(crate) fn retained(&self) -> usize {
        self.atoms.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::Columns;

    fn atom(v: &[i64]) -> Arc<dyn Batch> {
        Arc::new(Columns::of_values(v.to_vec()))
    }

    #[test]
    fn consumers_read_in_order_then_the_end_once_and_atoms_are_truncated() {
        let mut s = StreamLog::new(Path::placeholder("/a/s"));
        let a = s.add_consumer();
        let b = s.add_consumer();
        s.push(atom(&[1]));
        s.push(atom(&[2, 3]));
        s.push(atom(&[]));
        s.close(End::Seal);
        assert_eq!(s.retained(), 2);
        assert!(matches!(s.take(a), Some(Item::Atom(x)) if x.len() == 1));
        assert!(matches!(s.take(a), Some(Item::Atom(x)) if x.len() == 2));
        assert!(matches!(s.take(a), Some(Item::End(End::Seal))));
        assert!(s.take(a).is_none());
        assert_eq!(s.retained(), 2, "b has not read yet");
        assert!(matches!(s.take(b), Some(Item::Atom(_))));
        assert_eq!(s.retained(), 1);
        assert!(matches!(s.take(b), Some(Item::Atom(_))));
        assert_eq!(s.retained(), 0);
        assert!(s.ready(b));
        assert!(matches!(s.take(b), Some(Item::End(End::Seal))));
        assert!(!s.ready(b));
    }

    #[test]
    fn a_late_consumer_starts_at_the_head() {
        let mut s = StreamLog::new(Path::placeholder("/a/s"));
        s.push(atom(&[1]));
        let c = s.add_consumer();
        assert!(!s.ready(c));
        s.push(atom(&[2]));
        assert!(matches!(s.take(c), Some(Item::Atom(x)) if x.len() == 1));
        assert_eq!(s.cursor(c), 2);
    }
}
