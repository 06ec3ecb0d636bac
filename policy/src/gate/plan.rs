//! The decision for the events of one atom, with what they share worked out once: the rule,
//! the verdict on events without an envelope, which of the registry's numbered purposes cover
//! the rule's purpose, and, per category met, its numbered covering categories and retention.
//! Each event then costs one registry lookup and bit tests; the verdicts are those of
//! [`decide`](fn@super::decide), which the plan defers to where its bits cannot tell (more than 31
//! purposes or categories named in consents, a redaction to work out, the end of time).

use crate::file::{Policy, Rule};
use crate::names::{LegalBasis, dotted_covers};
use crate::registry::{OTHER, Registry};

use super::decide::{Reason, Verdict};

/// Categories whose facts an atom keeps (an event's categories are few, and usually the same
/// across an atom); facts of others are worked out for each event.
const CATEGORIES: usize = 16;

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
    /// The facts of the categories met so far (at most [`CATEGORIES`]).
    categories: Vec<(String, Facts)>,
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
            categories: Vec::new(),
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

    /// The verdict on an event with `categories` about `subject`, collected at `collected`;
    /// `None` where only [`decide`](fn@super::decide) can tell.
    pub(crate) fn verdict(
        &mut self,
        policy: &Policy,
        registry: &Registry,
        subject: &str,
        categories: &[String],
        collected: Option<u64>,
    ) -> Option<Verdict> {
        if !self.declared {
            return Some(Verdict::Deny(Reason::Undeclared));
        }
        let state = registry.subject(subject);
        match state {
            Some(s) if s.restricted => return Some(Verdict::Deny(Reason::Restricted)),
            None if registry.is_erased(subject) => return Some(Verdict::Deny(Reason::Erased)),
            _ => {}
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
        let (mut expired, mut missing, mut unsure) = (false, 0, false);
        for c in categories {
            let facts = self.facts(policy, registry, c);
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
        } else if unsure || (missing < categories.len() && self.redacts) {
            return None;
        } else {
            Verdict::Deny(Reason::NoConsent)
        })
    }

    /// The facts of `category`, kept for the atom if there is room.
    fn facts(&mut self, policy: &Policy, registry: &Registry, category: &str) -> Facts {
        if let Some((_, f)) = self.categories.iter().find(|(c, _)| c == category) {
            return *f;
        }
        let facts = Facts {
            covered_by: registry.categories_covering(category),
            retention: policy
                .retention()
                .iter()
                .find(|(r, _)| dotted_covers(r.as_str(), category))
                .map(|(_, seconds)| *seconds),
        };
        if self.categories.len() < CATEGORIES {
            self.categories.push((category.to_owned(), facts));
        }
        facts
    }
}
