//! The crate's error type.

use crate::ids::{ParticipantId, Round, SessionId};

/// Everything that can go wrong in `pods-mpc`.
///
/// Errors returned from a `handle` call mean that the message was refused: the state machine
/// is exactly as it was before the call. Variants that name a participant
/// ([`Error::CheatingDealer`], [`Error::Equivocation`], [`Error::InconsistentReveal`]) are
/// evidence a node can act on (abort the session, report the peer).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A session or query configuration is not usable (code `MPC-CONFIG`).
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// An input value does not fit the field's signed range or the query's bounds.
    #[error("input value out of range: {0}")]
    ValueOutOfRange(String),
    /// The bytes are not a well-formed CBOR message of the expected type.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// The bytes end before the message does.
    #[error("truncated message")]
    Truncated,
    /// A field element, scalar or curve point in a message is not in canonical form.
    #[error("non-canonical encoding of a {0}")]
    NonCanonical(&'static str),
    /// A message could not be encoded.
    #[error("encoding failed: {0}")]
    Encode(String),
    /// The message belongs to another session.
    #[error("message for session {got} refused by session {expected}")]
    ForeignSession {
        /// This session.
        expected: SessionId,
        /// The session named by the message.
        got: SessionId,
    },
    /// The sender is not a participant of this session.
    #[error("{0} is not a participant of this session")]
    NotParticipant(ParticipantId),
    /// The sender named in the message is not the peer the transport delivered it from.
    #[error("message claims sender {claimed} but was delivered by {transport}")]
    SenderMismatch {
        /// Sender written in the message header.
        claimed: ParticipantId,
        /// Sender authenticated by the transport.
        transport: ParticipantId,
    },
    /// The message is addressed to another participant.
    #[error("message addressed to {0}, not to this participant")]
    WrongRecipient(ParticipantId),
    /// A message with the same session, sender and round was already accepted.
    #[error("replayed message from {from} for round {round}")]
    Replayed {
        /// Sender of the duplicate.
        from: ParticipantId,
        /// Round of the duplicate.
        round: Round,
    },
    /// The message is not expected in this protocol or in its current state.
    #[error("unexpected message from {from}: {reason}")]
    Unexpected {
        /// Sender of the message.
        from: ParticipantId,
        /// Why it is not expected.
        reason: &'static str,
    },
    /// A vector in the message has the wrong number of elements.
    #[error("length mismatch: expected {expected}, got {got}")]
    LengthMismatch {
        /// Expected length.
        expected: usize,
        /// Length found.
        got: usize,
    },
    /// A dealer's shares do not match its Feldman commitments (verifiable mode).
    #[error("dealer {dealer} dealt inconsistent shares: {reason}")]
    CheatingDealer {
        /// The dealer whose shares failed verification.
        dealer: ParticipantId,
        /// Which check failed.
        reason: &'static str,
    },
    /// Two participants saw different public commitments from the same dealer.
    #[error("dealer {dealer} sent different commitments to {reported_by} than to this participant")]
    Equivocation {
        /// The dealer whose broadcast differs.
        dealer: ParticipantId,
        /// The participant whose echo disagrees with this participant's view.
        reported_by: ParticipantId,
    },
    /// A revealed partial sum does not lie on the polynomial defined by the others.
    #[error("partial sum from {from} is inconsistent with the other revealed partial sums")]
    InconsistentReveal {
        /// The participant whose partial sum disagrees.
        from: ParticipantId,
    },
    /// The operating system's random source failed.
    #[error("random source failed: {0}")]
    Randomness(String),
    /// The operation needs a state the session is not in.
    #[error("invalid state: {0}")]
    InvalidState(&'static str),
}

impl Error {
    /// A stable code for the error, for logs and policy decisions.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidConfig(_) => "MPC-CONFIG",
            Error::ValueOutOfRange(_) => "MPC-RANGE",
            Error::Malformed(_) => "MPC-MALFORMED",
            Error::Truncated => "MPC-TRUNCATED",
            Error::NonCanonical(_) => "MPC-NONCANONICAL",
            Error::Encode(_) => "MPC-ENCODE",
            Error::ForeignSession { .. } => "MPC-FOREIGN-SESSION",
            Error::NotParticipant(_) => "MPC-NOT-PARTICIPANT",
            Error::SenderMismatch { .. } => "MPC-SENDER-MISMATCH",
            Error::WrongRecipient(_) => "MPC-WRONG-RECIPIENT",
            Error::Replayed { .. } => "MPC-REPLAY",
            Error::Unexpected { .. } => "MPC-UNEXPECTED",
            Error::LengthMismatch { .. } => "MPC-LENGTH",
            Error::CheatingDealer { .. } => "MPC-CHEATING-DEALER",
            Error::Equivocation { .. } => "MPC-EQUIVOCATION",
            Error::InconsistentReveal { .. } => "MPC-INCONSISTENT-REVEAL",
            Error::Randomness(_) => "MPC-RANDOMNESS",
            Error::InvalidState(_) => "MPC-STATE",
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
