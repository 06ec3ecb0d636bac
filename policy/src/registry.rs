//! The consent registry: every consent record (with its history), which subjects are restricted,
//! and which were erased (kept only as digests of their ids). The gate reads it on every event,
//! so each subject's entry also holds its consents as the gate tests them ([`Term`]: times, and
//! bitmasks of numbered purposes and categories) next to the subject's id, where one read of
//! one slot of the table finds them: no string comparison of purposes, no other memory.

mod table;

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::consent::{Consent, ConsentId};
use crate::error::PolicyError;
use crate::names::{Category, Purpose, dotted_covers};
use table::Table;

/// The digest an erased subject is remembered by (SHA-256 of the id): enough to refuse their
/// events, without keeping the id itself.
pub fn subject_digest(subject: &str) -> [u8; 32] {
    Sha256::digest(subject.as_bytes()).into()
}

/// What the registry knows about one subject. The fields the gate reads come first, next to
/// the subject's id in the table, and the records (read on changes and listings) last.
#[derive(Clone, Debug, Default)]
#[repr(C)]
pub(crate) struct SubjectState {
    /// The subject's consents as the gate tests them, one per record, in the records' order.
    pub terms: Terms,
    /// Processing is restricted: no workflow may process the subject's data.
    pub restricted: bool,
    /// The subject's consents, in force or not (few per subject).
    pub consents: Vec<Consent>,
}

/// The bit a purpose or category shares with every other one numbered past the first 31: a
/// test that meets only this bit cannot tell, and the gate reads the records instead.
pub(crate) const OTHER: u32 = 1 << 31;

/// One consent as the gate tests it: in force from `from` until `until` (excluded; `u64::MAX`
/// when it has no end), for the purposes and categories whose bits are set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Term {
    pub from: u64,
    pub until: u64,
    pub purposes: u32,
    pub categories: u32,
}

impl Term {
    /// `true` if the consent is in force at `now` (for `now < u64::MAX`).
    pub fn in_force(&self, now: u64) -> bool {
        self.from <= now && now < self.until
    }
}

/// A subject's terms: up to two (most subjects) in the entry itself, more on the heap.
#[derive(Clone, Debug)]
pub(crate) enum Terms {
    Inline(u8, [Term; 2]),
    Spilled(Box<[Term]>),
}

impl Default for Terms {
    fn default() -> Terms {
        let none = Term {
            from: u64::MAX,
            until: 0,
            purposes: 0,
            categories: 0,
        };
        Terms::Inline(0, [none; 2])
    }
}

impl Terms {
    fn of(terms: &[Term]) -> Terms {
        match terms {
            [] => Terms::default(),
            [a] => Terms::Inline(1, [*a, *a]),
            [a, b] => Terms::Inline(2, [*a, *b]),
            more => Terms::Spilled(more.into()),
        }
    }

    pub fn as_slice(&self) -> &[Term] {
        match self {
            Terms::Inline(n, terms) => &terms[..usize::from(*n).min(2)],
            Terms::Spilled(terms) => terms,
        }
    }
}

/// Names (of purposes, or of categories) that consents named, numbered in order of first use:
/// the first 31 get a bit each, any later one shares [`OTHER`]. Numbers are never reused.
#[derive(Clone, Debug, Default)]
struct Numbering {
    names: Vec<String>,
    /// Some name got [`OTHER`].
    other: bool,
}

impl Numbering {
    /// The bit of `name`, numbering it if it is new.
    fn bit(&mut self, name: &str) -> u32 {
        if let Some(i) = self.names.iter().position(|n| n == name) {
            return 1 << i;
        }
        if self.names.len() < 31 {
            self.names.push(name.to_owned());
            return 1 << (self.names.len() - 1);
        }
        self.other = true;
        OTHER
    }

