//! Statistical privacy checks at significance level α = 0.001 (deterministic seeds, so the
//! outcome is reproducible). Each test also runs a negative control that the same statistic
//! must reject, which shows that the test can fail.

use std::collections::HashMap;

use pods_mpc::field::{Element, Fp};
use pods_mpc::protocol::{Mode, SumBody};
use pods_mpc::{ParticipantId, SessionId};

use crate::common::{Queue, ids, parties, start_all};

/// Upper α = 0.001 quantile of χ² with `df` degrees of freedom (Wilson–Hilferty).
fn chi2_critical(df: usize) -> f64 {
    let k = df as f64;
    let z = 3.090_232; // standard normal 0.999 quantile
    k * (1.0 - 2.0 / (9.0 * k) + z * (2.0 / (9.0 * k)).sqrt()).powi(3)
}

/// χ² statistic of observed counts against the uniform distribution over `bins`.
fn chi2_uniform(counts: &[u64]) -> f64 {
    let total: u64 = counts.iter().sum();
    let e = total as f64 / counts.len() as f64;
    counts.iter().map(|c| (*c as f64 - e).powi(2) / e).sum()
}

/// Two-sample χ² homogeneity statistic and its degrees of freedom.
fn chi2_two_sample(a: &HashMap<u32, u64>, b: &HashMap<u32, u64>) -> (f64, usize) {
    let (na, nb) = (
        a.values().sum::<u64>() as f64,
        b.values().sum::<u64>() as f64,
    );
    let mut keys: Vec<u32> = a.keys().chain(b.keys()).copied().collect();
    keys.sort_unstable();
    keys.dedup();
    let mut stat = 0.0;
    for k in &keys {
        let (oa, ob) = (
            *a.get(k).unwrap_or(&0) as f64,
            *b.get(k).unwrap_or(&0) as f64,
        );
        let tot = oa + ob;
        let (ea, eb) = (tot * na / (na + nb), tot * nb / (na + nb));
        stat += (oa - ea).powi(2) / ea + (ob - eb).powi(2) / eb;
    }
    (stat, keys.len().saturating_sub(1))
}

fn low_byte(x: Fp) -> usize {
    (x.value() & 0xff) as usize
}

fn fast_values(body: &SumBody) -> Vec<Fp> {
    match body {
        SumBody::FastShare { shares } => shares.0.clone(),
        SumBody::FastPartial { values, .. } => values.0.clone(),
        _ => Vec::new(),
    }
}

#[test]
fn received_shares_have_uniform_low_bits() {
    for mode in [Mode::Additive, Mode::Shamir { threshold: 2 }] {
        // participant 0 always holds the same small input; participant 1 looks at its share
        let inputs = vec![vec![7i64; 64], vec![0; 64], vec![0; 64]];
        let id = ids(3);
        let mut counts = vec![0u64; 256];
        for run in 0..400u64 {
            let mut ps = parties(SessionId([run as u8; 32]), 3, mode, &inputs);
            let q = start_all(&mut ps, run);
            for (from, out) in &q {
                if *from == id[0] && out.to == id[1] {
                    for v in fast_values(&out.message.body) {
                        counts[low_byte(v)] += 1;
                    }
                }
            }
        }
        let stat = chi2_uniform(&counts);
        assert!(
            stat < chi2_critical(255),
            "{mode:?}: χ² = {stat:.1} ≥ {:.1}",
            chi2_critical(255)
        );
        // negative control: the inputs themselves plus a little noise are far from uniform
        let mut control = vec![0u64; 256];
        for i in 0..25_600u64 {
            control[low_byte(Fp::new(7 + (i % 16)))] += 1;
        }
        assert!(chi2_uniform(&control) > chi2_critical(255));
    }
}

/// Participant 0's view of one run, reduced to a bin: two low bits of each share it received,
/// of the first partial sum it received, and of the revealed sum (the sum is the same in both
/// input sets, so this coordinate is constant unless the sums differ).
fn view_bin(q_all: &[(ParticipantId, SumBody)], id: &[ParticipantId], output: i128) -> u32 {
    let mut bin = 0u32;
    for who in [id[1], id[2]] {
        for (from, body) in q_all {
            if *from == who && matches!(body, SumBody::FastShare { .. }) {
                bin = bin * 4
                    + fast_values(body)
                        .first()
                        .map(|v| (v.value() & 3) as u32)
                        .unwrap_or(0);
            }
        }
    }
    let partial = q_all
        .iter()
        .find(|(from, body)| *from == id[1] && matches!(body, SumBody::FastPartial { .. }))
        .and_then(|(_, b)| fast_values(b).first().copied())
        .map(|v| (v.value() & 3) as u32)
        .unwrap_or(0);
    bin * 16
        + partial * 4
        + (Fp::encode_i64(output as i64)
            .map(|v| v.value() & 3)
            .unwrap_or(0) as u32)
}

/// Runs the protocol and returns participant 0's bin for each run.
fn views(mode: Mode, others: [i64; 2], runs: u64, salt: u64) -> HashMap<u32, u64> {
    let id = ids(3);
    let mut hist = HashMap::new();
    for run in 0..runs {
        let inputs = vec![vec![5], vec![others[0]], vec![others[1]]];
        let mut ps = parties(SessionId([1; 32]), 3, mode, &inputs);
        let mut q: Queue = start_all(&mut ps, run * 1000 + salt);
        let mut received = Vec::new();
        while let Some((from, out)) = q.pop_front() {
            let to = id.iter().position(|x| *x == out.to).expect("recipient");
            if to == 0 {
                received.push((from, out.message.body.clone()));
            }
            for next in ps[to].handle(from, out.message).expect("accepted") {
                q.push_back((out.to, next));
            }
        }
        let output = ps[0]
            .output()
            .and_then(|o| o.values.first().copied())
            .unwrap_or(0);
        *hist.entry(view_bin(&received, &id, output)).or_insert(0) += 1;
    }
    hist
}

#[test]
fn view_is_independent_of_others_inputs_given_the_sum() {
    for mode in [Mode::Additive, Mode::Shamir { threshold: 2 }] {
        // same sum (30) from different inputs: views must be identically distributed
        let a = views(mode, [10, 15], 6000, 1);
        let b = views(mode, [24, 1], 6000, 2);
        let (stat, df) = chi2_two_sample(&a, &b);
        assert!(
            stat < chi2_critical(df),
            "{mode:?}: χ² = {stat:.1} ≥ {:.1} (df {df})",
            chi2_critical(df)
        );
        // negative control: a different sum must be told apart
        let c = views(mode, [10, 16], 6000, 3);
        let (stat, df) = chi2_two_sample(&a, &c);
        assert!(
            stat > chi2_critical(df),
            "{mode:?}: control not rejected, χ² = {stat:.1}"
        );
    }
}
