//! Bad input from the network: an unknown peer, malformed, oversized and foreign-version
//! messages, asks for unknown or forbidden paths, a flood of requests. Each gets a typed
//! refusal, and a well-behaved peer of the same node still gets its answers.

use std::time::Duration;

use futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::request_response::{self, Event, Message, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId};
use pods_node::net::wire::{
    self, Codec, ErrorCode, Frame, PROTOCOL, Request, RequestBody, Response, VERSION, WireAsk,
    WireError,
};
use pods_sdk::AskId;

use crate::*;

const COUNT: &str = "/counter/portals/count";

/// Sends `frames` at once from a peer with identity `key` to the node at `addr`; returns the
/// decoded responses in the order of the frames (an error text where the request failed).
fn send_raw(key: Keypair, to: &Planned, frames: Vec<Frame>) -> Vec<Result<Response, String>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key)
            .with_tokio()
            .with_tcp(
                Default::default(),
                libp2p::noise::Config::new,
                libp2p::yamux::Config::default,
            )
            .unwrap()
            .with_behaviour(|_| {
                request_response::Behaviour::with_codec(
                    Codec { max: 8 << 20 },
                    [(PROTOCOL, ProtocolSupport::Full)],
                    request_response::Config::default()
                        .with_request_timeout(Duration::from_secs(20)),
                )
            })
            .unwrap()
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
            .build();
        let peer: PeerId = to.peer_id.parse().unwrap();
        let addr: Multiaddr = to.address.parse().unwrap();
        swarm.add_peer_address(peer, addr);
        let ids: Vec<_> = frames
            .into_iter()
            .map(|f| swarm.behaviour_mut().send_request(&peer, f))
            .collect();
        let mut out: Vec<Option<Result<Response, String>>> = vec![None; ids.len()];
        while out.iter().any(Option::is_none) {
            let (id, r) = match swarm.select_next_some().await {
                SwarmEvent::Behaviour(Event::Message {
                    message:
                        Message::Response {
                            request_id,
                            response,
                        },
                    ..
                }) => {
                    let r = match response {
                        Frame::Bytes(b) => wire::decode_response(&b).map_err(|e| e.to_string()),
                        Frame::TooLarge(n) => Err(format!("response of {n} bytes")),
                    };
                    (request_id, r)
                }
                SwarmEvent::Behaviour(Event::OutboundFailure {
                    request_id, error, ..
                }) => (request_id, Err(error.to_string())),
                _ => continue,
            };
            if let Some(i) = ids.iter().position(|x| *x == id) {
                out[i] = Some(r);
            }
        }
        out.into_iter().map(Option::unwrap).collect()
    })
}

fn asks(portal: &str, requests: Vec<Vec<u8>>) -> Frame {
    let asks = requests
        .into_iter()
        .enumerate()
        .map(|(i, request)| WireAsk {
            id: AskId {
                origin: 99,
                scope: 1,
                partition: 0,
                seq: i as u32,
            },
            portal: portal.to_owned(),
            request,
            envelope: None,
        })
        .collect();
    Frame::Bytes(wire::encode(&Request {
        version: VERSION,
        body: RequestBody::Asks(asks),
    }))
}

fn cbor<T: serde::Serialize>(v: &T) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(v, &mut out).unwrap();
    out
}

/// A rectification request for subject `kiwi` with `changes` as its corrections' text.
fn rectify(changes: &str) -> Frame {
    Frame::Bytes(wire::encode(&Request {
        version: VERSION,
        body: RequestBody::Rectify {
            subject: "kiwi".into(),
            changes: changes.into(),
        },
    }))
}

fn code(r: &Result<Response, String>) -> Vec<Result<Vec<u8>, ErrorCode>> {
    match r {
        Ok(Response::Refused(WireError { code, .. })) => vec![Err(*code)],
        Ok(Response::Replies(v)) => v.iter().map(|x| x.clone().map_err(|e| e.code)).collect(),
        Ok(Response::Atoms(a)) => panic!("atoms in answer to asks: {a:?}"),
        Ok(Response::Erased(a)) => panic!("an acknowledgement in answer to asks: {a:?}"),
        Ok(Response::Rectified { atoms }) => panic!("a rectification's answer: {atoms}"),
        Err(e) => panic!("request failed: {e}"),
    }
}

