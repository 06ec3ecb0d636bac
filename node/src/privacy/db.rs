//! `policy.db`: the node's policy, consents (with history), restrictions, erasures, imported
//! personal records, lineage (which subjects' data went to which peer) and the processing log.
//! Opened with `secure_delete`, so deleted rows are overwritten, not left in free pages.

use std::path::Path;

use pods_policy::{Category, Consent, ConsentId, Purpose};
use rusqlite::{Connection, Row, params};

use crate::error::NodeError;
use crate::store::schema::{Schema, open_with};

/// The file's name in a data dir.
pub const POLICY_DB: &str = "policy.db";

/// `PRAGMA application_id` of a policy database ("Podp").
const APPLICATION_ID: i64 = 0x506f_6470;

const MIGRATIONS: &[&str] = &[
    "CREATE TABLE policy (
         id INTEGER PRIMARY KEY CHECK (id = 0),
         text TEXT NOT NULL,
         loaded_at INTEGER NOT NULL
     );
     CREATE TABLE consents (
         id INTEGER PRIMARY KEY,
         subject TEXT NOT NULL,
         purposes TEXT NOT NULL,
         categories TEXT NOT NULL,
         granted_at INTEGER NOT NULL,
         expires_at INTEGER,
         withdrawn_at INTEGER,
         source TEXT NOT NULL
     );
     CREATE INDEX consents_subject ON consents (subject);
     CREATE TABLE restricted (subject TEXT PRIMARY KEY, since INTEGER NOT NULL);
     CREATE TABLE erased (digest BLOB PRIMARY KEY, at INTEGER NOT NULL);
     CREATE TABLE records (
         id INTEGER PRIMARY KEY,
         dataset TEXT NOT NULL,
         subject TEXT NOT NULL,
         body TEXT NOT NULL,
         collected_at INTEGER NOT NULL
     );
     CREATE INDEX records_subject ON records (subject);
     CREATE INDEX records_collected ON records (collected_at);
     CREATE TABLE lineage (
         subject TEXT NOT NULL,
         peer TEXT NOT NULL,
         export TEXT NOT NULL,
         first_at INTEGER NOT NULL,
         last_at INTEGER NOT NULL,
         PRIMARY KEY (subject, peer, export)
     ) WITHOUT ROWID;
     CREATE TABLE processing (
         tag INTEGER NOT NULL,
         path TEXT NOT NULL,
         purpose TEXT NOT NULL,
         first_at INTEGER NOT NULL,
         last_at INTEGER NOT NULL,
         events INTEGER NOT NULL,
         PRIMARY KEY (tag, path)
     ) WITHOUT ROWID;
     CREATE TABLE erasures (
         digest BLOB PRIMARY KEY,
         subject TEXT,
         started_at INTEGER NOT NULL,
         done_at INTEGER,
         receipt TEXT
     );
     CREATE TABLE erasure_peers (
         digest BLOB NOT NULL,
         peer TEXT NOT NULL,
         acknowledged_at INTEGER,
         acknowledgement TEXT,
         PRIMARY KEY (digest, peer)
     ) WITHOUT ROWID;",
    // Imports not yet fed into their generator: the records `first..=last` of `dataset`, as
    // the atom at `offset` of `path`. Written with the records; deleted once fed.
    "CREATE TABLE feeds (
         id INTEGER PRIMARY KEY,
         dataset TEXT NOT NULL,
         path TEXT NOT NULL,
         offset INTEGER NOT NULL,
         first INTEGER NOT NULL,
         last INTEGER NOT NULL
     );",
    // The erased subject's tag (the processing log's), so that the gate tells a subject that
    // was not erased without hashing its id with SHA-256; NULL for erasures stored before.
    "ALTER TABLE erased ADD COLUMN tag INTEGER;",
    // Rectifications a peer that received the subject's data has not applied yet: the
    // corrections to send (a JSON object), merged while pending, deleted once answered.
    "CREATE TABLE rectification_peers (
         digest BLOB NOT NULL,
         peer TEXT NOT NULL,
         subject TEXT NOT NULL,
         changes TEXT NOT NULL,
         requested_at INTEGER NOT NULL,
         PRIMARY KEY (digest, peer)
     ) WITHOUT ROWID;",
];

const SCHEMA: Schema = Schema {
    application_id: APPLICATION_ID,
    version: MIGRATIONS.len() as i64,
    migrations: MIGRATIONS,
};

/// Opens (or creates) `DIR/policy.db`.
pub(crate) fn open(dir: &Path, read_only: bool) -> Result<Connection, NodeError> {
    let file = dir.join(POLICY_DB);
    let conn = open_with(&file, read_only, &SCHEMA)?;
    conn.pragma_update(None, "secure_delete", "ON")
        .and_then(|()| conn.busy_timeout(std::time::Duration::from_secs(5)))
        .map_err(|e| NodeError::sqlite(&file, e))?;
    Ok(conn)
}

fn names<T: ToString>(list: &[T]) -> String {
    serde_json::to_string(&list.iter().map(T::to_string).collect::<Vec<_>>()).unwrap_or_default()
}

/// Writes a consent record (new, or changed by a withdrawal).
pub(crate) fn put_consent(conn: &Connection, c: &Consent) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT OR REPLACE INTO consents
         (id, subject, purposes, categories, granted_at, expires_at, withdrawn_at, source)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            c.id.0 as i64,
            c.subject,
            names(&c.purposes),
            names(&c.categories),
            c.granted_at as i64,
            c.expires_at.map(|t| t as i64),
            c.withdrawn_at.map(|t| t as i64),
            c.source
        ],
    )?;
    Ok(())
}

/// Reads a consent row; a row that does not parse is a damaged file.
pub(crate) fn consent_of(row: &Row<'_>) -> rusqlite::Result<Result<Consent, String>> {
    let purposes: String = row.get(2)?;
    let categories: String = row.get(3)?;
    let parse = || -> Result<Consent, String> {
        let p: Vec<String> = serde_json::from_str(&purposes).map_err(|e| e.to_string())?;
        let c: Vec<String> = serde_json::from_str(&categories).map_err(|e| e.to_string())?;
        Ok(Consent {
            id: ConsentId(0),
            subject: String::new(),
            purposes: p
                .into_iter()
                .map(Purpose::new)
                .collect::<Result<_, _>>()
                .map_err(|e| e.to_string())?,
            categories: c
                .into_iter()
                .map(Category::new)
                .collect::<Result<_, _>>()
                .map_err(|e| e.to_string())?,
            granted_at: 0,
            expires_at: None,
            withdrawn_at: None,
            source: String::new(),
        })
    };
    let id: i64 = row.get(0)?;
    let subject: String = row.get(1)?;
    let granted_at: i64 = row.get(4)?;
    let expires_at: Option<i64> = row.get(5)?;
    let withdrawn_at: Option<i64> = row.get(6)?;
    let source: String = row.get(7)?;
    Ok(parse().map(|c| Consent {
        id: ConsentId(id as u64),
        subject,
        granted_at: granted_at as u64,
        expires_at: expires_at.map(|t| t as u64),
        withdrawn_at: withdrawn_at.map(|t| t as u64),
        source,
        ..c
    }))
}

/// The columns `consent_of` reads, in order.
pub(crate) const CONSENT_COLUMNS: &str =
    "id, subject, purposes, categories, granted_at, expires_at, withdrawn_at, source";
