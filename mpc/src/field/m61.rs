//! The Mersenne prime field GF(2^61 − 1), the fast field for bulk aggregation.

use std::ops::{Add, Mul, Neg, Sub};

use rand::Rng;

/// The modulus p = 2^61 − 1.
pub const MODULUS: u64 = (1 << 61) - 1;

/// An element of GF(2^61 − 1), always kept in canonical form (below the modulus).
///
/// Reduction of a 122-bit product is two shifts, two masks and one conditional subtraction,
/// written without data-dependent branches.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Fp(u64);

/// `x − p` if `x ≥ p`, else `x`, for `x < 2p`, without a branch.
#[inline(always)]
fn cond_sub(x: u64) -> u64 {
    let t = x.wrapping_sub(MODULUS);
    let mask = (t >> 63).wrapping_neg(); // all ones if x < p
    (x & mask) | (t & !mask)
}

impl Fp {
    /// Zero.
    pub const ZERO: Fp = Fp(0);
    /// One.
    pub const ONE: Fp = Fp(1);

    /// The element `x mod p`.
    #[inline]
    pub fn new(x: u64) -> Fp {
        let r = (x & MODULUS) + (x >> 61);
        Fp(cond_sub(r))
    }

    /// The element if `x` is canonical (below the modulus).
    #[inline]
    pub fn from_canonical(x: u64) -> Option<Fp> {
        (x < MODULUS).then_some(Fp(x))
    }

    /// The canonical representative.
    #[inline]
    pub fn value(self) -> u64 {
        self.0
    }

    /// A uniformly random element: 61 random bits, rejecting the single value p
    /// (probability 2^-61 per draw).
    #[inline]
    pub fn random<R: Rng + ?Sized>(rng: &mut R) -> Fp {
        loop {
            let x = rng.next_u64() >> 3;
            if x < MODULUS {
                return Fp(x);
            }
        }
    }

    /// `self^e`.
    pub fn pow(self, mut e: u64) -> Fp {
        let mut base = self;
        let mut acc = Fp::ONE;
        while e > 0 {
            if e & 1 == 1 {
                acc = acc * base;
            }
            base = base * base;
            e >>= 1;
        }
        acc
    }

    /// The multiplicative inverse, or `None` for zero.
    pub fn invert(self) -> Option<Fp> {
        (self.0 != 0).then(|| self.pow(MODULUS - 2))
    }
}

impl Add for Fp {
    type Output = Fp;
    #[inline(always)]
    fn add(self, rhs: Fp) -> Fp {
        Fp(cond_sub(self.0 + rhs.0))
    }
}

impl Sub for Fp {
    type Output = Fp;
    #[inline(always)]
    fn sub(self, rhs: Fp) -> Fp {
        Fp(cond_sub(self.0 + MODULUS - rhs.0))
    }
}

impl Neg for Fp {
    type Output = Fp;
    #[inline(always)]
    fn neg(self) -> Fp {
        Fp::ZERO - self
    }
}

impl Mul for Fp {
    type Output = Fp;
    #[inline(always)]
    fn mul(self, rhs: Fp) -> Fp {
        let prod = u128::from(self.0) * u128::from(rhs.0); // < 2^122
        let lo = (prod as u64) & MODULUS;
        let hi = (prod >> 61) as u64; // < 2^61
        Fp(cond_sub(lo + hi))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reference_mul(a: u64, b: u64) -> u64 {
        ((u128::from(a) * u128::from(b)) % u128::from(MODULUS)) as u64
    }

    proptest! {
        #[test]
        fn arithmetic_matches_u128_reference(a in 0..MODULUS, b in 0..MODULUS) {
            let (x, y) = (Fp(a), Fp(b));
            prop_assert_eq!((x + y).value(), ((u128::from(a) + u128::from(b)) % u128::from(MODULUS)) as u64);
            prop_assert_eq!((x - y).value(), ((u128::from(a) + u128::from(MODULUS) - u128::from(b)) % u128::from(MODULUS)) as u64);
            prop_assert_eq!((x * y).value(), reference_mul(a, b));
            prop_assert_eq!(Fp::new(a.wrapping_mul(b)).value(), a.wrapping_mul(b) % MODULUS);
        }

        #[test]
        fn inverse_is_inverse(a in 1..MODULUS) {
            let x = Fp(a);
            prop_assert_eq!(x * x.invert().unwrap_or(Fp::ZERO), Fp::ONE);
        }
    }

    #[test]
    fn edge_values() {
        assert_eq!(Fp::new(MODULUS), Fp::ZERO);
        assert_eq!(Fp::new(u64::MAX).value(), u64::MAX % MODULUS);
        assert_eq!(Fp(MODULUS - 1) + Fp::ONE, Fp::ZERO);
        assert_eq!(Fp::ZERO - Fp::ONE, Fp(MODULUS - 1));
        assert_eq!(Fp(MODULUS - 1) * Fp(MODULUS - 1), Fp::ONE);
        assert_eq!(Fp::ZERO.invert(), None);
        assert_eq!(Fp::from_canonical(MODULUS), None);
    }
}
