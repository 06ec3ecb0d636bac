//! The wire protocol between nodes: one libp2p request-response protocol whose messages are
//! length-prefixed CBOR. The codec only frames bytes; the node decodes them, so a malformed,
//! oversized or foreign message gets a typed error reply instead of a reset stream.

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use pods_sdk::{AskId, Envelope};
use serde::{Deserialize, Serialize};

use crate::privacy::Acknowledgement;

/// The libp2p protocol name.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/pods/1");

/// The version of the messages inside the protocol; a request with another is refused.
pub const VERSION: u32 = 2;

mod pack;

/// A request from one node to another.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// The sender's message version ([`VERSION`]).
    pub version: u32,
    /// What is asked.
    pub body: RequestBody,
}

/// What a request asks for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum RequestBody {
    /// Asks to portals of the receiving node (an atom's asks to one peer travel together;
    /// packed: each portal's path once, each id as four integers).
    Asks(#[serde(with = "pack::asks")] Vec<WireAsk>),
    /// Atoms of an exported stream from offset `from` on; it also acknowledges every atom
    /// below `from` (the puller has them durably), so the receiver may drop them.
    Pull {
        /// The stream's path at the receiving node.
        stream: String,
        /// The first offset wanted.
        from: u64,
        /// Most atoms to send back.
        max_atoms: u32,
    },
    /// Asks the receiver to erase a subject whose data this node sent it; answered with
    /// [`Response::Erased`]. Sent again until acknowledged, so erasing twice is harmless.
    Erase {
        /// The subject's id.
        subject: String,
    },
    /// Asks the receiver to correct its copies of a subject's records that this node sent it
    /// (GDPR art. 19); answered with [`Response::Rectified`]. Sent again until answered (or
    /// refused as `NotAllowed`: the receiver mirrors nothing from the sender); the receiver
    /// takes one request per (sender, subject) at a time and answers `Busy` to another
    /// meanwhile, so corrections apply in the order they were sent.
    Rectify {
        /// The subject's id.
        subject: String,
        /// The corrections: a JSON object of column to new value (`null` removes the column).
        changes: String,
    },
}

/// One ask to a portal of the receiving node.
#[derive(Clone, Debug, PartialEq)]
pub struct WireAsk {
    /// The ask's id at the asking node (deterministic: the same in a replay).
    pub id: AskId,
    /// The portal's path at the receiving node.
    pub portal: String,
    /// The request, CBOR-encoded.
    pub request: Vec<u8>,
    /// The request's privacy envelope.
    pub envelope: Option<Envelope>,
}

/// A response to a [`Request`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Response {
    /// One outcome per ask, in the request's order.
    Replies(#[serde(with = "pack::replies")] Vec<Result<Vec<u8>, WireError>>),
    /// The atoms of a pulled stream, in order from the offset asked (none: nothing new yet).
    Atoms(#[serde(with = "pack::atoms")] Vec<(u64, Vec<u8>)>),
    /// The receiver erased the subject: its acknowledgement, signed with its key.
    Erased(Acknowledgement),
    /// The receiver corrected its copies of the subject's records.
    Rectified {
        /// Logged atoms whose copies changed there.
        atoms: u64,
    },
    /// The whole request is refused.
    Refused(WireError),
}

/// Why a request or an ask was refused or failed, for the asking side to act on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct WireError {
    /// What kind of failure.
    pub code: ErrorCode,
    /// What happened, for a person.
    pub message: String,
}

/// Failure kinds on the wire; the asking node decides by them whether to retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    /// The message is not CBOR of this protocol.
    Malformed,
    /// The message is larger than the receiver accepts.
    TooLarge,
    /// The message's version is not one the receiver speaks.
    UnsupportedVersion,
    /// The sender is not a known peer, or not allowed to use this export.
    NotAllowed,
    /// No such export at the receiver.
    UnknownPath,
    /// The sender has too many requests in flight; retry later.
    Busy,
    /// The portal's replier failed.
    ReplierFailed,
    /// The request does not decode as the portal's request type.
    WrongRequestType,
    /// The receiver could not handle the request (it is stopping, for one); retry later.
    Unavailable,
    /// The atoms asked for were dropped (the puller stayed behind longer than the log
    /// horizon): the stream cannot be read on without a gap.
    Truncated,
}

