//! The check of one atom ([`Check`]): the rules' read lock, the time and the rule's plan taken
//! once, then each event decided, counted, logged (admitted) or sampled (denied). The runtime
//! hands it a whole atom ([`AtomGate::check_all`]), which it reads ahead of deciding.

use std::sync::{Arc, RwLockReadGuard};

use pods_sdk::{AtomGate, Decision, Envelope, Path};
use sha2::{Digest, Sha256};

use super::counts::{Denial, Tally};
use super::decide::{Reason, Verdict, decide};
use super::plan::Plan;
use super::processing::subject_tag;
use super::{Gate, Rules};

/// The short digest denials name a subject by.
fn short_digest(subject: &str) -> String {
    Sha256::digest(subject.as_bytes())[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The check for one atom: the rules' read lock, the time and the rule's plan, taken once.
pub(super) struct Check<'a> {
    rules: RwLockReadGuard<'a, Rules>,
    path: &'a Path,
    plan: Plan,
    tally: Tally,
    /// Denials the sample has room for, as the atom began.
    room: usize,
    sampled: Vec<Denial>,
    unsampled: u64,
    /// Tags of the subjects whose events were admitted (the processing log).
    admitted: Vec<u64>,
    /// What [`AtomGate::check_all`] read of an atom's envelopes (kept for the next call).
    seen: Vec<Seen>,
    gate: &'a Gate,
}

impl<'a> Check<'a> {
    /// The check of an atom consumed by `path`: the rules read and the time taken now.
    pub(super) fn new(gate: &'a Gate, path: &'a Path) -> Check<'a> {
        let rules = gate.read();
        let now = gate.clock.now();
        let rule = rules.rule(path.as_str());
        let plan = Plan::new(&rules.policy, &rules.registry, rule, now);
        Check {
            rules,
            path,
            plan,
            tally: Tally::default(),
            room: gate.denials.room(),
            sampled: Vec::new(),
            unsampled: 0,
            admitted: Vec::new(),
            seen: Vec::new(),
            gate,
        }
    }
}

impl Check<'_> {
    /// The verdict on `envelope`, whose subject hashes to `hash` in the registry (`None`: not
    /// hashed yet).
    fn verdict(&mut self, envelope: Option<&Envelope>, hash: Option<u64>) -> Verdict {
        let Some(env) = envelope else {
            return self.plan.plain();
        };
        let rules = &*self.rules;
        let subject = env.subject.0.as_str();
        let state = match hash {
            Some(h) => rules.registry.subject_hashed(subject, h),
            None => rules.registry.subject(subject),
        };
        match self.plan.verdict(
            &rules.policy,
            &rules.registry,
            (subject, state),
            &env.categories,
            env.collected,
        ) {
            Some(verdict) => verdict,
            None => self.decide(env),
        }
    }

    /// Counts `verdict` on `envelope`, logs what it admitted, samples what it denied.
    fn record(&mut self, verdict: Verdict, envelope: Option<&Envelope>) -> Decision {
        match verdict {
            Verdict::Admit => {
                self.tally.admitted += 1;
                if let Some(e) = envelope {
                    self.admitted.push(subject_tag(&e.subject.0));
                }
                Decision::Admit
            }
            Verdict::Redact(r) => {
                self.tally.redacted += 1;
                if let Some(e) = envelope {
                    self.admitted.push(subject_tag(&e.subject.0));
                }
                Decision::Redact(r)
            }
            Verdict::Deny(reason) => {
                self.tally.deny(reason);
                if self.room > 0 {
                    self.sample(reason, envelope);
                } else {
                    self.unsampled += 1;
                }
                Decision::Deny
            }
        }
    }

    /// The verdict where the plan cannot tell (rare: kept out of the per-event path).
    #[cold]
    #[inline(never)]
    fn decide(&self, envelope: &Envelope) -> Verdict {
        let rules = &*self.rules;
        let rule = rules.rule(self.path.as_str());
        decide(
            &rules.policy,
            &rules.registry,
            rule,
            Some(envelope),
            self.plan.now(),
        )
    }

    /// Keeps the denial in the sample if it has room, else counts it.
    #[cold]
    #[inline(never)]
    fn sample(&mut self, reason: Reason, envelope: Option<&Envelope>) {
        if self.sampled.len() < self.room {
            self.sampled.push(Denial {
                path: self.path.to_string(),
                reason,
                at: self.plan.now(),
                subject: envelope.map_or_else(String::new, |e| short_digest(&e.subject.0)),
            });
        } else {
            self.unsampled += 1;
        }
    }
}

