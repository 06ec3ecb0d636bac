//! Rectification beyond this node (GDPR art. 19): the peers that received a subject's data
//! (the lineage) are asked to correct their copies too. A rectification queues one row per
//! peer in `rectification_peers`, in the transaction that corrects the records, so a crash
//! loses no request; a later rectification of the same subject merges into a row still pending
//! (a later value of a column wins, as applying both in turn would). The network task sends
//! each row until the peer answers, then drops it: the row holds the corrected values, which
//! are personal data, and nothing needs them once the peer has them. A peer's request corrects
//! the copies in this node's logged atoms and queues the same to this node's own recipients.

use rusqlite::{OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::Privacy;
use super::subject::Corrected;
use crate::error::NodeError;

/// Queues `changes` of `subject` for every peer the subject's data went to; returns those
/// peers.
pub(super) fn queue(
    tx: &Transaction<'_>,
    subject: &str,
    changes: &Map<String, Value>,
    now: u64,
) -> rusqlite::Result<Vec<String>> {
    let digest = pods_policy::subject_digest(subject);
    let peers: Vec<String> = tx
        .prepare("SELECT DISTINCT peer FROM lineage WHERE subject = ?1 ORDER BY peer")?
        .query_map([subject], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for peer in &peers {
        let before: Option<String> = tx
            .query_row(
                "SELECT changes FROM rectification_peers WHERE digest = ?1 AND peer = ?2",
                params![digest.as_slice(), peer],
                |r| r.get(0),
            )
            .optional()?;
        // A row that no longer parses (it never should) is replaced by the new changes.
        let mut merged: Map<String, Value> = before
            .and_then(|b| serde_json::from_str(&b).ok())
            .unwrap_or_default();
        merged.extend(changes.iter().map(|(k, v)| (k.clone(), v.clone())));
        tx.execute(
            "INSERT INTO rectification_peers (digest, peer, subject, changes, requested_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (digest, peer) DO UPDATE SET changes = ?4, requested_at = ?5",
            params![
                digest.as_slice(),
                peer,
                subject,
                Value::Object(merged).to_string(),
                now as i64
            ],
        )?;
    }
    Ok(peers)
}

/// A rectification some peers have not applied yet, for `pods status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRectification {
    /// SHA-256 of the subject's id, in hex.
    pub subject: String,
    /// The peers still asked.
    pub peers: Vec<String>,
}

impl Privacy {
    /// The rectifications some peer has not applied, by digest.
    pub fn pending_rectifications(&self) -> Result<Vec<PendingRectification>, NodeError> {
        let rows = self.pending_by_digest(
            "SELECT digest, peer FROM rectification_peers ORDER BY digest, peer",
        )?;
        Ok(rows
            .into_iter()
            .map(|(subject, peers)| PendingRectification { subject, peers })
            .collect())
    }

    /// The (subject, peer) pairs whose rectification request has not been answered, oldest
    /// first.
    pub fn pending_peer_rectifications(&self) -> Result<Vec<(String, String)>, NodeError> {
        let db = self.db()?;
        let mut stmt = db
            .prepare(
                "SELECT subject, peer FROM rectification_peers ORDER BY requested_at, subject, peer",
            )
            .map_err(|e| self.sql(e))?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(Iterator::collect)
            .map_err(|e| self.sql(e))
    }

    /// The corrections `peer` is to apply to its copies of `subject`'s records (a JSON
    /// object), while its request is pending.
    pub fn peer_rectification(
        &self,
        subject: &str,
        peer: &str,
    ) -> Result<Option<String>, NodeError> {
        let digest = pods_policy::subject_digest(subject);
        self.db()?
            .query_row(
                "SELECT changes FROM rectification_peers WHERE digest = ?1 AND peer = ?2",
                params![digest.as_slice(), peer],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.sql(e))
    }

    /// `peer` applied `sent` (the corrections of [`Privacy::peer_rectification`] as they were
    /// sent): the request is done unless more corrections were queued since, which then go
    /// next. Returns `true` if the request is done.
    pub fn rectification_answered(
        &self,
        subject: &str,
        peer: &str,
        sent: &str,
    ) -> Result<bool, NodeError> {
        let digest = pods_policy::subject_digest(subject);
        let db = self.db()?;
        let done = db
            .execute(
                "DELETE FROM rectification_peers WHERE digest = ?1 AND peer = ?2 AND changes = ?3",
                params![digest.as_slice(), peer, sent],
            )
            .map_err(|e| self.sql(e))?;
        if done > 0 {
            self.checkpoint(&db)?;
        }
        Ok(done > 0)
    }

    /// A peer's request: corrects this node's copies of `subject`'s records (its logged
    /// atoms) and asks this node's own recipients of the subject's data to do the same.
    pub fn rectify_copies(
        &self,
        subject: &str,
        changes: &Map<String, Value>,
    ) -> Result<Corrected, NodeError> {
        if subject.is_empty() {
            return Err(NodeError::Privacy("the subject is empty".into()));
        }
        let now = self.inner.gate.now();
        let peers = {
            let mut db = self.db()?;
            let tx = db.transaction().map_err(|e| self.sql(e))?;
            let peers = queue(&tx, subject, changes, now).map_err(|e| self.sql(e))?;
            tx.commit().map_err(|e| self.sql(e))?;
            peers
        };
        Ok(Corrected {
            records: 0,
            atoms: self.correct_copies(subject, changes)?,
            peers,
        })
    }

    /// Corrects the copies of `subject`'s records in the atoms the store logged, through the
    /// rectifier if one is set; returns how many atoms changed.
    pub(super) fn correct_copies(
        &self,
        subject: &str,
        changes: &Map<String, Value>,
    ) -> Result<u64, NodeError> {
        let rectifier = self.inner.rectifier.lock().ok().and_then(|r| r.clone());
        let Some(rectify) = rectifier else {
            return Ok(0);
        };
        let mut corrections = Vec::with_capacity(changes.len());
        for (column, value) in changes {
            let value = match value {
                Value::Null => None,
                v => Some(ciborium::Value::serialized(v).map_err(|e| {
                    NodeError::Privacy(format!("the value of column `{column}`: {e}"))
                })?),
            };
            corrections.push((column.clone(), value));
        }
        rectify(subject, &corrections)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use libp2p::identity::Keypair;
    use pods_policy::ManualClock;

    use super::*;
    use crate::AuditLog;
    use crate::privacy::Format;

    const POLICY: &str = r#"
[[purpose]]
name = "research"

[[dataset]]
name = "patients"
subject = "pid"
columns = { pid = "identity.id", name = "contact.name", phone = "contact.phone" }
"#;
    const STREAM: &str = "/clinic/workflows/study/stream";

    fn open(dir: &std::path::Path) -> Privacy {
        let privacy = Privacy::open(dir, Arc::new(ManualClock::at(1_000))).unwrap();
        privacy.load_policy("policy.toml", POLICY).unwrap();
        privacy
    }

    fn changes(json: &str) -> Map<String, Value> {
        serde_json::from_str(json).unwrap()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(s, p)| ((*s).to_owned(), (*p).to_owned()))
            .collect()
    }

    #[test]
    fn a_rectification_goes_to_each_recipient_merged_until_answered_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let a = open(dir.path());
        a.import(
            "patients",
            Format::Csv,
            "pid,name,phone\nann,Ann,555\nbob,Bob,556\n",
            false,
        )
        .unwrap();
        a.record_lineage("b", STREAM, ["ann", "bob"]).unwrap();
        a.record_lineage("c", STREAM, ["ann"]).unwrap();

        let done = a
            .rectify("ann", "patients", &changes(r#"{"name":"Ann B"}"#))
            .unwrap();
        assert_eq!(
            (done.records, done.peers.clone()),
            (1, vec!["b".into(), "c".into()])
        );
        assert_eq!(
            a.pending_peer_rectifications().unwrap(),
            pairs(&[("ann", "b"), ("ann", "c")])
        );
        let first = a.peer_rectification("ann", "b").unwrap().unwrap();
        assert_eq!(first, r#"{"name":"Ann B"}"#);

        // A second correction while the first is pending: one request with both.
        a.rectify(
            "ann",
            "patients",
            &changes(r#"{"phone":null,"name":"Ann C"}"#),
        )
        .unwrap();
        let merged = a.peer_rectification("ann", "b").unwrap().unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&merged).unwrap(),
            serde_json::json!({"name": "Ann C", "phone": null})
        );
        drop(a);
        let a = open(dir.path());
        assert_eq!(
            a.pending_peer_rectifications().unwrap(),
            pairs(&[("ann", "b"), ("ann", "c")]),
            "pending across a restart"
        );
        // b answers the first request (sent before the merge): the merged one is still owed.
        assert!(!a.rectification_answered("ann", "b", &first).unwrap());
        assert!(a.peer_rectification("ann", "b").unwrap().is_some());
        assert!(a.rectification_answered("ann", "b", &merged).unwrap());
        assert_eq!(a.peer_rectification("ann", "b").unwrap(), None);
        assert_eq!(
            a.pending_peer_rectifications().unwrap(),
            pairs(&[("ann", "c")])
        );
        // Bob's correction goes to b alone.
        let bob = a
            .rectify("bob", "patients", &changes(r#"{"name":"Robert"}"#))
            .unwrap();
        assert_eq!(bob.peers, ["b"]);

        // Erasing ann makes her pending corrections moot (the peers erase instead).
        let key = Keypair::generate_ed25519();
        let audit = AuditLog::open(dir.path(), &key).unwrap();
        a.erase("ann", "a", &audit).unwrap();
        assert_eq!(
            a.pending_peer_rectifications().unwrap(),
            pairs(&[("bob", "b")])
        );
    }

    #[test]
    fn a_peers_request_is_passed_on_to_this_nodes_own_recipients() {
        let dir = tempfile::tempdir().unwrap();
        let b = open(dir.path());
        b.record_lineage("d", STREAM, ["ann"]).unwrap();
        let done = b
            .rectify_copies("ann", &changes(r#"{"name":"Ann B"}"#))
            .unwrap();
        assert_eq!(
            (done.records, done.atoms, done.peers),
            (0, 0, vec!["d".into()])
        );
        assert_eq!(
            b.pending_peer_rectifications().unwrap(),
            pairs(&[("ann", "d")])
        );
        // Nobody downstream of b for bob: nothing queued, nothing fails.
        let bob = b
            .rectify_copies("bob", &changes(r#"{"name":"Robert"}"#))
            .unwrap();
        assert!(bob.peers.is_empty());
        assert!(
            b.rectify_copies("", &Map::new()).is_err(),
            "a subject is named"
        );
    }
}
