//! Reading the replies a node kept, beside the running store: the network answers an ask a
//! peer sends again (after a lost reply, or a crash of either node) with the reply its
//! replier committed, without the replier seeing it twice.

use std::path::{Path, PathBuf};

use pods_sdk::AskId;
use rusqlite::{Connection, params};

use super::recover::open_payload;
use super::{schema, signed};
use crate::error::NodeError;

/// A read-only view of the kept replies, on its own connection (WAL lets it read while the
/// store writes).
pub struct KeptReplies {
    conn: Connection,
    file: PathBuf,
}

impl KeptReplies {
    /// Opens the kept replies of the node in `dir` (its store must exist).
    pub fn open(dir: &Path) -> Result<KeptReplies, NodeError> {
        let file = dir.join(super::DATABASE);
        let conn = schema::open(&file, true)?;
        Ok(KeptReplies { conn, file })
    }

    /// The replies workflow `workflow` (its path's stable id) committed to asks of `origin`
    /// made in `scope`, by partition and position: one query for all the asks an atom made.
    pub fn replies(
        &self,
        workflow: u64,
        origin: u64,
        scope: u64,
    ) -> Result<Vec<(AskId, Vec<u8>)>, NodeError> {
        let file = &self.file;
        let sql = |e| NodeError::sqlite(file, e);
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT partition, seq, reply FROM answered
                 WHERE workflow = ?1 AND origin = ?2 AND scope = ?3",
            )
            .map_err(sql)?;
        let rows = stmt
            .query_map(
                params![signed(workflow), signed(origin), signed(scope)],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, Vec<u8>>(2)?,
                    ))
                },
            )
            .map_err(sql)?;
        let mut out = Vec::new();
        for row in rows {
            let (partition, seq, stored) = row.map_err(sql)?;
            let id = AskId {
                origin,
                scope,
                partition: u32::try_from(partition).unwrap_or(u32::MAX),
                seq: u32::try_from(seq).unwrap_or(u32::MAX),
            };
            out.push((id, open_payload(file, "kept reply", &stored)?));
        }
        Ok(out)
    }
}
