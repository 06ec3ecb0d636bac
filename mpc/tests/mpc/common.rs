//! A memory transport that drives every participant in one loop.

use std::collections::VecDeque;

use pods_mpc::protocol::{Mode, Outgoing, SecureSum, SumConfig, SumMessage};
use pods_mpc::{Error, ParticipantId, SessionId};
use rand::SeedableRng;
use rand::rngs::StdRng;

pub fn ids(n: usize) -> Vec<ParticipantId> {
    (0..n as u32).map(|i| ParticipantId(100 + i)).collect()
}

pub fn parties(session: SessionId, n: usize, mode: Mode, inputs: &[Vec<i64>]) -> Vec<SecureSum> {
    let ids = ids(n);
    let len = inputs.first().map(Vec::len).unwrap_or(1);
    ids.iter()
        .zip(inputs)
        .map(|(me, input)| {
            let cfg = SumConfig::new(session, ids.clone(), *me, mode, len);
            SecureSum::new(&cfg, input).expect("valid test configuration")
        })
        .collect()
}

pub type Queue = VecDeque<(ParticipantId, Outgoing<SumMessage>)>;

/// Starts every participant (seeded generators) and returns the queued messages.
pub fn start_all(parties: &mut [SecureSum], seed: u64) -> Queue {
    let ids = ids(parties.len());
    let mut q = Queue::new();
    for (i, (p, me)) in parties.iter_mut().zip(&ids).enumerate() {
        let mut rng = StdRng::seed_from_u64(seed.wrapping_mul(31).wrapping_add(i as u64));
        for out in p.start_with_rng(&mut rng).expect("start") {
            q.push_back((*me, out));
        }
    }
    q
}

/// Delivers messages (through their CBOR encoding) until the queue is empty. Participants
/// marked in `dropped` have dealt but vanished: messages to them are lost.
pub fn deliver(parties: &mut [SecureSum], mut q: Queue, dropped: &[bool]) -> Result<(), Error> {
    let ids = ids(parties.len());
    while let Some((from, out)) = q.pop_front() {
        let to = ids
            .iter()
            .position(|x| *x == out.to)
            .expect("known recipient");
        if dropped.get(to).copied().unwrap_or(false) {
            continue;
        }
        let bytes = out.message.encode()?;
        for next in parties[to].handle_bytes(from, &bytes)? {
            q.push_back((out.to, next));
        }
    }
    Ok(())
}

pub fn plain_sum(inputs: &[Vec<i64>]) -> Vec<i128> {
    let len = inputs.first().map(Vec::len).unwrap_or(0);
    (0..len)
        .map(|j| inputs.iter().map(|v| i128::from(v[j])).sum())
        .collect()
}