    /// The bits of `names`, numbering the new ones.
    fn bits<'a>(&mut self, names: impl Iterator<Item = &'a str>) -> u32 {
        names.fold(0, |bits, n| bits | self.bit(n))
    }

    /// The bits of the names that cover `name`, and [`OTHER`] if any name shares it.
    fn covering(&self, name: &str) -> u32 {
        let mut bits = if self.other { OTHER } else { 0 };
        for (i, n) in self.names.iter().enumerate() {
            if dotted_covers(n, name) {
                bits |= 1 << i;
            }
        }
        bits
    }
}

/// A consent to record: what `pods consent grant` asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Grant {
    /// The data subject.
    pub subject: String,
    /// The purposes consented to.
    pub purposes: Vec<Purpose>,
    /// The categories consented to.
    pub categories: Vec<Category>,
    /// When it lapses, if it does (seconds since the Unix epoch).
    pub expires_at: Option<u64>,
    /// Where it was collected.
    pub source: String,
}

/// Consents, restrictions and erasures.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    subjects: Table,
    /// Every consent by id, so that ids stay unique and history can be listed.
    ids: BTreeMap<ConsentId, String>,
    erased: HashSet<[u8; 32]>,
    /// The erased subjects' tags ([`subject_tag`](crate::gate::subject_tag)): a subject whose
    /// tag is not here was not erased, found without hashing its id with SHA-256 (every event
    /// of a subject without consents is asked about).
    erased_tags: HashSet<u64>,
    /// Erasures remembered by digest only (stored before tags were): while there are any,
    /// every question goes to the digests.
    untagged: usize,
    /// The id of the next grant: ids are never reused, even after an erasure.
    next: u64,
    /// The purposes consents named, numbered for [`Term`]s.
    purposes: Numbering,
    /// The categories consents named, numbered for [`Term`]s.
    categories: Numbering,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// The id the next grant gets.
    pub fn next_id(&self) -> ConsentId {
        ConsentId(self.next.max(1))
    }

    /// Records a new consent given at `now`; returns the record.
    pub fn grant(&mut self, grant: Grant, now: u64) -> Result<Consent, PolicyError> {
        let consent = self.prepare(grant, now)?;
        self.insert(consent.clone());
        Ok(consent)
    }

    /// The record a grant at `now` would add, checked, without adding it (so that it can be
    /// stored first, then [`inserted`](Registry::insert)).
    pub fn prepare(&self, grant: Grant, now: u64) -> Result<Consent, PolicyError> {
        if grant.subject.is_empty() {
            return Err(PolicyError::BadConsent("the subject is empty".into()));
        }
        if grant.purposes.is_empty() || grant.categories.is_empty() {
            return Err(PolicyError::BadConsent(
                "name at least one purpose and one category".into(),
            ));
        }
        if grant.expires_at.is_some_and(|t| t <= now) {
            return Err(PolicyError::BadConsent(
                "it expires before it is granted".into(),
            ));
        }
        let consent = Consent {
            id: self.next_id(),
            subject: grant.subject,
            purposes: grant.purposes,
            categories: grant.categories,
            granted_at: now,
            expires_at: grant.expires_at,
            withdrawn_at: None,
            source: grant.source,
        };
        Ok(consent)
    }

    /// Adds a consent record as it is (loading from storage).
    pub fn insert(&mut self, consent: Consent) {
        self.next = self.next.max(consent.id.0 + 1);
        self.ids.insert(consent.id, consent.subject.clone());
        let state = self.subjects.entry(&consent.subject);
        state.consents.retain(|c| c.id != consent.id);
        state.consents.push(consent);
        state.terms = terms(&state.consents, &mut self.purposes, &mut self.categories);
    }

    /// Withdraws, at `now`, the subject's consents in force that cover `purpose` (all of them
    /// if `None`); returns the records changed. Withdrawn records stay, as history.
    pub fn withdraw(&mut self, subject: &str, purpose: Option<&Purpose>, now: u64) -> Vec<Consent> {
        let changed = self.withdrawals(subject, purpose, now);
        for c in &changed {
            self.insert(c.clone());
        }
        changed
    }

    /// The records a withdrawal at `now` would change, as they would become, without changing
    /// them (so that they can be stored first, then [`inserted`](Registry::insert)).
    pub fn withdrawals(&self, subject: &str, purpose: Option<&Purpose>, now: u64) -> Vec<Consent> {
        let Some(state) = self.subjects.get(subject) else {
            return Vec::new();
        };
        state
            .consents
            .iter()
            .filter(|c| purpose.is_none_or(|p| c.purposes.iter().any(|q| q.covers(p))))
            .filter(|c| c.in_force(now))
            .map(|c| Consent {
                withdrawn_at: Some(now),
                ..c.clone()
            })
            .collect()
    }

    /// The subject's consent records, oldest first.
    pub fn consents_of(&self, subject: &str) -> Vec<Consent> {
        let mut out = self
            .subjects
            .get(subject)
            .map(|s| s.consents.clone())
            .unwrap_or_default();
        out.sort_by_key(|c| c.id);
        out
    }

    /// Every consent record, by id.
    pub fn all(&self) -> Vec<Consent> {
        let mut out: Vec<Consent> = self
            .subjects
            .values()
            .flat_map(|s| s.consents.iter().cloned())
            .collect();
        out.sort_by_key(|c| c.id);
        out
    }

    /// Restricts (or lifts the restriction of) processing of the subject's data.
    pub fn restrict(&mut self, subject: &str, restricted: bool) {
        self.subjects.entry(subject).restricted = restricted;
    }

    /// `true` if the subject's data may not be processed now.
    pub fn is_restricted(&self, subject: &str) -> bool {
        self.subjects.get(subject).is_some_and(|s| s.restricted)
    }

    /// Forgets the subject (consents included) and remembers only the digest of their id, so
    /// that their events are refused from now on.
    pub fn erase(&mut self, subject: &str) {
        if let Some(state) = self.subjects.remove(subject) {
            for c in state.consents {
                self.ids.remove(&c.id);
            }
        }
        self.insert_erased(
            subject_digest(subject),
            Some(crate::gate::subject_tag(subject)),
        );
    }

    /// Remembers an erasure by digest and, if known, tag (loading from storage).
    pub fn insert_erased(&mut self, digest: [u8; 32], tag: Option<u64>) {
        if self.erased.insert(digest) {
            match tag {
                Some(t) => {
                    self.erased_tags.insert(t);
                }
                None => self.untagged += 1,
            }
        }
    }

    /// How many subjects were erased: it grows with every erasure, so a workflow can tell
    /// that it has state of erased subjects to remove.
    pub fn erasures(&self) -> u64 {
        self.erased.len() as u64
    }

    /// `true` if the subject was erased.
    pub fn is_erased(&self, subject: &str) -> bool {
        if self.erased.is_empty() {
            return false;
        }
        if self.untagged == 0
            && !self
                .erased_tags
                .contains(&crate::gate::subject_tag(subject))
        {
            return false;
        }
        self.erased.contains(&subject_digest(subject))
    }

    /// The gate's view of one subject.
    pub(crate) fn subject(&self, subject: &str) -> Option<&SubjectState> {
        self.subjects.get(subject)
    }

    /// The hash [`Registry::subject_hashed`] finds `subject` by.
    pub(crate) fn subject_hash(&self, subject: &str) -> u64 {
        self.subjects.hash_of(subject)
    }

    /// Asks the memory for the entry of the subject hashed to `hash`, without waiting: the
    /// gate asks some events ahead of the one it decides on, so that their reads overlap.
    pub(crate) fn prefetch(&self, hash: u64) {
        self.subjects.prefetch(hash);
    }

    /// [`Registry::subject`] with the hash [`Registry::subject_hash`] gave.
    pub(crate) fn subject_hashed(&self, subject: &str, hash: u64) -> Option<&SubjectState> {
        self.subjects.get_hashed(subject, hash)
    }

    /// The bits, in [`Term::purposes`], of the purposes consents named that cover `purpose`.
    pub(crate) fn purposes_covering(&self, purpose: &str) -> u32 {
        self.purposes.covering(purpose)
    }

    /// The bits, in [`Term::categories`], of the categories consents named that cover
    /// `category`.
    pub(crate) fn categories_covering(&self, category: &str) -> u32 {
        self.categories.covering(category)
    }

    /// Number of subjects with consents or restrictions.
    pub fn subjects(&self) -> usize {
        self.subjects.len()
    }
}

