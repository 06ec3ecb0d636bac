//! The group for private set intersection: secp256k1 with RFC 9380 hash-to-curve
//! (`secp256k1_XMD:SHA-256_SSWU_RO_`), points on the wire as 33-byte compressed SEC1.

use elliptic_curve::group::{Curve, GroupEncoding};
use k256::hash2curve::GroupDigest;
use k256::{AffinePoint, CompressedPoint, ProjectivePoint, Scalar, Secp256k1};

use crate::error::{Error, Result};

/// Width of one encoded point.
pub const POINT_BYTES: usize = 33;

/// Domain separation tag for hashing set elements to the curve.
const DST: &[u8] = b"pods-mpc/psi/v1/secp256k1_XMD:SHA-256_SSWU_RO_";

/// Hashes a set element to a curve point with an unknown discrete logarithm.
pub fn hash_to_point(element: &[u8]) -> Result<ProjectivePoint> {
    Secp256k1::hash_from_bytes(&[element], &[DST])
        .map_err(|_| Error::InvalidState("hash to curve failed"))
}

/// Parses back-to-back compressed points; `None` on a ragged length or an invalid point.
pub(crate) fn decode_points(bytes: &[u8]) -> Option<Vec<ProjectivePoint>> {
    if !bytes.len().is_multiple_of(POINT_BYTES) {
        return None;
    }
    bytes
        .chunks_exact(POINT_BYTES)
        .map(|c| {
            let repr = CompressedPoint::try_from(c).ok()?;
            Option::from(ProjectivePoint::from_bytes(&repr))
        })
        .collect()
}

/// Multiplies every point by `key` and returns the compressed encodings, sorted. Sorting by
/// encoding is a canonical order that carries nothing of the input order (it replaces a
/// random shuffle). Normalization to affine form is batched (one field inversion).
pub fn exponentiate_sorted(points: &[ProjectivePoint], key: &Scalar) -> Vec<[u8; POINT_BYTES]> {
    let multiplied: Vec<ProjectivePoint> = points.iter().map(|p| *p * key).collect();
    let mut affine = vec![AffinePoint::IDENTITY; multiplied.len()];
    <ProjectivePoint as Curve>::batch_normalize(&multiplied, &mut affine);
    let mut out: Vec<[u8; POINT_BYTES]> = affine
        .iter()
        .map(|a| {
            let mut buf = [0u8; POINT_BYTES];
            buf.copy_from_slice(&a.to_bytes());
            buf
        })
        .collect();
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use elliptic_curve::Field;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn exponentiation_commutes() {
        let mut rng = StdRng::seed_from_u64(2);
        let a = Scalar::random(&mut rng);
        let b = Scalar::random(&mut rng);
        let p = hash_to_point(b"alice@example.org").unwrap_or_default();
        let ab = exponentiate_sorted(&[p * a], &b);
        let ba = exponentiate_sorted(&[p * b], &a);
        assert_eq!(ab, ba);
        assert_ne!(hash_to_point(b"x").ok(), hash_to_point(b"y").ok());
    }

    #[test]
    fn point_decoding_refuses_garbage() {
        assert!(decode_points(&[2u8; 32]).is_none());
        assert!(decode_points(&[0xffu8; 33]).is_none());
        let enc = exponentiate_sorted(&[ProjectivePoint::GENERATOR], &Scalar::ONE);
        assert_eq!(
            decode_points(&enc[0]),
            Some(vec![ProjectivePoint::GENERATOR])
        );
    }
}
