//! The arithmetic the sharing schemes need, implemented by both fields: the fast field
//! [`Fp`] and the k256 scalar field used by the verifiable mode.

use std::fmt::Debug;
use std::ops::{Add, Mul, Sub};

use elliptic_curve::ff::{Field, PrimeField};
use k256::{FieldBytes, Scalar};
use rand::CryptoRng;

use super::m61::{Fp, MODULUS};
use crate::error::{Error, Result};

/// A prime-field element usable for secret sharing, with a fixed-width wire encoding and a
/// signed (centered) embedding of integers.
pub trait Element:
    Copy
    + Eq
    + Debug
    + Send
    + Sync
    + 'static
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
{
    /// A short name, for error messages.
    const NAME: &'static str;
    /// Bytes of one encoded element.
    const BYTES: usize;
    /// Zero.
    fn zero() -> Self;
    /// One.
    fn one() -> Self;
    /// The image of a small integer.
    fn from_u64(x: u64) -> Self;
    /// A uniformly random element.
    fn random<R: CryptoRng + ?Sized>(rng: &mut R) -> Self;
    /// The multiplicative inverse, or `None` for zero.
    fn invert(&self) -> Option<Self>;
    /// Embeds a signed integer; fails if it falls outside the centered range.
    fn encode_i64(v: i64) -> Result<Self>;
    /// The integer in the centered range that this element represents, or `None` if it is
    /// outside the range of `i128`.
    fn decode_signed(&self) -> Option<i128>;
    /// Appends the canonical encoding ([`Element::BYTES`] bytes).
    fn write(&self, out: &mut Vec<u8>);
    /// Reads a canonical encoding of exactly [`Element::BYTES`] bytes.
    fn read(bytes: &[u8]) -> Option<Self>;
}

/// Largest magnitude representable in the fast field's centered range: (p − 1) / 2.
pub const FP_SIGNED_MAX: i64 = ((MODULUS - 1) / 2) as i64;

impl Element for Fp {
    const NAME: &'static str = "GF(2^61-1) element";
    const BYTES: usize = 8;
    #[inline]
    fn zero() -> Self {
        Fp::ZERO
    }
    #[inline]
    fn one() -> Self {
        Fp::ONE
    }
    #[inline]
    fn from_u64(x: u64) -> Self {
        Fp::new(x)
    }
    #[inline]
    fn random<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        Fp::random(rng)
    }
    fn invert(&self) -> Option<Self> {
        Fp::invert(*self)
    }
    #[inline]
    fn encode_i64(v: i64) -> Result<Self> {
        if v.unsigned_abs() > FP_SIGNED_MAX as u64 {
            return Err(Error::ValueOutOfRange(format!(
                "{v} exceeds ±{FP_SIGNED_MAX} of the fast field"
            )));
        }
        let m = Fp::new(v.unsigned_abs());
        Ok(if v < 0 { -m } else { m })
    }
    #[inline]
    fn decode_signed(&self) -> Option<i128> {
        let x = self.value();
        Some(if x <= FP_SIGNED_MAX as u64 {
            i128::from(x)
        } else {
            i128::from(x) - i128::from(MODULUS)
        })
    }
    #[inline]
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.value().to_le_bytes());
    }
    #[inline]
    fn read(bytes: &[u8]) -> Option<Self> {
        let arr: [u8; 8] = bytes.try_into().ok()?;
        Fp::from_canonical(u64::from_le_bytes(arr))
    }
}

impl Element for Scalar {
    const NAME: &'static str = "secp256k1 scalar";
    const BYTES: usize = 32;
    fn zero() -> Self {
        Scalar::ZERO
    }
    fn one() -> Self {
        Scalar::ONE
    }
    fn from_u64(x: u64) -> Self {
        Scalar::from(x)
    }
    fn random<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        <Scalar as Field>::random(rng)
    }
    fn invert(&self) -> Option<Self> {
        Option::from(Field::invert(self))
    }
    fn encode_i64(v: i64) -> Result<Self> {
        let m = Scalar::from(v.unsigned_abs());
        Ok(if v < 0 { -m } else { m })
    }
    fn decode_signed(&self) -> Option<i128> {
        let small = |s: &Scalar| -> Option<i128> {
            let repr = s.to_repr();
            let (high, low) = repr.split_at(16);
            if high.iter().any(|b| *b != 0) {
                return None;
            }
            let v = u128::from_be_bytes(low.try_into().ok()?);
            i128::try_from(v).ok()
        };
        small(self).or_else(|| small(&-*self).and_then(i128::checked_neg))
    }
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_repr());
    }
    fn read(bytes: &[u8]) -> Option<Self> {
        let arr: [u8; 32] = bytes.try_into().ok()?;
        Option::from(Scalar::from_repr(FieldBytes::from(arr)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn roundtrip<E: Element>(v: i64) -> Option<i128> {
        let e = E::encode_i64(v).ok()?;
        let mut buf = Vec::new();
        e.write(&mut buf);
        assert_eq!(buf.len(), E::BYTES);
        E::read(&buf)?.decode_signed()
    }

    proptest! {
        #[test]
        fn signed_roundtrip(v in -FP_SIGNED_MAX..=FP_SIGNED_MAX, w in any::<i64>()) {
            prop_assert_eq!(roundtrip::<Fp>(v), Some(i128::from(v)));
            prop_assert_eq!(roundtrip::<Scalar>(w), Some(i128::from(w)));
        }
    }

    #[test]
    fn out_of_range_and_non_canonical_are_refused() {
        assert!(matches!(
            Fp::encode_i64(i64::MIN),
            Err(Error::ValueOutOfRange(_))
        ));
        assert!(matches!(
            Fp::encode_i64(FP_SIGNED_MAX + 1),
            Err(Error::ValueOutOfRange(_))
        ));
        assert_eq!(<Fp as Element>::read(&MODULUS.to_le_bytes()), None);
        assert_eq!(<Scalar as Element>::read(&[0xff; 32]), None);
        assert_eq!(<Fp as Element>::read(&[0; 7]), None);
        let big = -Scalar::from(u64::MAX) * Scalar::from(u64::MAX) * Scalar::from(u64::MAX);
        assert_eq!(big.decode_signed(), None);
    }
}
