//! PSI cardinality equals the plain intersection size; bad messages are refused.

use std::collections::{BTreeSet, VecDeque};

use pods_mpc::psi::{PsiBody, PsiConfig, PsiMessage, PsiSession};
use pods_mpc::{Error, ParticipantId, SessionId};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::common::ids;

fn sessions(sets: &[BTreeSet<u32>]) -> Vec<PsiSession> {
    let id = ids(sets.len());
    id.iter()
        .zip(sets)
        .map(|(me, set)| {
            let cfg = PsiConfig {
                session: SessionId([4; 32]),
                participants: id.clone(),
                me: *me,
                receiver: id[0],
                max_set_size: 10_000,
            };
            let elems = set
                .iter()
                .map(|x| format!("subject-{x}").into_bytes())
                .collect();
            PsiSession::new(&cfg, elems).expect("valid")
        })
        .collect()
}

fn run(ss: &mut [PsiSession], seed: u64) -> Result<(), Error> {
    let id = ids(ss.len());
    let mut q = VecDeque::new();
    for (i, s) in ss.iter_mut().enumerate() {
        let mut rng = StdRng::seed_from_u64(seed + i as u64);
        for out in s.start_with_rng(&mut rng)? {
            q.push_back((id[i], out));
        }
    }
    while let Some((from, out)) = q.pop_front() {
        let to = id.iter().position(|x| *x == out.to).expect("recipient");
        let bytes = out.message.encode()?;
        for next in ss[to].handle_bytes(from, &bytes)? {
            q.push_back((out.to, next));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]
    #[test]
    fn cardinality_equals_plain_intersection(m in 2usize..=4, seed in any::<u64>(),
                                             raw in proptest::collection::vec(proptest::collection::btree_set(0u32..120, 0..60), 4)) {
        let sets: Vec<BTreeSet<u32>> = raw.into_iter().take(m).collect();
        let plain = sets.iter().skip(1).fold(sets[0].clone(), |acc, s| acc.intersection(s).copied().collect()).len() as u64;
        let mut ss = sessions(&sets);
        prop_assert_eq!(run(&mut ss, seed), Ok(()));
        for s in &ss {
            prop_assert_eq!(s.cardinality(), Some(plain));
        }
    }
}

#[test]
fn bad_psi_messages_are_refused() {
    let sets = vec![(0..20).collect::<BTreeSet<u32>>(), (10..30).collect()];
    let mut ss = sessions(&sets);
    let id = ids(2);
    let mut rng = StdRng::seed_from_u64(1);
    let first = ss[0]
        .start_with_rng(&mut rng)
        .expect("start")
        .remove(0)
        .message;
    let mut rng = StdRng::seed_from_u64(2);
    let second = ss[1]
        .start_with_rng(&mut rng)
        .expect("start")
        .remove(0)
        .message;
    let bytes = first.encode().expect("encode");
    assert_eq!(
        ss[1].handle_bytes(id[0], &bytes[..bytes.len() / 2]),
        Err(Error::Truncated)
    );
    let mut m = first.clone();
    m.header.session = SessionId([0; 32]);
    assert!(matches!(
        ss[1].handle(id[0], m),
        Err(Error::ForeignSession { .. })
    ));
    assert_eq!(
        ss[1].handle(ParticipantId(7), first.clone()),
        Err(Error::NotParticipant(ParticipantId(7)))
    );
    // an unsorted set and an invalid point
    let mut m = first.clone();
    if let PsiBody::Pass { set, .. } = &mut m.body {
        set.0.reverse();
    }
    assert!(matches!(ss[1].handle(id[0], m), Err(Error::Malformed(_))));
    let mut m = first.clone();
    if let PsiBody::Pass { set, .. } = &mut m.body
        && let Some(last) = set.0.last_mut()
    {
        *last = [0xff; 33]; // still sorted, but not a point encoding
    }
    assert_eq!(
        ss[1].handle(id[0], m),
        Err(Error::NonCanonical("curve point"))
    );
    // state unchanged: the genuine message is accepted once, then it is a replay
    let reply = ss[1].handle(id[0], first.clone()).expect("accepted");
    assert!(matches!(
        ss[1].handle(id[0], first),
        Err(Error::Replayed { .. })
    ));
    // finish: participant 0 gets its own set back blinded and participant 1's set
    let mut q: VecDeque<(ParticipantId, PsiMessage)> =
        reply.into_iter().map(|o| (id[1], o.message)).collect();
    q.push_back((id[1], second));
    while let Some((from, m)) = q.pop_front() {
        let to = if m.header.to == id[0] { 0 } else { 1 };
        for next in ss[to].handle(from, m).expect("accepted") {
            q.push_back((id[to], next.message));
        }
    }
    assert_eq!(ss[0].cardinality(), Some(10));
    assert_eq!(ss[1].cardinality(), Some(10));
}
