//! How the bulky parts of wire messages are laid out in CBOR: bytes as byte strings (serde's
//! default for `Vec<u8>` is an array of integers, up to twice the size and an item to decode
//! per byte), an ask's id as four integers, and each portal's path once per request. A
//! request of 1,000 asks to one portal so decodes in a fraction of the time.

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

/// `RequestBody::Asks`: the portals' paths once, then each ask as its id's four integers, the
/// index of its portal, its request's bytes and its envelope.
pub mod asks {
    use super::*;

    type Ask<B, E> = (u64, u64, u32, u32, u32, B, Option<E>);

    pub fn serialize<S: Serializer>(asks: &[WireAsk], s: S) -> Result<S::Ok, S::Error> {
        let mut portals: Vec<&str> = Vec::new();
        let mut packed: Vec<Ask<&Bytes, &Envelope>> = Vec::with_capacity(asks.len());
        for a in asks {
            // Mostly one portal per request; a few at most.
            let portal = match portals.iter().position(|p| *p == a.portal) {
                Some(i) => i,
                None => {
                    portals.push(&a.portal);
                    portals.len() - 1
                }
            };
            let portal = u32::try_from(portal).map_err(serde::ser::Error::custom)?;
            let id = a.id;
            let request = Bytes::new(&a.request);
            packed.push((
                id.origin,
                id.scope,
                id.partition,
                id.seq,
                portal,
                request,
                a.envelope.as_ref(),
            ));
        }
        (portals, packed).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<WireAsk>, D::Error> {
        let (portals, packed): (Vec<String>, Vec<Ask<ByteBuf, Envelope>>) =
            Deserialize::deserialize(d)?;
        packed
            .into_iter()
            .map(
                |(origin, scope, partition, seq, portal, request, envelope)| {
                    let portal = portals.get(portal as usize).ok_or_else(|| {
                        D::Error::custom(format!(
                            "ask {origin}/{scope}/{partition}/{seq}: no portal {portal}"
                        ))
                    })?;
                    Ok(WireAsk {
                        id: AskId {
                            origin,
                            scope,
                            partition,
                            seq,
                        },
                        portal: portal.clone(),
                        request: request.into_vec(),
                        envelope,
                    })
                },
            )
            .collect()
    }
}
