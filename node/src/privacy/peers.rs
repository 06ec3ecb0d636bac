//! The privacy side of peers: lineage (which subjects' data went to which peer, under which
//! export), the erasure requests still owed by peers, and their signed acknowledgements.
//!
//! A node that receives an erasure request erases locally and answers with an
//! [`Acknowledgement`] signed with its key; the requesting node checks the signature against
//! the peer's PeerId and [`Privacy::acknowledge`]s it, which re-signs the receipt and, once no
//! peer is pending, finishes the erasure (the subject's id leaves `policy.db`).

use libp2p::PeerId;
use rusqlite::params;
use serde::{Deserialize, Serialize};

use super::{Erased, ErasureReceipt, Privacy};
use crate::audit::AuditLog;
use crate::error::NodeError;

/// A peer's signed confirmation that it erased a subject.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acknowledgement {
    /// SHA-256 of the subject's id, in hex.
    pub subject: String,
    /// The acknowledging node's PeerId.
    pub node: String,
    /// When it erased the subject locally.
    pub erased_at: u64,
    /// What it erased.
    pub erased: Erased,
    /// The peers it asks in turn (its own recipients of the data).
    pub cascaded: Vec<String>,
    /// Hex ed25519 signature by the node's key over the JSON of the rest.
    #[serde(default)]
    pub signature: String,
}

impl Acknowledgement {
    /// The acknowledgement of an erasure this node did, signed with its key.
    pub fn of(receipt: &ErasureReceipt, audit: &AuditLog) -> Acknowledgement {
        let mut ack = Acknowledgement {
            subject: receipt.subject.clone(),
            node: receipt.node.clone(),
            erased_at: receipt.erased_at,
            erased: receipt.erased.clone(),
            cascaded: receipt.peers.iter().map(|p| p.peer.clone()).collect(),
            signature: String::new(),
        };
        ack.signature = pods_policy::audit::to_hex(&audit.sign(&ack.signed_bytes()));
        ack
    }

    /// The bytes the signature covers.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let unsigned = Acknowledgement {
            signature: String::new(),
            ..self.clone()
        };
        serde_json::to_vec(&unsigned).unwrap_or_default()
    }

    /// Checks that `peer` signed it for the subject whose digest is `digest` (hex).
    pub fn verify(&self, peer: &PeerId, digest: &str) -> Result<(), NodeError> {
        let bad =
            |why: &str| NodeError::Privacy(format!("a bad acknowledgement from {peer}: {why}"));
        if self.node != peer.to_string() {
            return Err(bad("it names another node"));
        }
        if self.subject != digest {
            return Err(bad("it names another subject"));
        }
        let key = libp2p::identity::PublicKey::try_decode_protobuf(peer.as_ref().digest())
            .map_err(|_| bad("its PeerId carries no public key"))?;
        let signature = pods_policy::audit::from_hex(&self.signature)
            .ok_or_else(|| bad("its signature is not hex"))?;
        if key.verify(&self.signed_bytes(), &signature) {
            Ok(())
        } else {
            Err(bad("its signature does not verify"))
        }
    }
}

/// An erasure some peers have not acknowledged yet, for `pods status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingErasure {
    /// SHA-256 of the subject's id, in hex.
    pub subject: String,
    /// The peers still asked.
    pub peers: Vec<String>,
}

