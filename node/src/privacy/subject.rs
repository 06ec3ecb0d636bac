//! What a data subject can ask of the node: their records corrected, and handed
//! back with everything else kept about them (access and portability); and the retention
//! schedule that purges records past their categories' retention.

use pods_policy::Consent;
use rusqlite::params;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::Privacy;
use super::records::Record;
use crate::error::NodeError;

/// Corrects a subject's records where the store keeps copies of them (its logged atoms, or
/// only those of the streams given): given the subject and each column's new value (`None`:
/// removed), returns how many atoms changed.
pub type Rectifier = std::sync::Arc<
    dyn Fn(&str, &[crate::store::Correction], Option<&[String]>) -> Result<u64, NodeError>
        + Send
        + Sync,
>;

/// What a rectification changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Corrected {
    /// Records in `policy.db`.
    pub records: u64,
    /// Atoms the store logged that held copies of them.
    pub atoms: u64,
    /// The peers that pulled a stream holding the subject's data, asked to correct their
    /// copies (the node asks until each answers).
    pub peers: Vec<String>,
}

/// Which purposes processed a subject's data, where, and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Processing {
    /// The workflow or portal.
    pub path: String,
    /// Its purpose.
    pub purpose: String,
    /// First and last time (seconds since the Unix epoch).
    pub first_at: u64,
    /// Last time.
    pub last_at: u64,
    /// Events of the subject it admitted.
    pub events: u64,
}

/// A peer that received a subject's data through an export.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    /// The peer's name.
    pub peer: String,
    /// The exported stream or portal.
    pub export: String,
    /// First and last time.
    pub first_at: u64,
    /// Last time.
    pub last_at: u64,
}

/// Everything the node keeps about one subject (`pods subject export`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SubjectExport {
    /// The subject.
    pub subject: String,
    /// When this export was made.
    pub exported_at: u64,
    /// Their personal records.
    pub records: Vec<Record>,
    /// Their consents, with history.
    pub consents: Vec<Consent>,
    /// Whether processing of their data is restricted.
    pub restricted: bool,
    /// Which purposes processed their data.
    pub processing: Vec<Processing>,
    /// Which peers received their data.
    pub recipients: Vec<Recipient>,
}

