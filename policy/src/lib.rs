//! `pods-policy`: consent, purposes, data categories, retention and audit, enforced on every
//! atom.
//!
//! A node's policy ([`Policy`], loaded from `policy.toml`) declares its purposes (a dotted
//! hierarchy: consent to `research` covers `research.cardiology`), how long each data category
//! may be kept, its datasets, and the purpose and legal basis of every workflow, portal and
//! export. The [`Registry`] holds consents (with their history), restrictions and erasures.
//! [`Gate`] implements the sdk's policy gate with both: every event of every atom a workflow
//! admits needs a lawful basis for the workflow's purpose and the event's categories at
//! admission time; the others are dropped, or redacted where the policy says so, before any
//! task sees them, and every decision is counted. Time comes from a [`Clock`], so expiry and
//! retention are tested without sleeping. The [`audit`] module is the node's hash-chained,
//! signed audit log.
//!
//! ```
//! use std::sync::Arc;
//! use pods_policy::{Category, Gate, Grant, ManualClock, Policy, Purpose, Registry};
//! use pods_sdk::{AppBuilder, DeterministicSystem, Envelope, Event};
//!
//! let policy = Policy::parse("policy.toml", r#"
//!     [[purpose]]
//!     name = "research.cardiology"
//!     [[workflow]]
//!     path = "/clinic/workflows/study"
//!     purpose = "research.cardiology"
//!     basis = "consent"
//! "#)?;
//! let clock = ManualClock::at(1_000);
//! let mut registry = Registry::new();
//! registry.grant(Grant {
//!     subject: "ann".into(),
//!     purposes: vec![Purpose::new("research")?],
//!     categories: vec![Category::new("health")?],
//!     expires_at: None,
//!     source: "consent form".into(),
//! }, 1_000)?;
//!
//! let app = AppBuilder::new("clinic");
//! let pulse = |who: &str, bpm: u32| Event::personal(bpm, Envelope::new(who, &["health.heart_rate"]));
//! let visits = app.generator_from_events("visits", vec![vec![pulse("ann", 61), pulse("bob", 75)]]);
//! app.workflow("study").source(&visits).identity().sink();
//! let mut system = DeterministicSystem::new(1);
//! system.set_gate(Gate::new(policy, registry, Arc::new(clock)));
//! system.launch(app.build()?)?;
//! let seen = system.subscribe::<u32>("/clinic/workflows/study/stream")?;
//! system.run_until_quiescent();
//! // Bob never consented: only Ann's event entered the study.
//! assert_eq!(seen.values(), vec![vec![61]]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

pub mod audit;
mod clock;
mod consent;
mod error;
mod file;
mod gate;
mod names;
mod registry;

pub use clock::{Clock, ManualClock, SystemClock};
pub use consent::{Consent, ConsentId};
pub use error::{PolicyError, Problem};
pub use file::{Dataset, Policy, PurposeDecl, Rule};

/// Seconds in a duration written as in the policy file (`90s`, `15m`, `12h`, `30d`, `8w`,
/// `2y`), or why it is not one.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    file::duration::parse(text)
}
pub use gate::{
    Counts, Denial, Denials, Drained, Gate, Processed, Reason, Rules, Verdict, decide, subject_tag,
};
pub use names::{Category, LegalBasis, Purpose};
pub use registry::{Grant, Registry, subject_digest};
