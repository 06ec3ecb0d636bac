//! Rectification beyond this node (GDPR art. 19): the peers that pulled a stream holding a
//! subject's data (the lineage's stream exports) are asked to correct their copies too. A
//! rectification queues one row per such peer in `rectification_peers`, in the transaction
//! that corrects the records, so a crash loses no request; a later rectification of the same
//! subject merges into a row still pending (a later value of a column wins, as applying both in
//! turn would). The network task sends each row until the peer answers, then drops it: the row
//! holds the corrected values, which are personal data, kept only while the peer owes the
//! correction (a peer that refuses for good drops it too). A peer's request corrects the copies
//! of what this node mirrors from that peer, and goes no further: what this node derived from
//! them and sent on is its own data, as state derived from records is not corrected either.

use rusqlite::{OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::Privacy;
use crate::error::NodeError;

/// Queues `changes` of `subject` for every peer that pulled a stream holding the subject's
/// data; returns those peers. (Peers that got a portal's reply are not asked: a reply is an
/// answer to their own question, not a copy of the records.)
pub(super) fn queue(
    tx: &Transaction<'_>,
    subject: &str,
    changes: &Map<String, Value>,
    now: u64,
) -> rusqlite::Result<Vec<String>> {
    let digest = pods_policy::subject_digest(subject);
    let peers: Vec<String> = tx
        .prepare(
            "SELECT DISTINCT peer FROM lineage WHERE subject = ?1 AND export LIKE '%/stream'
             ORDER BY peer",
        )?
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

    /// The (subject, peer) pairs whose rectification request has not been answered: each
    /// peer's oldest first, the peers taken in turn, so that a peer that never answers does
    /// not hold back the others.
    pub fn pending_peer_rectifications(&self) -> Result<Vec<(String, String)>, NodeError> {
        let db = self.db()?;
        let mut stmt = db
            .prepare(
                "SELECT subject, peer FROM (
                     SELECT subject, peer, requested_at, ROW_NUMBER() OVER (
                         PARTITION BY peer ORDER BY requested_at, subject
                     ) AS turn FROM rectification_peers
                 ) ORDER BY turn, peer",
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

    /// `peer` refused to correct its copies of `subject`'s records for good (it mirrors
    /// nothing from this node, or not any more): the request is dropped, with the corrections
    /// it held.
    pub fn rectification_refused(&self, subject: &str, peer: &str) -> Result<(), NodeError> {
        let digest = pods_policy::subject_digest(subject);
        let db = self.db()?;
        db.execute(
            "DELETE FROM rectification_peers WHERE digest = ?1 AND peer = ?2",
            params![digest.as_slice(), peer],
        )
        .map_err(|e| self.sql(e))?;
        self.checkpoint(&db)
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

    /// A peer asks this node to correct its copies of `subject`'s records: corrects the atoms
    /// of `streams` (what this node mirrors from that peer); returns how many changed.
    pub fn rectify_copies(
        &self,
        subject: &str,
        changes: &Map<String, Value>,
        streams: &[String],
    ) -> Result<u64, NodeError> {
        if subject.is_empty() {
            return Err(NodeError::Privacy("the subject is empty".into()));
        }
        self.correct_copies(subject, changes, Some(streams))
    }

    /// Corrects the copies of `subject`'s records in the atoms the store logged (only those
    /// of `streams`, when given), through the rectifier if one is set; returns how many atoms
    /// changed.
    pub(super) fn correct_copies(
        &self,
        subject: &str,
        changes: &Map<String, Value>,
        streams: Option<&[String]>,
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
        rectify(subject, &corrections, streams)
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
        // p only got a portal's reply about ann: an answer to its question, not a copy.
        a.record_lineage("p", "/clinic/portals/care", ["ann"])
            .unwrap();

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
    fn a_peers_request_corrects_the_mirrored_copies_and_goes_no_further() {
        let dir = tempfile::tempdir().unwrap();
        let b = open(dir.path());
        // b sent what it derived from ann's data on to d: its own data, not asked about.
        b.record_lineage("d", STREAM, ["ann"]).unwrap();
        let mirrored = ["/research/generators/visits/stream".to_owned()];
        let atoms = b
            .rectify_copies("ann", &changes(r#"{"name":"Ann B"}"#), &mirrored)
            .unwrap();
        assert_eq!(atoms, 0, "no store here to correct");
        assert!(b.pending_peer_rectifications().unwrap().is_empty());
        assert!(
            b.rectify_copies("", &Map::new(), &mirrored).is_err(),
            "a subject is named"
        );
    }

    #[test]
    fn a_peer_that_never_answers_does_not_hold_back_the_others_and_a_refusal_drops_it() {
        let dir = tempfile::tempdir().unwrap();
        let a = open(dir.path());
        a.import(
            "patients",
            Format::Csv,
            "pid,name,phone\ns1,A,1\ns2,B,2\ns3,C,3\ns4,D,4\n",
            false,
        )
        .unwrap();
        for s in ["s1", "s2", "s3"] {
            a.record_lineage("gone", STREAM, [s]).unwrap();
        }
        a.record_lineage("here", STREAM, ["s4"]).unwrap();
        for s in ["s1", "s2", "s3", "s4"] {
            a.rectify(s, "patients", &changes(r#"{"name":"x"}"#))
                .unwrap();
        }
        assert_eq!(
            a.pending_peer_rectifications().unwrap(),
            pairs(&[
                ("s1", "gone"),
                ("s4", "here"),
                ("s2", "gone"),
                ("s3", "gone")
            ]),
            "the peers in turn"
        );
        a.rectification_refused("s2", "gone").unwrap();
        assert_eq!(
            a.pending_peer_rectifications().unwrap(),
            pairs(&[("s1", "gone"), ("s4", "here"), ("s3", "gone")])
        );
        assert_eq!(a.peer_rectification("s2", "gone").unwrap(), None);
    }
}
