//! Aggregate queries: exact statistics per group, suppression below k.

use std::collections::VecDeque;

use pods_mpc::SessionId;
use pods_mpc::aggregate::{AggregateConfig, AggregateSession, GroupResult, GroupStats, Query, Row};
use pods_mpc::protocol::{Mode, Receivers};

use crate::common::ids;

fn rows(spec: &[(&str, i64)]) -> Vec<Row> {
    spec.iter()
        .map(|(g, v)| Row {
            group: (*g).to_string(),
            value: *v,
        })
        .collect()
}

fn run(mode: Mode, receivers: Receivers) -> Vec<AggregateSession> {
    let id = ids(3);
    let query = Query {
        groups: vec!["asthma".into(), "diabetes".into(), "rare".into()],
        bucket_edges: vec![30, 60],
        min_group_size: 3,
        max_abs_value: 150,
        max_rows: 1000,
        mode,
    };
    let data = [
        rows(&[
            ("asthma", 25),
            ("diabetes", 70),
            ("rare", 40),
            ("other", 99),
        ]),
        rows(&[("asthma", 35), ("asthma", 61), ("diabetes", 55)]),
        rows(&[("diabetes", 80), ("asthma", 10)]),
    ];
    let mut sessions: Vec<AggregateSession> = id
        .iter()
        .zip(&data)
        .map(|(me, rows)| {
            let cfg = AggregateConfig {
                session: SessionId([1; 32]),
                participants: id.clone(),
                me: *me,
                receivers: receivers.clone(),
                query: query.clone(),
            };
            AggregateSession::new(&cfg, rows).expect("valid")
        })
        .collect();
    let mut q = VecDeque::new();
    for (s, me) in sessions.iter_mut().zip(&id) {
        for out in s.start().expect("start") {
            q.push_back((*me, out));
        }
    }
    while let Some((from, out)) = q.pop_front() {
        let to = id.iter().position(|x| *x == out.to).expect("recipient");
        for next in sessions[to].handle(from, out.message).expect("accepted") {
            q.push_back((out.to, next));
        }
    }
    sessions
}

fn expected() -> Vec<GroupResult> {
    // asthma: 25, 35, 61, 10; diabetes: 70, 55, 80; rare: 40 (suppressed, k = 3)
    let stats = |vals: &[i64], histogram: Vec<u64>| {
        let count = vals.len() as u64;
        let sum: i128 = vals.iter().map(|v| i128::from(*v)).sum();
        let sq: i128 = vals.iter().map(|v| i128::from(*v * *v)).sum();
        let mean = sum as f64 / count as f64;
        GroupResult::Released(GroupStats {
            count,
            sum,
            sum_of_squares: sq,
            mean,
            variance: sq as f64 / count as f64 - mean * mean,
            histogram,
        })
    };
    vec![
        stats(&[25, 35, 61, 10], vec![2, 1, 1]),
        stats(&[70, 55, 80], vec![0, 1, 2]),
        GroupResult::Suppressed,
    ]
}

#[test]
fn grouped_statistics_are_exact_and_small_groups_suppressed() {
    for mode in [
        Mode::Additive,
        Mode::Shamir { threshold: 2 },
        Mode::Verifiable { threshold: 2 },
    ] {
        let sessions = run(mode, Receivers::All);
        for s in &sessions {
            assert!(s.is_finished());
            assert_eq!(
                s.results().map(|r| r.ok()),
                Some(Some(expected())),
                "mode {mode:?}"
            );
        }
    }
}

#[test]
fn only_named_receiver_learns_statistics() {
    let id = ids(3);
    let sessions = run(Mode::Shamir { threshold: 2 }, Receivers::Only(vec![id[2]]));
    assert_eq!(
        sessions[2].results().map(|r| r.ok()),
        Some(Some(expected()))
    );
    assert!(sessions[0].results().is_none());
    assert!(sessions[1].results().is_none());
    assert!(sessions.iter().all(AggregateSession::is_finished));
}

#[test]
fn out_of_bounds_input_and_queries_are_refused() {
    let id = ids(2);
    let mut query = Query {
        groups: vec!["a".into()],
        bucket_edges: vec![],
        min_group_size: 1,
        max_abs_value: 10,
        max_rows: 5,
        mode: Mode::Additive,
    };
    let cfg = |q: &Query| AggregateConfig {
        session: SessionId([2; 32]),
        participants: id.clone(),
        me: id[0],
        receivers: Receivers::All,
        query: q.clone(),
    };
    assert!(AggregateSession::new(&cfg(&query), &rows(&[("a", 11)])).is_err());
    assert!(AggregateSession::new(&cfg(&query), &rows(&[("a", 1); 6])).is_err());
    query.max_abs_value = 1 << 30;
    query.max_rows = 1 << 20;
    assert!(matches!(
        AggregateSession::new(&cfg(&query), &[]),
        Err(pods_mpc::Error::InvalidConfig(_))
    ));
}
