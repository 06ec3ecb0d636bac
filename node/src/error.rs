//! The node's errors: each names the file or directory concerned and what to do.

use std::path::PathBuf;

/// Why the node could not open, read or write its data.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The configuration contradicts itself.
    #[error("configuration: {0}")]
    Config(String),
    /// `pods.toml` is missing, does not parse, or does not validate; nothing was changed.
    #[error("{file}: {}", problems.join("; "))]
    Settings {
        /// The settings file.
        file: PathBuf,
        /// Every problem found, each with its place.
        problems: Vec<String>,
    },
    /// The node's identity cannot be created or read.
    #[error("identity {file}: {reason}")]
    Identity {
        /// The key file.
        file: PathBuf,
        /// What is wrong and what to do.
        reason: String,
    },
    /// The network could not start (a listen address in use, for example).
    #[error("network: {0}")]
    Network(String),
    /// The admin API could not start or answer.
    #[error("admin API: {0}")]
    Admin(String),
    /// The data directory cannot be created or read.
    #[error("data dir {path}: {reason}; check the path and its permissions")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// The file is a SQLite database of another application.
    #[error(
        "{file} is not a Pods database (it belongs to another application); point the node at an empty directory or at a Pods data dir"
    )]
    Foreign {
        /// The database file.
        file: PathBuf,
    },
    /// The file is damaged or not a database at all; the node never starts empty over it.
    #[error(
        "{file} is damaged ({detail}); restore it from a backup, or move it away to start a new node"
    )]
    Damaged {
        /// The database file.
        file: PathBuf,
        /// What SQLite reported.
        detail: String,
    },
    /// The database was written by a newer version of Pods.
    #[error(
        "{file} has schema version {found}, newer than this build's {supported}; run a Pods release that supports version {found}"
    )]
    NewerSchema {
        /// The database file.
        file: PathBuf,
        /// The version in the file.
        found: i64,
        /// The newest version this build reads.
        supported: i64,
    },
    /// The database cannot be written.
    #[error("{file} is read-only; give the node write access to its data dir")]
    ReadOnly {
        /// The database file.
        file: PathBuf,
    },
    /// The disk (or the database's size limit) is full; the last commit was not applied.
    #[error("{file}: the disk is full; free space, then restart the node (nothing was lost)")]
    DiskFull {
        /// The database file.
        file: PathBuf,
    },
    /// A record in the database could not be decoded.
    #[error("{file}: record {what} cannot be decoded ({detail}); the file is damaged")]
    BadRecord {
        /// The database file.
        file: PathBuf,
        /// Which record.
        what: String,
        /// The decoder's message.
        detail: String,
    },
    /// The audit log departs from what the node signed: `tamper` names the first bad entry
    /// (edited, removed, inserted, reordered) or a changed head.
    #[error("{file}: the audit log was tampered with: {tamper}")]
    AuditTampered {
        /// The audit database.
        file: PathBuf,
        /// The first place where it departs, and how.
        tamper: pods_policy::audit::Tamper,
    },
    /// The app or the runtime refused an operation (see the sdk's error).
    #[error(transparent)]
    App(#[from] pods_sdk::Error),
    /// A policy, consent or policy-file problem (see the policy crate's error).
    #[error(transparent)]
    Policy(#[from] pods_policy::PolicyError),
    /// A request about personal data that cannot be done as asked.
    #[error("{0}")]
    Privacy(String),
    /// An import file has bad rows and skipping them was not asked for: nothing was imported.
    #[error(
        "{} bad row(s) in the file; nothing was imported (fix them, or pass --skip-bad to import the good rows):\n{}",
        bad.len(),
        bad.iter().take(20).map(|b| format!("  line {}: {}", b.line, b.problem)).collect::<Vec<_>>().join("\n")
    )]
    ImportRefused {
        /// Every bad row.
        bad: Vec<crate::privacy::BadRow>,
    },
    /// Any other SQLite failure.
    #[error("{file}: {detail}")]
    Sqlite {
        /// The database file.
        file: PathBuf,
        /// What SQLite reported.
        detail: String,
    },
}

impl NodeError {
    /// Classifies a SQLite error on `file`.
    pub(crate) fn sqlite(file: &std::path::Path, e: rusqlite::Error) -> NodeError {
        use rusqlite::ErrorCode;
        let file = file.to_path_buf();
        match e.sqlite_error_code() {
            Some(ErrorCode::NotADatabase) | Some(ErrorCode::DatabaseCorrupt) => {
                NodeError::Damaged {
                    file,
                    detail: e.to_string(),
                }
            }
            Some(ErrorCode::ReadOnly) | Some(ErrorCode::CannotOpen) if is_read_only(&e) => {
                NodeError::ReadOnly { file }
            }
            Some(ErrorCode::DiskFull) => NodeError::DiskFull { file },
            _ => NodeError::Sqlite {
                file,
                detail: e.to_string(),
            },
        }
    }
}

fn is_read_only(e: &rusqlite::Error) -> bool {
    matches!(e.sqlite_error_code(), Some(rusqlite::ErrorCode::ReadOnly))
        || e.to_string().contains("readonly")
}
