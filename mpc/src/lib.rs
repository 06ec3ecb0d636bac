//! `pods-mpc`: secret sharing and secure aggregation for Pods joint queries.
//!
//! Several nodes learn an aggregate of their private data (a sum of vectors, per-group count,
//! sum, mean, variance and histogram, the size of a set intersection) and nothing else: no
//! node sees another's records or local totals. Every protocol is a pure state machine per
//! participant: [`protocol::SecureSum::handle`] takes a message and returns the messages to
//! send; there is no I/O and no clock, so the node drives it over libp2p and tests drive it in
//! a loop.
//!
//! # Pieces
//! - [`field`]: GF(2^61 − 1), the fast field. A Mersenne prime reduces a 122-bit product with
//!   shifts, masks and one branch-free conditional subtraction; elements are 8 bytes on the
//!   wire and 61 bits of headroom hold sums of counts and of squares of bounded values.
//! - [`sharing`]: additive n-of-n and Shamir t-of-n sharing of vectors in any field, and
//!   Feldman-verifiable Shamir over the secp256k1 scalar field (commitments checked with
//!   `vsss-rs`), where one random linear combination per dealer, with a challenge hashed from
//!   salted digests of all shares, verifies a whole vector (see [`sharing::verifiable`]).
//! - [`protocol`]: the secure sum, in three modes chosen per query ([`protocol::Mode`]):
//!   additive, Shamir (survives n − t participants vanishing after dealing) and verifiable
//!   (names a cheating dealer).
//! - [`aggregate`]: grouped statistics with suppression of groups below k. The per-group
//!   counts are revealed to all participants before suppression; the sums, sums of squares
//!   and histograms of suppressed groups are never reconstructed.
//! - [`psi`]: private set intersection cardinality (Diffie–Hellman, secp256k1, RFC 9380
//!   hash-to-curve).
//!
//! # Messages
//! Messages are serde types encoded as CBOR (`encode`/`decode`, typed errors for malformed or
//! truncated input). Each carries a [`protocol::Header`]: session id, sender, recipient, round.
//! There is no MAC key: the transport (libp2p noise) authenticates the peer, the node passes
//! the authenticated [`ParticipantId`] to `handle`, and the header binds the message to
//! session, sender, recipient and round; a second message for the same (sender, round) is a
//! replay. A refused message leaves the state unchanged.
//!
//! # Cost
//! Additive and fast Shamir sums send 2(n − 1) field elements of 8 bytes per value per
//! participant (shares out, partial sums out) plus a header of about 100 bytes per message;
//! the verifiable mode sends 32-byte scalars plus, per dealer and recipient, one mask share,
//! a salt, n digests and t commitments.
//!
//! # Example: a three-party secure sum
//! ```
//! use pods_mpc::protocol::{Mode, SecureSum, SumConfig};
//! use pods_mpc::{ParticipantId, SessionId};
//!
//! # fn main() -> Result<(), pods_mpc::Error> {
//! let ids: Vec<ParticipantId> = (1..=3).map(ParticipantId).collect();
//! let session = SessionId::random()?;
//! let inputs = [[1, 2, 3], [10, 20, 30], [100, 200, -300]];
//! let mut parties = ids
//!     .iter()
//!     .zip(&inputs)
//!     .map(|(me, input)| {
//!         let cfg = SumConfig::new(session, ids.clone(), *me, Mode::Shamir { threshold: 2 }, 3);
//!         SecureSum::new(&cfg, input)
//!     })
//!     .collect::<Result<Vec<_>, _>>()?;
//!
//! // the "network": a queue of (from, encoded message) per recipient
//! let mut queue = Vec::new();
//! for (p, me) in parties.iter_mut().zip(&ids) {
//!     for out in p.start()? {
//!         queue.push((*me, out.to, out.message.encode()?));
//!     }
//! }
//! while let Some((from, to, bytes)) = queue.pop() {
//!     let Some(i) = ids.iter().position(|x| *x == to) else { continue };
//!     for out in parties[i].handle_bytes(from, &bytes)? {
//!         queue.push((to, out.to, out.message.encode()?));
//!     }
//! }
//! for p in &parties {
//!     assert_eq!(p.output().map(|o| o.values.clone()), Some(vec![111, 222, -267]));
//! }
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

pub mod aggregate;
mod error;
pub mod field;
mod ids;
pub mod protocol;
pub mod psi;
mod random;
pub mod sharing;

pub use error::{Error, Result};
pub use ids::{ParticipantId, Round, SessionId, ShareIndex};
