//! Checking a log: every entry's hash and signature, the chain of `prev` hashes, the run of
//! sequence numbers and, against a signed [`Head`], the log's end. The first place where the
//! log departs from what the node signed is named, with the kind of change that explains it.

use std::collections::BTreeSet;

use super::chain::Head;
use super::entry::{Entry, GENESIS, hash_of};
use super::signer::signed_by;

/// A log that verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verified {
    /// Its number of entries.
    pub count: u64,
    /// Its last entry's hash ([`GENESIS`] when empty).
    pub head: [u8; 32],
}

/// How a log departs from what its node signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TamperKind {
    /// The entry's content or hash was changed: they no longer match.
    Edited,
    /// The entry's content matches its hash, but the node's key did not sign that hash (an
    /// entry edited and hashed again, or a changed signature).
    BadSignature,
    /// The entry is missing: the next one in the log is a later, genuine entry, or the log
    /// ends before the signed head's count.
    Removed,
    /// An entry the node never wrote at this place: a forgery followed by the genuine entry
    /// of this `seq`, a copy of an earlier entry, or an entry past the signed head.
    Inserted,
    /// A genuine entry of a later `seq` stands here and the entry of this `seq` is further on.
    Reordered,
    /// A genuine entry of this `seq` that does not follow the previous one: entries of two
    /// diverging copies of the log mixed.
    Unlinked,
    /// The log has entries but no signed head.
    HeadMissing,
    /// The head's signature does not verify.
    HeadForged,
    /// The signed head counts the entries read but names another last hash.
    HeadMismatch,
}

/// The first place where a log departs from what its node signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", describe(self))]
pub struct Tamper {
    /// The first bad `seq`. Every entry before it verified, so it is also the position of the
    /// bad entry in the log as read (for the head kinds: the number of entries read).
    pub seq: u64,
    /// What happened there.
    pub kind: TamperKind,
}

fn describe(t: &Tamper) -> String {
    let seq = t.seq;
    match t.kind {
        TamperKind::Edited => {
            format!("entry {seq} was edited: its content does not match its hash")
        }
        TamperKind::BadSignature => format!(
            "entry {seq} is not signed by this node's key: edited and hashed again, or forged"
        ),
        TamperKind::Removed => format!("entry {seq} was removed"),
        TamperKind::Inserted => {
            format!("an entry was inserted at {seq}: the node never wrote it there")
        }
        TamperKind::Reordered => format!(
            "entries were reordered: the entry at {seq} belongs further on, and entry {seq} stands later"
        ),
        TamperKind::Unlinked => format!(
            "entry {seq} is signed but does not follow the entry before it: two copies of the log were mixed"
        ),
        TamperKind::HeadMissing => {
            format!("the signed head is missing (the log holds {seq} entries)")
        }
        TamperKind::HeadForged => "the signed head is not signed by this node's key".to_owned(),
        TamperKind::HeadMismatch => {
            format!("the signed head counts {seq} entries but names another last entry")
        }
    }
}

/// Checks a whole log, in order, against the node's public key. Without a head, entries
/// removed from the end cannot be seen (use [`verify_against`]).
pub fn verify(
    entries: impl IntoIterator<Item = Entry>,
    public_key: &[u8; 32],
) -> Result<Verified, Tamper> {
    scan(entries, public_key, None)
}

/// Checks a whole log and its signed head: besides what [`verify`] finds, entries removed
/// from the end (reported as [`TamperKind::Removed`] at the first missing `seq`), entries past
/// the head ([`TamperKind::Inserted`]) and a forged head. A problem among the entries is
/// reported before one of the head's.
pub fn verify_against(
    entries: impl IntoIterator<Item = Entry>,
    public_key: &[u8; 32],
    head: &Head,
) -> Result<Verified, Tamper> {
    if !head.is_signed_by(public_key) {
        let read = scan(entries, public_key, None)?;
        return Err(Tamper {
            seq: read.count,
            kind: TamperKind::HeadForged,
        });
    }
    let read = scan(entries, public_key, Some(head.count))?;
    if read.count < head.count {
        return Err(Tamper {
            seq: read.count,
            kind: TamperKind::Removed,
        });
    }
    if read.head != head.hash {
        return Err(Tamper {
            seq: read.count,
            kind: TamperKind::HeadMismatch,
        });
    }
    Ok(read)
}

fn scan(
    entries: impl IntoIterator<Item = Entry>,
    public_key: &[u8; 32],
    limit: Option<u64>,
) -> Result<Verified, Tamper> {
    let mut entries = entries.into_iter();
    let (mut next, mut prev) = (0u64, GENESIS);
    while let Some(e) = entries.next() {
        if limit.is_some_and(|count| next >= count) {
            return Err(Tamper {
                seq: next,
                kind: TamperKind::Inserted,
            });
        }
        if e.seq == next
            && e.prev == prev
            && e.compute_hash() == e.hash
            && signed_by(public_key, &e.hash, &e.signature)
        {
            next += 1;
            prev = e.hash;
            continue;
        }
        // The first bad entry: the rest of the log tells what happened to it.
        let rest: Vec<Entry> = entries.collect();
        return Err(Tamper {
            seq: next,
            kind: classify(next, &prev, &e, &rest, public_key),
        });
    }
    Ok(Verified {
        count: next,
        head: prev,
    })
}

/// Whether `e` is the entry the node signed for `seq` (its `seq` field aside).
fn genuine_as(e: &Entry, seq: u64, signature_ok: bool) -> bool {
    signature_ok && hash_of(seq, e.at, &e.actor, &e.action, &e.detail, &e.prev) == e.hash
}

/// What explains the bad entry `e` where the entry `next` (after the hash `prev`) belongs,
/// followed in the log by `rest`.
fn classify(
    next: u64,
    prev: &[u8; 32],
    e: &Entry,
    rest: &[Entry],
    public_key: &[u8; 32],
) -> TamperKind {
    let signature_ok = |f: &Entry| signed_by(public_key, &f.hash, &f.signature);
    let genuine_here = |f: &Entry| genuine_as(f, next, signature_ok(f));
    let e_signed = signature_ok(e);
    // The seq the node signed this entry for: its own, or, when the log was renumbered
    // (stores keep entries by seq), a neighbour's.
    let signed_seq = if genuine_as(e, e.seq, e_signed) {
        Some(e.seq)
    } else if e_signed {
        let mut candidates: BTreeSet<u64> = rest
            .iter()
            .flat_map(|f| [f.seq, f.seq.saturating_add(1)])
            .collect();
        candidates.extend([e.seq.saturating_add(1), e.seq.saturating_sub(1), next]);
        candidates.remove(&e.seq);
        candidates.into_iter().find(|&s| genuine_as(e, s, true))
    } else {
        None
    };
    match signed_seq {
        // Genuine at its own place, but after another history's entry.
        Some(s) if s == next && s == e.seq => TamperKind::Unlinked,
        // Genuine here but its seq was changed.
        Some(s) if s == next => TamperKind::Edited,
        // A copy of an entry already read.
        Some(s) if s < next => TamperKind::Inserted,
        // A later entry: the one that belongs here is further on, or gone.
        Some(_) if rest.iter().any(genuine_here) => TamperKind::Reordered,
        Some(_) => TamperKind::Removed,
        // Not the node's: a forgery before the genuine entry, or an entry changed in place.
        None if rest
            .first()
            .is_some_and(|f| f.prev == *prev && genuine_here(f)) =>
        {
            TamperKind::Inserted
        }
        None if e.compute_hash() != e.hash => TamperKind::Edited,
        None => TamperKind::BadSignature,
    }
}