/// The terms of `consents`, numbering the names they use.
fn terms(consents: &[Consent], purposes: &mut Numbering, categories: &mut Numbering) -> Terms {
    let terms: Vec<Term> = consents
        .iter()
        .map(|c| Term {
            from: c.granted_at,
            until: c
                .expires_at
                .unwrap_or(u64::MAX)
                .min(c.withdrawn_at.unwrap_or(u64::MAX)),
            purposes: purposes.bits(c.purposes.iter().map(Purpose::as_str)),
            categories: categories.bits(c.categories.iter().map(Category::as_str)),
        })
        .collect();
    Terms::of(&terms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(subject: &str, purpose: &str) -> Grant {
        Grant {
            subject: subject.into(),
            purposes: vec![Purpose::new(purpose).unwrap()],
            categories: vec![Category::new("health").unwrap()],
            expires_at: None,
            source: "form".into(),
        }
    }

    #[test]
    fn withdrawal_keeps_history_and_erasure_forgets() {
        let mut r = Registry::new();
        let a = r.grant(grant("ann", "research"), 10).unwrap();
        let b = r.grant(grant("ann", "care"), 11).unwrap();
        assert_eq!((a.id, b.id), (ConsentId(1), ConsentId(2)));
        let changed = r.withdraw("ann", Some(&Purpose::new("research.x").unwrap()), 20);
        assert_eq!(changed.len(), 1);
        assert_eq!(changed[0].id, a.id);
        let history = r.consents_of("ann");
        assert_eq!(history.len(), 2);
        assert_eq!(history[0].withdrawn_at, Some(20));
        assert_eq!(history[1].withdrawn_at, None);
        assert!(r.withdraw("ann", None, 21).len() == 1);
        assert_eq!(r.erasures(), 0);
        r.erase("ann");
        assert!(r.consents_of("ann").is_empty());
        assert!(r.is_erased("ann") && !r.is_erased("bob"));
        assert_eq!(r.next_id(), ConsentId(3));
        r.erase("ann");
        assert_eq!(r.erasures(), 1, "erasing again counts once");
        r.erase("bob");
        assert_eq!(r.erasures(), 2);
    }

    #[test]
    fn erasures_are_found_by_tag_then_digest_and_by_digest_alone_when_untagged() {
        let tag = crate::gate::subject_tag;
        let mut r = Registry::new();
        assert!(!r.is_erased("ann"));
        r.insert_erased(subject_digest("ann"), Some(tag("ann")));
        assert!(r.is_erased("ann") && !r.is_erased("bob"));
        // A tag alone is not an erasure: the digest decides.
        r.erased_tags.insert(tag("bob"));
        assert!(!r.is_erased("bob"));
        // An erasure stored without its tag is still found, by its digest.
        r.insert_erased(subject_digest("cy"), None);
        assert!(r.is_erased("cy") && r.is_erased("ann") && !r.is_erased("dan"));
        // The same erasure again counts once.
        r.insert_erased(subject_digest("cy"), None);
        assert_eq!(r.untagged, 1);
    }

    #[test]
    fn bad_grants_are_refused() {
        let mut r = Registry::new();
        let mut g = grant("", "care");
        assert!(r.grant(g.clone(), 5).is_err());
        g.subject = "ann".into();
        g.expires_at = Some(5);
        assert!(r.grant(g.clone(), 5).is_err());
        g.expires_at = None;
        g.categories.clear();
        assert!(r.grant(g, 5).is_err());
    }
}
