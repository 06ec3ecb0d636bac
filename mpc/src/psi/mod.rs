//! Private set intersection cardinality among two or more participants: how many elements
//! all their sets have in common, without revealing which.
//!
//! Diffie–Hellman based, over secp256k1 with RFC 9380 hash-to-curve: each participant i holds
//! a random key a_i; every set travels once around the ring of participants, each applying its
//! key, so an element x ends as a_1 ⋯ a_m · H(x) whoever held it. The receiver compares the
//! fully blinded sets and announces the count. Sets are sorted by encoding at every hop, so
//! order carries nothing. Secure against semi-honest participants under the decisional
//! Diffie–Hellman assumption with H as a random oracle. What it reveals beyond the count:
//! every participant learns the sizes of the sets it blinds, and with three or more
//! participants the receiver can also count the intersection of any sub-collection of sets.

pub mod group;
mod message;
mod session;

pub use message::{EncodedSet, PsiBody, PsiMessage};
pub use session::{PsiConfig, PsiSession};
