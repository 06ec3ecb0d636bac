//! Secure aggregation benchmark: all participants in one process, driven by one loop over a
//! memory transport (every message is CBOR-encoded and decoded). Prints each protocol's time
//! beside the plain computation on the same data in the same run, and the bytes each
//! participant sends.
//!
//! Run: `cargo bench --bench mpc_aggregate`

use std::collections::{HashSet, VecDeque};
use std::hint::black_box;
use std::time::{Duration, Instant};

use pods_mpc::protocol::{Mode, Outgoing, SecureSum, SumConfig};
use pods_mpc::psi::{PsiConfig, PsiSession};
use pods_mpc::{ParticipantId, SessionId};

type Res<T> = Result<T, pods_mpc::Error>;

/// Runs one secure sum among `inputs.len()` parties; returns (time, bytes sent by party 0).
fn secure_sum(mode: Mode, inputs: &[Vec<i64>]) -> Res<(Duration, usize, Vec<i128>)> {
    let n = inputs.len();
    let ids: Vec<ParticipantId> = (0..n as u32).map(ParticipantId).collect();
    let len = inputs[0].len();
    let session = SessionId::random()?;
    let t0 = Instant::now();
    let mut parties = ids
        .iter()
        .zip(inputs)
        .map(|(me, input)| {
            SecureSum::new(&SumConfig::new(session, ids.clone(), *me, mode, len), input)
        })
        .collect::<Res<Vec<_>>>()?;
    let sent0 = pump(
        &mut parties,
        &ids,
        |p| p.start(),
        |p, from, bytes| p.handle_bytes(from, bytes),
        |m| m.encode(),
    )?;
    let elapsed = t0.elapsed();
    let out = parties[0]
        .output()
        .map(|o| o.values.clone())
        .unwrap_or_default();
    Ok((elapsed, sent0, out))
}

/// Runs every party's `start`, then delivers encoded messages through a memory queue until
/// none is left; returns the bytes party 0 sent.
fn pump<P, M>(
    parties: &mut [P],
    ids: &[ParticipantId],
    start: impl Fn(&mut P) -> Res<Vec<Outgoing<M>>>,
    handle: impl Fn(&mut P, ParticipantId, &[u8]) -> Res<Vec<Outgoing<M>>>,
    encode: impl Fn(&M) -> Res<Vec<u8>>,
) -> Res<usize> {
    let mut queue = VecDeque::new();
    let mut sent0 = 0usize;
    let mut send = |from: ParticipantId, out: Outgoing<M>, queue: &mut VecDeque<_>| -> Res<()> {
        let bytes = encode(&out.message)?;
        if from.0 == 0 {
            sent0 += bytes.len();
        }
        queue.push_back((from, out.to, bytes));
        Ok(())
    };
    for (p, me) in parties.iter_mut().zip(ids) {
        for out in start(p)? {
            send(*me, out, &mut queue)?;
        }
    }
    while let Some((from, to, bytes)) = queue.pop_front() {
        for out in handle(&mut parties[to.0 as usize], from, &bytes)? {
            send(to, out, &mut queue)?;
        }
    }
    Ok(sent0)
}

fn plain_sum(inputs: &[Vec<i64>]) -> (Duration, Vec<i128>) {
    let t0 = Instant::now();
    let len = inputs[0].len();
    let mut acc = vec![0i128; len];
    for v in inputs {
        for (a, x) in acc.iter_mut().zip(v) {
            *a += i128::from(*x);
        }
    }
    let acc = black_box(acc);
    (t0.elapsed(), acc)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

fn fmt(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.1} µs")
    } else if us < 1e6 {
        format!("{:.2} ms", us / 1e3)
    } else {
        format!("{:.2} s", us / 1e6)
    }
}

fn row(name: &str, len: usize, ours: Duration, plain: Duration, bytes: usize, n: usize) {
    let ratio = ours.as_secs_f64() / plain.as_secs_f64().max(1e-9);
    let per_value = bytes as f64 / len as f64;
    let elems = per_value / 8.0;
    println!(
        "{name:<28} {len:>9} {:>11} {:>11} {ratio:>10.0}x {bytes:>12} {per_value:>9.1} {elems:>6.2} (2(n-1)={})",
        fmt(ours),
        fmt(plain),
        2 * (n - 1)
    );
}

