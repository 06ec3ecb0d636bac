//! The database's schema: an application id that marks the file as Pods', a version, and the
//! migrations that bring an older file up to date. Opening checks all three before anything is
//! written, so the node never starts empty over existing data.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use crate::error::NodeError;

/// `PRAGMA application_id` of a Pods database ("Pods" in ASCII).
pub(crate) const APPLICATION_ID: i64 = 0x506f_6473;

/// The schema version this build writes; files of older versions are migrated.
pub(crate) const VERSION: i64 = 8;

/// Migrations: the statements that bring version `i` to `i + 1` are `MIGRATIONS[i]`.
const MIGRATIONS: &[&str] = &[
    // 0 → 1: changelog records per atom, compacted snapshots, input positions.
    "CREATE TABLE changelog (
         workflow INTEGER NOT NULL,
         step INTEGER NOT NULL,
         record BLOB NOT NULL,
         UNIQUE (workflow, step)
     );
     CREATE TABLE snapshot (
         workflow INTEGER NOT NULL,
         state INTEGER NOT NULL,
         keyed INTEGER NOT NULL,
         key INTEGER NOT NULL,
         value BLOB NOT NULL,
         PRIMARY KEY (workflow, state, keyed, key)
     ) WITHOUT ROWID;
     CREATE TABLE positions (
         workflow INTEGER PRIMARY KEY,
         path TEXT NOT NULL,
         step INTEGER NOT NULL,
         compacted INTEGER NOT NULL,
         stream TEXT,
         next INTEGER
     );",
    // 1 → 2: logged atoms of workflow outputs, and each workflow's count of output atoms.
    "CREATE TABLE atoms (
         stream TEXT NOT NULL,
         offset INTEGER NOT NULL,
         atom BLOB NOT NULL,
         UNIQUE (stream, offset)
     );
     ALTER TABLE positions ADD COLUMN produced INTEGER NOT NULL DEFAULT 0;",
    // 2 → 3: where the log of each stream fed by the host ends (its atoms may be truncated).
    "CREATE TABLE heads (
         stream TEXT PRIMARY KEY,
         next INTEGER NOT NULL
     );",
    // 3 → 4: the atom each workflow tried at its last launches, quarantined atoms, and the
    // replies each replier gave (so that an ask asked again gets the same reply).
    "CREATE TABLE attempts (
         workflow INTEGER PRIMARY KEY,
         stream TEXT NOT NULL,
         offset INTEGER NOT NULL,
         launches INTEGER NOT NULL
     );
     CREATE TABLE quarantine (
         workflow INTEGER NOT NULL,
         path TEXT NOT NULL,
         stream TEXT NOT NULL,
         offset INTEGER NOT NULL,
         atom BLOB NOT NULL,
         reason TEXT NOT NULL,
         at INTEGER NOT NULL,
         PRIMARY KEY (workflow, stream, offset)
     );
     CREATE TABLE answered (
         workflow INTEGER NOT NULL,
         origin INTEGER NOT NULL,
         scope INTEGER NOT NULL,
         partition INTEGER NOT NULL,
         seq INTEGER NOT NULL,
         reply BLOB NOT NULL,
         at INTEGER NOT NULL,
         PRIMARY KEY (workflow, origin, scope, partition, seq)
     ) WITHOUT ROWID;",
    // 4 → 5: the last time the node was seen running (kept replies age only while it runs).
    "CREATE TABLE clock (
         id INTEGER PRIMARY KEY CHECK (id = 0),
         alive INTEGER NOT NULL
     );",
    // 5 → 6: a key per data subject (under the SHA-256 digest of its id), which seals its
    // personal payloads, and the erasures whose checkpoint has not completed yet.
    "CREATE TABLE subject_keys (
         subject BLOB PRIMARY KEY,
         key BLOB NOT NULL
     ) WITHOUT ROWID;
     CREATE TABLE erasures (
         id INTEGER PRIMARY KEY
     );",
    // 6 → 7: the replies a step gave to the asks of one asking atom, kept as one row (a step
    // answering 1,000 asks wrote 1,000 rows into `answered`, which older stores still read).
    "CREATE TABLE answer_sets (
         workflow INTEGER NOT NULL,
         origin INTEGER NOT NULL,
         scope INTEGER NOT NULL,
         step INTEGER NOT NULL,
         replies BLOB NOT NULL,
         at INTEGER NOT NULL,
         PRIMARY KEY (workflow, origin, scope, step)
     ) WITHOUT ROWID;",
    // 7 → 8: state values may be stored sealed under their subject's key (payload tag 2) or
    // marked shared (tag 3), which an older build cannot read; and the digests of subjects
    // erased for good, for whom no key is stored again.
    "CREATE TABLE refused_keys (
         subject BLOB PRIMARY KEY
     ) WITHOUT ROWID;",
];

