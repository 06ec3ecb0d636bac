//! Feldman-verifiable Shamir sharing of vectors over the secp256k1 scalar field, verified
//! through one random linear combination per dealer instead of per element.
//!
//! The dealer appends a uniformly random mask element ρ to its vector x (length L) and shares
//! every element j with its own polynomial f_j of degree t − 1. For each recipient k it draws
//! a 32-byte salt and publishes the digest d_k = SHA-256(session, dealer, k, salt_k, shares_k),
//! which fixes all shares before any challenge exists. The challenge
//! r = SHA-512(session, dealer, t, L, d_1 … d_n) reduced into the scalar field weights the
//! polynomials: F = Σ_j r^j f_j. The dealer publishes Feldman commitments C_m = F_m·G to the
//! t coefficients of F. Recipient k checks its digest, then checks Σ_j r^j s_kj against the
//! commitments with `vsss-rs`'s Feldman verifier. If any recipient's shares are not on a
//! common degree t − 1 polynomial, the check passes for all recipients only with probability
//! about (L + 1) / 2^256 per hash query (Schwartz–Zippel over the challenge). The mask makes
//! F(0) uniform, so C_0 does not leak g^(secret) for low-entropy inputs such as counts.

use elliptic_curve::ff::FromUniformBytes;
use elliptic_curve::group::GroupEncoding;
use k256::{ProjectivePoint, Scalar};
use rand::CryptoRng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};
use vsss_rs::{DefaultShare, FeldmanVerifierSet, IdentifierPrimeField, ShareVerifierGroup};

use crate::error::{Error, Result};
use crate::field::Element;
use crate::ids::{ParticipantId, SessionId, ShareIndex};
use crate::sharing::shamir::horner;

type K256Share = DefaultShare<IdentifierPrimeField<Scalar>, IdentifierPrimeField<Scalar>>;
type Verifier = ShareVerifierGroup<ProjectivePoint>;

/// Feldman commitments as a `vsss-rs` verifier set: the generator, then C_0 … C_{t−1}.
struct CommitmentSet(Vec<Verifier>);

impl FeldmanVerifierSet<K256Share, Verifier> for CommitmentSet {
    fn empty_feldman_set_with_capacity(size_hint: usize, generator: Verifier) -> Self {
        let mut v = vec![Verifier::default(); size_hint.saturating_add(1)];
        if let Some(first) = v.first_mut() {
            *first = generator;
        }
        CommitmentSet(v)
    }
    fn generator(&self) -> Verifier {
        self.0.first().copied().unwrap_or_default()
    }
    fn verifiers(&self) -> &[Verifier] {
        self.0.get(1..).unwrap_or(&[])
    }
    fn verifiers_mut(&mut self) -> &mut [Verifier] {
        self.0.get_mut(1..).unwrap_or(&mut [])
    }
}

/// Curve points serialized as one byte string of 33-byte compressed SEC1 encodings.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Points(pub Vec<ProjectivePoint>);

impl Serialize for Points {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut out = Vec::with_capacity(self.0.len().saturating_mul(33));
        for p in &self.0 {
            out.extend_from_slice(&p.to_bytes());
        }
        s.serialize_bytes(&out)
    }
}

impl<'de> Deserialize<'de> for Points {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let bytes: serde_bytes_compat::ByteBuf = Deserialize::deserialize(d)?;
        crate::psi::group::decode_points(&bytes.0)
            .map(Points)
            .ok_or_else(|| serde::de::Error::custom("invalid curve point encoding"))
    }
}

/// Minimal byte-buffer deserialization (a CBOR byte string into a `Vec<u8>`).
pub(crate) mod serde_bytes_compat {
    use serde::de::{Deserialize, Deserializer, Visitor};
    use std::fmt;

    /// An owned byte string.
    pub(crate) struct ByteBuf(pub Vec<u8>);

    struct V;
    impl Visitor<'_> for V {
        type Value = ByteBuf;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a byte string")
        }
        fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<ByteBuf, E> {
            Ok(ByteBuf(v.to_vec()))
        }
        fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<ByteBuf, E> {
            Ok(ByteBuf(v))
        }
    }
    impl<'de> Deserialize<'de> for ByteBuf {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_byte_buf(V)
        }
    }
}

/// What a dealer publishes to every participant in verifiable mode.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct DealerPublic {
    /// Salted digest of each recipient's share vector, by position.
    pub digests: Vec<[u8; 32]>,
    /// Feldman commitments to the coefficients of the combined polynomial F (t points).
    pub commitments: Points,
}

