use std::collections::HashMap;

use proptest::prelude::*;

use super::*;

fn pair(subject: &str, peer: &str) -> Pair {
    Pair {
        subject: subject.into(),
        peer: peer.into(),
    }
}

fn ids(actions: &[Action]) -> Vec<u64> {
    actions
        .iter()
        .map(|a| match a {
            Action::Send { id, .. } => *id,
        })
        .collect()
}

#[test]
fn each_pending_pair_is_sent_once_until_its_outcome() {
    let t0 = Instant::now();
    let mut e = PeerRequests::default();
    e.sync([pair("alice", "b"), pair("alice", "c")], t0);
    let sent = e.poll(t0);
    assert_eq!(sent.len(), 2);
    assert!(e.poll(t0).is_empty(), "nothing twice while in flight");
    assert_eq!(e.next_wakeup(), None);
    let [a, b] = ids(&sent)[..] else {
        panic!("two sends")
    };
    assert_eq!(e.acknowledged(a), Some(pair("alice", "b")));
    assert_eq!(e.acknowledged(a), None, "an acknowledgement counts once");
    e.failed(b, t0);
    assert_eq!(e.next_wakeup(), Some(t0 + FIRST_BACKOFF));
    assert!(e.poll(t0).is_empty(), "not before its backoff");
    let again = e.poll(t0 + FIRST_BACKOFF);
    assert_eq!(again.len(), 1);
    assert_eq!(e.acknowledged(ids(&again)[0]), Some(pair("alice", "c")));
    assert_eq!(e.pending().count(), 0);
}

#[test]
fn a_peer_that_connects_again_is_asked_at_once() {
    let t0 = Instant::now();
    let mut e = PeerRequests::default();
    e.sync(
        [pair("alice", "b"), pair("bob", "b"), pair("alice", "c")],
        t0,
    );
    let sent = e.poll(t0);
    let mut now = t0;
    // Every request failed many times in a row: the next tries are far off.
    for _ in 0..10 {
        for id in ids(&sent) {
            e.failed(id, now);
        }
        now = e.next_wakeup().unwrap();
        let again = e.poll(now);
        assert_eq!(again.len(), 3);
        for id in ids(&again) {
            e.failed(id, now);
        }
    }
    assert!(e.poll(now).is_empty());
    e.connected("b", now);
    assert_eq!(e.next_wakeup(), Some(now), "b's pairs are due now");
    let due: Vec<Pair> = e
        .poll(now)
        .into_iter()
        .map(|Action::Send { pair, .. }| pair)
        .collect();
    assert_eq!(due, [pair("alice", "b"), pair("bob", "b")], "c still waits");
    let failed_again = ids(&e.poll(now));
    assert!(failed_again.is_empty());
}

#[test]
fn backoff_doubles_and_is_capped() {
    assert_eq!(backoff(1), FIRST_BACKOFF);
    assert_eq!(backoff(2), FIRST_BACKOFF * 2);
    assert_eq!(backoff(3), FIRST_BACKOFF * 4);
    assert_eq!(backoff(40), MAX_BACKOFF);
    assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
}

#[test]
fn sync_drops_pairs_acknowledged_elsewhere_and_a_late_reply_is_ignored() {
    let t0 = Instant::now();
    let mut e = PeerRequests::default();
    e.sync([pair("alice", "b")], t0);
    let id = ids(&e.poll(t0))[0];
    e.sync([], t0);
    assert_eq!(e.pending().count(), 0);
    assert_eq!(e.acknowledged(id), None);
    e.failed(id, t0);
    assert!(e.poll(t0).is_empty());
}

#[test]
fn a_restart_sends_the_pending_pairs_again() {
    let t0 = Instant::now();
    let mut before = PeerRequests::default();
    before.sync([pair("alice", "b")], t0);
    let _lost = before.poll(t0);
    // The state is not kept: a new one is built from policy.db at start.
    let mut after = PeerRequests::default();
    after.sync([pair("alice", "b")], t0);
    assert_eq!(ids(&after.poll(t0)).len(), 1);
}

#[test]
fn in_flight_requests_are_bounded() {
    let t0 = Instant::now();
    let mut e = PeerRequests::default();
    e.sync((0..200).map(|i| pair(&format!("s{i}"), "b")), t0);
    assert_eq!(e.poll(t0).len(), MAX_IN_FLIGHT);
    assert!(e.poll(t0).is_empty());
}

#[derive(Clone, Debug)]
enum Op {
    Poll,
    /// Deliver the outcome of the in-flight request at this index (mod the count).
    Deliver {
        index: usize,
        ack: bool,
    },
    /// Deliver an acknowledgement of an already settled id again.
    Duplicate(usize),
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        Just(Op::Poll),
        (any::<usize>(), any::<bool>()).prop_map(|(index, ack)| Op::Deliver { index, ack }),
        any::<usize>().prop_map(Op::Duplicate),
        (0u64..5_000).prop_map(Op::Advance),
    ]
}

proptest! {
    /// Under any loss (failures) and reordering of outcomes, every pending pair is
    /// acknowledged exactly once, and no wait exceeds the cap.
    #[test]
    fn every_pair_is_acknowledged_exactly_once(
        n in 1usize..12,
        ops in proptest::collection::vec(op(), 0..200),
    ) {
        let t0 = Instant::now();
        let mut now = t0;
        let mut e = PeerRequests::default();
        let all: Vec<Pair> = (0..n).map(|i| pair(&format!("s{}", i % 4), &format!("p{i}"))).collect();
        e.sync(all.clone(), now);
        let mut in_flight: Vec<u64> = Vec::new();
        let mut settled: Vec<u64> = Vec::new();
        let mut acks: HashMap<Pair, u32> = HashMap::new();
        let check = |e: &PeerRequests, now: Instant| {
            if let Some(at) = e.next_wakeup() {
                prop_assert!(at <= now + MAX_BACKOFF);
            }
            Ok(())
        };
        for o in ops {
            match o {
                Op::Poll => in_flight.extend(ids(&e.poll(now))),
                Op::Deliver { index, ack } if !in_flight.is_empty() => {
                    let id = in_flight.remove(index % in_flight.len());
                    if ack {
                        if let Some(p) = e.acknowledged(id) {
                            *acks.entry(p).or_default() += 1;
                        }
                    } else {
                        e.failed(id, now);
                    }
                    settled.push(id);
                }
                Op::Deliver { .. } => {}
                Op::Duplicate(i) if !settled.is_empty() => {
                    let id = settled[i % settled.len()];
                    if let Some(p) = e.acknowledged(id) {
                        *acks.entry(p).or_default() += 1;
                    }
                }
                Op::Duplicate(_) => {}
                Op::Advance(ms) => now += Duration::from_millis(ms),
            }
            check(&e, now)?;
        }
        // Then the network heals: every outcome in flight and every later request succeeds.
        for id in in_flight.drain(..) {
            if let Some(p) = e.acknowledged(id) {
                *acks.entry(p).or_default() += 1;
            }
        }
        for _ in 0..(n + 2) {
            if let Some(at) = e.next_wakeup() {
                now = now.max(at);
            }
            for id in ids(&e.poll(now)) {
                if let Some(p) = e.acknowledged(id) {
                    *acks.entry(p).or_default() += 1;
                }
            }
        }
        prop_assert_eq!(e.pending().count(), 0);
        for p in &all {
            prop_assert_eq!(acks.get(p).copied(), Some(1), "{:?}", p);
        }
        prop_assert!(now <= t0 + Duration::from_millis(200 * 5_000) + MAX_BACKOFF);
    }
}
