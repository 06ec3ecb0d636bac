//! The decision for the events of one atom, with what they share worked out once: the rule,
//! the verdict on events without an envelope, which of the registry's numbered purposes cover
//! the rule's purpose, and, per category met, its numbered covering categories and retention.
//! Each event then costs one registry lookup and bit tests; the verdicts are those of
//! [`decide`](fn@super::decide), which the plan defers to where its bits cannot tell (more than 31
//! purposes or categories named in consents, more than 32 categories in one atom, a redaction to
//! work out, the end of time).

use crate::file::{Policy, Rule};
use crate::names::{LegalBasis, dotted_covers};
use crate::registry::{OTHER, Registry, SubjectState};

use super::decide::{Reason, Verdict};

/// Categories whose facts an atom keeps, one bit each (an event's categories are few, and
/// usually the same across an atom); an event of others is left to [`decide`](fn@super::decide).
const CATEGORIES: usize = 32;

/// What the gate knows of one category for the atom.
#[derive(Clone, Copy)]
struct Facts {
    /// The registry's numbered categories covering it.
    covered_by: u32,
    /// How long its data may be kept, in seconds.
    retention: Option<u64>,
}

/// One atom's plan for the rule of its workflow or portal at `now`.
pub(crate) struct Plan {
    now: u64,
    /// The verdict on events without an envelope.
    plain: Verdict,
    /// The path has a rule.
    declared: bool,
    /// The rule's basis is consent.
    consent: bool,
    /// The rule redacts rather than drops.
    redacts: bool,
    /// The registry's numbered purposes covering the rule's purpose.
    purposes: u32,
    /// The facts of the categories met so far (at most [`CATEGORIES`]), in order of meeting.
    facts: Vec<(String, Facts)>,
}

impl Plan {
    /// The plan for `rule` (`None`: the path is undeclared) at `now`.
    pub(crate) fn new(policy: &Policy, registry: &Registry, rule: Option<&Rule>, now: u64) -> Plan {
        let plain = match rule {
            Some(r) if policy.purpose(&r.purpose).is_none_or(|p| p.personal) => {
                Verdict::Deny(Reason::NoSubject)
            }
            _ => Verdict::Admit,
        };
        Plan {
            now,
            plain,
            declared: rule.is_some(),
            consent: rule.is_some_and(|r| r.basis == LegalBasis::Consent),
            redacts: rule.is_some_and(|r| r.redact.is_some()),
            purposes: rule.map_or(0, |r| registry.purposes_covering(r.purpose.as_str())),
            facts: Vec::new(),
        }
    }

    /// The time the atom is admitted at.
    pub(crate) fn now(&self) -> u64 {
        self.now
    }

    /// The verdict on an event without an envelope.
    pub(crate) fn plain(&self) -> Verdict {
        self.plain.clone()
    }

    /// `true` if the path has a rule (events of an undeclared path need no lookup).
    pub(crate) fn declared(&self) -> bool {
        self.declared
    }

    /// The verdict on an event with `categories` about `subject`, whose entry in the registry
    /// is `state`, collected at `collected`; `None` where only [`decide`](fn@super::decide)
    /// can tell.
    pub(crate) fn verdict(
        &mut self,
        policy: &Policy,
        registry: &Registry,
        (subject, state): (&str, Option<&SubjectState>),
        categories: &[String],
        collected: Option<u64>,
    ) -> Option<Verdict> {
        if !self.declared {
            return Some(Verdict::Deny(Reason::Undeclared));
        }
        if state.is_none() && registry.is_erased(subject) {
            return Some(Verdict::Deny(Reason::Erased));
        }
        let mask = self.categories(policy, registry, categories)?;
        self.verdict_of(state, mask, collected)
    }

    /// The atom's categories among `categories`, as bits of the facts the plan keeps: what
    /// [`Plan::verdict_of`] decides with, worked out apart from the registry's entry (the
    /// gate does it for the whole atom while the entries are read). `None` if the plan has
    /// no room for one of them.
    pub(crate) fn categories(
        &mut self,
        policy: &Policy,
        registry: &Registry,
        categories: &[String],
    ) -> Option<u32> {
        let mut mask = 0;
        for c in categories {
            mask |= 1 << self.fact(policy, registry, c)?;
        }
        Some(mask)
    }

    /// The verdict on an event of the categories `mask` ([`Plan::categories`]) collected at
    /// `collected`, about a subject whose entry is `state` (`None`: no entry, and not erased);
    /// `None` where only [`decide`](fn@super::decide) can tell.
    pub(crate) fn verdict_of(
        &self,
        state: Option<&SubjectState>,
        mask: u32,
        collected: Option<u64>,
    ) -> Option<Verdict> {
        if !self.declared {
            return Some(Verdict::Deny(Reason::Undeclared));
        }
        if state.is_some_and(|s| s.restricted) {
            return Some(Verdict::Deny(Reason::Restricted));
        }
        let now = self.now;
        if now == u64::MAX {
            // A consent without an end is not in force at the end of time; terms cannot say so.
            return None;
        }
        // The categories consented to for the purpose by consents in force.
        let mut allowed = 0;
        if self.consent {
            for t in state.map_or(&[][..], |s| s.terms.as_slice()) {
                let purposes = t.purposes & self.purposes;
                if purposes == 0 || !t.in_force(now) {
                    continue;
                }
                if purposes == OTHER {
                    return None;
                }
                allowed |= t.categories;
            }
        }
        // Counted per distinct category: a category is missing in all its copies or in none.
        let (mut expired, mut missing, mut unsure) = (false, 0, false);
        let mut bits = mask;
        while bits != 0 {
            let facts = self.facts[bits.trailing_zeros() as usize].1;
            bits &= bits - 1;
            if let (Some(at), Some(keep)) = (collected, facts.retention) {
                expired |= at.saturating_add(keep) <= now;
            }
            match allowed & facts.covered_by {
                0 => missing += 1,
                OTHER => unsure = true,
                _ => {}
            }
        }
        Some(if expired {
            Verdict::Deny(Reason::Expired)
        } else if !self.consent || (missing == 0 && !unsure) {
            Verdict::Admit
        } else if unsure || (missing < mask.count_ones() && self.redacts) {
            return None;
        } else {
            Verdict::Deny(Reason::NoConsent)
        })
    }

    /// The index of `category`'s facts, worked out and kept on first meeting it; `None` if the
    /// plan holds [`CATEGORIES`] others.
    fn fact(&mut self, policy: &Policy, registry: &Registry, category: &str) -> Option<usize> {
        let found = self
            .facts
            .iter()
            .position(|(c, _)| c.len() == category.len() && c.as_bytes() == category.as_bytes());
        if let Some(i) = found {
            return Some(i);
        }
        if self.facts.len() == CATEGORIES {
            return None;
        }
        let facts = Facts {
            covered_by: registry.categories_covering(category),
            retention: policy
                .retention()
                .iter()
                .find(|(r, _)| dotted_covers(r.as_str(), category))
                .map(|(_, seconds)| *seconds),
        };
        self.facts.push((category.to_owned(), facts));
        Some(self.facts.len() - 1)
    }
}
