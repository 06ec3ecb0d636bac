//! How the bulky parts of wire messages are laid out in CBOR: bytes as byte strings (serde's
//! default for `Vec<u8>` is an array of integers, up to twice the size and an item to decode
//! per byte), and a request's asks in columns, each portal's path once. A request of 1,000
//! asks to one portal so decodes in a fraction of the time.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_bytes::{ByteBuf, Bytes};

use super::{WireAsk, WireError};
use pods_sdk::{AskId, Envelope};

/// `Response::Replies`: the replies' bytes in one array (null where the ask failed) and the
/// failures beside it, by index.
pub mod replies {
    use super::*;

    type Packed<B, E> = (Vec<Option<B>>, Vec<(u32, E)>);

    pub fn serialize<S: Serializer>(
        replies: &[Result<Vec<u8>, WireError>],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut ok = Vec::with_capacity(replies.len());
        let mut failed = Vec::new();
        for (i, r) in replies.iter().enumerate() {
            match r {
                Ok(bytes) => ok.push(Some(Bytes::new(bytes))),
                Err(e) => {
                    ok.push(None);
                    failed.push((u32::try_from(i).map_err(serde::ser::Error::custom)?, e));
                }
            }
        }
        let packed: Packed<&Bytes, &WireError> = (ok, failed);
        packed.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<Result<Vec<u8>, WireError>>, D::Error> {
        let (ok, failed): Packed<ByteBuf, WireError> = Deserialize::deserialize(d)?;
        let mut out: Vec<Option<Result<Vec<u8>, WireError>>> = ok
            .into_iter()
            .map(|b| b.map(|b| Ok(b.into_vec())))
            .collect();
        for (i, e) in failed {
            match out.get_mut(i as usize) {
                Some(slot @ None) => *slot = Some(Err(e)),
                _ => {
                    return Err(D::Error::custom(format!(
                        "reply {i}: no failure expected there"
                    )));
                }
            }
        }
        out.into_iter()
            .enumerate()
            .map(|(i, r)| r.ok_or_else(|| D::Error::custom(format!("reply {i}: missing"))))
            .collect()
    }
}

/// `Response::Atoms`: each atom's bytes as a byte string.
pub mod atoms {
    use super::*;

    pub fn serialize<S: Serializer>(atoms: &[(u64, Vec<u8>)], s: S) -> Result<S::Ok, S::Error> {
        let borrowed: Vec<(u64, &Bytes)> = atoms.iter().map(|(o, b)| (*o, Bytes::new(b))).collect();
        borrowed.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(u64, Vec<u8>)>, D::Error> {
        let owned = Vec::<(u64, ByteBuf)>::deserialize(d)?;
        Ok(owned.into_iter().map(|(o, b)| (o, b.into_vec())).collect())
    }
}

/// `RequestBody::Asks`, in columns: the portals' paths once; each ask's id and portal index as
/// 28 bytes of one byte string (origin, scope, partition, position, portal; big-endian); the
/// requests' bytes; the envelopes of the personal asks, by index. A CBOR item costs its header
/// to decode, so an ask costs one item here instead of eight.
pub mod asks {
    use super::*;

    /// Bytes of an ask's id and portal index.
    const HEAD: usize = 28;

    type Packed<S, H, B, E> = (Vec<S>, H, Vec<B>, Vec<(u32, E)>);

    pub fn serialize<S: Serializer>(asks: &[WireAsk], s: S) -> Result<S::Ok, S::Error> {
        let mut portals: Vec<&str> = Vec::new();
        let mut heads = Vec::with_capacity(asks.len() * HEAD);
        let mut requests = Vec::with_capacity(asks.len());
        let mut envelopes = Vec::new();
        for (i, a) in asks.iter().enumerate() {
            // Mostly one portal per request; a few at most.
            let portal = match portals.iter().position(|p| *p == a.portal) {
                Some(i) => i,
                None => {
                    portals.push(&a.portal);
                    portals.len() - 1
                }
            };
            let portal = u32::try_from(portal).map_err(serde::ser::Error::custom)?;
            heads.extend_from_slice(&a.id.origin.to_be_bytes());
            heads.extend_from_slice(&a.id.scope.to_be_bytes());
            heads.extend_from_slice(&a.id.partition.to_be_bytes());
            heads.extend_from_slice(&a.id.seq.to_be_bytes());
            heads.extend_from_slice(&portal.to_be_bytes());
            requests.push(Bytes::new(&a.request));
            if let Some(e) = &a.envelope {
                envelopes.push((u32::try_from(i).map_err(serde::ser::Error::custom)?, e));
            }
        }
        let packed: Packed<&str, &Bytes, &Bytes, &Envelope> =
            (portals, Bytes::new(&heads), requests, envelopes);
        packed.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<WireAsk>, D::Error> {
        let (portals, heads, requests, envelopes): Packed<String, ByteBuf, ByteBuf, Envelope> =
            Deserialize::deserialize(d)?;
        if heads.len() != requests.len() * HEAD {
            return Err(D::Error::custom(format!(
                "{} bytes of ask ids for {} requests (expected {} each)",
                heads.len(),
                requests.len(),
                HEAD
            )));
        }
        let mut asks = heads
            .chunks_exact(HEAD)
            .zip(requests)
            .map(|(head, request)| {
                let u64_at = |i: usize| {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&head[i..i + 8]);
                    u64::from_be_bytes(b)
                };
                let u32_at = |i: usize| {
                    let mut b = [0u8; 4];
                    b.copy_from_slice(&head[i..i + 4]);
                    u32::from_be_bytes(b)
                };
                let id = AskId {
                    origin: u64_at(0),
                    scope: u64_at(8),
                    partition: u32_at(16),
                    seq: u32_at(20),
                };
                let portal = u32_at(24);
                let portal = portals
                    .get(portal as usize)
                    .ok_or_else(|| D::Error::custom(format!("ask {id}: no portal {portal}")))?;
                Ok(WireAsk {
                    id,
                    portal: portal.clone(),
                    request: request.into_vec(),
                    envelope: None,
                })
            })
            .collect::<Result<Vec<WireAsk>, D::Error>>()?;
        for (i, envelope) in envelopes {
            match asks.get_mut(i as usize) {
                Some(WireAsk {
                    envelope: slot @ None,
                    ..
                }) => *slot = Some(envelope),
                _ => {
                    return Err(D::Error::custom(format!(
                        "envelope of ask {i}: no such ask"
                    )));
                }
            }
        }
        Ok(asks)
    }
}
