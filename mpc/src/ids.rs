//! Identifier newtypes: sessions, participants, share indices and rounds.

use std::fmt;

use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Identifies one run of a protocol. Every message carries it; messages of another session
/// are refused. Pick it at random ([`SessionId::random`]) or derive it from a query id agreed
/// by the participants.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SessionId(pub [u8; 32]);

impl SessionId {
    /// A fresh session id from the operating system's random source.
    pub fn random() -> Result<Self> {
        let mut rng = crate::random::os_rng()?;
        let mut id = [0u8; 32];
        rng.fill_bytes(&mut id);
        Ok(SessionId(id))
    }

    /// A sub-session id, bound to this one and to `label` (used by protocols made of
    /// several sub-protocols).
    pub fn derive(&self, label: &str) -> SessionId {
        let mut h = Sha256::new();
        h.update(b"pods-mpc/session/derive");
        h.update(self.0);
        h.update((label.len() as u64).to_le_bytes());
        h.update(label.as_bytes());
        SessionId(h.finalize().into())
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({self})")
    }
}

/// A participant of a session, as the node maps authenticated peers to protocol roles.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub struct ParticipantId(pub u32);

impl fmt::Display for ParticipantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "participant {}", self.0)
    }
}

/// The x-coordinate at which a participant's Shamir share is evaluated: its position in the
/// sorted participant list plus one. Never zero (the secret lives at zero).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct ShareIndex(u32);

impl ShareIndex {
    /// The share index for position `pos` (0-based) in the participant list.
    pub fn from_position(pos: usize) -> Result<Self> {
        pos.checked_add(1)
            .and_then(|x| u32::try_from(x).ok())
            .map(ShareIndex)
            .ok_or_else(|| Error::InvalidConfig("too many participants".into()))
    }

    /// The index as an integer (at least 1).
    pub fn get(self) -> u32 {
        self.0
    }
}

/// A protocol round. A sender sends at most one message per round to each recipient, so the
/// pair (sender, round) identifies a message within a session and doubles as its sequence
/// number for replay detection.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub struct Round(pub u8);

impl Round {
    /// Shares dealt (secure sum) or the first pass of a set (PSI).
    pub const DEAL: Round = Round(1);
    /// Partial sums revealed to the result receivers.
    pub const REVEAL: Round = Round(2);
    /// Result announced by the receiver (PSI).
    pub const RESULT: Round = Round(3);
}

impl fmt::Display for Round {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_index_is_position_plus_one() {
        assert_eq!(ShareIndex::from_position(0).map(ShareIndex::get), Ok(1));
        assert_eq!(ShareIndex::from_position(6).map(ShareIndex::get), Ok(7));
    }

    #[test]
    fn derived_sessions_differ_by_label() {
        let s = SessionId([7; 32]);
        assert_ne!(s.derive("counts"), s.derive("stats"));
        assert_eq!(s.derive("counts"), s.derive("counts"));
        assert_ne!(s.derive("counts"), s);
    }
}
