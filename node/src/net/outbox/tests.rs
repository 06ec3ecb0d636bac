use std::collections::HashMap;

use proptest::prelude::*;

use super::*;

const STOCK: &str = "/peers/bob/shop/portals/stock";

fn ask(peer: &str, seq: u32, deadline: Instant) -> RemoteAsk {
    RemoteAsk {
        id: AskId {
            origin: 7,
            scope: 1,
            partition: 0,
            seq,
        },
        peer: peer.to_owned(),
        portal: "/shop/portals/stock".to_owned(),
        request: vec![seq as u8],
        envelope: None,
        deadline,
    }
}

fn sends(actions: &[Action]) -> Vec<(u64, String, Vec<u32>)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { batch, peer, asks } => Some((
                *batch,
                peer.clone(),
                asks.iter().map(|a| a.id.seq).collect(),
            )),
            Action::Answer { .. } => None,
        })
        .collect()
}

fn answer(seq: u32, result: Result<Vec<u8>, WireError>) -> Action {
    let portal = if result.is_ok() { "" } else { STOCK };
    Action::Answer {
        id: ask("bob", seq, Instant::now()).id,
        portal: portal.into(),
        result,
    }
}

#[test]
fn a_peer_gets_one_batch_at_a_time_in_order_and_what_queued_goes_next() {
    let now = Instant::now();
    let mut o = Outbox::default();
    let d = now + Duration::from_secs(30);
    let out = o.submit(
        vec![ask("bob", 0, d), ask("carol", 1, d), ask("bob", 2, d)],
        now,
    );
    assert_eq!(
        sends(&out),
        vec![(0, "bob".into(), vec![0, 2]), (1, "carol".into(), vec![1])]
    );
    assert!(
        sends(&o.submit(vec![ask("bob", 3, d), ask("bob", 4, d)], now)).is_empty(),
        "bob has a batch in flight"
    );
    let out = o.on_response(0, Response::Replies(vec![Ok(vec![10]), Ok(vec![12])]), now);
    assert_eq!(out[..2], [answer(0, Ok(vec![10])), answer(2, Ok(vec![12]))]);
    assert_eq!(
        sends(&out[2..]),
        vec![(2, "bob".into(), vec![3, 4])],
        "then what queued"
    );
    assert!(
        o.on_response(0, Response::Replies(vec![]), now).is_empty(),
        "a batch answers once"
    );
    assert_eq!(o.len(), 3);
}

#[test]
fn a_lost_batch_goes_again_first_with_growing_waits_until_the_deadline() {
    let t0 = Instant::now();
    let mut o = Outbox::default();
    let deadline = t0 + Duration::from_millis(400);
    o.submit(vec![ask("bob", 0, deadline)], t0);
    o.submit(vec![ask("bob", 1, deadline + Duration::from_secs(9))], t0);
    o.on_failure(0, t0);
    assert_eq!(o.next_wakeup(), Some(t0 + Duration::from_millis(50)));
    assert!(o.poll(t0 + Duration::from_millis(49)).is_empty());
    let again = o.poll(t0 + Duration::from_millis(50));
    assert_eq!(
        sends(&again),
        vec![(1, "bob".into(), vec![0, 1])],
        "the lost ask first, then the newer"
    );
    o.on_failure(1, t0 + Duration::from_millis(50));
    assert_eq!(
        o.next_wakeup(),
        Some(t0 + Duration::from_millis(150)),
        "twice the wait"
    );
    o.poll(t0 + Duration::from_millis(150));
    o.on_failure(2, t0 + Duration::from_millis(150));
    assert_eq!(o.next_wakeup(), Some(t0 + Duration::from_millis(350)));
    o.poll(t0 + Duration::from_millis(350));
    o.on_failure(3, t0 + Duration::from_millis(350));
    let resent = o.poll(deadline + Duration::from_millis(400));
    assert_eq!(
        sends(&resent),
        vec![(4, "bob".into(), vec![1])],
        "the first is given up at its deadline"
    );
    assert_eq!(o.len(), 1);
}

