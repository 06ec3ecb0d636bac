//! The decision for one event: pure, given the policy, the registry, the rule and the time.

use std::sync::Arc;

use pods_sdk::{Envelope, Redaction};
use serde::Serialize;

use crate::file::{Policy, Rule};
use crate::names::{LegalBasis, dotted_covers};
use crate::registry::Registry;

/// Why an event was kept out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The workflow or portal has no rule in the policy, and the event is personal.
    Undeclared,
    /// The purpose concerns personal data and the event has no subject.
    NoSubject,
    /// The subject was erased.
    Erased,
    /// Processing of the subject's data is restricted.
    Restricted,
    /// The data is past its category's retention.
    Expired,
    /// No consent in force covers the purpose and the event's categories.
    NoConsent,
}

impl Reason {
    /// Every reason, in a fixed order (for counters).
    pub const ALL: [Reason; 6] = [
        Reason::Undeclared,
        Reason::NoSubject,
        Reason::Erased,
        Reason::Restricted,
        Reason::Expired,
        Reason::NoConsent,
    ];
}

/// The verdict on one event, with the reason for a denial.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// It enters.
    Admit,
    /// It is dropped.
    Deny(Reason),
    /// It enters without the fields of categories lacking consent.
    Redact(Arc<Redaction>),
}

/// Decides on `envelope` for the rule `rule` (the workflow's or portal's), at `now`.
pub fn decide(
    policy: &Policy,
    registry: &Registry,
    rule: Option<&Rule>,
    envelope: Option<&Envelope>,
    now: u64,
) -> Verdict {
    let Some(rule) = rule else {
        return match envelope {
            None => Verdict::Admit,
            Some(_) => Verdict::Deny(Reason::Undeclared),
        };
    };
    let Some(env) = envelope else {
        let personal = policy.purpose(&rule.purpose).is_none_or(|p| p.personal);
        return if personal {
            Verdict::Deny(Reason::NoSubject)
        } else {
            Verdict::Admit
        };
    };
    let subject = registry.subject(&env.subject.0);
    if subject.is_some_and(|s| s.restricted) {
        return Verdict::Deny(Reason::Restricted);
    }
    if subject.is_none() && registry.is_erased(&env.subject.0) {
        return Verdict::Deny(Reason::Erased);
    }
    if let Some(collected) = env.collected
        && expired(policy, &env.categories, collected, now)
    {
        return Verdict::Deny(Reason::Expired);
    }
    if rule.basis != LegalBasis::Consent {
        return Verdict::Admit;
    }
    let purpose = rule.purpose.as_str();
    let consents = subject.map_or(&[][..], |s| &s.consents[..]);
    let allowed = |category: &str| {
        consents.iter().any(|c| {
            c.in_force(now)
                && c.purposes
                    .iter()
                    .any(|p| dotted_covers(p.as_str(), purpose))
                && c.categories
                    .iter()
                    .any(|k| dotted_covers(k.as_str(), category))
        })
    };
    let mut missing: Vec<&str> = Vec::new();
    for c in &env.categories {
        if !allowed(c) {
            missing.push(c);
        }
    }
    if missing.is_empty() {
        return Verdict::Admit;
    }
    if missing.len() == env.categories.len() {
        return Verdict::Deny(Reason::NoConsent);
    }
    match rule.redact.as_deref().and_then(|d| policy.dataset(d)) {
        Some(dataset) => {
            // The fields holding each missing category; a category no field holds, or the
            // subject's own column, cannot be removed: the event is dropped.
            let mut fields = Vec::new();
            for m in &missing {
                let held: Vec<&String> = dataset
                    .columns
                    .iter()
                    .filter(|(_, c)| dotted_covers(m, c.as_str()) || dotted_covers(c.as_str(), m))
                    .map(|(name, _)| name)
                    .collect();
                if held.is_empty() || held.contains(&&dataset.subject) {
                    return Verdict::Deny(Reason::NoConsent);
                }
                fields.extend(held.into_iter().cloned());
            }
            fields.sort();
            fields.dedup();
            Verdict::Redact(Arc::new(Redaction {
                fields,
                categories: missing.into_iter().map(str::to_owned).collect(),
            }))
        }
        None => Verdict::Deny(Reason::NoConsent),
    }
}

/// `true` if any of the categories is past its retention at `now`.
fn expired(policy: &Policy, categories: &[String], collected: u64, now: u64) -> bool {
    categories.iter().any(|c| {
        policy
            .retention()
            .iter()
            .find(|(r, _)| dotted_covers(r.as_str(), c))
            .is_some_and(|(_, keep)| collected.saturating_add(*keep) <= now)
    })
}
