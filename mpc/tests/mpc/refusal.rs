//! Refused messages: malformed, truncated, foreign-session, replayed, non-participant,
//! misaddressed, and a cheating or equivocating dealer. Each is refused with a typed error
//! and the state is unchanged: the genuine message is still accepted afterwards and the
//! result is exact.

use pods_mpc::protocol::{Mode, SumBody, SumMessage};
use pods_mpc::{Error, ParticipantId, Round, SessionId};

use crate::common::{Queue, deliver, ids, parties, start_all};

const S: SessionId = SessionId([5; 32]);

/// Takes the queued message from `from` to `to` out of the queue.
fn take(q: &mut Queue, from: ParticipantId, to: ParticipantId) -> SumMessage {
    let i = q
        .iter()
        .position(|(f, o)| *f == from && o.to == to)
        .expect("message queued");
    q.remove(i).expect("present").1.message
}

#[test]
fn bad_messages_are_refused_and_state_is_unchanged() {
    let inputs = vec![vec![1, 2], vec![3, 4], vec![5, 6]];
    let mut ps = parties(S, 3, Mode::Shamir { threshold: 2 }, &inputs);
    let mut q = start_all(&mut ps, 7);
    let id = ids(3);
    let genuine = take(&mut q, id[0], id[1]);
    let bytes = genuine.encode().expect("encode");

    // malformed, truncated, trailing garbage
    assert!(matches!(
        ps[1].handle_bytes(id[0], b"\xff\x00garbage"),
        Err(Error::Malformed(_))
    ));
    assert_eq!(
        ps[1].handle_bytes(id[0], &bytes[..bytes.len() - 5]),
        Err(Error::Truncated)
    );
    assert_eq!(ps[1].handle_bytes(id[0], &[]), Err(Error::Truncated));
    let mut long = bytes.clone();
    long.push(0);
    assert!(matches!(
        ps[1].handle_bytes(id[0], &long),
        Err(Error::Malformed(_))
    ));
    // a non-canonical field element (all ones is ≥ 2^61 − 1)
    let pos = bytes
        .windows(16)
        .position(|w| w == &bytes[bytes.len() - 16..])
        .expect("share bytes");
    let mut bad = bytes.clone();
    bad[pos..pos + 8].copy_from_slice(&[0xff; 8]);
    assert!(matches!(
        ps[1].handle_bytes(id[0], &bad),
        Err(Error::Malformed(_))
    ));

    // foreign session
    let mut m = genuine.clone();
    m.header.session = SessionId([6; 32]);
    assert_eq!(
        ps[1].handle(id[0], m),
        Err(Error::ForeignSession {
            expected: S,
            got: SessionId([6; 32])
        })
    );
    // non-participant, sender mismatch, wrong recipient, round mismatch
    let stranger = ParticipantId(999);
    let mut m = genuine.clone();
    m.header.from = stranger;
    assert_eq!(
        ps[1].handle(stranger, m),
        Err(Error::NotParticipant(stranger))
    );
    assert_eq!(
        ps[1].handle(id[2], genuine.clone()),
        Err(Error::SenderMismatch {
            claimed: id[0],
            transport: id[2]
        })
    );
    let mut m = genuine.clone();
    m.header.to = id[2];
    assert_eq!(ps[1].handle(id[0], m), Err(Error::WrongRecipient(id[2])));
    let mut m = genuine.clone();
    m.header.round = Round::REVEAL;
    assert!(matches!(
        ps[1].handle(id[0], m),
        Err(Error::Unexpected { .. })
    ));
    // wrong length
    let mut m = genuine.clone();
    if let SumBody::FastShare { shares } = &mut m.body {
        shares.0.pop();
    }
    assert_eq!(
        ps[1].handle(id[0], m),
        Err(Error::LengthMismatch {
            expected: 2,
            got: 1
        })
    );
    // a verifiable body in a fast session
    let mut vs = parties(S, 3, Mode::Verifiable { threshold: 2 }, &inputs);
    let mut vq = start_all(&mut vs, 8);
    let foreign_mode = take(&mut vq, id[0], id[1]);
    assert!(matches!(
        ps[1].handle(id[0], foreign_mode),
        Err(Error::Unexpected { .. })
    ));

    // the genuine message is still accepted, once
    assert!(ps[1].handle_bytes(id[0], &bytes).is_ok());
    assert_eq!(
        ps[1].handle_bytes(id[0], &bytes),
        Err(Error::Replayed {
            from: id[0],
            round: Round::DEAL
        })
    );

    deliver(&mut ps, q, &[false; 3]).expect("rest of the protocol");
    for p in &ps {
        assert_eq!(p.output().map(|o| o.values.clone()), Some(vec![9, 12]));
    }
}

