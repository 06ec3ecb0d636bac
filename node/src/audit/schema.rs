//! The audit database's schema: its own application id (so it is never mistaken for the
//! node's store, nor the store for it), a version, and the migrations that bring an older file
//! up to date. Opening checks all three before anything is written.

use std::path::Path;

use rusqlite::Connection;

use crate::error::NodeError;
use crate::store::schema::{Schema, open_with};

/// `PRAGMA application_id` of a Pods audit database ("PAud" in ASCII; the store's is "Pods").
pub(crate) const APPLICATION_ID: i64 = 0x5041_7564;

/// The schema version this build writes; files of older versions are migrated.
pub(crate) const VERSION: i64 = 1;

/// Migrations: the statements that bring version `i` to `i + 1` are `MIGRATIONS[i]`.
const MIGRATIONS: &[&str] = &[
    // 0 → 1: the entries, by seq, and the signed head (count and last hash).
    "CREATE TABLE entries (
         seq INTEGER PRIMARY KEY,
         at INTEGER NOT NULL,
         actor TEXT NOT NULL,
         action TEXT NOT NULL,
         detail TEXT NOT NULL,
         prev BLOB NOT NULL,
         hash BLOB NOT NULL,
         signature BLOB NOT NULL
     );
     CREATE TABLE head (
         id INTEGER PRIMARY KEY CHECK (id = 0),
         count INTEGER NOT NULL,
         hash BLOB NOT NULL,
         signature BLOB NOT NULL
     );",
];

const SCHEMA: Schema = Schema {
    application_id: APPLICATION_ID,
    version: VERSION,
    migrations: MIGRATIONS,
};

/// Opens (or, unless `read_only`, creates) the audit database at `file`: checks that it is a
/// Pods audit database of a version this build reads, migrates an older one, and sets WAL
/// journaling with a full sync at each commit.
pub(crate) fn open(file: &Path, read_only: bool) -> Result<Connection, NodeError> {
    let conn = open_with(file, read_only, &SCHEMA)?;
    let sql = |e| NodeError::sqlite(file, e);
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(sql)?;
    if !read_only {
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(sql)?;
    }
    Ok(conn)
}
