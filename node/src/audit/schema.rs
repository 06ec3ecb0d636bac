//! The audit database's schema: its own application id (so it is never mistaken for the
//! node's store, nor the store for it), a version, and the migrations that bring an older file
//! up to date. Opening checks all three before anything is written.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use crate::error::NodeError;

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

/// Opens (or, unless `read_only`, creates) the audit database at `file`: checks that it is a
/// Pods audit database of a version this build reads, migrates an older one, and sets WAL
/// journaling with a full sync at each commit.
pub(crate) fn open(file: &Path, read_only: bool) -> Result<Connection, NodeError> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(file, flags).map_err(|e| NodeError::sqlite(file, e))?;
    let sql = |e| NodeError::sqlite(file, e);
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(sql)?;
    // The first read: a file that is not a database fails here.
    let application_id: i64 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(sql)?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sql)?;
    let objects: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
        .map_err(sql)?;
    let fresh = application_id == 0 && version == 0 && objects == 0;
    if !fresh && application_id != APPLICATION_ID {
        return Err(NodeError::Foreign {
            file: file.to_path_buf(),
        });
    }
    if version > VERSION {
        return Err(NodeError::NewerSchema {
            file: file.to_path_buf(),
            found: version,
            supported: VERSION,
        });
    }
    if version < VERSION {
        if read_only {
            return Err(NodeError::ReadOnly {
                file: file.to_path_buf(),
            });
        }
        migrate(&conn, version, VERSION).map_err(sql)?;
        tracing::info!(file = %file.display(), from = version, to = VERSION, "audit schema migrated");
    }
    if !read_only {
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sql)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(sql)?;
    }
    Ok(conn)
}

/// Applies the migrations from version `from` to `to` in one transaction.
fn migrate(conn: &Connection, from: i64, to: i64) -> rusqlite::Result<()> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = (|| {
        let (from, to) = (
            usize::try_from(from).unwrap_or(0),
            usize::try_from(to).unwrap_or(0),
        );
        for step in MIGRATIONS.iter().take(to).skip(from) {
            conn.execute_batch(step)?;
        }
        conn.pragma_update(None, "application_id", APPLICATION_ID)?;
        conn.pragma_update(None, "user_version", to as i64)?;
        Ok(())
    })();
    match result {
        Ok(()) => conn.execute_batch("COMMIT"),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}