impl ErrorCode {
    /// Whether an ask refused with this code may succeed if sent again.
    pub fn is_transient(self) -> bool {
        matches!(self, ErrorCode::Busy | ErrorCode::Unavailable)
    }
}

impl WireError {
    /// An error of kind `code`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> WireError {
        WireError {
            code,
            message: message.into(),
        }
    }
}

/// Encodes a message as CBOR.
pub fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing CBOR into a Vec fails only for types serde cannot represent; ours all can.
    if let Err(e) = ciborium::into_writer(message, &mut out) {
        tracing::error!(error = %e, "a wire message could not be encoded");
        out.clear();
    }
    out
}

/// Decodes a request, refusing what is not one of this protocol and version.
pub fn decode_request(bytes: &[u8]) -> Result<Request, WireError> {
    #[derive(Deserialize)]
    struct Versioned {
        version: u32,
    }
    // One parse in the common case; only a message that is not a request of this version
    // is read again for its version, so a newer peer gets `UnsupportedVersion`.
    match ciborium::from_reader::<Request, _>(bytes) {
        Ok(r) if r.version == VERSION => Ok(r),
        result => {
            let version = match &result {
                Ok(r) => Some(r.version),
                Err(_) => ciborium::from_reader::<Versioned, _>(bytes)
                    .ok()
                    .map(|v| v.version),
            };
            match (version, result) {
                (Some(v), _) if v != VERSION => Err(WireError::new(
                    ErrorCode::UnsupportedVersion,
                    format!("message version {v} (this node speaks {VERSION})"),
                )),
                (_, Err(e)) => Err(WireError::new(
                    ErrorCode::Malformed,
                    format!("not a Pods request: {e}"),
                )),
                (_, Ok(r)) => Ok(r),
            }
        }
    }
}

/// Decodes a response.
pub fn decode_response(bytes: &[u8]) -> Result<Response, WireError> {
    ciborium::from_reader(bytes)
        .map_err(|e| WireError::new(ErrorCode::Malformed, format!("not a Pods response: {e}")))
}

/// What the codec read: the message's bytes, or only its length when it was too large.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// A whole message.
    Bytes(Vec<u8>),
    /// A message of this many bytes, above the limit; its bytes were skipped.
    TooLarge(u64),
}

/// Frames messages as a 4-byte big-endian length and the bytes; reads at most `max` bytes of
/// a message and skips (up to 16 × `max`) what is larger, so the sender still gets a reply.
#[derive(Clone, Debug)]
pub struct Codec {
    /// Largest message read.
    pub max: usize,
}

impl Codec {
    async fn read<T: AsyncRead + Unpin + Send>(&self, io: &mut T) -> io::Result<Frame> {
        let mut len = [0u8; 4];
        io.read_exact(&mut len).await?;
        let len = u64::from(u32::from_be_bytes(len));
        if len > self.max as u64 {
            let skip_limit = 16 * self.max as u64;
            if len > skip_limit {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "a message of {len} bytes is far above the limit of {}",
                        self.max
                    ),
                ));
            }
            let skipped = futures::io::copy(io.take(len), &mut futures::io::sink()).await?;
            if skipped < len {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            return Ok(Frame::TooLarge(len));
        }
        let mut bytes = vec![0u8; len as usize];
        io.read_exact(&mut bytes).await?;
        Ok(Frame::Bytes(bytes))
    }

    async fn write<T: AsyncWrite + Unpin + Send>(io: &mut T, bytes: &[u8]) -> io::Result<()> {
        let len = u32::try_from(bytes.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "message too large"))?;
        io.write_all(&len.to_be_bytes()).await?;
        io.write_all(bytes).await?;
        io.flush().await
    }
}

