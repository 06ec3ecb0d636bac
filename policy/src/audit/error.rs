//! Errors of the audit log's pure logic.

/// Why an audit signer could not be made.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The seed does not give an ed25519 key.
    #[error("the audit signing key cannot be made from the node's identity: {0}")]
    Key(String),
}