impl Privacy {
    /// The subject's records, oldest first.
    pub fn records_of(&self, subject: &str) -> Result<Vec<Record>, NodeError> {
        let db = self.db()?;
        let mut stmt = db
            .prepare(
                "SELECT id, dataset, body, collected_at FROM records WHERE subject = ?1 ORDER BY id",
            )
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([subject], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })
            .map_err(|e| self.sql(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, dataset, body, collected_at) = row.map_err(|e| self.sql(e))?;
            let fields = match serde_json::from_str::<Value>(&body) {
                Ok(Value::Object(m)) => m,
                _ => {
                    return Err(NodeError::BadRecord {
                        file: self.inner.file.clone(),
                        what: format!("record {id}"),
                        detail: "its body is not a JSON object".into(),
                    });
                }
            };
            out.push(Record {
                id: id as u64,
                dataset,
                subject: subject.to_owned(),
                fields,
                collected_at: collected_at as u64,
            });
        }
        Ok(out)
    }

    /// Sets how the subject's records are corrected where the store keeps copies of them.
    pub fn set_rectifier(&self, rectifier: Rectifier) {
        if let Ok(mut r) = self.inner.rectifier.lock() {
            *r = Some(rectifier);
        }
    }

    /// Corrects the subject's records in `dataset`: each column in `changes` takes the new
    /// value (null removes it). The old values are overwritten in place (`secure_delete`) and
    /// the write-ahead log is checkpointed, so they are gone from the file; in the same
    /// transaction every peer that pulled a stream holding the subject's data gets a request
    /// to correct its copies (sent by the network task). Then the copies in the atoms the store logged are corrected
    /// through the rectifier, if one is set. Returns how many records and logged atoms changed,
    /// and the peers asked. If the second part fails, the records stay corrected and rectifying
    /// again completes it.
    pub fn rectify(
        &self,
        subject: &str,
        dataset: &str,
        changes: &Map<String, Value>,
    ) -> Result<Corrected, NodeError> {
        let policy = self.policy();
        let Some(schema) = policy.dataset(dataset) else {
            return Err(NodeError::Privacy(format!(
                "dataset `{dataset}` is not in the policy"
            )));
        };
        if let Some(k) = changes.keys().find(|k| !schema.columns.contains_key(*k)) {
            return Err(NodeError::Privacy(format!(
                "column `{k}` is not in dataset `{dataset}`"
            )));
        }
        if changes.contains_key(&schema.subject) {
            return Err(NodeError::Privacy(format!(
                "the subject column `{}` cannot be rectified: erase the subject and import the records again",
                schema.subject
            )));
        }
        let records: Vec<Record> = self
            .records_of(subject)?
            .into_iter()
            .filter(|r| r.dataset == dataset)
            .collect();
        let mut db = self.db()?;
        let tx = db.transaction().map_err(|e| self.sql(e))?;
        for r in &records {
            let mut fields = r.fields.clone();
            for (k, v) in changes {
                if v.is_null() {
                    fields.remove(k);
                } else {
                    fields.insert(k.clone(), v.clone());
                }
            }
            tx.execute(
                "UPDATE records SET body = ?1 WHERE id = ?2",
                params![Value::Object(fields).to_string(), r.id as i64],
            )
            .map_err(|e| self.sql(e))?;
        }
        let now = self.inner.gate.now();
        let peers =
            super::rectify_peers::queue(&tx, subject, changes, now).map_err(|e| self.sql(e))?;
        tx.commit().map_err(|e| self.sql(e))?;
        self.checkpoint(&db)?;
        drop(db);
        Ok(Corrected {
            records: records.len() as u64,
            atoms: self.correct_copies(subject, changes, None)?,
            peers,
        })
    }

    /// Deletes the records past their retention at the gate's time: a record is kept for the
    /// shortest retention among its dataset's columns' categories. Returns how many went.
    pub fn purge_expired(&self) -> Result<u64, NodeError> {
        let policy = self.policy();
        let now = self.inner.gate.now();
        let db = self.db()?;
        let mut purged = 0;
        for d in policy.datasets() {
            let keep = d
                .columns
                .values()
                .filter_map(|c| policy.retention_of(c))
                .min();
            if let Some(keep) = keep {
                let cutoff = now.saturating_sub(keep) as i64;
                purged += db
                    .execute(
                        "DELETE FROM records WHERE dataset = ?1 AND collected_at <= ?2",
                        params![d.name, cutoff],
                    )
                    .map_err(|e| self.sql(e))? as u64;
            }
        }
        if purged > 0 {
            self.checkpoint(&db)?;
            tracing::info!(purged, "records past retention purged");
        }
        Ok(purged)
    }

    /// Writes what the gate admitted since the last call into the processing log.
    pub fn flush_processing(&self) -> Result<u64, NodeError> {
        let drained = self.inner.gate.take_processing();
        if drained.is_empty() {
            return Ok(0);
        }
        let policy = self.policy();
        let mut db = self.db()?;
        let tx = db.transaction().map_err(|e| self.sql(e))?;
        let mut rows = 0;
        {
            let mut upsert = tx
                .prepare(
                    "INSERT INTO processing (tag, path, purpose, first_at, last_at, events)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (tag, path) DO UPDATE SET
                         last_at = max(last_at, excluded.last_at),
                         events = events + excluded.events,
                         purpose = excluded.purpose",
                )
                .map_err(|e| self.sql(e))?;
            for (path, subjects) in &drained {
                let purpose = policy
                    .workflow(path)
                    .or_else(|| policy.portal(path))
                    .map_or_else(String::new, |r| r.purpose.to_string());
                for (tag, p) in subjects {
                    upsert
                        .execute(params![
                            *tag as i64,
                            path,
                            purpose,
                            p.first_at as i64,
                            p.last_at as i64,
                            p.events as i64
                        ])
                        .map_err(|e| self.sql(e))?;
                    rows += 1;
                }
            }
        }
        tx.commit().map_err(|e| self.sql(e))?;
        Ok(rows)
    }

    /// Everything kept about `subject`.
    pub fn export_subject(&self, subject: &str) -> Result<SubjectExport, NodeError> {
        // What the gate admitted up to now is in the log the export reads.
        self.flush_processing()?;
        let records = self.records_of(subject)?;
        let consents = self.consents(Some(subject));
        let restricted = self.inner.gate.read().registry().is_restricted(subject);
        let db = self.db()?;
        let mut stmt = db
            .prepare(
                "SELECT path, purpose, first_at, last_at, events FROM processing
                 WHERE tag = ?1 ORDER BY first_at, path",
            )
            .map_err(|e| self.sql(e))?;
        let tag = pods_policy::subject_tag(subject) as i64;
        let processing = stmt
            .query_map([tag], |r| {
                Ok(Processing {
                    path: r.get(0)?,
                    purpose: r.get(1)?,
                    first_at: r.get::<_, i64>(2)? as u64,
                    last_at: r.get::<_, i64>(3)? as u64,
                    events: r.get::<_, i64>(4)? as u64,
                })
            })
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .map_err(|e| self.sql(e))?;
        let mut stmt = db
            .prepare(
                "SELECT peer, export, first_at, last_at FROM lineage
                 WHERE subject = ?1 ORDER BY first_at, peer",
            )
            .map_err(|e| self.sql(e))?;
        let recipients = stmt
            .query_map([subject], |r| {
                Ok(Recipient {
                    peer: r.get(0)?,
                    export: r.get(1)?,
                    first_at: r.get::<_, i64>(2)? as u64,
                    last_at: r.get::<_, i64>(3)? as u64,
                })
            })
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .map_err(|e| self.sql(e))?;
        Ok(SubjectExport {
            subject: subject.to_owned(),
            exported_at: self.inner.gate.now(),
            records,
            consents,
            restricted,
            processing,
            recipients,
        })
    }
}
