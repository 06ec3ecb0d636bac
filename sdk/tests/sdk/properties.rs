//! Property tests: atom boundaries and order survive identity and map under any seed, and a
//! keyed count's final state does not depend on the seed.

use std::collections::BTreeMap;

use pods_sdk::{AppBuilder, DeterministicSystem, PerKeyState};
use proptest::prelude::*;

use crate::{Rt, Sys, atoms_and_seal, run};

fn atoms() -> impl Strategy<Value = Vec<Vec<i64>>> {
    prop::collection::vec(prop::collection::vec(-1000i64..1000, 1..8), 0..12)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn identity_and_map_keep_atom_boundaries_and_order(input in atoms(), seed in any::<u64>()) {
        let app = AppBuilder::new("app");
        let g = app.generator_from_atoms("g", input.clone());
        app.workflow("id").source(&g).identity().sink();
        let mid = app.workflow("m").source(&g).map(|x| x * 2).sink();
        app.workflow("m2").source(&mid).map(|x| x - 1).sink();
        let mut system = DeterministicSystem::new(seed);
        system.launch(app.build().unwrap()).unwrap();
        let id = system.subscribe::<i64>("/app/workflows/id/stream").unwrap();
        let m2 = system.subscribe::<i64>("/app/workflows/m2/stream").unwrap();
        system.run_until_quiescent();
        prop_assert_eq!(atoms_and_seal(&id), (input.clone(), true));
        let mapped: Vec<Vec<i64>> = input.iter().map(|a| a.iter().map(|x| x * 2 - 1).collect()).collect();
        prop_assert_eq!(atoms_and_seal(&m2), (mapped, true));
    }

    #[test]
    fn keyed_count_does_not_depend_on_the_seed(input in atoms(), seed in any::<u64>()) {
        let build = || {
            let app = AppBuilder::new("app");
            let g = app.generator_from_atoms("g", input.clone());
            let count = PerKeyState::<u64>::new("count");
            app.workflow("count").source(&g).key_by(|x| x.rem_euclid(7)).processor(move |ctx, x: i64| {
                let n = count.get(ctx) + 1;
                count.set(ctx, n);
                ctx.emit((x.rem_euclid(7), n));
            }).sink();
            app.build().unwrap()
        };
        let (a, _) = run::<(i64, u64)>(Rt::Deterministic, build(), seed, "/app/workflows/count/stream");
        let (b, _) = run::<(i64, u64)>(Rt::Deterministic, build(), seed.wrapping_add(1), "/app/workflows/count/stream");
        let state = |s: &Sys| s.storage().values::<u64>("/app/workflows/count", "count").unwrap();
        prop_assert_eq!(state(&a), state(&b));
        let mut expected: BTreeMap<i64, u64> = BTreeMap::new();
        for x in input.iter().flatten() {
            *expected.entry(x.rem_euclid(7)).or_default() += 1;
        }
        let mut counts: Vec<u64> = state(&a).into_iter().map(|(_, v)| v).collect();
        counts.sort();
        let mut want: Vec<u64> = expected.values().copied().collect();
        want.sort();
        prop_assert_eq!(counts, want);
    }

    #[test]
    fn same_seed_same_interleaving(input in atoms(), seed in any::<u64>()) {
        let build = || {
            let app = AppBuilder::new("app");
            let a = app.generator_from_atoms("a", input.clone());
            let b = app.generator_from_atoms("b", input.iter().map(|x| x.iter().map(|v| v + 10_000).collect()).collect::<Vec<Vec<i64>>>());
            let seq = app.sequencer::<i64>("seq");
            app.connect(&a, &seq);
            app.connect(&b, &seq);
            app.workflow("wf").source(&seq.stream()).identity().sink();
            app.build().unwrap()
        };
        let (_, x) = run::<i64>(Rt::Deterministic, build(), seed, "/app/workflows/wf/stream");
        let (_, y) = run::<i64>(Rt::Deterministic, build(), seed, "/app/workflows/wf/stream");
        prop_assert_eq!(x.values(), y.values());
        // The sequencer never splits or merges atoms, and keeps each source's order.
        let from_a: Vec<Vec<i64>> = x.values().into_iter().filter(|v| v.iter().all(|e| *e < 5_000)).collect();
        prop_assert_eq!(from_a, input.clone());
        prop_assert_eq!(x.values().len(), input.len() * 2);
    }
}
