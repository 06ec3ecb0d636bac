//! Erasure (`pods subject erase`): the subject's records, consents, restriction and processing
//! log deleted from `policy.db` (with `secure_delete`, then a truncating WAL checkpoint), the
//! key their sealed payloads in the store were encrypted under destroyed, and the peers their
//! data went to listed for erasure requests. The result is a receipt signed with the node's
//! key. Started erasures are written down first, so a crash midway resumes at the next start;
//! erasing again returns the receipt again.

use std::sync::Arc;

use rusqlite::{OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};

use super::Privacy;
use crate::audit::AuditLog;
use crate::error::NodeError;

/// Destroys the key a subject's sealed payloads are encrypted under; `true` if there was one.
pub type KeyEraser = Arc<dyn Fn(&str) -> Result<bool, NodeError> + Send + Sync>;

/// What was erased locally.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Erased {
    /// Personal records deleted.
    pub records: u64,
    /// Consent records deleted.
    pub consents: u64,
    /// Processing-log rows deleted.
    pub processing: u64,
    /// Whether a restriction was lifted with the rest.
    pub restriction: bool,
    /// Whether the key of their sealed payloads was destroyed: their events in every logged
    /// atom, and the per-key state values only their events wrote (changelog and snapshot),
    /// become unreadable everywhere in the store; running workflows remove those values
    /// before their next step.
    pub payload_key: bool,
}

/// A peer that received the subject's data, and whether it confirmed the erasure.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerErasure {
    /// The peer's name.
    pub peer: String,
    /// When it acknowledged; `None` while pending (the request is retried).
    pub acknowledged_at: Option<u64>,
    /// Its signed acknowledgement, as it sent it.
    pub acknowledgement: Option<String>,
}

/// The signed receipt of an erasure.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureReceipt {
    /// SHA-256 of the subject's id, in hex (the receipt does not keep the id).
    pub subject: String,
    /// The erasing node's PeerId.
    pub node: String,
    /// When the erasure was asked for.
    pub requested_at: u64,
    /// When the local erasure was done.
    pub erased_at: u64,
    /// What was erased locally.
    pub erased: Erased,
    /// The peers asked to erase it too.
    pub peers: Vec<PeerErasure>,
    /// Hex ed25519 signature by the node's key over the receipt's JSON without this field.
    #[serde(default)]
    pub signature: String,
}

impl ErasureReceipt {
    /// The bytes the signature covers.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let unsigned = ErasureReceipt {
            signature: String::new(),
            ..self.clone()
        };
        serde_json::to_vec(&unsigned).unwrap_or_default()
    }

    /// `true` while a peer has not acknowledged.
    pub fn pending(&self) -> bool {
        self.peers.iter().any(|p| p.acknowledged_at.is_none())
    }

    /// The peers that have not acknowledged yet.
    pub fn pending_peers(&self) -> Vec<&str> {
        self.peers
            .iter()
            .filter(|p| p.acknowledged_at.is_none())
            .map(|p| p.peer.as_str())
            .collect()
    }
}

impl Privacy {
    /// Sets how the store's per-subject payload keys are destroyed.
    pub fn set_key_eraser(&self, eraser: KeyEraser) {
        if let Ok(mut k) = self.inner.keys.lock() {
            *k = Some(eraser);
        }
    }

    /// Erases `subject` (see the module's overview); `node` is this node's PeerId and `audit`
    /// signs the receipt. Idempotent: an erased subject gets the receipt again.
    pub fn erase(
        &self,
        subject: &str,
        node: &str,
        audit: &AuditLog,
    ) -> Result<ErasureReceipt, NodeError> {
        if subject.is_empty() {
            return Err(NodeError::Privacy("the subject is empty".into()));
        }
        let digest = pods_policy::subject_digest(subject);
        let hex = pods_policy::audit::to_hex(&digest);
        let now = self.inner.gate.now();
        if let Some(done) = self.receipt(&digest)? {
            return Ok(done);
        }
        // Written down first: a crash from here on resumes at the next start.
        let mut db = self.db()?;
        db.execute(
            "INSERT OR IGNORE INTO erasures (digest, subject, started_at) VALUES (?1, ?2, ?3)",
            params![digest.as_slice(), subject, now as i64],
        )
        .map_err(|e| self.sql(e))?;
        let requested_at: i64 = db
            .query_row(
                "SELECT started_at FROM erasures WHERE digest = ?1",
                [digest.as_slice()],
                |r| r.get(0),
            )
            .map_err(|e| self.sql(e))?;
        let mut rules = self.inner.gate.write();
        let tx = db.transaction().map_err(|e| self.sql(e))?;
        let mut erased = delete_rows(&tx, subject).map_err(|e| self.sql(e))?;
        let peers: Vec<String> = {
            let mut stmt = tx
                .prepare("SELECT DISTINCT peer FROM lineage WHERE subject = ?1 ORDER BY peer")
                .map_err(|e| self.sql(e))?;
            stmt.query_map([subject], |r| r.get(0))
                .and_then(Iterator::collect)
                .map_err(|e| self.sql(e))?
        };
        for p in &peers {
            tx.execute(
                "INSERT OR IGNORE INTO erasure_peers (digest, peer) VALUES (?1, ?2)",
                params![digest.as_slice(), p],
            )
            .map_err(|e| self.sql(e))?;
        }
        tx.execute("DELETE FROM lineage WHERE subject = ?1", [subject])
            .map_err(|e| self.sql(e))?;
        // Corrections not yet sent are moot: the peers erase the copies instead.
        tx.execute(
            "DELETE FROM rectification_peers WHERE digest = ?1",
            [digest.as_slice()],
        )
        .map_err(|e| self.sql(e))?;
        tx.execute(
            "INSERT OR IGNORE INTO erased (digest, at, tag) VALUES (?1, ?2, ?3)",
            params![
                digest.as_slice(),
                now as i64,
                pods_policy::subject_tag(subject) as i64
            ],
        )
        .map_err(|e| self.sql(e))?;
        tx.commit().map_err(|e| self.sql(e))?;
        rules.registry_mut().erase(subject);
        self.inner.gate.forget_processing(subject);
        drop(rules);
        crate::store::failpoint::reach("erase.local");
        let keys = self.inner.keys.lock().ok().and_then(|k| k.clone());
        if let Some(destroy) = keys {
            erased.payload_key = destroy(subject)?;
        }
        self.checkpoint(&db)?;
        let mut receipt = ErasureReceipt {
            subject: hex,
            node: node.to_owned(),
            requested_at: requested_at as u64,
            erased_at: now,
            erased,
            peers: self.peer_erasures(&db, &digest)?,
            signature: String::new(),
        };
        receipt.signature = pods_policy::audit::to_hex(&audit.sign(&receipt.signed_bytes()));
        self.keep_receipt(&db, &digest, &receipt)?;
        Ok(receipt)
    }