impl Privacy {
    /// Records that the data of `subjects` went to the peer `peer` under the export `export`,
    /// now (one transaction for them all). An erased subject's id is not written down again.
    pub fn record_lineage<'a>(
        &self,
        peer: &str,
        export: &str,
        subjects: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), NodeError> {
        let now = self.inner.gate.now() as i64;
        let subjects: Vec<&str> = {
            let rules = self.inner.gate.read();
            subjects
                .into_iter()
                .filter(|s| {
                    let erased = rules.registry().is_erased(s);
                    if erased {
                        tracing::warn!(%peer, %export, "data of an erased subject went to a peer");
                    }
                    !erased
                })
                .collect()
        };
        if subjects.is_empty() {
            return Ok(());
        }
        let mut db = self.db()?;
        let tx = db.transaction().map_err(|e| self.sql(e))?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO lineage (subject, peer, export, first_at, last_at)
                     VALUES (?1, ?2, ?3, ?4, ?4)
                     ON CONFLICT (subject, peer, export) DO UPDATE SET last_at = ?4",
                )
                .map_err(|e| self.sql(e))?;
            for s in subjects {
                stmt.execute(params![s, peer, export, now])
                    .map_err(|e| self.sql(e))?;
            }
        }
        tx.commit().map_err(|e| self.sql(e))
    }

    /// The (subject, peer) pairs whose erasure request has not been acknowledged: each peer's
    /// oldest erasure first, the peers taken in turn, so that a peer that never answers does
    /// not hold back the others.
    pub fn pending_peer_erasures(&self) -> Result<Vec<(String, String)>, NodeError> {
        let db = self.db()?;
        let mut stmt = db
            .prepare(
                "SELECT subject, peer FROM (
                     SELECT e.subject, p.peer, ROW_NUMBER() OVER (
                         PARTITION BY p.peer ORDER BY e.started_at, e.digest
                     ) AS turn
                     FROM erasure_peers p JOIN erasures e ON e.digest = p.digest
                     WHERE p.acknowledged_at IS NULL AND e.subject IS NOT NULL
                 ) ORDER BY turn, peer",
            )
            .map_err(|e| self.sql(e))?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(Iterator::collect)
            .map_err(|e| self.sql(e))
    }

    /// The erasures some peer has not acknowledged, by digest.
    pub fn pending_erasures(&self) -> Result<Vec<PendingErasure>, NodeError> {
        let rows = self.pending_by_digest(
            "SELECT digest, peer FROM erasure_peers WHERE acknowledged_at IS NULL
             ORDER BY digest, peer",
        )?;
        Ok(rows
            .into_iter()
            .map(|(subject, peers)| PendingErasure { subject, peers })
            .collect())
    }

    /// The rows of `sql` (digest, peer; ordered by digest), as each digest in hex with its
    /// peers.
    pub(super) fn pending_by_digest(
        &self,
        sql: &str,
    ) -> Result<Vec<(String, Vec<String>)>, NodeError> {
        let db = self.db()?;
        let mut stmt = db.prepare(sql).map_err(|e| self.sql(e))?;
        let rows: Vec<(Vec<u8>, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(Iterator::collect)
            .map_err(|e| self.sql(e))?;
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for (digest, peer) in rows {
            let subject = pods_policy::audit::to_hex(&digest);
            match out.last_mut() {
                Some(last) if last.0 == subject => last.1.push(peer),
                _ => out.push((subject, vec![peer])),
            }
        }
        Ok(out)
    }

    /// Records `peer`'s acknowledgement of the erasure of `subject` (checked by the caller),
    /// re-signs and stores the receipt; the erasure is finished once no peer is pending.
    /// Returns the new receipt, or `None` if the peer had acknowledged already (or the
    /// erasure is unknown): each acknowledgement counts once.
    pub fn acknowledge(
        &self,
        subject: &str,
        peer: &str,
        ack: &Acknowledgement,
        audit: &AuditLog,
    ) -> Result<Option<ErasureReceipt>, NodeError> {
        let digest = pods_policy::subject_digest(subject);
        let now = self.inner.gate.now();
        let text = serde_json::to_string(ack).unwrap_or_default();
        let db = self.db()?;
        let changed = db
            .execute(
                "UPDATE erasure_peers SET acknowledged_at = ?3, acknowledgement = ?4
                 WHERE digest = ?1 AND peer = ?2 AND acknowledged_at IS NULL",
                params![digest.as_slice(), peer, now as i64, text],
            )
            .map_err(|e| self.sql(e))?;
        if changed == 0 {
            return Ok(None);
        }
        let Some(mut receipt) = self.stored_receipt(&db, &digest)? else {
            return Ok(None);
        };
        receipt.peers = self.peer_erasures(&db, &digest)?;
        receipt.signature = String::new();
        receipt.signature = pods_policy::audit::to_hex(&audit.sign(&receipt.signed_bytes()));
        self.keep_receipt(&db, &digest, &receipt)?;
        Ok(Some(receipt))
    }
}

impl Privacy {
    /// The gate's verdict on sending an event with `envelope` to a peer under the export of
    /// `export`, now. An export with no rule in the policy sends no personal event.
    pub fn egress(
        &self,
        export: &str,
        envelope: Option<&pods_sdk::Envelope>,
    ) -> pods_policy::Verdict {
        self.egress_with(export, |verdict| verdict(envelope))
    }

    /// Runs `f` with the export's verdict on envelopes, the rules read and the time taken once
    /// (for the events of the atoms of one pull).
    pub fn egress_with<R>(
        &self,
        export: &str,
        f: impl FnOnce(&mut dyn FnMut(Option<&pods_sdk::Envelope>) -> pods_policy::Verdict) -> R,
    ) -> R {
        let now = self.inner.gate.now();
        let rules = self.inner.gate.read();
        let policy = rules.policy();
        let rule = policy.export(export);
        f(&mut |envelope| pods_policy::decide(policy, rules.registry(), rule, envelope, now))
    }
}

#[cfg(test)]
#[path = "peers_tests.rs"]
mod tests;
