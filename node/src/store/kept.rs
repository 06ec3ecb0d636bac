//! Reading the replies a node kept, beside the running store: the network answers an ask a
//! peer sends again (after a lost reply, or a crash of either node) with the reply its
//! replier committed, without the replier seeing it twice.

use std::path::{Path, PathBuf};

use pods_sdk::AskId;
use rusqlite::Connection;

use super::schema;
use crate::error::NodeError;

/// A read-only view of the kept replies, on its own connection (WAL lets it read while the
/// store writes).
pub struct KeptReplies {
    conn: Connection,
    file: PathBuf,
    /// Whether the store held per-reply rows of an older schema when opened.
    legacy: bool,
}

impl KeptReplies {
    /// Opens the kept replies of the node in `dir` (its store must exist).
    pub fn open(dir: &Path) -> Result<KeptReplies, NodeError> {
        let file = dir.join(super::DATABASE);
        let conn = schema::open(&file, true)?;
        let legacy = super::answers::has_legacy(&conn).map_err(|e| NodeError::sqlite(&file, e))?;
        Ok(KeptReplies { conn, file, legacy })
    }

    /// The replies workflow `workflow` (its path's stable id) committed to asks of `origin`
    /// made in `scope`, by partition and position: one query for all the asks an atom made.
    pub fn replies(
        &self,
        workflow: u64,
        origin: u64,
        scope: u64,
    ) -> Result<Vec<(AskId, Vec<u8>)>, NodeError> {
        let atom = Some((origin, scope));
        super::answers::read(&self.conn, &self.file, workflow, atom, self.legacy)
    }

    /// The highest scope (as an unsigned number) in which workflow `workflow` kept replies to
    /// asks of `origin`, `None` if it kept none: an ask in a higher scope cannot have a kept
    /// reply. It reads the sets of schema 7 and later only: with
    /// [`KeptReplies::has_legacy_rows`], every ask must be looked up.
    pub fn highest_scope(&self, workflow: u64, origin: u64) -> Result<Option<u64>, NodeError> {
        super::answers::highest_scope(&self.conn, &self.file, workflow, origin)
    }

    /// Whether the store held per-reply rows of a schema older than 7 when opened.
    pub fn has_legacy_rows(&self) -> bool {
        self.legacy
    }
}
