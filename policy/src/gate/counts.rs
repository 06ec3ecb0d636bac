//! Decision counters per workflow or portal, and a bounded sample of denials for the audit log.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use super::decide::Reason;

/// Counters of one rule (or of undeclared paths), updated once per atom.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    admitted: AtomicU64,
    redacted: AtomicU64,
    denied: [AtomicU64; Reason::ALL.len()],
}

/// A tally for one atom, added to the counters when the atom is done.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub admitted: u64,
    pub redacted: u64,
    pub denied: [u64; Reason::ALL.len()],
}

impl Tally {
    pub(crate) fn deny(&mut self, reason: Reason) {
        self.denied[reason as usize] += 1;
    }
}

impl Counters {
    pub(crate) fn add(&self, t: &Tally) {
        if t.admitted > 0 {
            self.admitted.fetch_add(t.admitted, Ordering::Relaxed);
        }
        if t.redacted > 0 {
            self.redacted.fetch_add(t.redacted, Ordering::Relaxed);
        }
        for (c, n) in self.denied.iter().zip(t.denied) {
            if n > 0 {
                c.fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    pub(crate) fn read(&self, path: &str, purpose: Option<&str>) -> Counts {
        Counts {
            path: path.to_owned(),
            purpose: purpose.map(str::to_owned),
            admitted: self.admitted.load(Ordering::Relaxed),
            redacted: self.redacted.load(Ordering::Relaxed),
            denied: Reason::ALL
                .iter()
                .zip(&self.denied)
                .map(|(r, c)| (*r, c.load(Ordering::Relaxed)))
                .filter(|(_, n)| *n > 0)
                .collect(),
        }
    }
}

/// The gate's decisions for one workflow or portal since the node started.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Counts {
    /// The workflow's or portal's path.
    pub path: String,
    /// Its purpose; `None` if the policy does not declare it.
    pub purpose: Option<String>,
    /// Events admitted whole.
    pub admitted: u64,
    /// Events admitted with fields removed.
    pub redacted: u64,
    /// Events denied, by reason.
    pub denied: BTreeMap<Reason, u64>,
}

impl<'de> serde::Deserialize<'de> for Reason {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Reason, D::Error> {
        let s = String::deserialize(d)?;
        Reason::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown reason {s}")))
    }
}

impl Reason {
    /// The reason's name, as shown and audited.
    pub fn name(self) -> &'static str {
        match self {
            Reason::Undeclared => "undeclared",
            Reason::NoSubject => "no_subject",
            Reason::Erased => "erased",
            Reason::Restricted => "restricted",
            Reason::Expired => "expired",
            Reason::NoConsent => "no_consent",
        }
    }
}

/// A denial kept for the audit log: where, why, when, and whose (by a short digest of the
/// subject's id, never the id).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Denial {
    /// The workflow's or portal's path.
    pub path: String,
    /// Why.
    pub reason: Reason,
    /// When (seconds since the Unix epoch).
    pub at: u64,
    /// The first 8 bytes, in hex, of SHA-256 of the subject's id; empty without a subject.
    pub subject: String,
}

/// Denials since the last report: a bounded sample, and how many were not sampled.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Denials {
    /// Sampled denials, oldest first.
    pub sampled: Vec<Denial>,
    /// Denials not in the sample.
    pub unsampled: u64,
}

/// Samples kept between two reports.
pub(crate) const SAMPLES: usize = 64;

/// The sample, behind a lock taken only on denials.
#[derive(Debug, Default)]
pub(crate) struct Sampler(Mutex<Denials>);

impl Sampler {
    /// Adds one atom's sample and count of denials not sampled.
    pub(crate) fn add(&self, sampled: Vec<Denial>, unsampled: u64) {
        let Ok(mut d) = self.0.lock() else { return };
        let room = SAMPLES.saturating_sub(d.sampled.len());
        let over = sampled.len().saturating_sub(room) as u64;
        d.sampled.extend(sampled.into_iter().take(room));
        d.unsampled += unsampled + over;
    }

    /// How many more denials the sample takes before the next report.
    pub(crate) fn room(&self) -> usize {
        self.0
            .lock()
            .map_or(0, |d| SAMPLES.saturating_sub(d.sampled.len()))
    }

    pub(crate) fn take(&self) -> Denials {
        self.0
            .lock()
            .map(|mut d| std::mem::take(&mut *d))
            .unwrap_or_default()
    }
}
