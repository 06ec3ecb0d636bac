//! The node's identity: an ed25519 key pair (its public half is the libp2p `PeerId`), kept in
//! `DIR/identity.key` with mode 0600 and never overwritten.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use libp2p::PeerId;
use libp2p::identity::Keypair;

use crate::error::NodeError;

/// The key file's name in a data dir.
pub const IDENTITY_FILE: &str = "identity.key";

/// Creates a new identity in `dir`; refuses if one exists there.
pub fn create_identity(dir: &Path) -> Result<Keypair, NodeError> {
    let file = dir.join(IDENTITY_FILE);
    let err = |reason: String| NodeError::Identity {
        file: file.clone(),
        reason,
    };
    let key = Keypair::generate_ed25519();
    let bytes = key
        .to_protobuf_encoding()
        .map_err(|e| err(format!("cannot encode the new key: {e}")))?;
    if file.exists() {
        return Err(err(
            "exists already: this data dir has a node; use it, or choose another directory"
                .to_owned(),
        ));
    }
    // Written whole beside it, then linked into place: a crash never leaves half a key, and
    // linking refuses an existing file, so an identity is never replaced.
    let tmp = dir.join(format!(".{IDENTITY_FILE}.new"));
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| err(format!("cannot create: {e}")))?;
    let written = f.write_all(&bytes).and_then(|()| f.sync_all());
    drop(f);
    let linked = written.and_then(|()| fs::hard_link(&tmp, &file));
    let _ = fs::remove_file(&tmp);
    linked.map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => err(
            "exists already: this data dir has a node; use it, or choose another directory"
                .to_owned(),
        ),
        _ => err(format!("cannot write: {e}")),
    })?;
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(key)
}

/// Reads the identity of the node in `dir`.
pub fn load_identity(dir: &Path) -> Result<Keypair, NodeError> {
    let file = dir.join(IDENTITY_FILE);
    let err = |reason: String| NodeError::Identity {
        file: file.clone(),
        reason,
    };
    let meta = fs::metadata(&file).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            err("missing: create the node with `pods init --data-dir DIR --name ORG`".to_owned())
        }
        _ => err(format!("cannot read: {e}")),
    })?;
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(file = %file.display(), "the identity file is readable by others; chmod 600 it");
    }
    let bytes = fs::read(&file).map_err(|e| err(format!("cannot read: {e}")))?;
    Keypair::from_protobuf_encoding(&bytes).map_err(|e| {
        err(format!(
            "not a Pods identity ({e}); restore it from a backup: a new key is a new PeerId that peers do not know"
        ))
    })
}

/// The `PeerId` of a key pair, as text.
pub fn peer_id_of(key: &Keypair) -> PeerId {
    key.public().to_peer_id()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_is_created_once_with_mode_0600_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let key = create_identity(dir.path()).unwrap();
        let mode = fs::metadata(dir.path().join(IDENTITY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = load_identity(dir.path()).unwrap();
        assert_eq!(peer_id_of(&key), peer_id_of(&again));
        let err = create_identity(dir.path()).expect_err("refused");
        assert!(err.to_string().contains("exists already"), "{err}");
        assert_eq!(
            peer_id_of(&load_identity(dir.path()).unwrap()),
            peer_id_of(&key),
            "kept"
        );
    }

    #[test]
    fn a_damaged_identity_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(IDENTITY_FILE), b"garbage").unwrap();
        let err = load_identity(dir.path()).expect_err("refused");
        assert!(err.to_string().contains(IDENTITY_FILE), "{err}");
        assert!(err.to_string().contains("not a Pods identity"), "{err}");
    }
}
