//! Failpoints: named places in the commit path where a crash test makes the process abort, to
//! check that a crash at exactly that place loses nothing and applies nothing twice; and in
//! erasure and import (below), to check that the next start completes what the crash cut. Set `PODS_FAILPOINT=<name>:<n>` to abort the n-th time `<name>` is reached; unset, a
//! failpoint costs one load of a cached value.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The environment variable that arms a failpoint.
pub const VARIABLE: &str = "PODS_FAILPOINT";

/// Every failpoint of the commit path, in the order a commit reaches them.
pub const ALL: &[&str] = &[
    "commit.encoded",
    "commit.written",
    "commit.done",
    "compact.written",
];

/// Failpoints of erasure: after the local deletion is committed (`erase.local`, in
/// `policy.db`), and after a subject's payload key is deleted (`erase.deleted`, in the store).
pub const ERASURE: &[&str] = &["erase.local", "erase.deleted"];

/// Failpoints of importing: after an import's records (and the note of the atom they become)
/// are stored, before the atom is fed (`import.stored`, in `policy.db`).
pub const IMPORT: &[&str] = &["import.stored"];

static ARMED: OnceLock<Option<(String, u64)>> = OnceLock::new();
static REACHED: AtomicU64 = AtomicU64::new(0);

/// Marks failpoint `name` reached; aborts the process if it is the armed one's turn.
pub(crate) fn reach(name: &str) {
    let armed = ARMED.get_or_init(|| {
        let spec = std::env::var(VARIABLE).ok()?;
        let (point, n) = spec.split_once(':')?;
        Some((point.to_owned(), n.parse().ok()?))
    });
    if let Some((point, n)) = armed
        && point == name
        && REACHED.fetch_add(1, Ordering::SeqCst) + 1 == *n
    {
        tracing::error!(failpoint = name, "failpoint reached: aborting");
        std::process::abort();
    }
}
