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

#[test]
fn asks_go_out_as_one_batch_per_peer_and_replies_answer_them_once() {
    let now = Instant::now();
    let mut o = Outbox::default();
    let deadline = now + Duration::from_secs(30);
    let out = o.submit(vec![
        ask("bob", 0, deadline),
        ask("carol", 1, deadline),
        ask("bob", 2, deadline),
    ]);
    assert_eq!(
        sends(&out),
        vec![(0, "bob".into(), vec![0, 2]), (1, "carol".into(), vec![1])]
    );
    let answers = o.on_response(0, Response::Replies(vec![Ok(vec![10]), Ok(vec![12])]), now);
    assert_eq!(
        answers,
        vec![
            Action::Answer {
                id: ask("bob", 0, deadline).id,
                portal: STOCK.into(),
                result: Ok(vec![10])
            },
            Action::Answer {
                id: ask("bob", 2, deadline).id,
                portal: STOCK.into(),
                result: Ok(vec![12])
            },
        ]
    );
    assert_eq!(
        o.on_response(0, Response::Replies(vec![]), now),
        vec![],
        "a batch answers once"
    );
    assert_eq!(o.len(), 1);
}

#[test]
fn a_lost_batch_is_sent_again_with_growing_waits_until_the_deadline() {
    let t0 = Instant::now();
    let mut o = Outbox::default();
    let deadline = t0 + Duration::from_millis(400);
    let out = o.submit(vec![ask("bob", 0, deadline)]);
    assert_eq!(sends(&out).len(), 1);
    o.on_failure(0, t0);
    assert_eq!(o.next_wakeup(), Some(t0 + Duration::from_millis(50)));
    assert!(o.poll(t0 + Duration::from_millis(49)).is_empty());
    let again = o.poll(t0 + Duration::from_millis(50));
    assert_eq!(
        sends(&again),
        vec![(1, "bob".into(), vec![0])],
        "the same ask, a new batch"
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
    assert_eq!(o.next_wakeup(), Some(deadline), "never past the deadline");
    assert!(o.poll(deadline).is_empty(), "given up at the deadline");
    assert!(o.is_empty());
}

#[test]
fn busy_is_retried_and_a_final_refusal_answers() {
    let now = Instant::now();
    let mut o = Outbox::default();
    let deadline = now + Duration::from_secs(30);
    o.submit(vec![ask("bob", 0, deadline), ask("bob", 1, deadline)]);
    let busy = WireError::new(ErrorCode::Busy, "later");
    let denied = WireError::new(ErrorCode::NotAllowed, "no");
    let out = o.on_response(
        0,
        Response::Replies(vec![Err(busy), Err(denied.clone())]),
        now,
    );
    assert_eq!(
        out,
        vec![Action::Answer {
            id: ask("bob", 1, deadline).id,
            portal: STOCK.into(),
            result: Err(denied)
        }]
    );
    assert_eq!(o.len(), 1, "the busy one waits to go again");
    let again = o.poll(now + MAX_BACKOFF);
    assert_eq!(sends(&again), vec![(1, "bob".into(), vec![0])]);
}

#[derive(Clone, Debug)]
enum Fate {
    Lost,
    Busy,
    Answered,
}

proptest! {
    /// Whatever happens to each batch, every ask is answered at most once, and each ask is
    /// either answered or given up once its deadline passed; nothing is left behind.
    #[test]
    fn every_ask_ends_answered_once_or_given_up(
        n in 1usize..20,
        fates in proptest::collection::vec(prop_oneof![Just(Fate::Lost), Just(Fate::Busy), Just(Fate::Answered)], 1..60),
    ) {
        let t0 = Instant::now();
        let deadline = t0 + Duration::from_secs(5);
        let mut o = Outbox::default();
        let mut in_flight: Vec<(u64, usize)> = Vec::new();
        let mut answered: HashMap<u32, usize> = HashMap::new();
        let mut take = |actions: Vec<Action>, in_flight: &mut Vec<(u64, usize)>| {
            for a in actions {
                match a {
                    Action::Send { batch, asks, .. } => in_flight.push((batch, asks.len())),
                    Action::Answer { id, .. } => *answered.entry(id.seq).or_default() += 1,
                }
            }
        };
        let asks = (0..n as u32).map(|s| ask(if s % 2 == 0 { "bob" } else { "carol" }, s, deadline)).collect();
        take(o.submit(asks), &mut in_flight);
        let mut now = t0;
        for fate in fates.iter().cycle().take(400) {
            now += Duration::from_millis(40);
            take(o.poll(now), &mut in_flight);
            let Some((batch, len)) = in_flight.pop() else { continue };
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
        now = deadline + MAX_BACKOFF;
        take(o.poll(now), &mut in_flight);
        for (batch, _) in in_flight.drain(..) {
            o.on_failure(batch, now);
        }
        take(o.poll(now + MAX_BACKOFF), &mut in_flight);
        prop_assert!(answered.values().all(|&c| c == 1), "{answered:?}");
        prop_assert!(o.is_empty(), "{} asks left", o.len());
    }
}
