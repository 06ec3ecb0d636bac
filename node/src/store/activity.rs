//! What each workflow has committed, kept beside the store for `pods status`: steps, atoms of
//! its input consumed, and when it last committed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

/// One workflow's commits.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowActivity {
    /// Steps committed (atoms, and batches of asks or replies), over every run of the node.
    pub steps: u64,
    /// Atoms of its input stream committed (the offset of the next one).
    pub atoms: u64,
    /// When it last committed in this run (milliseconds since the Unix epoch).
    pub last_commit_ms: Option<u64>,
}

/// Every workflow's commits, by path; cheap to clone and to read from another thread.
#[derive(Clone, Debug, Default)]
pub struct Activity(Arc<Mutex<BTreeMap<String, WorkflowActivity>>>);

impl Activity {
    /// A copy of every workflow's commits.
    pub fn snapshot(&self) -> BTreeMap<String, WorkflowActivity> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }

    pub(super) fn committed(&self, workflow: &str, step: u64, atoms: Option<u64>, now_ms: u64) {
        if let Ok(mut m) = self.0.lock() {
            let a = m.entry(workflow.to_owned()).or_default();
            a.steps = step;
            if let Some(n) = atoms {
                a.atoms = n;
            }
            a.last_commit_ms = Some(now_ms);
        }
    }

    pub(super) fn recovered(&self, workflow: &str, step: u64, atoms: Option<u64>) {
        if let Ok(mut m) = self.0.lock() {
            let a = m.entry(workflow.to_owned()).or_default();
            a.steps = step;
            a.atoms = atoms.unwrap_or(0);
        }
    }
}