/// How many events ahead of the one decided on the gate asks for a subject's entry: enough
/// reads in flight to cover the memory's latency, few enough that they stay in the cache.
const AHEAD: usize = 16;

/// What the gate works out of one event's envelope before reading its subject's entry.
#[derive(Clone, Copy)]
struct Seen {
    /// The registry's hash of the subject.
    hash: u64,
    /// The event's categories as the plan's bits (`None`: the plan cannot tell).
    mask: Option<u32>,
    collected: Option<u64>,
}

impl AtomGate for Check<'_> {
    fn check(&mut self, envelope: Option<&Envelope>) -> Decision {
        let verdict = self.verdict(envelope, None);
        self.record(verdict, envelope)
    }

    /// Reads every envelope first (the subject's hash, the categories as bits), then
    /// decides on each event while asking for the registry entry of the subject [`AHEAD`]
    /// events later: a registry of many subjects is far larger than the caches, and an
    /// envelope is several blocks of memory apart, so overlapping the reads of many events
    /// makes each cost a fraction of a memory access.
    fn check_all(&mut self, envelopes: &[Option<Arc<Envelope>>], out: &mut Vec<Decision>) {
        out.reserve(envelopes.len());
        if !self.plan.declared() {
            out.extend(envelopes.iter().map(|e| self.check(e.as_deref())));
            return;
        }
        let mut seen = std::mem::take(&mut self.seen);
        seen.clear();
        {
            let rules = &*self.rules;
            let plan = &mut self.plan;
            seen.extend(envelopes.iter().map(|e| match e {
                Some(e) => Seen {
                    hash: rules.registry.subject_hash(&e.subject.0),
                    mask: plan.categories(&rules.policy, &rules.registry, &e.categories),
                    collected: e.collected,
                },
                None => Seen {
                    hash: 0,
                    mask: None,
                    collected: None,
                },
            }));
            for s in seen.iter().take(AHEAD) {
                rules.registry.prefetch(s.hash);
            }
        }
        for (i, (e, s)) in envelopes.iter().zip(&seen).enumerate() {
            if let Some(ahead) = seen.get(i + AHEAD) {
                self.rules.registry.prefetch(ahead.hash);
            }
            let Some(env) = e.as_deref() else {
                let verdict = self.plan.plain();
                out.push(self.record(verdict, None));
                continue;
            };
            let rules = &*self.rules;
            let state = rules.registry.subject_hashed(&env.subject.0, s.hash);
            let verdict = match s.mask {
                Some(mask) if state.is_some() || !rules.registry.is_erased(&env.subject.0) => {
                    self.plan.verdict_of(state, mask, s.collected)
                }
                // Erased, or categories the plan has no room for.
                _ => None,
            };
            let verdict = match verdict {
                Some(v) => v,
                None => self.verdict(Some(env), Some(s.hash)),
            };
            out.push(self.record(verdict, Some(env)));
        }
        self.seen = seen;
    }
}

impl Drop for Check<'_> {
    fn drop(&mut self) {
        self.gate.counters_of(self.path.as_str()).add(&self.tally);
        if !self.admitted.is_empty() {
            self.gate
                .processing
                .add(self.path.as_str(), self.plan.now(), &self.admitted);
        }
        if !self.sampled.is_empty() || self.unsampled > 0 {
            let sampled = std::mem::take(&mut self.sampled);
            self.gate.denials.add(sampled, self.unsampled);
        }
    }
}
