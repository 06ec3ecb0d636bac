//! The policy gate: [`Gate`] implements the sdk's [`PolicyGate`] with the node's policy and
//! consent registry. It is asked once per atom for a check that holds the registry's read lock
//! and the time for the whole atom, so a consent change takes effect from the next atom. The
//! check works out what the atom's events share once ([`plan`]): an event then costs one
//! registry lookup and allocates nothing (but for redactions, and the rare cases the plan
//! leaves to [`decide()`]).

mod counts;
mod decide;
mod plan;
mod processing;

use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use pods_sdk::{AtomGate, Decision, Envelope, Path, PolicyGate};
use sha2::{Digest, Sha256};

use crate::clock::Clock;
use crate::file::{Policy, Rule};
use crate::registry::Registry;
use counts::{Counters, Sampler, Tally};
pub use counts::{Counts, Denial, Denials};
pub use decide::{Reason, Verdict, decide};
use plan::Plan;
use processing::ProcessingLog;
pub use processing::{Drained, Processed, subject_tag};

/// What the gate decides with: the policy and the registry, swapped or changed under one lock.
#[derive(Debug, Default)]
pub struct Rules {
    policy: Arc<Policy>,
    registry: Registry,
}

impl Rules {
    /// The policy in force.
    pub fn policy(&self) -> &Arc<Policy> {
        &self.policy
    }

    /// The consent registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The consent registry, to change it; the change applies from the next atom admitted.
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// Replaces the policy; counters of paths it still declares are kept.
    pub fn set_policy(&mut self, policy: Policy) {
        self.policy = Arc::new(policy);
    }

    /// The rule for `path` (a workflow's or a portal's).
    fn rule(&self, path: &str) -> Option<&Rule> {
        self.policy
            .workflow(path)
            .or_else(|| self.policy.portal(path))
    }
}

/// The node's policy gate.
pub struct Gate {
    rules: RwLock<Rules>,
    clock: Arc<dyn Clock>,
    /// Counters of paths seen, found without the rules' lock once created.
    counters: RwLock<HashMap<String, Arc<Counters>, foldhash::fast::RandomState>>,
    denials: Sampler,
    processing: ProcessingLog,
}

impl Gate {
    /// A gate deciding with `policy` and `registry`, reading the time from `clock`.
    pub fn new(policy: Policy, registry: Registry, clock: Arc<dyn Clock>) -> Gate {
        Gate {
            rules: RwLock::new(Rules {
                policy: Arc::new(policy),
                registry,
            }),
            clock,
            counters: RwLock::new(HashMap::default()),
            denials: Sampler::default(),
            processing: ProcessingLog::default(),
        }
    }

    /// Forgets what the processing log holds, not drained yet, about `subject` (at erasure;
    /// call it holding the rules' write lock, so that no atom adds to it meanwhile).
    pub fn forget_processing(&self, subject: &str) {
        self.processing.forget(subject_tag(subject));
    }

    /// Which paths admitted whose data since the last call (subjects by [`subject_tag`]).
    pub fn take_processing(&self) -> Drained {
        self.processing.drain()
    }

    /// The rules, to read.
    pub fn read(&self) -> RwLockReadGuard<'_, Rules> {
        self.rules.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The rules, to change: atoms being admitted finish first; later atoms see the change.
    pub fn write(&self) -> RwLockWriteGuard<'_, Rules> {
        self.rules.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The current time on the gate's clock.
    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    /// Decision counts for every path the policy declares or the gate has seen.
    pub fn counts(&self) -> Vec<Counts> {
        let rules = self.read();
        let counters = self.counters.read().unwrap_or_else(|p| p.into_inner());
        let mut paths: Vec<&String> = counters.keys().collect();
        let declared: Vec<&Rule> = rules.policy.rules().collect();
        for r in &declared {
            if !counters.contains_key(&r.path) {
                paths.push(&r.path);
            }
        }
        paths.sort();
        let idle = Counters::default();
        paths
            .into_iter()
            .map(|p| {
                let purpose = rules.rule(p).map(|r| r.purpose.as_str());
                counters.get(p).map_or(&idle, |c| c).read(p, purpose)
            })
            .collect()
    }

    /// The denials sampled since the last call, for the audit log.
    pub fn take_denials(&self) -> Denials {
        self.denials.take()
    }

    fn counters_of(&self, path: &str) -> Arc<Counters> {
        if let Some(c) = self
            .counters
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(path)
        {
            return c.clone();
        }
        let mut all = self.counters.write().unwrap_or_else(|p| p.into_inner());
        all.entry(path.to_owned()).or_default().clone()
    }
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate").finish_non_exhaustive()
    }
}

/// The short digest denials name a subject by.
fn short_digest(subject: &str) -> String {
    Sha256::digest(subject.as_bytes())[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The check for one atom: the rules' read lock, the time and the rule's plan, taken once.
struct Check<'a> {
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

impl PolicyGate for Gate {
    fn admit(&self, workflow: &Path, envelope: Option<&Envelope>) -> Decision {
        self.for_atom(workflow).check(envelope)
    }

    fn admit_ask(&self, workflow: &Path, portal: &Path, envelope: Option<&Envelope>) -> Decision {
        let declared = self.read().policy.portal(portal.as_str()).is_some();
        let path = if declared { portal } else { workflow };
        self.for_atom(path).check(envelope)
    }

    fn for_atom<'a>(&'a self, workflow: &'a Path) -> Box<dyn AtomGate + 'a> {
        let rules = self.read();
        let now = self.clock.now();
        let rule = rules.rule(workflow.as_str());
        let plan = Plan::new(&rules.policy, &rules.registry, rule, now);
        Box::new(Check {
            rules,
            path: workflow,
            plan,
            tally: Tally::default(),
            room: self.denials.room(),
            sampled: Vec::new(),
            unsampled: 0,
            admitted: Vec::new(),
            seen: Vec::new(),
            gate: self,
        })
    }
}

#[cfg(test)]
mod tests;