#[test]
fn busy_waits_a_final_refusal_answers_and_too_large_goes_alone() {
    let now = Instant::now();
    let mut o = Outbox::default();
    let d = now + Duration::from_secs(30);
    o.submit(
        vec![
            ask("bob", 0, d),
            ask("bob", 1, d),
            ask("bob", 2, d),
            ask("bob", 3, d),
        ],
        now,
    );
    let busy = WireError::new(ErrorCode::Busy, "later");
    let denied = WireError::new(ErrorCode::NotAllowed, "no");
    let big = WireError::new(ErrorCode::TooLarge, "big");
    let r = Response::Replies(vec![
        Err(busy),
        Err(denied.clone()),
        Err(big.clone()),
        Err(big.clone()),
    ]);
    assert_eq!(o.on_response(0, r, now), vec![answer(1, Err(denied))]);
    let again = o.poll(now + MAX_BACKOFF);
    assert_eq!(
        sends(&again),
        vec![(1, "bob".into(), vec![0])],
        "the busy one; the large ones go alone after it"
    );
    o.on_response(1, Response::Replies(vec![Ok(vec![0])]), now + MAX_BACKOFF);
    let out = o.on_response(2, Response::Refused(big.clone()), now + MAX_BACKOFF);
    assert_eq!(
        out[0],
        answer(2, Err(big)),
        "alone and still too large: it fails"
    );
    assert_eq!(sends(&out[1..]), vec![(3, "bob".into(), vec![3])]);
}

#[test]
fn a_batch_holds_at_most_max_batch_asks() {
    let now = Instant::now();
    let mut o = Outbox::default();
    let d = now + Duration::from_secs(30);
    let out = o.submit((0..1500).map(|s| ask("bob", s, d)).collect(), now);
    assert_eq!(sends(&out)[0].2.len(), MAX_BATCH);
}

#[derive(Clone, Debug)]
enum Fate {
    Lost,
    Busy,
    Answered,
}

#[test]
fn the_next_wakeup_is_the_soonest_deadline_of_thousands() {
    let t0 = Instant::now();
    let mut o = Outbox::default();
    let deadline = |s: u32| t0 + Duration::from_secs(10 + u64::from(s % 7));
    // 5,000 asks, deadlines out of order; the first batch is in flight, the rest wait.
    let out = o.submit((0..5_000).map(|s| ask("bob", s, deadline(s))).collect(), t0);
    assert_eq!(sends(&out).len(), 1);
    assert_eq!(o.next_wakeup(), Some(t0 + Duration::from_secs(10)));
    // bob is away: the batch is lost, and every deadline passes.
    o.on_failure(0, t0);
    assert_eq!(
        o.next_wakeup(),
        Some(t0 + FIRST_BACKOFF),
        "the backoff comes first"
    );
    assert!(sends(&o.poll(t0 + Duration::from_secs(20))).is_empty());
    assert!(o.is_empty());
    assert_eq!(o.next_wakeup(), None);
    assert!(o.lanes.is_empty(), "nothing kept of them");
}

#[test]
fn a_forgotten_ask_asked_again_goes_once() {
    let t0 = Instant::now();
    let mut o = Outbox::default();
    let soon = t0 + Duration::from_secs(1);
    let out = o.submit((0..3).map(|s| ask("bob", s, soon)).collect(), t0);
    assert_eq!(sends(&out), vec![(0, "bob".into(), vec![0, 1, 2])]);
    assert!(
        o.submit((3..60).map(|s| ask("bob", s, soon)).collect(), t0)
            .is_empty()
    );
    // Every deadline passes while the first batch is in flight; then the runtime asks 4 and
    // 9 again (a replayed atom), and the batch in flight is lost.
    let late = t0 + Duration::from_secs(2);
    assert!(o.poll(late).is_empty());
    let later = late + Duration::from_secs(30);
    assert!(
        o.submit(vec![ask("bob", 4, later), ask("bob", 9, later)], late)
            .is_empty()
    );
    o.on_failure(0, late);
    let out = o.poll(late + FIRST_BACKOFF);
    assert_eq!(
        sends(&out),
        vec![(1, "bob".into(), vec![4, 9])],
        "each once, not also for its first asking"
    );
    let out = o.on_response(1, Response::Replies(vec![Ok(vec![1]); 2]), late);
    assert_eq!(out, [answer(4, Ok(vec![1])), answer(9, Ok(vec![1]))]);
    assert!(o.is_empty());
    assert_eq!(o.next_wakeup(), None);
}