    /// Subjects whose erasure started and did not finish (resumed at start).
    pub fn unfinished_erasures(&self) -> Result<Vec<String>, NodeError> {
        let db = self.db()?;
        let mut stmt = db
            .prepare(
                "SELECT subject FROM erasures WHERE subject IS NOT NULL AND receipt IS NULL
                 ORDER BY started_at",
            )
            .map_err(|e| self.sql(e))?;
        stmt.query_map([], |r| r.get(0))
            .and_then(Iterator::collect)
            .map_err(|e| self.sql(e))
    }

    /// The receipt of `subject`'s erasure as it stands (peers' acknowledgements as they came
    /// in), without erasing anything; `None` if the subject was never erased here.
    pub fn erasure(&self, subject: &str) -> Result<Option<ErasureReceipt>, NodeError> {
        self.receipt(&pods_policy::subject_digest(subject))
    }

    /// The receipt of the erasure of the subject with `digest`, once its local part is done.
    fn receipt(&self, digest: &[u8; 32]) -> Result<Option<ErasureReceipt>, NodeError> {
        let db = self.db()?;
        self.stored_receipt(&db, digest)
    }

    /// The receipt stored for `digest`, read through `db`.
    pub(super) fn stored_receipt(
        &self,
        db: &rusqlite::Connection,
        digest: &[u8; 32],
    ) -> Result<Option<ErasureReceipt>, NodeError> {
        let text: Option<Option<String>> = db
            .query_row(
                "SELECT receipt FROM erasures WHERE digest = ?1",
                [digest.as_slice()],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.sql(e))?;
        match text.flatten() {
            None => Ok(None),
            Some(t) => serde_json::from_str(&t)
                .map(Some)
                .map_err(|e| NodeError::BadRecord {
                    file: self.inner.file.clone(),
                    what: "erasure receipt".into(),
                    detail: e.to_string(),
                }),
        }
    }

    pub(super) fn peer_erasures(
        &self,
        db: &rusqlite::Connection,
        digest: &[u8; 32],
    ) -> Result<Vec<PeerErasure>, NodeError> {
        let mut stmt = db
            .prepare(
                "SELECT peer, acknowledged_at, acknowledgement FROM erasure_peers
                 WHERE digest = ?1 ORDER BY peer",
            )
            .map_err(|e| self.sql(e))?;
        stmt.query_map([digest.as_slice()], |r| {
            Ok(PeerErasure {
                peer: r.get(0)?,
                acknowledged_at: r.get::<_, Option<i64>>(1)?.map(|t| t as u64),
                acknowledgement: r.get(2)?,
            })
        })
        .and_then(Iterator::collect)
        .map_err(|e| self.sql(e))
    }

    /// Stores the receipt; once no peer is pending, the subject's id is dropped from the row.
    pub(super) fn keep_receipt(
        &self,
        db: &rusqlite::Connection,
        digest: &[u8; 32],
        receipt: &ErasureReceipt,
    ) -> Result<(), NodeError> {
        let text = serde_json::to_string(receipt).unwrap_or_default();
        let done = if receipt.pending() {
            db.execute(
                "UPDATE erasures SET receipt = ?2 WHERE digest = ?1",
                params![digest.as_slice(), text],
            )
        } else {
            db.execute(
                "UPDATE erasures SET receipt = ?2, done_at = ?3, subject = NULL WHERE digest = ?1",
                params![digest.as_slice(), text, receipt.erased_at as i64],
            )
        };
        done.map_err(|e| self.sql(e))?;
        self.checkpoint(db)
    }
}

/// Deletes the subject's rows; returns what went.
fn delete_rows(tx: &Transaction<'_>, subject: &str) -> rusqlite::Result<Erased> {
    Ok(Erased {
        records: tx.execute("DELETE FROM records WHERE subject = ?1", [subject])? as u64,
        consents: tx.execute("DELETE FROM consents WHERE subject = ?1", [subject])? as u64,
        processing: tx.execute(
            "DELETE FROM processing WHERE tag = ?1",
            [pods_policy::subject_tag(subject) as i64],
        )? as u64,
        restriction: tx.execute("DELETE FROM restricted WHERE subject = ?1", [subject])? > 0,
        payload_key: false,
    })
}
