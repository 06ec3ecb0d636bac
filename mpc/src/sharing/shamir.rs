//! Shamir sharing of vectors over any [`Element`] field: element j of the secret is the
//! constant term of its own random polynomial of degree t − 1; participant k receives the
//! evaluations at its share index. Any t shares reconstruct; t − 1 reveal nothing.

use rand::CryptoRng;

use crate::error::{Error, Result};
use crate::field::Element;

/// Shares `secret` with threshold `t` among `n` participants whose share indices are
/// 1..=n. Returns the share vectors by position (index − 1).
pub fn deal<E: Element, R: CryptoRng + ?Sized>(
    secret: &[E],
    t: usize,
    n: usize,
    rng: &mut R,
) -> Vec<Vec<E>> {
    let mut shares: Vec<Vec<E>> = (0..n).map(|_| Vec::with_capacity(secret.len())).collect();
    let xs: Vec<E> = (1..=n as u64).map(E::from_u64).collect();
    let mut coeffs = vec![E::zero(); t.saturating_sub(1)];
    for s in secret {
        for c in coeffs.iter_mut() {
            *c = E::random(rng);
        }
        for (share, x) in shares.iter_mut().zip(&xs) {
            share.push(horner(*s, &coeffs, *x));
        }
    }
    shares
}

/// Evaluates `c0 + c[0] x + c[1] x^2 + …` at `x`.
#[inline]
pub fn horner<E: Element>(c0: E, coeffs: &[E], x: E) -> E {
    let mut acc = E::zero();
    for c in coeffs.iter().rev() {
        acc = (acc + *c) * x;
    }
    acc + c0
}

/// Lagrange coefficients for the points `xs` (distinct), evaluated at `at`: the weights
/// λ_i with f(at) = Σ λ_i f(x_i) for every polynomial f of degree below `xs.len()`.
pub fn lagrange_at<E: Element>(xs: &[E], at: E) -> Result<Vec<E>> {
    let mut out = Vec::with_capacity(xs.len());
    for (i, xi) in xs.iter().enumerate() {
        let mut num = E::one();
        let mut den = E::one();
        for (j, xj) in xs.iter().enumerate() {
            if i != j {
                num = num * (at - *xj);
                den = den * (*xi - *xj);
            }
        }
        let inv = den
            .invert()
            .ok_or_else(|| Error::InvalidConfig("repeated share index".into()))?;
        out.push(num * inv);
    }
    Ok(out)
}

/// Combines share vectors with the given weights: `out[j] = Σ_i w_i · shares_i[j]`.
pub fn combine<E: Element>(weights: &[E], shares: &[&[E]], len: usize) -> Vec<E> {
    let mut out = vec![E::zero(); len];
    for (w, s) in weights.iter().zip(shares) {
        for (o, v) in out.iter_mut().zip(s.iter()) {
            *o = *o + *w * *v;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::Fp;
    use k256::Scalar;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn reconstruct_from<E: Element>(shares: &[Vec<E>], positions: &[usize], len: usize) -> Vec<E> {
        let xs: Vec<E> = positions
            .iter()
            .map(|p| E::from_u64(*p as u64 + 1))
            .collect();
        let w = lagrange_at(&xs, E::zero()).unwrap_or_default();
        let picked: Vec<&[E]> = positions.iter().map(|p| shares[*p].as_slice()).collect();
        combine(&w, &picked, len)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn any_t_shares_reconstruct(n in 2usize..=7, t_off in 0usize..6, seed in any::<u64>(), vals in proptest::collection::vec(0u64..1000, 1..20)) {
            let t = 2 + t_off % (n - 1);
            let mut rng = StdRng::seed_from_u64(seed);
            let secret: Vec<Fp> = vals.iter().map(|v| Fp::new(*v)).collect();
            let shares = deal(&secret, t, n, &mut rng);
            // the last t positions and the first t positions both reconstruct
            let first: Vec<usize> = (0..t).collect();
            let last: Vec<usize> = (n - t..n).collect();
            prop_assert_eq!(reconstruct_from(&shares, &first, secret.len()), secret.clone());
            prop_assert_eq!(reconstruct_from(&shares, &last, secret.len()), secret.clone());
            // t - 1 shares do not determine the secret: interpolating them alone gives
            // a different value (except with probability about 1/p)
            let fewer: Vec<usize> = (0..t - 1).collect();
            if t >= 2 && !fewer.is_empty() && secret.iter().any(|s| *s != Fp::ZERO) {
                prop_assert_ne!(reconstruct_from(&shares, &fewer, secret.len()), secret.clone());
            }
        }
    }

    #[test]
    fn works_over_the_scalar_field() {
        let mut rng = StdRng::seed_from_u64(5);
        let secret = vec![Scalar::from(42u64), Scalar::from(7u64)];
        let shares = deal(&secret, 3, 5, &mut rng);
        assert_eq!(reconstruct_from(&shares, &[0, 2, 4], 2), secret);
        assert_eq!(reconstruct_from(&shares, &[1, 2, 3], 2), secret);
    }

    #[test]
    fn repeated_points_are_an_error() {
        let xs = [Fp::new(1), Fp::new(1)];
        assert!(matches!(
            lagrange_at(&xs, Fp::ZERO),
            Err(Error::InvalidConfig(_))
        ));
    }
}