#[test]
fn replayed_partial_sum_is_refused() {
    let inputs = vec![vec![1], vec![2], vec![3]];
    let mut ps = parties(S, 3, Mode::Additive, &inputs);
    let id = ids(3);
    let mut q = start_all(&mut ps, 9);
    // deliver all shares first
    let mut partials = Queue::new();
    while let Some((from, out)) = q.pop_front() {
        let to = id.iter().position(|x| *x == out.to).expect("recipient");
        for next in ps[to].handle(from, out.message).expect("share accepted") {
            partials.push_back((out.to, next));
        }
    }
    let (from, first) = partials.front().cloned().expect("a partial sum");
    let to = id.iter().position(|x| *x == first.to).expect("recipient");
    assert!(ps[to].handle(from, first.message.clone()).is_ok());
    assert_eq!(
        ps[to].handle(from, first.message.clone()),
        Err(Error::Replayed {
            from,
            round: Round::REVEAL
        })
    );
    partials.pop_front();
    deliver(&mut ps, partials, &[false; 3]).expect("rest");
    assert!(
        ps.iter()
            .all(|p| p.output().map(|o| o.values.clone()) == Some(vec![6]))
    );
}

#[test]
fn cheating_dealer_is_detected_and_named() {
    let inputs = vec![vec![10, 20, 30], vec![1, 2, 3], vec![4, 5, 6]];
    let id = ids(3);
    let mode = Mode::Verifiable { threshold: 2 };
    let mut ps = parties(S, 3, mode, &inputs);
    let mut q = start_all(&mut ps, 21);
    let genuine = take(&mut q, id[0], id[1]);

    // a tampered share: refused by the digest check
    let mut m = genuine.clone();
    if let SumBody::VerifiableShare { shares, .. } = &mut m.body {
        shares.0[1] += k256::Scalar::ONE;
    }
    assert_eq!(
        ps[1].handle(id[0], m),
        Err(Error::CheatingDealer {
            dealer: id[0],
            reason: "shares do not match the published digest"
        })
    );
    // shares consistent with their digest but not with the commitments (the dealer swapped in
    // commitments of another polynomial): refused by the Feldman check
    let mut other = parties(S, 3, mode, &inputs);
    let mut oq = start_all(&mut other, 22);
    let other_msg = take(&mut oq, id[0], id[1]);
    let mut m = genuine.clone();
    if let (SumBody::VerifiableShare { public, .. }, SumBody::VerifiableShare { public: op, .. }) =
        (&mut m.body, &other_msg.body)
    {
        public.commitments = op.commitments.clone();
    }
    assert_eq!(
        ps[1].handle(id[0], m),
        Err(Error::CheatingDealer {
            dealer: id[0],
            reason: "shares are not on the committed polynomial"
        })
    );
    // state unchanged: the genuine share is accepted and the sum is exact
    assert!(ps[1].handle(id[0], genuine).is_ok());
    deliver(&mut ps, q, &[false; 3]).expect("rest");
    assert!(
        ps.iter()
            .all(|p| p.output().map(|o| o.values.clone()) == Some(vec![15, 27, 39]))
    );
}

#[test]
fn equivocating_dealer_is_exposed_by_the_echo() {
    // dealer 0 deals twice (two valid deals) and sends deal A to participant 1 and deal B to
    // participant 2; each verifies on its own, the echo in the partial sums exposes it
    let inputs = vec![vec![7], vec![1], vec![2]];
    let id = ids(3);
    let mode = Mode::Verifiable { threshold: 2 };
    let mut ps = parties(S, 3, mode, &inputs);
    let mut q = start_all(&mut ps, 31);
    let mut twin = parties(S, 3, mode, &inputs);
    let mut tq = start_all(&mut twin, 32);
    let to2 = take(&mut q, id[0], id[2]);
    let _ = to2;
    let forged = take(&mut tq, id[0], id[2]);
    q.push_back((
        id[0],
        pods_mpc::protocol::Outgoing {
            to: id[2],
            message: forged,
        },
    ));
    let result = deliver(&mut ps, q, &[false; 3]);
    assert!(
        matches!(result, Err(Error::Equivocation { dealer, .. }) if dealer == id[0]),
        "got {result:?}"
    );
}