fn sum_case(name: &str, mode: Mode, n: usize, len: usize, reps: usize) -> Res<()> {
    let inputs: Vec<Vec<i64>> = (0..n)
        .map(|i| {
            (0..len)
                .map(|j| ((i * 7919 + j * 104_729) % 1_000_003) as i64 - 500_000)
                .collect()
        })
        .collect();
    let mut ours = Vec::new();
    let mut plain = Vec::new();
    let mut bytes = 0;
    for _ in 0..reps {
        let (d, b, out) = secure_sum(mode, &inputs)?;
        let (p, expected) = plain_sum(&inputs);
        assert_eq!(out, expected, "secure sum differs from the plain sum");
        ours.push(d);
        plain.push(p);
        bytes = b;
    }
    row(name, len, median(ours), median(plain), bytes, n);
    Ok(())
}

fn psi_case(size: usize) -> Res<()> {
    let ids: Vec<ParticipantId> = (0..2).map(ParticipantId).collect();
    let a: Vec<Vec<u8>> = (0..size)
        .map(|i| format!("subject-{i}").into_bytes())
        .collect();
    let b: Vec<Vec<u8>> = (size / 2..size + size / 2)
        .map(|i| format!("subject-{i}").into_bytes())
        .collect();
    let t0 = Instant::now();
    let sa: HashSet<&Vec<u8>> = a.iter().collect();
    let plain = black_box(b.iter().filter(|x| sa.contains(x)).count());
    let plain_t = t0.elapsed();
    let session = SessionId::random()?;
    let t0 = Instant::now();
    let mut parties = [a, b]
        .into_iter()
        .zip(&ids)
        .map(|(set, me)| {
            let cfg = PsiConfig {
                session,
                participants: ids.clone(),
                me: *me,
                receiver: ids[0],
                max_set_size: size,
            };
            PsiSession::new(&cfg, set)
        })
        .collect::<Res<Vec<_>>>()?;
    let sent0 = pump(
        &mut parties,
        &ids,
        |p| p.start(),
        |p, from, bytes| p.handle_bytes(from, bytes),
        |m| m.encode(),
    )?;
    let ours = t0.elapsed();
    assert_eq!(parties[0].cardinality(), Some(plain as u64));
    assert_eq!(parties[1].cardinality(), Some(plain as u64));
    println!(
        "{:<28} {size:>9} {:>11} {:>11} {:>10.0}x {sent0:>12} {:>9.1}   (|∩| = {plain})",
        "PSI cardinality, 2 parties",
        fmt(ours),
        fmt(plain_t),
        ours.as_secs_f64() / plain_t.as_secs_f64().max(1e-9),
        sent0 as f64 / size as f64
    );
    Ok(())
}

fn main() -> Res<()> {
    println!(
        "pods-mpc secure aggregation, all parties in one process (one core), CBOR over a memory queue"
    );
    println!(
        "{:<28} {:>9} {:>11} {:>11} {:>11} {:>12} {:>9} {:>6}",
        "protocol", "values", "time", "plain", "ratio", "bytes/party", "B/value", "elems"
    );
    sum_case("additive sum, n=3", Mode::Additive, 3, 1, 2001)?;
    sum_case("additive sum, n=3", Mode::Additive, 3, 10_000, 201)?;
    sum_case("additive sum, n=3", Mode::Additive, 3, 1_000_000, 5)?;
    sum_case(
        "Shamir sum, t=2 of 3",
        Mode::Shamir { threshold: 2 },
        3,
        1,
        2001,
    )?;
    sum_case(
        "Shamir sum, t=2 of 3",
        Mode::Shamir { threshold: 2 },
        3,
        10_000,
        201,
    )?;
    sum_case(
        "Shamir sum, t=2 of 3",
        Mode::Shamir { threshold: 2 },
        3,
        1_000_000,
        5,
    )?;
    sum_case(
        "verifiable sum, t=2 of 3",
        Mode::Verifiable { threshold: 2 },
        3,
        1,
        51,
    )?;
    sum_case(
        "verifiable sum, t=2 of 3",
        Mode::Verifiable { threshold: 2 },
        3,
        1_000,
        11,
    )?;
    psi_case(100_000)?;
    println!(
        "time: median over repetitions (PSI: one run); plain: the same computation in the clear, same data, same run;"
    );
    println!(
        "bytes/party: CBOR bytes sent by participant 0 (shares out + partial sums out); elems: B/value ÷ 8-byte field element"
    );
    Ok(())
}