/// What marks a kind of Pods database: its application id, the version this build writes, and
/// the migrations up to it (`migrations[i]` brings version `i` to `i + 1`).
pub(crate) struct Schema {
    pub application_id: i64,
    pub version: i64,
    pub migrations: &'static [&'static str],
}

/// The store's schema (`pods.db`).
const STORE: Schema = Schema {
    application_id: APPLICATION_ID,
    version: VERSION,
    migrations: MIGRATIONS,
};

/// Opens (or creates) the store's database at `file`: checks that it is a Pods database of a
/// version this build reads, migrates an older one, and sets WAL journaling. Every connection
/// overwrites deleted content with zeros (`secure_delete`), so an erased key or a deleted
/// payload does not linger in free pages.
pub(crate) fn open(file: &Path, read_only: bool) -> Result<Connection, NodeError> {
    open_with(file, read_only, &STORE)
}

/// Opens (or creates) a database of `schema` at `file`, as [`open`] does for the store.
pub(crate) fn open_with(
    file: &Path,
    read_only: bool,
    schema: &Schema,
) -> Result<Connection, NodeError> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(file, flags).map_err(|e| NodeError::sqlite(file, e))?;
    let sql = |e| NodeError::sqlite(file, e);
    // The store caches about 20 statements across its paths (rusqlite keeps 16 by default):
    // room for all, so a commit never prepares one again.
    conn.set_prepared_statement_cache_capacity(64);
    conn.pragma_update(None, "secure_delete", "ON")
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
    if !fresh && application_id != schema.application_id {
        return Err(NodeError::Foreign {
            file: file.to_path_buf(),
        });
    }
    if version > schema.version {
        return Err(NodeError::NewerSchema {
            file: file.to_path_buf(),
            found: version,
            supported: schema.version,
        });
    }
    if version < schema.version {
        if read_only {
            return Err(NodeError::ReadOnly {
                file: file.to_path_buf(),
            });
        }
        migrate_with(&conn, schema, version, schema.version).map_err(sql)?;
        tracing::info!(file = %file.display(), from = version, to = schema.version, "schema migrated");
    }
    if !read_only {
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sql)?;
    }
    Ok(conn)
}

/// Applies the store's migrations from version `from` to `to` in one transaction.
#[cfg(test)]
pub(crate) fn migrate(conn: &Connection, from: i64, to: i64) -> rusqlite::Result<()> {
    migrate_with(conn, &STORE, from, to)
}

/// Applies `schema`'s migrations from version `from` to `to` in one transaction.
fn migrate_with(conn: &Connection, schema: &Schema, from: i64, to: i64) -> rusqlite::Result<()> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = (|| {
        let (from, to) = (
            usize::try_from(from).unwrap_or(0),
            usize::try_from(to).unwrap_or(0),
        );
        for step in schema.migrations.iter().take(to).skip(from) {
            conn.execute_batch(step)?;
        }
        conn.pragma_update(None, "application_id", schema.application_id)?;
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