impl libp2p::request_response::Codec for Codec {
    type Protocol = StreamProtocol;
    type Request = Frame;
    type Response = Frame;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Frame>
    where
        T: AsyncRead + Unpin + Send,
    {
        self.read(io).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Frame>
    where
        T: AsyncRead + Unpin + Send,
    {
        self.read(io).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Frame,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        match req {
            Frame::Bytes(b) => Self::write(io, &b).await,
            Frame::TooLarge(_) => Err(io::ErrorKind::InvalidInput.into()),
        }
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Frame,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        match res {
            Frame::Bytes(b) => Self::write(io, &b).await,
            Frame::TooLarge(_) => Err(io::ErrorKind::InvalidInput.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::any;

    use super::*;

    fn ask(seq: u32) -> WireAsk {
        WireAsk {
            id: AskId {
                origin: 1,
                scope: 2,
                partition: 0,
                seq,
            },
            portal: "/shop/portals/stock".into(),
            request: vec![1, 2, 3],
            envelope: Some(Envelope::new("alice", &["health"])),
        }
    }

    #[test]
    fn a_request_round_trips() {
        let r = Request {
            version: VERSION,
            body: RequestBody::Asks(vec![ask(0), ask(1)]),
        };
        assert_eq!(decode_request(&encode(&r)), Ok(r));
    }

    #[test]
    fn replies_and_atoms_round_trip_with_their_bytes_as_byte_strings() {
        let failed = WireError::new(ErrorCode::ReplierFailed, "no");
        let replies = Response::Replies(vec![Ok(vec![200; 1000]), Err(failed), Ok(vec![])]);
        let encoded = encode(&replies);
        // A byte string: 1,000 bytes and a short header, not an array of 1,000 integers.
        assert!(encoded.len() < 1100, "{} bytes", encoded.len());
        assert_eq!(decode_response(&encoded), Ok(replies));
        let atoms = Response::Atoms(vec![(3, vec![255; 1000]), (4, vec![1])]);
        let encoded = encode(&atoms);
        assert!(encoded.len() < 1100, "{} bytes", encoded.len());
        assert_eq!(decode_response(&encoded), Ok(atoms));
        let mut one = ask(0);
        one.request = vec![255; 1000];
        let r = Request {
            version: VERSION,
            body: RequestBody::Asks(vec![one]),
        };
        let encoded = encode(&r);
        assert!(encoded.len() < 1200, "{} bytes", encoded.len());
        assert_eq!(decode_request(&encoded), Ok(r));
    }

    /// CBOR of `value` in place of a message's packed part.
    fn cbor(value: &impl Serialize) -> Vec<u8> {
        encode(value)
    }

    #[test]
    fn packed_parts_that_do_not_add_up_are_malformed() {
        // Requests whose columns do not add up: an ask naming portal 3 of one, ids for two
        // asks beside one request, an envelope for an ask that is not there.
        let head = |portal: u32| {
            let mut h = vec![0u8; 24];
            h.extend_from_slice(&portal.to_be_bytes());
            h
        };
        let envelope = Envelope::new("alice", &["health"]);
        let x = serde_bytes::Bytes::new(b"x");
        let bad = [
            (head(3), vec![x], vec![], "no portal 3"),
            (
                [head(0), head(0)].concat(),
                vec![x],
                vec![],
                "56 bytes of ask ids for 1",
            ),
            (
                head(0),
                vec![x],
                vec![(1u32, &envelope)],
                "envelope of ask 1",
            ),
            (
                head(0),
                vec![x],
                vec![(0, &envelope), (0, &envelope)],
                "envelope of ask 0",
            ),
        ];
        for (heads, requests, envelopes, said) in bad {
            let heads = serde_bytes::ByteBuf::from(heads);
            let body = std::collections::BTreeMap::from([(
                "Asks",
                (vec!["/p"], heads, requests, envelopes),
            )]);
            let request = std::collections::BTreeMap::from([
                ("version", ciborium::Value::from(VERSION)),
                ("body", ciborium::Value::serialized(&body).expect("a value")),
            ]);
            let err = decode_request(&cbor(&request)).expect_err("malformed");
            assert_eq!(err.code, ErrorCode::Malformed);
            assert!(err.message.contains(said), "{err}");
        }
        // Replies whose failure sits where a reply is, or that leave a slot empty.
        let failed = WireError::new(ErrorCode::Busy, "later");
        let ok = serde_bytes::Bytes::new(b"y");
        for (replies, said) in [
            (
                (vec![Some(ok)], vec![(0u32, failed.clone())]),
                "no failure expected",
            ),
            ((vec![None], vec![]), "missing"),
            (
                (vec![None], vec![(5u32, failed.clone())]),
                "no failure expected",
            ),
        ] {
            let message = std::collections::BTreeMap::from([("Replies", replies)]);
            let err = decode_response(&cbor(&message)).expect_err("malformed");
            assert_eq!(err.code, ErrorCode::Malformed);
            assert!(err.message.contains(said), "{err}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_asks_and_replies_round_trip(
            asks in proptest::collection::vec(
                (any::<u64>(), any::<u64>(), any::<u32>(), any::<u32>(), 0..3usize,
                 proptest::collection::vec(any::<u8>(), 0..40), any::<bool>()),
                0..20,
            ),
            replies in proptest::collection::vec(
                proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
                0..20,
            ),
        ) {
            let asks: Vec<WireAsk> = asks
                .into_iter()
                .map(|(origin, scope, partition, seq, portal, request, personal)| WireAsk {
                    id: AskId { origin, scope, partition, seq },
                    portal: ["/a/portals/p", "/b/portals/q", "/c/portals/r"][portal].into(),
                    request,
                    envelope: personal.then(|| Envelope::new("alice", &["health.pulse"])),
                })
                .collect();
            let r = Request { version: VERSION, body: RequestBody::Asks(asks) };
            proptest::prop_assert_eq!(decode_request(&encode(&r)), Ok(r));
            let replies = Response::Replies(
                replies
                    .into_iter()
                    .map(|r| r.ok_or_else(|| WireError::new(ErrorCode::ReplierFailed, "no")))
                    .collect(),
            );
            proptest::prop_assert_eq!(decode_response(&encode(&replies)), Ok(replies));
        }
    }

    #[test]
    fn an_erasure_and_its_acknowledgement_round_trip() {
        let r = Request {
            version: VERSION,
            body: RequestBody::Erase {
                subject: "alice".into(),
            },
        };
        assert_eq!(decode_request(&encode(&r)), Ok(r));
        let ack = Response::Erased(Acknowledgement {
            subject: "ab".into(),
            node: "12D3".into(),
            erased_at: 7,
            erased: crate::privacy::Erased::default(),
            cascaded: vec!["carol".into()],
            signature: "00".into(),
        });
        assert_eq!(decode_response(&encode(&ack)), Ok(ack));
    }

    #[test]
    fn a_rectification_and_its_answer_round_trip() {
        let r = Request {
            version: VERSION,
            body: RequestBody::Rectify {
                subject: "alice".into(),
                changes: r#"{"name":"Alice B","phone":null}"#.into(),
            },
        };
        assert_eq!(decode_request(&encode(&r)), Ok(r));
        let done = Response::Rectified { atoms: 3 };
        assert_eq!(decode_response(&encode(&done)), Ok(done));
    }

    #[test]
    fn garbage_is_malformed_and_another_version_unsupported() {
        assert_eq!(
            decode_request(b"\xff\x00garbage").map_err(|e| e.code),
            Err(ErrorCode::Malformed)
        );
        for old_or_new in [1, 9] {
            let r = Request {
                version: old_or_new,
                body: RequestBody::Asks(vec![ask(0)]),
            };
            let err = decode_request(&encode(&r)).expect_err("refused");
            assert_eq!(err.code, ErrorCode::UnsupportedVersion);
            let said = format!("version {old_or_new}");
            assert!(err.message.contains(&said), "{err}");
        }
    }

    fn frames(bytes: &[u8], max: usize) -> Vec<io::Result<Frame>> {
        let codec = Codec { max };
        let mut io = futures::io::Cursor::new(bytes.to_vec());
        let mut out = Vec::new();
        futures::executor::block_on(async {
            loop {
                let r = codec.read(&mut io).await;
                let end = r.is_err();
                out.push(r);
                if end {
                    break;
                }
            }
        });
        out
    }

    #[test]
    fn an_oversized_frame_is_skipped_and_the_next_read() {
        let mut bytes = Vec::new();
        for body in [vec![7u8; 2000], vec![8u8; 10]] {
            bytes.extend_from_slice(&(body.len() as u32).to_be_bytes());
            bytes.extend_from_slice(&body);
        }
        let got = frames(&bytes, 1024);
        assert_eq!(got[0].as_ref().ok(), Some(&Frame::TooLarge(2000)));
        assert_eq!(got[1].as_ref().ok(), Some(&Frame::Bytes(vec![8u8; 10])));
        assert_eq!(
            got[2].as_ref().map_err(|e| e.kind()).err(),
            Some(io::ErrorKind::UnexpectedEof)
        );
    }

    #[test]
    fn a_frame_far_above_the_limit_is_an_error_not_an_allocation() {
        let bytes = u32::MAX.to_be_bytes();
        let got = frames(&bytes, 1024);
        assert_eq!(
            got[0].as_ref().map_err(|e| e.kind()).err(),
            Some(io::ErrorKind::InvalidData)
        );
    }
}