#[test]
fn bad_messages_are_refused_with_typed_errors_and_a_good_peer_still_gets_answers() {
    let _dog = watchdog("bad_messages_are_refused_with_typed_errors", 90);
    let (a, b, m) = (Planned::new("a"), Planned::new("b"), Planned::new("m"));
    let m_key = pods_node::load_identity(m.dir.path()).unwrap();
    // m is a known peer of b, but the counter is exported to a only.
    b.configure(
        &["counter"],
        &[a.as_peer(), m.as_peer()],
        &[(COUNT, vec!["a".into()])],
    );
    a.configure(&["asker:b"], &[b.as_peer()], &[]);
    let node_b = Running::start(b.dir.path(), counter_catalog);
    let node_a = Running::start(a.dir.path(), asker_catalog);
    let replies = node_a.subscribe::<String>("/asker/workflows/ask/stream");
    node_a.feed("/asker/generators/words", words(&["kiwi"]));
    assert_eq!(
        collect(&replies, 1, Duration::from_secs(30)).concat(),
        words(&["kiwi=1"])
    );

    let too_large = Request {
        version: VERSION,
        body: RequestBody::Asks(vec![WireAsk {
            id: AskId {
                origin: 1,
                scope: 1,
                partition: 0,
                seq: 0,
            },
            portal: COUNT.into(),
            request: vec![0u8; 2 << 20],
            envelope: None,
        }]),
    };
    let foreign = Frame::Bytes(wire::encode(&Request {
        version: 9,
        body: RequestBody::Asks(vec![]),
    }));
    let got = send_raw(
        m_key.clone(),
        &b,
        vec![
            Frame::Bytes(b"\xff\xfe not cbor".to_vec()),
            Frame::Bytes(wire::encode(&too_large)),
            foreign,
            asks("/counter/portals/nope", vec![cbor(&"x")]),
            asks(COUNT, vec![cbor(&"kiwi")]),
            rectify("[1, 2]"),
            rectify(r#"{"name": "Kiwi B"}"#),
        ],
    );
    let codes: Vec<_> = got.iter().map(code).collect();
    assert_eq!(
        codes,
        vec![
            vec![Err(ErrorCode::Malformed)],
            vec![Err(ErrorCode::TooLarge)],
            vec![Err(ErrorCode::UnsupportedVersion)],
            vec![Err(ErrorCode::UnknownPath)],
            vec![Err(ErrorCode::NotAllowed)],
            vec![Err(ErrorCode::Malformed)],
            vec![Err(ErrorCode::NotAllowed)],
        ],
        "a rectification whose corrections are not an object is refused; so is one from a \
         peer b mirrors nothing from (it would correct data that peer never sent)"
    );
    // A peer b does not know at all cannot even keep a connection: its request fails, or is
    // refused if it came in before the connection was closed.
    let stranger = send_raw(
        Keypair::generate_ed25519(),
        &b,
        vec![asks(COUNT, vec![cbor(&"kiwi")])],
    );
    match &stranger[0] {
        Err(_) => {}
        Ok(r) => assert_eq!(code(&Ok(r.clone())), vec![Err(ErrorCode::NotAllowed)]),
    }

    // Nothing of that was applied, and a still gets its answers.
    node_a.feed("/asker/generators/words", words(&["kiwi"]));
    assert_eq!(
        collect(&replies, 2, Duration::from_secs(30)).concat(),
        words(&["kiwi=1", "kiwi=2"])
    );
    drop((node_a, node_b));
}

#[test]
fn a_request_the_replier_cannot_decode_is_refused_and_the_replier_goes_on() {
    let _dog = watchdog("a_request_the_replier_cannot_decode", 60);
    let (b, m) = (Planned::new("b"), Planned::new("m"));
    let m_key = pods_node::load_identity(m.dir.path()).unwrap();
    b.configure(&["counter"], &[m.as_peer()], &[(COUNT, vec!["m".into()])]);
    let _node_b = Running::start(b.dir.path(), counter_catalog);
    let got = send_raw(
        m_key.clone(),
        &b,
        vec![asks(COUNT, vec![cbor(&17u64), cbor(&"fig")])],
    );
    assert_eq!(
        code(&got[0]),
        vec![Err(ErrorCode::WrongRequestType), Ok(cbor(&1u64))]
    );
}

#[test]
fn a_flood_from_one_peer_gets_busy_and_every_request_an_answer() {
    let _dog = watchdog("a_flood_from_one_peer_gets_busy", 90);
    let (b, m) = (Planned::new("b"), Planned::new("m"));
    let m_key = pods_node::load_identity(m.dir.path()).unwrap();
    b.configure(&["counter"], &[m.as_peer()], &[(COUNT, vec!["m".into()])]);
    let mut s = pods_node::Settings::load(b.dir.path()).unwrap();
    s.limits.max_requests_per_peer = 2;
    s.save(b.dir.path()).unwrap();
    let _node_b = Running::start(b.dir.path(), counter_catalog);
    // 60 requests at once, each one ask of its own id.
    let frames = (0..60u32)
        .map(|i| {
            let ask = WireAsk {
                id: AskId {
                    origin: 5,
                    scope: u64::from(i),
                    partition: 0,
                    seq: 0,
                },
                portal: COUNT.into(),
                request: cbor(&"fig"),
                envelope: None,
            };
            Frame::Bytes(wire::encode(&Request {
                version: VERSION,
                body: RequestBody::Asks(vec![ask]),
            }))
        })
        .collect();
    let got = send_raw(m_key, &b, frames);
    let codes: Vec<_> = got.iter().map(code).collect();
    let busy = codes
        .iter()
        .filter(|c| **c == vec![Err(ErrorCode::Busy)])
        .count();
    let mut counts: Vec<u64> = codes
        .iter()
        .filter_map(|c| match c.as_slice() {
            [Ok(bytes)] => Some(ciborium::from_reader::<u64, _>(bytes.as_slice()).unwrap()),
            _ => None,
        })
        .collect();
    counts.sort_unstable();
    assert!(
        busy > 0,
        "some requests over the limit of 2 were refused: {codes:?}"
    );
    assert_eq!(
        busy + counts.len(),
        60,
        "every request got Busy or its reply: {codes:?}"
    );
    assert_eq!(
        counts,
        (1..=counts.len() as u64).collect::<Vec<_>>(),
        "each admitted ask applied once"
    );
}