impl DealerPublic {
    /// A digest of the whole public part, echoed by recipients to detect a dealer that sent
    /// different public parts to different participants.
    pub fn fingerprint(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"pods-mpc/vss/public");
        for d in &self.digests {
            h.update(d);
        }
        for c in &self.commitments.0 {
            h.update(c.to_bytes());
        }
        h.finalize().into()
    }
}

/// The binding context of a deal: session and dealer.
#[derive(Clone, Copy, Debug)]
pub struct DealContext {
    /// The session the deal belongs to.
    pub session: SessionId,
    /// The dealer.
    pub dealer: ParticipantId,
}

/// A dealer's output: per-recipient share vectors (length L + 1, the mask last) and salts,
/// and the public part.
#[derive(Clone, Debug)]
pub struct Deal {
    /// Share vectors by recipient position.
    pub shares: Vec<Vec<Scalar>>,
    /// Salts by recipient position.
    pub salts: Vec<[u8; 32]>,
    /// Published to everyone.
    pub public: DealerPublic,
}

fn share_digest(
    ctx: &DealContext,
    index: ShareIndex,
    salt: &[u8; 32],
    shares: &[Scalar],
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"pods-mpc/vss/share");
    h.update(ctx.session.0);
    h.update(ctx.dealer.0.to_le_bytes());
    h.update(index.get().to_le_bytes());
    h.update(salt);
    let mut buf = Vec::with_capacity(shares.len().saturating_mul(32));
    for s in shares {
        s.write(&mut buf);
    }
    h.update(&buf);
    h.finalize().into()
}

fn challenge(ctx: &DealContext, t: usize, len: usize, digests: &[[u8; 32]]) -> Scalar {
    let mut h = Sha512::new();
    h.update(b"pods-mpc/vss/challenge");
    h.update(ctx.session.0);
    h.update(ctx.dealer.0.to_le_bytes());
    h.update((t as u64).to_le_bytes());
    h.update((len as u64).to_le_bytes());
    for d in digests {
        h.update(d);
    }
    let wide: [u8; 64] = h.finalize().into();
    Scalar::from_uniform_bytes(&wide)
}

/// Σ_j r^j v_j (Horner from the top).
fn weigh(values: &[Scalar], r: Scalar) -> Scalar {
    values.iter().rev().fold(Scalar::ZERO, |acc, v| acc * r + v)
}

/// Deals `secret` (plus one random mask element) with threshold `t` among `n` participants.
pub fn deal<R: CryptoRng + ?Sized>(
    ctx: &DealContext,
    secret: &[Scalar],
    t: usize,
    n: usize,
    rng: &mut R,
) -> Result<Deal> {
    let len = secret
        .len()
        .checked_add(1)
        .ok_or(Error::InvalidState("vector too long"))?;
    let mut coeffs: Vec<Vec<Scalar>> = Vec::with_capacity(len); // per element: c_1..c_{t-1}
    let mut consts: Vec<Scalar> = secret.to_vec();
    consts.push(<Scalar as Element>::random(rng));
    let mut shares: Vec<Vec<Scalar>> = (0..n).map(|_| Vec::with_capacity(len)).collect();
    let xs: Vec<Scalar> = (1..=n as u64).map(Scalar::from).collect();
    for c0 in &consts {
        let c: Vec<Scalar> = (1..t).map(|_| <Scalar as Element>::random(rng)).collect();
        for (share, x) in shares.iter_mut().zip(&xs) {
            share.push(horner(*c0, &c, *x));
        }
        coeffs.push(c);
    }
    let mut salts = Vec::with_capacity(n);
    let mut digests = Vec::with_capacity(n);
    for (pos, share) in shares.iter().enumerate() {
        let mut salt = [0u8; 32];
        rng.fill_bytes(&mut salt);
        digests.push(share_digest(
            ctx,
            ShareIndex::from_position(pos)?,
            &salt,
            share,
        ));
        salts.push(salt);
    }
    let r = challenge(ctx, t, len, &digests);
    // coefficients of F = Σ_j r^j f_j
    let mut f = vec![Scalar::ZERO; t];
    let mut rj = Scalar::ONE;
    for (c0, c) in consts.iter().zip(&coeffs) {
        if let Some(f0) = f.first_mut() {
            *f0 += rj * c0;
        }
        for (fm, cm) in f.iter_mut().skip(1).zip(c) {
            *fm += rj * cm;
        }
        rj *= r;
    }
    let commitments = Points(f.iter().map(ProjectivePoint::mul_by_generator).collect());
    Ok(Deal {
        shares,
        salts,
        public: DealerPublic {
            digests,
            commitments,
        },
    })
}

