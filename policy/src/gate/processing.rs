//! The processing log: which workflow or portal admitted whose data, first and last when, and
//! how many events. Subjects are kept as a stable 64-bit tag of their id ([`subject_tag`]), so
//! the log answers "what processed this subject" without holding anyone's id. The gate adds one
//! atom's tags when its check is dropped; the node drains the log into its store.

use std::collections::HashMap;
use std::sync::Mutex;

use foldhash::fast::RandomState;

/// A stable tag of a subject's id (FNV-1a, 64 bits): the same in every run and every build, so
/// that stored processing rows are found again by the subject's id.
pub fn subject_tag(subject: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in subject.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// What one path did with one subject's data since the last drain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Processed {
    /// First time (seconds since the Unix epoch).
    pub first_at: u64,
    /// Last time.
    pub last_at: u64,
    /// Events admitted.
    pub events: u64,
}

/// The log since the last drain: path → subject tag → what was processed. The log is updated
/// for every event admitted, so its maps hash with foldhash (seeded per map) rather than SipHash.
pub type Drained = HashMap<String, HashMap<u64, Processed, RandomState>, RandomState>;

/// The processing log, behind a lock taken once per atom that admitted personal events.
#[derive(Debug, Default)]
pub(crate) struct ProcessingLog(Mutex<Drained>);

impl ProcessingLog {
    /// Adds one atom's admitted subjects (by tag) at `path`, at time `now`.
    pub(crate) fn add(&self, path: &str, now: u64, tags: &[u64]) {
        let Ok(mut log) = self.0.lock() else { return };
        let at = match log.get_mut(path) {
            Some(at) => at,
            None => log.entry(path.to_owned()).or_default(),
        };
        for &t in tags {
            let p = at.entry(t).or_insert(Processed {
                first_at: now,
                last_at: now,
                events: 0,
            });
            p.last_at = p.last_at.max(now);
            p.events += 1;
        }
    }

    /// Forgets a subject's entries not drained yet (an erased subject's).
    pub(crate) fn forget(&self, tag: u64) {
        if let Ok(mut log) = self.0.lock() {
            for at in log.values_mut() {
                at.remove(&tag);
            }
        }
    }

    /// Everything logged since the last call.
    pub(crate) fn drain(&self) -> Drained {
        self.0
            .lock()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_stable_and_the_log_aggregates_per_path_and_subject() {
        assert_eq!(subject_tag(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(subject_tag("a"), 0xaf63_dc4c_8601_ec8c);
        let log = ProcessingLog::default();
        log.add("/a/workflows/w", 10, &[1, 2, 1]);
        log.add("/a/workflows/w", 12, &[1]);
        let d = log.drain();
        assert_eq!(
            d["/a/workflows/w"][&1],
            Processed {
                first_at: 10,
                last_at: 12,
                events: 3
            }
        );
        assert_eq!(d["/a/workflows/w"][&2].events, 1);
        assert!(log.drain().is_empty());
    }
}
