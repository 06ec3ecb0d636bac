//! Secret sharing: additive n-of-n, Shamir t-of-n over any field, and Feldman-verifiable
//! Shamir over the secp256k1 scalar field.

pub mod additive;
pub mod shamir;
pub mod verifiable;
