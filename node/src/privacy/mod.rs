//! The node's privacy side: its policy, consent registry, restrictions, imported personal
//! records, subject access and erasure, all kept in `policy.db` and enforced by the policy
//! gate ([`pods_policy::Gate`]) that every atom of every workflow passes.
//!
//! Every change is written to `policy.db` first and applied to the gate after, under the
//! gate's write lock: an atom admitted after a change returns sees it, and a crash between the
//! two leaves the file, which the gate is rebuilt from at start, holding the change.

mod db;
mod erase;
pub mod housekeeping;
mod import;
mod peers;
mod records;
mod rectify_peers;
mod subject;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use pods_policy::{Clock, Consent, Counts, Gate, Grant, Policy, Purpose, Registry};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::error::NodeError;
pub use db::POLICY_DB;
pub use erase::{Erased, ErasureReceipt, KeyEraser, PeerErasure};
pub use import::ResumedImport;
pub use peers::{Acknowledgement, PendingErasure};
pub use records::{BadRow, Format, ImportReport, Record};
pub use rectify_peers::PendingRectification;
pub use subject::{Corrected, Rectifier};
pub use subject::{Processing, Recipient, SubjectExport};

/// The node's policy, consents and personal records.
#[derive(Clone)]
pub struct Privacy {
    inner: Arc<Inner>,
}

struct Inner {
    file: PathBuf,
    db: Mutex<Connection>,
    gate: Arc<Gate>,
    feed: Mutex<Option<Feed>>,
    /// Held while an import stores and feeds its records.
    importing: Mutex<()>,
    keys: Mutex<Option<KeyEraser>>,
    rectifier: Mutex<Option<Rectifier>>,
}

/// A personal record as a workflow receives it: column → value.
pub type Row = serde_json::Map<String, serde_json::Value>;

/// Pushes one atom of records into the external generator at a path.
pub type Feed = Arc<dyn Feeds>;

/// The generators imported records are fed into (the node's external generators).
pub trait Feeds: Send + Sync {
    /// The offset the next atom fed to the generator at `path` gets.
    fn next(&self, path: &str) -> Result<u64, NodeError>;
    /// Feeds `events` as one atom at `offset` of the generator at `path`; `Ok(false)` if that
    /// offset was taken already (fed before a crash).
    fn feed(
        &self,
        path: &str,
        offset: u64,
        events: Vec<pods_sdk::Event<Row>>,
    ) -> Result<bool, NodeError>;
}

/// What `pods policy show` prints: the policy in force and when it was loaded.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PolicyInfo {
    /// The policy file's text; empty if none was loaded.
    pub text: String,
    /// When it was loaded (seconds since the Unix epoch); `None` if never.
    pub loaded_at: Option<u64>,
    /// Number of purposes, datasets, and workflow, portal and export rules it declares.
    pub purposes: usize,
    /// Number of datasets.
    pub datasets: usize,
    /// Number of workflow and portal rules.
    pub rules: usize,
}

