//! The policy gate: [`Gate`] implements the sdk's [`PolicyGate`] with the node's policy and
//! consent registry. It is asked once per atom for a check that holds the registry's read lock
//! and the time for the whole atom, so a consent change takes effect from the next atom. The
//! check ([`check`]) works out what the atom's events share once ([`plan`]): an event then
//! costs one registry lookup, asked for some events ahead, and allocates nothing (but for
//! redactions, and the rare cases the plan leaves to [`decide()`]).

mod check;
mod counts;
mod decide;
mod plan;
mod processing;

use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use pods_sdk::{AtomGate, Decision, Envelope, Path, PolicyGate, SubjectId};

use crate::clock::Clock;
use crate::file::{Policy, Rule};
use crate::registry::Registry;
use check::Check;
use counts::{Counters, Sampler};
pub use counts::{Counts, Denial, Denials};
pub use decide::{Reason, Verdict, decide};
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
        Box::new(Check::new(self, workflow))
    }

    fn erasures(&self) -> u64 {
        self.read().registry.erasures()
    }

    fn is_erased(&self, subject: &SubjectId) -> bool {
        self.read().registry.is_erased(&subject.0)
    }
}

#[cfg(test)]
mod tests;
