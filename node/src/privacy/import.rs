//! Importing personal records into a dataset, and feeding them into the generator the dataset
//! names. The records and a note of the atom they become (`feeds`: the generator, the offset
//! the atom takes, the records' ids) are written in one transaction; the atom is then fed at
//! that offset and the note deleted. A crash in between leaves the note, and the next start
//! feeds the atom from the stored records ([`Privacy::resume_feeds`]); feeding at a fixed offset
//! makes a second feed of the same atom a no-op, so an import reaches its workflows once.

use pods_sdk::{Envelope, Event};
use rusqlite::params;
use serde_json::{Map, Value};

use super::records::{self, Format, ImportReport};
use super::{Feed, Privacy, Row};
use crate::error::NodeError;

/// An import a crash cut, finished at a start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResumedImport {
    /// The dataset imported into.
    pub dataset: String,
    /// Its records still stored.
    pub records: u64,
    /// `true` if the start fed them (`false`: fed before the crash, or none left).
    pub fed: bool,
}

impl Privacy {
    /// Imports the rows of `text` into `dataset`. With a bad row, nothing is imported unless
    /// `skip_bad`; then the good rows are, and the bad ones reported. If the dataset feeds a
    /// generator, the rows reach it as one atom, once, even across a crash.
    pub fn import(
        &self,
        dataset: &str,
        format: Format,
        text: &str,
        skip_bad: bool,
    ) -> Result<ImportReport, NodeError> {
        let policy = self.policy();
        let Some(schema) = policy.dataset(dataset) else {
            let known: Vec<&str> = policy.datasets().map(|d| d.name.as_str()).collect();
            return Err(NodeError::Privacy(format!(
                "dataset `{dataset}` is not in the policy (it declares: {}); add a [[dataset]] and load the policy first",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            )));
        };
        let (good, bad) = records::parse(schema, format, text);
        if !bad.is_empty() && !skip_bad {
            return Err(NodeError::ImportRefused { bad });
        }
        // One import feeds at a time, so that the offset read here is the one its atom takes.
        let _feeding = self
            .inner
            .importing
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let target = match &schema.feed {
            Some(path) if !good.is_empty() => {
                let feeds = self.feeds(dataset, path)?;
                let offset = feeds.next(path)?;
                Some((feeds, path, offset))
            }
            _ => None,
        };
        let now = self.inner.gate.now();
        let mut db = self.db()?;
        let tx = db.transaction().map_err(|e| self.sql(e))?;
        let mut subjects = std::collections::BTreeSet::new();
        let mut ids = None;
        {
            let mut insert = tx
                .prepare(
                    "INSERT INTO records (dataset, subject, body, collected_at)
                     VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(|e| self.sql(e))?;
            for (_, subject, fields) in &good {
                let body = Value::Object(fields.clone()).to_string();
                insert
                    .execute(params![dataset, subject, body, now as i64])
                    .map_err(|e| self.sql(e))?;
                let id = tx.last_insert_rowid();
                ids = Some(ids.map_or((id, id), |(first, _)| (first, id)));
                subjects.insert(subject.clone());
            }
        }
        let mut note = None;
        if let (Some((_, path, offset)), Some((first, last))) = (&target, ids) {
            tx.execute(
                "INSERT INTO feeds (dataset, path, offset, first, last) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![dataset, path, *offset as i64, first, last],
            )
            .map_err(|e| self.sql(e))?;
            note = Some(tx.last_insert_rowid());
        }
        tx.commit().map_err(|e| self.sql(e))?;
        drop(db);
        crate::store::failpoint::reach("import.stored");
        if let (Some((feeds, path, offset)), Some(note), Some((first, _))) = (target, note, ids) {
            let rows = good.iter().map(|(_, s, f)| (s.as_str(), f, now));
            if let Err(e) = feeds.feed(path, offset, events(schema, rows)) {
                // Stored but not fed: take the rows back, so that the import is all or nothing.
                let mut db = self.db()?;
                let tx = db.transaction().map_err(|e| self.sql(e))?;
                tx.execute(
                    "DELETE FROM records WHERE dataset = ?1 AND id >= ?2",
                    params![dataset, first],
                )
                .and_then(|_| tx.execute("DELETE FROM feeds WHERE id = ?1", [note]))
                .map_err(|e| self.sql(e))?;
                tx.commit().map_err(|e| self.sql(e))?;
                return Err(e);
            }
            self.fed(note)?;
        }
        Ok(ImportReport {
            dataset: dataset.to_owned(),
            imported: good.len() as u64,
            subjects: subjects.len() as u64,
            skipped: bad,
        })
    }

    /// Finishes the imports a crash cut after storing their records (call it once the apps
    /// are launched, before anything else imports): feeds each one's atom unless its offset is
    /// already taken (fed before the crash). Records erased or purged since are left out; an
    /// import none of whose records remain is not fed. Returns what it finished, to audit
    /// (the command that made them never returned).
    pub fn resume_feeds(&self) -> Result<Vec<ResumedImport>, NodeError> {
        let notes: Vec<(i64, String, String, i64, i64, i64)> = {
            let db = self.db()?;
            let mut stmt = db
                .prepare("SELECT id, dataset, path, offset, first, last FROM feeds ORDER BY id")
                .map_err(|e| self.sql(e))?;
            stmt.query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })
            .and_then(|rows| rows.collect::<Result<_, _>>())
            .map_err(|e| self.sql(e))?
        };
        let policy = self.policy();
        let mut done = Vec::new();
        for (note, dataset, path, offset, first, last) in notes {
            let Some(schema) = policy.dataset(&dataset) else {
                tracing::warn!(%dataset, %path, "an import was not fed before a restart, and the policy no longer declares its dataset; its records stay stored, unfed");
                self.fed(note)?;
                continue;
            };
            let feeds = self.feeds(&dataset, &path)?;
            let next = feeds.next(&path)?;
            let offset = offset as u64;
            if next < offset {
                return Err(NodeError::Privacy(format!(
                    "an import into {path} was to be atom {offset}, but the generator's next atom is {next}: its fed atoms were lost; restore {path}'s data dir or delete the row of `feeds` in policy.db to drop the import's feed"
                )));
            }
            let stored = self.stored_rows(&dataset, first, last)?;
            let fed = next == offset && !stored.is_empty();
            if fed {
                let rows = stored.iter().map(|(s, f, at)| (s.as_str(), f, *at));
                feeds.feed(&path, offset, events(schema, rows))?;
                tracing::info!(%dataset, %path, offset, records = stored.len(), "fed an import a restart had cut");
            }
            self.fed(note)?;
            done.push(ResumedImport {
                dataset,
                records: stored.len() as u64,
                fed,
            });
        }
        Ok(done)
    }

    /// The node's generators, to feed `dataset`'s records into `path`.
    fn feeds(&self, dataset: &str, path: &str) -> Result<Feed, NodeError> {
        let feed = self.inner.feed.lock().ok().and_then(|f| f.clone());
        feed.ok_or_else(|| {
            NodeError::Privacy(format!(
                "dataset `{dataset}` feeds {path}, but this node runs no apps to feed"
            ))
        })
    }

    /// Deletes an import's feed note: its atom is fed.
    fn fed(&self, note: i64) -> Result<(), NodeError> {
        self.db()?
            .execute("DELETE FROM feeds WHERE id = ?1", [note])
            .map(|_| ())
            .map_err(|e| self.sql(e))
    }

    /// The stored records `first..=last` of `dataset` (subject, fields, collection time).
    fn stored_rows(
        &self,
        dataset: &str,
        first: i64,
        last: i64,
    ) -> Result<Vec<(String, Row, u64)>, NodeError> {
        let db = self.db()?;
        let mut stmt = db
            .prepare(
                "SELECT subject, body, collected_at FROM records
                 WHERE dataset = ?1 AND id BETWEEN ?2 AND ?3 ORDER BY id",
            )
            .map_err(|e| self.sql(e))?;
        let rows: Vec<(String, String, i64)> = stmt
            .query_map(params![dataset, first, last], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .and_then(|rows| rows.collect::<Result<_, _>>())
            .map_err(|e| self.sql(e))?;
        rows.into_iter()
            .map(|(subject, body, at)| match serde_json::from_str::<Map<String, Value>>(&body) {
                Ok(fields) => Ok((subject, fields, at as u64)),
                Err(e) => Err(NodeError::Privacy(format!(
                    "{}: a record of dataset `{dataset}` does not hold a JSON object ({e}); the file is damaged",
                    self.inner.file.display()
                ))),
            })
            .collect()
    }
}

/// The atom of personal events that rows (subject, fields, collection time) of `schema` become:
/// the envelope names the subject and the categories of the row's columns.
fn events<'a>(
    schema: &pods_policy::Dataset,
    rows: impl Iterator<Item = (&'a str, &'a Row, u64)>,
) -> Vec<Event<Row>> {
    rows.map(|(subject, fields, collected)| {
        // The subject's own column is the envelope's subject, not a category.
        let categories: Vec<&str> = fields
            .keys()
            .filter(|k| **k != schema.subject)
            .filter_map(|k| schema.columns.get(k))
            .map(|c| c.as_str())
            .collect();
        let envelope = Envelope::new(subject, &categories).collected_at(collected);
        Event::personal(fields.clone(), envelope)
    })
    .collect()
}

#[cfg(test)]
#[path = "import_tests.rs"]
mod tests;
