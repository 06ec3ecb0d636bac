//! Property tests: the revealed sum equals the plain sum for n in 2..=7, t in 2..=n, with up
//! to n − t participants vanishing after dealing.

use pods_mpc::SessionId;
use pods_mpc::protocol::Mode;
use proptest::prelude::*;

use crate::common::{deliver, parties, plain_sum, start_all};

fn case(
    n: usize,
    t_pick: usize,
    drop_pick: usize,
    seed: u64,
    mode_of: fn(usize) -> Mode,
    values: &[i64],
    len: usize,
) -> Result<(), TestCaseError> {
    let t = 2 + t_pick % (n - 1);
    let mode = mode_of(t);
    let inputs: Vec<Vec<i64>> = (0..n)
        .map(|i| {
            (0..len)
                .map(|j| values[(i * len + j) % values.len()])
                .collect()
        })
        .collect();
    let max_drop = match mode {
        Mode::Additive => 0,
        _ => n - t,
    };
    let drops = drop_pick % (max_drop + 1);
    // drop the first `drops` participants (after they dealt)
    let dropped: Vec<bool> = (0..n).map(|i| i < drops).collect();
    let mut ps = parties(SessionId([seed as u8; 32]), n, mode, &inputs);
    let q = start_all(&mut ps, seed);
    prop_assert_eq!(deliver(&mut ps, q, &dropped), Ok(()));
    let expected = plain_sum(&inputs);
    for (i, p) in ps.iter().enumerate() {
        if dropped[i] {
            prop_assert!(p.output().is_none());
        } else {
            prop_assert_eq!(p.output().map(|o| o.values.clone()), Some(expected.clone()));
            prop_assert!(p.is_finished());
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn shamir_sum_is_exact_with_dropouts(n in 2usize..=7, t in 0usize..6, d in 0usize..6, seed in any::<u64>(),
                                         values in proptest::collection::vec(-1_000_000_000i64..1_000_000_000, 1..40), len in 1usize..12) {
        case(n, t, d, seed, |t| Mode::Shamir { threshold: t }, &values, len)?;
    }

    #[test]
    fn additive_sum_is_exact(n in 2usize..=7, seed in any::<u64>(),
                             values in proptest::collection::vec(any::<i32>(), 1..40), len in 1usize..12) {
        let values: Vec<i64> = values.into_iter().map(i64::from).collect();
        case(n, 0, 0, seed, |_| Mode::Additive, &values, len)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn verifiable_sum_is_exact_with_dropouts(n in 2usize..=7, t in 0usize..6, d in 0usize..6, seed in any::<u64>(),
                                             values in proptest::collection::vec(any::<i64>(), 1..20), len in 1usize..6) {
        case(n, t, d, seed, |t| Mode::Verifiable { threshold: t }, &values, len)?;
    }
}

#[test]
fn too_many_dropouts_give_no_result() {
    // n = 4, t = 3: with two participants gone nobody can reconstruct
    let inputs = vec![vec![1], vec![2], vec![3], vec![4]];
    let mut ps = parties(
        SessionId([9; 32]),
        4,
        Mode::Shamir { threshold: 3 },
        &inputs,
    );
    let q = start_all(&mut ps, 1);
    assert_eq!(deliver(&mut ps, q, &[true, true, false, false]), Ok(()));
    assert!(ps.iter().all(|p| p.output().is_none()));
}
