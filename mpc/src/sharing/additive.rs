//! Additive n-of-n sharing: all n shares sum to the secret; any n − 1 of them are uniformly
//! random and independent of it.

use rand::CryptoRng;

use crate::field::Element;

/// Splits `secret` into `n` additive shares, returned per participant position. The share at
/// position `last` is computed as the secret minus the others; all others are uniform.
pub fn deal<E: Element, R: CryptoRng + ?Sized>(
    secret: &[E],
    n: usize,
    last: usize,
    rng: &mut R,
) -> Vec<Vec<E>> {
    let mut shares: Vec<Vec<E>> = (0..n).map(|_| Vec::new()).collect();
    let mut rest = secret.to_vec();
    for (pos, share) in shares.iter_mut().enumerate() {
        if pos == last {
            continue;
        }
        share.reserve_exact(secret.len());
        for r in rest.iter_mut() {
            let s = E::random(rng);
            share.push(s);
            *r = *r - s;
        }
    }
    if let Some(slot) = shares.get_mut(last) {
        *slot = rest;
    }
    shares
}

/// Adds `other` into `acc` element by element (equal lengths are the caller's invariant;
/// extra elements of either side are ignored).
#[inline]
pub fn add_into<E: Element>(acc: &mut [E], other: &[E]) {
    for (a, b) in acc.iter_mut().zip(other) {
        *a = *a + *b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::Fp;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn shares_sum_to_secret() {
        let mut rng = StdRng::seed_from_u64(1);
        let secret: Vec<Fp> = (0..50u64).map(Fp::new).collect();
        for n in 2..=7 {
            let shares = deal(&secret, n, n - 1, &mut rng);
            assert_eq!(shares.len(), n);
            let mut acc = vec![Fp::ZERO; secret.len()];
            for s in &shares {
                assert_eq!(s.len(), secret.len());
                add_into(&mut acc, s);
            }
            assert_eq!(acc, secret);
        }
    }
}