proptest! {
    /// Whatever happens to each batch: each peer has at most one batch in flight; the asks
    /// a peer is first sent come in the order they were asked; every ask is answered at most
    /// once, and ends answered or given up after its deadline.
    #[test]
    fn asks_go_in_order_once_each_and_end(
        n in 1usize..40,
        fates in proptest::collection::vec(prop_oneof![Just(Fate::Lost), Just(Fate::Busy), Just(Fate::Answered)], 1..60),
    ) {
        let t0 = Instant::now();
        // Deadlines from 2 s to 5 s, out of order.
        let deadline = |s: u32| t0 + Duration::from_millis(2_000 + u64::from(s * 7_919 % 3_000));
        let mut o = Outbox::default();
        let mut in_flight: Vec<(u64, String, usize)> = Vec::new();
        let mut answered: HashMap<u32, usize> = HashMap::new();
        let mut first_sent: HashMap<String, Vec<u32>> = HashMap::new();
        let mut broken = None;
        let mut take = |actions: Vec<Action>, in_flight: &mut Vec<(u64, String, usize)>| {
            for a in actions {
                match a {
                    Action::Send { batch, peer, asks } => {
                        if in_flight.iter().any(|(_, p, _)| *p == peer) {
                            broken = Some(format!("two batches in flight to {peer}"));
                        }
                        let seen = first_sent.entry(peer.clone()).or_default();
                        for a in &asks {
                            if !seen.contains(&a.id.seq) {
                                seen.push(a.id.seq);
                            }
                        }
                        in_flight.push((batch, peer, asks.len()));
                    }
                    Action::Answer { id, .. } => *answered.entry(id.seq).or_default() += 1,
                }
            }
        };
        let peer = |s: u32| if s.is_multiple_of(3) { "carol" } else { "bob" };
        let mut now = t0;
        for chunk in (0..n as u32).collect::<Vec<_>>().chunks(7) {
            take(o.submit(chunk.iter().map(|&s| ask(peer(s), s, deadline(s))).collect(), now), &mut in_flight);
        }
        for fate in fates.iter().cycle().take(300) {
            now += Duration::from_millis(40);
            take(o.poll(now), &mut in_flight);
            // Something pending wakes the shell no later than the soonest deadline.
            let soonest = o.pending.values().map(|p| p.ask.deadline).min();
            if let Some(d) = soonest {
                prop_assert!(o.next_wakeup().is_some_and(|w| w <= d), "wakeup {:?} after {:?}", o.next_wakeup(), d);
            }
            if in_flight.is_empty() { continue }
            let (batch, _, len) = in_flight.remove(0);
            match fate {
                Fate::Lost => o.on_failure(batch, now),
                Fate::Busy => {
                    let r = Response::Refused(WireError::new(ErrorCode::Busy, "busy"));
                    take(o.on_response(batch, r, now), &mut in_flight);
                }
                Fate::Answered => {
                    let r = Response::Replies(vec![Ok(vec![1]); len]);
                    take(o.on_response(batch, r, now), &mut in_flight);
                }
            }
        }
        now = t0 + Duration::from_secs(5) + MAX_BACKOFF;
        take(o.poll(now), &mut in_flight);
        for (batch, _, _) in in_flight.drain(..) {
            o.on_failure(batch, now);
        }
        take(o.poll(now + MAX_BACKOFF), &mut in_flight);
        prop_assert_eq!(broken, None);
        for (p, seen) in &first_sent {
            let mut sorted = seen.clone();
            sorted.sort_unstable();
            prop_assert_eq!(seen, &sorted, "{} got asks out of order", p);
        }
        prop_assert!(answered.values().all(|&c| c == 1), "{:?}", answered);
        prop_assert!(o.is_empty(), "{} asks left", o.len());
    }
}