/// Checks the shares received by the participant with share `index` against the dealer's
/// public part. `Err` carries the reason, to be reported with the dealer's id.
pub fn verify(
    ctx: &DealContext,
    public: &DealerPublic,
    t: usize,
    n: usize,
    index: ShareIndex,
    salt: &[u8; 32],
    shares: &[Scalar],
) -> std::result::Result<(), &'static str> {
    if public.digests.len() != n {
        return Err("wrong number of share digests");
    }
    if public.commitments.0.len() != t {
        return Err("wrong number of commitments");
    }
    let pos = (index.get() as usize)
        .checked_sub(1)
        .ok_or("share index zero")?;
    let expected = public.digests.get(pos).ok_or("share index out of range")?;
    if share_digest(ctx, index, salt, shares) != *expected {
        return Err("shares do not match the published digest");
    }
    let r = challenge(ctx, t, shares.len(), &public.digests);
    let combined = weigh(shares, r);
    let mut set = CommitmentSet::empty_feldman_set_with_capacity(t, Verifier::default());
    set.0.clear();
    set.0.push(vsss_rs::ValueGroup(ProjectivePoint::GENERATOR));
    set.0
        .extend(public.commitments.0.iter().map(|c| vsss_rs::ValueGroup(*c)));
    let share = K256Share {
        identifier: IdentifierPrimeField(Scalar::from(u64::from(index.get()))),
        value: IdentifierPrimeField(combined),
    };
    set.verify_share(&share)
        .map_err(|_| "shares are not on the committed polynomial")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn ctx() -> DealContext {
        DealContext {
            session: SessionId([3; 32]),
            dealer: ParticipantId(9),
        }
    }

    fn idx(pos: usize) -> ShareIndex {
        ShareIndex::from_position(pos).unwrap_or_else(|_| unreachable!())
    }

    #[test]
    fn honest_deal_verifies_for_everyone() {
        let mut rng = StdRng::seed_from_u64(11);
        let secret: Vec<Scalar> = (0..20u64).map(Scalar::from).collect();
        let d = deal(&ctx(), &secret, 3, 5, &mut rng).unwrap_or_else(|_| unreachable!());
        for pos in 0..5 {
            assert_eq!(
                verify(
                    &ctx(),
                    &d.public,
                    3,
                    5,
                    idx(pos),
                    &d.salts[pos],
                    &d.shares[pos]
                ),
                Ok(())
            );
        }
        // the wrong recipient index or another session fails
        assert!(verify(&ctx(), &d.public, 3, 5, idx(1), &d.salts[0], &d.shares[0]).is_err());
        let other = DealContext {
            session: SessionId([4; 32]),
            dealer: ParticipantId(9),
        };
        assert!(verify(&other, &d.public, 3, 5, idx(0), &d.salts[0], &d.shares[0]).is_err());
    }

    #[test]
    fn tampered_share_with_matching_digest_is_caught_by_commitments() {
        let mut rng = StdRng::seed_from_u64(12);
        let secret: Vec<Scalar> = (0..8u64).map(Scalar::from).collect();
        let mut d = deal(&ctx(), &secret, 2, 3, &mut rng).unwrap_or_else(|_| unreachable!());
        // a cheating dealer changes one element for recipient 2 and recomputes its digest
        d.shares[1][3] += Scalar::ONE;
        d.public.digests[1] = share_digest(&ctx(), idx(1), &d.salts[1], &d.shares[1]);
        // the challenge changed with the digest, so the commitments no longer match
        assert_eq!(
            verify(&ctx(), &d.public, 2, 3, idx(1), &d.salts[1], &d.shares[1]),
            Err("shares are not on the committed polynomial")
        );
    }

    #[test]
    fn tampered_share_without_new_digest_is_caught_by_digest() {
        let mut rng = StdRng::seed_from_u64(13);
        let secret = vec![Scalar::from(5u64)];
        let mut d = deal(&ctx(), &secret, 2, 2, &mut rng).unwrap_or_else(|_| unreachable!());
        d.shares[0][0] += Scalar::ONE;
        assert_eq!(
            verify(&ctx(), &d.public, 2, 2, idx(0), &d.salts[0], &d.shares[0]),
            Err("shares do not match the published digest")
        );
    }
}