impl Privacy {
    /// Opens `DIR/policy.db` (created if absent) and builds the gate from it, reading the time
    /// from `clock`. Until a policy is loaded, every personal event is refused.
    pub fn open(dir: &Path, clock: Arc<dyn Clock>) -> Result<Privacy, NodeError> {
        let file = dir.join(POLICY_DB);
        let conn = db::open(dir, false)?;
        let sql = |e| NodeError::sqlite(&file, e);
        let text: Option<String> = conn
            .query_row("SELECT text FROM policy WHERE id = 0", [], |r| r.get(0))
            .optional()
            .map_err(sql)?;
        let policy = match text {
            Some(text) => Policy::parse(&file.display().to_string(), &text)?,
            None => Policy::default(),
        };
        let mut registry = Registry::new();
        {
            let mut stmt = conn
                .prepare(&format!("SELECT {} FROM consents", db::CONSENT_COLUMNS))
                .map_err(sql)?;
            let rows = stmt.query_map([], db::consent_of).map_err(sql)?;
            for row in rows {
                let consent = row.map_err(sql)?.map_err(|detail| NodeError::BadRecord {
                    file: file.clone(),
                    what: "consent".into(),
                    detail,
                })?;
                registry.insert(consent);
            }
            let mut stmt = conn
                .prepare("SELECT subject FROM restricted")
                .map_err(sql)?;
            for s in stmt.query_map([], |r| r.get::<_, String>(0)).map_err(sql)? {
                registry.restrict(&s.map_err(sql)?, true);
            }
            let mut stmt = conn
                .prepare("SELECT digest, tag FROM erased")
                .map_err(sql)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Option<i64>>(1)?))
                })
                .map_err(sql)?;
            for row in rows {
                let (d, tag) = row.map_err(sql)?;
                if let Ok(digest) = <[u8; 32]>::try_from(d.as_slice()) {
                    registry.insert_erased(digest, tag.map(|t| t as u64));
                }
            }
        }
        tracing::info!(
            subjects = registry.subjects(),
            purposes = policy.purposes().len(),
            "policy and consents loaded"
        );
        Ok(Privacy {
            inner: Arc::new(Inner {
                file,
                db: Mutex::new(conn),
                gate: Arc::new(Gate::new(policy, registry, clock)),
                feed: Mutex::new(None),
                importing: Mutex::new(()),
                keys: Mutex::new(None),
                rectifier: Mutex::new(None),
            }),
        })
    }

    /// Sets how imported records reach the generator their dataset names as `feed`.
    pub fn set_feed(&self, feed: Feed) {
        if let Ok(mut f) = self.inner.feed.lock() {
            *f = Some(feed);
        }
    }

    /// The gate to install in the runtime (before launching apps).
    pub fn gate(&self) -> Arc<Gate> {
        Arc::clone(&self.inner.gate)
    }

    /// The policy in force.
    pub fn policy(&self) -> Arc<Policy> {
        Arc::clone(self.inner.gate.read().policy())
    }

    /// Validates `text` whole and, if it is valid, stores it and puts it in force from the
    /// next atom; a bad file changes nothing. `name` names the file in errors.
    pub fn load_policy(&self, name: &str, text: &str) -> Result<PolicyInfo, NodeError> {
        let policy = Policy::parse(name, text)?;
        let mut rules = self.inner.gate.write();
        let now = self.inner.gate.now();
        self.db()?
            .execute(
                "INSERT OR REPLACE INTO policy (id, text, loaded_at) VALUES (0, ?1, ?2)",
                params![text, now as i64],
            )
            .map_err(|e| self.sql(e))?;
        rules.set_policy(policy);
        drop(rules);
        self.policy_info()
    }

    /// The policy in force, for `pods policy show`.
    pub fn policy_info(&self) -> Result<PolicyInfo, NodeError> {
        let loaded_at: Option<i64> = self
            .db()?
            .query_row("SELECT loaded_at FROM policy WHERE id = 0", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.sql(e))?;
        let policy = self.policy();
        Ok(PolicyInfo {
            text: policy.source().to_owned(),
            loaded_at: loaded_at.map(|t| t as u64),
            purposes: policy.purposes().len(),
            datasets: policy.datasets().count(),
            rules: policy.rules().count(),
        })
    }

    /// Records a consent; its purposes must be in the policy. In force from the next atom.
    pub fn grant(&self, grant: Grant) -> Result<Consent, NodeError> {
        let mut rules = self.inner.gate.write();
        for p in &grant.purposes {
            if !rules.policy().knows_purpose(p) {
                return Err(pods_policy::PolicyError::UnknownPurpose(p.to_string()).into());
            }
        }
        let consent = rules.registry().prepare(grant, self.inner.gate.now())?;
        db::put_consent(&*self.db()?, &consent).map_err(|e| self.sql(e))?;
        rules.registry_mut().insert(consent.clone());
        Ok(consent)
    }

    /// Withdraws the subject's consents in force for `purpose` (every one if `None`); from the
    /// next atom on, no workflow receives their data under it. Returns the records changed.
    pub fn withdraw(
        &self,
        subject: &str,
        purpose: Option<&Purpose>,
    ) -> Result<Vec<Consent>, NodeError> {
        let mut rules = self.inner.gate.write();
        let changed = rules
            .registry()
            .withdrawals(subject, purpose, self.inner.gate.now());
        let mut db = self.db()?;
        let tx = db.transaction().map_err(|e| self.sql(e))?;
        for c in &changed {
            db::put_consent(&tx, c).map_err(|e| self.sql(e))?;
        }
        tx.commit().map_err(|e| self.sql(e))?;
        for c in &changed {
            rules.registry_mut().insert(c.clone());
        }
        Ok(changed)
    }

    /// The consent records (with history) of `subject`, or of everyone.
    pub fn consents(&self, subject: Option<&str>) -> Vec<Consent> {
        let rules = self.inner.gate.read();
        match subject {
            Some(s) => rules.registry().consents_of(s),
            None => rules.registry().all(),
        }
    }

    /// Restricts processing of the subject's data (kept, but no workflow receives it), or
    /// lifts the restriction; from the next atom.
    pub fn restrict(&self, subject: &str, restricted: bool) -> Result<(), NodeError> {
        if subject.is_empty() {
            return Err(NodeError::Privacy("the subject is empty".into()));
        }
        let mut rules = self.inner.gate.write();
        let db = self.db()?;
        let done = if restricted {
            db.execute(
                "INSERT OR IGNORE INTO restricted (subject, since) VALUES (?1, ?2)",
                params![subject, self.inner.gate.now() as i64],
            )
        } else {
            db.execute("DELETE FROM restricted WHERE subject = ?1", [subject])
        };
        done.map_err(|e| self.sql(e))?;
        rules.registry_mut().restrict(subject, restricted);
        Ok(())
    }

    /// The gate's decisions per workflow and portal since the node started.
    pub fn counts(&self) -> Vec<Counts> {
        self.inner.gate.counts()
    }

    /// Moves the write-ahead log into the database and truncates it, so that no old page
    /// image (a deleted or corrected value) stays in the WAL file.
    pub(crate) fn checkpoint(&self, db: &Connection) -> Result<(), NodeError> {
        db.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            r.get::<_, i64>(0)
        })
        .map_err(|e| self.sql(e))
        .and_then(|busy| match busy {
            0 => Ok(()),
            _ => Err(NodeError::Privacy(
                "the policy database is busy; the checkpoint will be retried".into(),
            )),
        })
    }

    fn db(&self) -> Result<MutexGuard<'_, Connection>, NodeError> {
        self.inner
            .db
            .lock()
            .map_err(|_| NodeError::Privacy("the policy database is unusable after a panic".into()))
    }

    fn sql(&self, e: rusqlite::Error) -> NodeError {
        NodeError::sqlite(&self.inner.file, e)
    }
}

#[cfg(test)]
mod tests;
