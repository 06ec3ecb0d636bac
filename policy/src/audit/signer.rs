//! The node's signing key for the audit log: ed25519 (ring), from the 32-byte seed of the
//! node's identity.

use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

use super::error::AuditError;

/// Signs audit entries and heads with the node's ed25519 key.
pub struct Signer {
    pair: Ed25519KeyPair,
    public: [u8; 32],
}

impl Signer {
    /// The signer of the key whose 32-byte secret seed is `seed`.
    pub fn from_seed(seed: &[u8; 32]) -> Result<Signer, AuditError> {
        let pair = Ed25519KeyPair::from_seed_unchecked(seed)
            .map_err(|e| AuditError::Key(e.to_string()))?;
        let public = <[u8; 32]>::try_from(pair.public_key().as_ref())
            .map_err(|_| AuditError::Key("the public key is not 32 bytes".to_owned()))?;
        Ok(Signer { pair, public })
    }

    /// The public key that verifies what this signer signs.
    pub fn public_key(&self) -> [u8; 32] {
        self.public
    }

    /// The 64-byte signature of `message`.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.pair.sign(message).as_ref().to_vec()
    }
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("public", &super::hex::encode(&self.public))
            .finish_non_exhaustive()
    }
}

/// Whether `signature` is `public_key`'s ed25519 signature of `message`.
pub fn signed_by(public_key: &[u8; 32], message: &[u8], signature: &[u8]) -> bool {
    UnparsedPublicKey::new(&ED25519, public_key)
        .verify(message, signature)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_with_its_key_only() {
        let a = Signer::from_seed(&[1; 32]).unwrap();
        let b = Signer::from_seed(&[2; 32]).unwrap();
        let sig = a.sign(b"act");
        assert_eq!(sig.len(), 64);
        assert!(signed_by(&a.public_key(), b"act", &sig));
        assert!(!signed_by(&a.public_key(), b"act!", &sig));
        assert!(!signed_by(&b.public_key(), b"act", &sig));
        assert!(!signed_by(&a.public_key(), b"act", &sig[..63]));
        assert_eq!(
            a.public_key(),
            Signer::from_seed(&[1; 32]).unwrap().public_key(),
            "the same seed, the same key"
        );
    }
}
