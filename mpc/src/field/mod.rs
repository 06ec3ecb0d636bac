//! Fields: the fast Mersenne field for bulk work and the trait shared with the k256 scalar
//! field of the verifiable mode.

mod element;
mod m61;
mod vector;

pub use element::{Element, FP_SIGNED_MAX};
pub use m61::{Fp, MODULUS};
pub use vector::Vector;
