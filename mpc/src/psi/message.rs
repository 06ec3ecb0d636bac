//! Messages of the PSI-cardinality protocol.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::ids::ParticipantId;
use crate::protocol::Header;
use crate::protocol::codec;

/// Compressed points sent back to back in one CBOR byte string, sorted ascending.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct EncodedSet(pub Vec<[u8; super::group::POINT_BYTES]>);

impl Serialize for EncodedSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0.as_flattened())
    }
}

impl<'de> Deserialize<'de> for EncodedSet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let bytes: crate::sharing::verifiable::serde_bytes_compat::ByteBuf =
            Deserialize::deserialize(d)?;
        let (chunks, rest) = bytes.0.as_chunks::<{ super::group::POINT_BYTES }>();
        if !rest.is_empty() {
            return Err(serde::de::Error::custom(
                "set length is not a multiple of 33 bytes",
            ));
        }
        Ok(EncodedSet(chunks.to_vec()))
    }
}

/// The PSI message bodies.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum PsiBody {
    /// A set on its way around the ring, blinded by the keys of `hops` participants starting
    /// with `origin`.
    Pass {
        /// Whose set it is.
        origin: ParticipantId,
        /// How many keys have been applied.
        hops: u8,
        /// The blinded elements, sorted.
        set: EncodedSet,
    },
    /// A set blinded by every participant's key, sent to the receiver.
    Final {
        /// Whose set it is.
        origin: ParticipantId,
        /// The fully blinded elements, sorted.
        set: EncodedSet,
    },
    /// The cardinality of the intersection, announced by the receiver.
    Result {
        /// Number of elements common to all sets.
        cardinality: u64,
    },
}

/// A PSI message.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct PsiMessage {
    /// Session, sender, recipient, round.
    pub header: Header,
    /// The payload.
    pub body: PsiBody,
}

impl PsiMessage {
    /// CBOR bytes for the transport.
    pub fn encode(&self) -> Result<Vec<u8>> {
        codec::encode(self)
    }

    /// Parses CBOR bytes; typed errors on malformed or truncated input.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        codec::decode(bytes)
    }

    /// The (sender-relative) key used for replay detection.
    pub(crate) fn replay_key(&self) -> (ParticipantId, u8, Option<ParticipantId>) {
        let origin = match &self.body {
            PsiBody::Pass { origin, .. } | PsiBody::Final { origin, .. } => Some(*origin),
            PsiBody::Result { .. } => None,
        };
        (self.header.from, self.header.round.0, origin)
    }
}
