//! Messages of the secure-sum protocol and the header every protocol message carries.

use k256::Scalar;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::field::{Fp, Vector};
use crate::ids::{ParticipantId, Round, SessionId};
use crate::protocol::codec;
use crate::sharing::verifiable::DealerPublic;

/// Binds a message to its session, sender, recipient and round.
///
/// There is no MAC: the node's transport (libp2p noise) authenticates the peer, and the node
/// passes that peer's [`ParticipantId`] to `handle`. The header lets the state machine refuse
/// a message whose claimed sender differs from the authenticated one, one addressed to
/// someone else, one of another session, and a second message for the same (sender, round).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Header {
    /// The session the message belongs to.
    pub session: SessionId,
    /// The sender.
    pub from: ParticipantId,
    /// The intended recipient.
    pub to: ParticipantId,
    /// The protocol round (and per-sender sequence number).
    pub round: Round,
}

/// The secure-sum message bodies.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum SumBody {
    /// Round 1 in the fast field: the recipient's share of the sender's input vector.
    FastShare {
        /// One share per input element.
        shares: Vector<Fp>,
    },
    /// Round 1 in verifiable mode: shares (input elements, then the mask), the salt of their
    /// digest, and the dealer's public part (the same for every recipient).
    VerifiableShare {
        /// One share per input element plus one for the mask.
        shares: Vector<Scalar>,
        /// Salt of the recipient's share digest.
        salt: [u8; 32],
        /// Digests and Feldman commitments.
        public: DealerPublic,
    },
    /// Round 2 in the fast field: the sender's share of the sum, at `positions` (all if
    /// `None`).
    FastPartial {
        /// Revealed positions, ascending; `None` for the whole vector.
        positions: Option<Vec<u32>>,
        /// The partial sums.
        values: Vector<Fp>,
    },
    /// Round 2 in verifiable mode: partial sums plus the fingerprint of every dealer's public
    /// part as the sender saw it (an echo that exposes an equivocating dealer).
    VerifiablePartial {
        /// Revealed positions, ascending; `None` for the whole vector.
        positions: Option<Vec<u32>>,
        /// The partial sums.
        values: Vector<Scalar>,
        /// Fingerprint of each dealer's public part, by dealer position.
        echo: Vec<[u8; 32]>,
    },
}

impl SumBody {
    /// The round this body belongs to.
    pub fn round(&self) -> Round {
        match self {
            SumBody::FastShare { .. } | SumBody::VerifiableShare { .. } => Round::DEAL,
            SumBody::FastPartial { .. } | SumBody::VerifiablePartial { .. } => Round::REVEAL,
        }
    }
}

/// A secure-sum message.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct SumMessage {
    /// Session, sender, recipient, round.
    pub header: Header,
    /// The payload.
    pub body: SumBody,
}

impl SumMessage {
    /// CBOR bytes for the transport.
    pub fn encode(&self) -> Result<Vec<u8>> {
        codec::encode(self)
    }

    /// Parses CBOR bytes; typed errors on malformed or truncated input.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        codec::decode(bytes)
    }
}

/// A message to send, with its recipient.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Outgoing<M> {
    /// The recipient.
    pub to: ParticipantId,
    /// The message.
    pub message: M,
}
