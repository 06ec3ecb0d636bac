//! The node's audit log: every administrative act (a peer added or removed, a policy loaded,
//! a consent changed, data imported, exported or erased, the node started or stopped) as an
//! entry of a hash chain signed with the node's ed25519 key, in `DIR/audit.db`, a SQLite file
//! of its own. It holds names and ids only, never personal payloads, so erasure never has to
//! touch it. The chain itself is [`pods_policy::audit`]; this is its storage.
//!
//! ```
//! use serde_json::json;
//!
//! let dir = tempfile::tempdir()?;
//! let key = pods_node::create_identity(dir.path())?;
//! let audit = pods_node::AuditLog::open(dir.path(), &key)?;
//! audit.record("admin", "peer.add", json!({"name": "b", "peer_id": "12D3KooW..."}))?;
//! let tail = audit.tail(10)?;
//! assert_eq!(tail.last().map(|e| e.action.as_str()), Some("peer.add"));
//! drop(audit);
//!
//! // Offline, from the files alone.
//! assert_eq!(pods_node::audit::verify_dir(dir.path())?.count, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod rows;
mod schema;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use libp2p::identity::Keypair;
use pods_policy::audit::{
    Chain, Entry, Signer, Tamper, TamperKind, Verified, verify, verify_against,
};
use rusqlite::Connection;

use crate::error::NodeError;
use crate::identity::{IDENTITY_FILE, load_identity};

/// The audit database's file name in a data dir.
pub const AUDIT_DATABASE: &str = "audit.db";

/// The most entries [`AuditLog::tail`] returns.
pub const MAX_TAIL: usize = 1_000;

/// A handle on the node's audit log; clones share it. Each [`record`](AuditLog::record) is
/// one transaction, synced to disk before it returns.
#[derive(Clone)]
pub struct AuditLog {
    inner: Arc<Mutex<Inner>>,
    file: Arc<PathBuf>,
}

struct Inner {
    conn: Connection,
    chain: Chain,
    signer: Signer,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

impl AuditLog {
    /// Opens (or creates) `DIR/audit.db` for the node whose identity is `key`. Refuses a
    /// foreign or newer file, and a log whose signed head does not match its last entry (it
    /// cannot be continued; [`verify_dir`] names what changed).
    pub fn open(dir: &Path, key: &Keypair) -> Result<AuditLog, NodeError> {
        let signer = signer_of(dir, key)?;
        let file = dir.join(AUDIT_DATABASE);
        let conn = schema::open(&file, false)?;
        let chain = resume(&conn, &file, &signer.public_key())?;
        Ok(AuditLog {
            inner: Arc::new(Mutex::new(Inner {
                conn,
                chain,
                signer,
            })),
            file: Arc::new(file),
        })
    }

    /// Signs `message` with the node's key (what erasure receipts carry).
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.signer.sign(message)
    }

    /// The node's public key, which its signatures verify against.
    pub fn public_key(&self) -> [u8; 32] {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.signer.public_key()
    }

    /// The database file.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Appends the act `action` by `actor` with its particulars `detail` (names and ids, no
    /// personal payloads), timed now; returns the entry written.
    pub fn record(
        &self,
        actor: &str,
        action: &str,
        detail: serde_json::Value,
    ) -> Result<Entry, NodeError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.record_at(now, actor, action, detail)
    }

    /// [`record`](AuditLog::record) at the time `at` (Unix seconds).
    pub fn record_at(
        &self,
        at: u64,
        actor: &str,
        action: &str,
        detail: serde_json::Value,
    ) -> Result<Entry, NodeError> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let Inner {
            conn,
            chain,
            signer,
        } = &mut *inner;
        let mut next = *chain;
        let entry = next.append(signer, at, actor, action, detail);
        let head = next.head(signer);
        rows::append(conn, &entry, &head).map_err(|e| NodeError::sqlite(&self.file, e))?;
        *chain = next;
        tracing::info!(seq = entry.seq, actor, action, "audited");
        Ok(entry)
    }

    /// The last `n` entries (at most [`MAX_TAIL`]), oldest first, as stored.
    pub fn tail(&self, n: usize) -> Result<Vec<Entry>, NodeError> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        tail(&inner.conn, n).map_err(|e| NodeError::sqlite(&self.file, e))
    }
}

/// Verifies the audit log of the node in `dir` from its files alone (`audit.db`, opened
/// read-only, and the public key of `identity.key`), whether the node runs or not. A log
/// that departs from what the node signed is [`NodeError::AuditTampered`], naming the first
/// bad entry.
pub fn verify_dir(dir: &Path) -> Result<Verified, NodeError> {
    let key = load_identity(dir)?;
    let public = key
        .public()
        .try_into_ed25519()
        .map_err(|e| not_ed25519(dir, e))?
        .to_bytes();
    let file = dir.join(AUDIT_DATABASE);
    if !file.exists() {
        return Err(NodeError::DataDir {
            path: dir.to_path_buf(),
            reason: format!(
                "has no {AUDIT_DATABASE}: a node writes its audit log from `pods init` and at each start"
            ),
        });
    }
    let conn = schema::open(&file, true)?;
    match check(&conn, &public).map_err(|e| NodeError::sqlite(&file, e))? {
        Ok(verified) => Ok(verified),
        Err(tamper) => Err(NodeError::AuditTampered { file, tamper }),
    }
}

/// Checks the whole log and its head in one read transaction (a snapshot, even while the
/// node appends).
fn check(conn: &Connection, public: &[u8; 32]) -> rusqlite::Result<Result<Verified, Tamper>> {
    let tx = conn.unchecked_transaction()?;
    let head = rows::head(&tx)?;
    let mut stmt = tx.prepare(&format!(
        "SELECT {} FROM entries ORDER BY seq",
        rows::ENTRY_COLUMNS
    ))?;
    let mut failed = None;
    let verdict = {
        let mut rows = stmt.query([])?;
        let entries = std::iter::from_fn(|| match rows.next() {
            Ok(Some(row)) => rows::entry_of(row).map_err(|e| failed = Some(e)).ok(),
            Ok(None) => None,
            Err(e) => {
                failed = Some(e);
                None
            }
        });
        match &head {
            Some(head) => verify_against(entries, public, head),
            None => verify(entries, public).and_then(|read| match read.count {
                0 => Ok(read),
                count => Err(Tamper {
                    seq: count,
                    kind: TamperKind::HeadMissing,
                }),
            }),
        }
    };
    if let Some(e) = failed {
        return Err(e);
    }
    Ok(verdict)
}

/// The chain to continue: the signed head, if it matches the last entry.
fn resume(conn: &Connection, file: &Path, public: &[u8; 32]) -> Result<Chain, NodeError> {
    let sql = |e| NodeError::sqlite(file, e);
    let head = rows::head(conn).map_err(sql)?;
    let last = rows::last(conn).map_err(sql)?;
    let consistent = match (&head, &last) {
        (None, None) => return Ok(Chain::new()),
        (Some(h), None) => h.count == 0 && h.is_signed_by(public),
        (Some(h), Some((seq, hash))) => {
            h.is_signed_by(public) && seq.checked_add(1) == Some(h.count) && hash[..] == h.hash[..]
        }
        (None, Some(_)) => false,
    };
    match head {
        Some(h) if consistent => Ok(Chain::resume(h.count, h.hash)),
        _ => {
            let tamper = match check(conn, public).map_err(sql)? {
                Err(tamper) => tamper,
                Ok(read) => Tamper {
                    seq: read.count,
                    kind: TamperKind::HeadMismatch,
                },
            };
            Err(NodeError::AuditTampered {
                file: file.to_path_buf(),
                tamper,
            })
        }
    }
}

fn tail(conn: &Connection, n: usize) -> rusqlite::Result<Vec<Entry>> {
    let n = n.min(MAX_TAIL) as i64;
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {} FROM entries ORDER BY seq DESC LIMIT ?1",
        rows::ENTRY_COLUMNS
    ))?;
    let mut entries = stmt
        .query_map([n], rows::entry_of)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    entries.reverse();
    Ok(entries)
}

/// The audit signer of the node's identity `key` (its ed25519 seed).
fn signer_of(dir: &Path, key: &Keypair) -> Result<Signer, NodeError> {
    let pair = key
        .clone()
        .try_into_ed25519()
        .map_err(|e| not_ed25519(dir, e))?;
    let secret = pair.secret();
    let seed = <&[u8; 32]>::try_from(secret.as_ref()).map_err(|_| NodeError::Identity {
        file: dir.join(IDENTITY_FILE),
        reason: "the ed25519 secret is not 32 bytes".to_owned(),
    })?;
    Signer::from_seed(seed).map_err(|e| NodeError::Identity {
        file: dir.join(IDENTITY_FILE),
        reason: e.to_string(),
    })
}

fn not_ed25519(dir: &Path, e: impl std::fmt::Display) -> NodeError {
    NodeError::Identity {
        file: dir.join(IDENTITY_FILE),
        reason: format!("not an ed25519 key ({e}); the audit log is signed with ed25519"),
    }
}
