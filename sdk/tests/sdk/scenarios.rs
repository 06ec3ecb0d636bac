//! The Portals reference scenarios, each asserting exact outputs.

use pods_sdk::{AppBuilder, AskError, PerKeyState, PerTaskState, StreamItem};

use crate::{Rt, Sys, atoms_and_seal, run, serve};

fn identity_keeps_atoms_then_seals(rt: Rt) {
    let app = AppBuilder::new("app");
    let g = app.generator_from_atoms("g", vec![vec![1i64], vec![2, 3], vec![4, 5, 6]]);
    app.workflow("wf").source(&g).identity().sink();
    let (_, out) = run::<i64>(rt, app.build().unwrap(), 1, "/app/workflows/wf/stream");
    assert_eq!(
        out.items(),
        vec![
            StreamItem::Atom(vec![1i64].into_iter().map(pods_sdk::Event::new).collect()),
            StreamItem::Atom(
                vec![2i64, 3]
                    .into_iter()
                    .map(pods_sdk::Event::new)
                    .collect()
            ),
            StreamItem::Atom(
                vec![4i64, 5, 6]
                    .into_iter()
                    .map(pods_sdk::Event::new)
                    .collect()
            ),
            StreamItem::Seal,
        ]
    );
}

fn four_chained_maps_and_four_chained_workflows(rt: Rt) {
    let atoms: Vec<Vec<i64>> = (0..=4).map(|x| vec![x]).collect();
    let expected: Vec<Vec<i64>> = (4..=8).map(|x| vec![x]).collect();

    let app = AppBuilder::new("tasks");
    let g = app.generator_from_atoms("g", atoms.clone());
    app.workflow("wf")
        .source(&g)
        .map(|x| x + 1)
        .map(|x| x + 1)
        .map(|x| x + 1)
        .map(|x| x + 1)
        .sink();
    let (_, out) = run::<i64>(rt, app.build().unwrap(), 3, "/tasks/workflows/wf/stream");
    assert_eq!(atoms_and_seal(&out), (expected.clone(), true));

    let app = AppBuilder::new("flows");
    let mut s = app.generator_from_atoms("g", atoms);
    for i in 0..4 {
        s = app
            .workflow(&format!("wf{i}"))
            .source(&s)
            .map(|x| x + 1)
            .sink();
    }
    for seed in [1, 2, 3] {
        let app2 = AppBuilder::new("flows");
        let mut s2 =
            app2.generator_from_atoms("g", (0..=4).map(|x| vec![x]).collect::<Vec<Vec<i64>>>());
        for i in 0..4 {
            s2 = app2
                .workflow(&format!("wf{i}"))
                .source(&s2)
                .map(|x| x + 1)
                .sink();
        }
        let (_, out) = run::<i64>(
            rt,
            app2.build().unwrap(),
            seed,
            "/flows/workflows/wf3/stream",
        );
        assert_eq!(
            atoms_and_seal(&out),
            (expected.clone(), true),
            "seed {seed}"
        );
    }
    assert_eq!(s.path().as_str(), "/flows/workflows/wf3/stream");
}

fn diamond_yields_one_atom_with_both_branches(rt: Rt) {
    let app = AppBuilder::new("app");
    let g = app.generator_from_atoms("g", vec![vec![1i64], vec![10, 20]]);
    let src = app.workflow("wf").source(&g);
    let a = src.map(|x| x + 1);
    let b = src.map(|x| x + 2);
    a.union(&[&b]).sink();
    let (_, out) = run::<i64>(rt, app.build().unwrap(), 5, "/app/workflows/wf/stream");
    assert_eq!(
        atoms_and_seal(&out),
        (vec![vec![2, 3], vec![11, 21, 12, 22]], true)
    );
}

fn per_key_versus_per_task_state(rt: Rt) {
    for (per_key, expected) in [
        (true, vec![0i64, 0, 0, 1, 2, 3]),
        (false, vec![0, 1, 2, 3, 1, 2]),
    ] {
        let app = AppBuilder::new("app");
        let g = app.generator_from_atoms("g", vec![vec![1i64, 2, 3], vec![1, 2, 3]]);
        let keyed = app.workflow("wf").source(&g).key_by(|x| *x);
        if per_key {
            let s = PerKeyState::<i64>::new("last");
            keyed.processor(move |ctx, x: i64| {
                let v = s.get(ctx);
                ctx.emit(v);
                s.set(ctx, x);
            })
        } else {
            let s = PerTaskState::<i64>::new("last");
            keyed.processor(move |ctx, x: i64| {
                let v = s.get(ctx);
                ctx.emit(v);
                s.set(ctx, x);
            })
        }
        .sink();
        let (system, out) = run::<i64>(rt, app.build().unwrap(), 9, "/app/workflows/wf/stream");
        assert_eq!(out.values().concat(), expected);
        // The committed state matches: per key, the last value seen; per task, the last event.
        let stored = system
            .storage()
            .values::<i64>("/app/workflows/wf", "last")
            .unwrap();
        let values: Vec<i64> = stored.iter().map(|(_, v)| *v).collect();
        if per_key {
            assert_eq!(stored.len(), 3);
            let mut sorted = values.clone();
            sorted.sort();
            assert_eq!(sorted, vec![1, 2, 3]);
        } else {
            assert_eq!(stored, vec![(None, 3)]);
        }
    }
}

fn on_atom_complete_emits_the_running_sum(rt: Rt) {
    let app = AppBuilder::new("app");
    let g = app.generator_from_atoms("g", vec![vec![1i64, 2, 3, 4], vec![1, 2, 3, 4]]);
    let sum = PerTaskState::<i64>::new("sum");
    let sum2 = sum.clone();
    app.workflow("wf")
        .source(&g)
        .processor(move |ctx, x: i64| {
            sum.update(ctx, |s| *s += x);
            ctx.emit(x);
        })
        .on_atom_complete(move |ctx| {
            let s = sum2.get(ctx);
            ctx.emit(s);
        })
        .sink();
    let (_, out) = run::<i64>(rt, app.build().unwrap(), 2, "/app/workflows/wf/stream");
    assert_eq!(
        atoms_and_seal(&out),
        (vec![vec![1, 2, 3, 4, 10], vec![1, 2, 3, 4, 20]], true)
    );
}

fn a_cycle_through_a_sequencer_ends_when_the_data_does(rt: Rt) {
    let app = AppBuilder::new("app");
    let g = app.generator_from_atoms("g", vec![vec![8i64]]);
    let seq = app.sequencer::<i64>("seq");
    app.connect(&g, &seq);
    let out = app
        .workflow("wf")
        .source(&seq.stream())
        .flat_map(|x| if x > 0 { vec![x - 1] } else { vec![] })
        .sink();
    app.connect(&out, &seq);
    let mut system = Sys::new(rt, 4);
    system.launch(app.build().unwrap()).unwrap();
    let sub = system.subscribe::<i64>("/app/workflows/wf/stream").unwrap();
    let steps = system.run_until_quiescent();
    assert!(steps > 0 && system.run_until_quiescent() == 0, "quiescent");
    assert_eq!(
        sub.values(),
        (0..=7).rev().map(|x| vec![x]).collect::<Vec<_>>()
    );
    assert!(
        !sub.ended(),
        "a cycle is not sealed: its sequencer's inputs never all end"
    );
}

fn portal_replies_req_plus_one(rt: Rt) {
    let app = AppBuilder::new("app");
    let portal = app.portal::<i64, i64>("inc");
    serve(&app, "server", &portal, |ctx, req, to| {
        ctx.reply(to, req + 1)
    });
    let g = app.generator_from_atoms("g", vec![vec![1i64, 2, 3]]);
    let p = portal.clone();
    app.workflow("client")
        .source(&g)
        .asker(&portal, move |ctx, x: i64| {
            let h = ctx.ask(&p, x);
            ctx.on_reply(h, |ctx, r: Result<i64, AskError>| -> Result<(), AskError> {
                ctx.emit(r?);
                Ok(())
            });
        })
        .sink();
    let (_, out) = run::<i64>(rt, app.build().unwrap(), 11, "/app/workflows/client/stream");
    let (atoms, sealed) = atoms_and_seal(&out);
    assert_eq!(atoms.concat(), vec![2, 3, 4]);
    assert!(sealed, "the client seals once its replies are in");
}

fn recursive_ping_pong_reaches_zero(rt: Rt) {
    let app = AppBuilder::new("app");
    let portal = app.portal::<i64, i64>("pong");
    serve(&app, "replier", &portal, |ctx, x, to| ctx.reply(to, x - 1));
    let g = app.generator_from_atoms("g", vec![vec![1024i64]]);
    fn ping(ctx: &mut pods_sdk::Ctx<'_, i64>, portal: pods_sdk::Portal<i64, i64>, x: i64) {
        let h = ctx.ask(&portal, x);
        ctx.on_reply(
            h,
            move |ctx, r: Result<i64, AskError>| -> Result<(), AskError> {
                let y = r?;
                ctx.emit(y);
                if y > 0 {
                    ping(ctx, portal, y);
                }
                Ok(())
            },
        );
    }
    let p = portal.clone();
    app.workflow("asker")
        .source(&g)
        .asker(&portal, move |ctx, x: i64| ping(ctx, p.clone(), x))
        .sink();
    let (_, out) = run::<i64>(rt, app.build().unwrap(), 12, "/app/workflows/asker/stream");
    assert_eq!(out.values().concat(), (0..1024).rev().collect::<Vec<i64>>());
}

fn fibonacci_asks_itself(rt: Rt) {
    let app = AppBuilder::new("app");
    let fib = app.portal_keyed::<u64, u64, _>("fib", |n| *n);
    let none = app.generator_from_atoms::<u64>("none", vec![]);
    let f = fib.clone();
    app.workflow("fib")
        .source(&none)
        .replier(&fib, move |ctx, n, to| {
            if n < 2 {
                ctx.reply(to, n);
            } else {
                let a = ctx.ask(&f, n - 1);
                let b = ctx.ask(&f, n - 2);
                ctx.on_replies(
                    vec![a, b],
                    move |ctx, r: Result<Vec<u64>, AskError>| -> Result<(), AskError> {
                        let r = r?;
                        ctx.reply(to, r[0] + r[1]);
                        Ok(())
                    },
                );
            }
        })
        .sink();
    let g = app.generator_from_atoms("g", vec![(0..10).collect::<Vec<u64>>()]);
    let f = fib.clone();
    app.workflow("client")
        .source(&g)
        .asker(&fib, move |ctx, n: u64| {
            let h = ctx.ask(&f, n);
            ctx.on_reply(
                h,
                move |ctx, r: Result<u64, AskError>| -> Result<(), AskError> {
                    ctx.emit((n, r?));
                    Ok(())
                },
            );
        })
        .sink();
    let (_, out) = run::<(u64, u64)>(rt, app.build().unwrap(), 13, "/app/workflows/client/stream");
    let mut got = out.values().concat();
    got.sort();
    let expected: Vec<(u64, u64)> = [0, 1, 1, 2, 3, 5, 8, 13, 21, 34]
        .iter()
        .enumerate()
        .map(|(n, f)| (n as u64, *f))
        .collect();
    assert_eq!(got, expected);
}

/// A replier that never answers some requests: each of those asks times out once (its
/// continuation gets `AskError::Timeout`), the others get their replies, and the asker seals.
fn an_unanswered_ask_times_out_once_and_the_asker_goes_on(rt: Rt) {
    use std::sync::{Arc, Mutex};
    let app = AppBuilder::new("app");
    let portal = app.portal::<i64, i64>("p");
    // Requests it leaves unanswered, kept so that nothing answers them.
    let ignored: Arc<Mutex<Vec<pods_sdk::ReplyTo<i64>>>> = Arc::default();
    let kept = ignored.clone();
    serve(&app, "server", &portal, move |ctx, x, to| {
        if x % 2 == 0 {
            kept.lock().unwrap().push(to);
        } else {
            ctx.reply(to, x * 10);
        }
    });
    let g = app.generator_from_atoms("g", vec![vec![1i64, 2, 3], vec![4]]);
    let p = portal.clone();
    app.workflow("client")
        .source(&g)
        .asker(&portal, move |ctx, x: i64| {
            let h = ctx.ask(&p, x);
            ctx.on_reply(h, move |ctx, r: Result<i64, AskError>| {
                ctx.emit(match r {
                    Ok(v) => v,
                    Err(AskError::Timeout { after_ms, .. }) if after_ms > 0 => -x,
                    Err(_) => 0,
                })
            });
        })
        .sink();
    let (_, out) = run::<i64>(rt, app.build().unwrap(), 15, "/app/workflows/client/stream");
    let mut got = out.values().concat();
    got.sort();
    assert_eq!(
        got,
        vec![-4, -2, 10, 30],
        "each ask answered or timed out, once"
    );
    assert_eq!(out.items().last(), Some(&StreamItem::Seal));
    assert_eq!(ignored.lock().unwrap().len(), 2);
}

fn on_replies_over_two_portals_sums_to_three_x(rt: Rt) {
    let app = AppBuilder::new("app");
    let once = app.portal::<i64, i64>("once");
    let twice = app.portal::<i64, i64>("twice");
    serve(&app, "s1", &once, |ctx, x, to| ctx.reply(to, x));
    serve(&app, "s2", &twice, |ctx, x, to| ctx.reply(to, 2 * x));
    let g = app.generator_from_atoms("g", vec![vec![1i64, 5], vec![7]]);
    let (o, t) = (once.clone(), twice.clone());
    app.workflow("client")
        .source(&g)
        .processor(move |ctx, x: i64| {
            let handles = vec![ctx.ask(&o, x), ctx.ask(&t, x)];
            ctx.on_replies(
                handles,
                move |ctx, r: Result<Vec<i64>, AskError>| -> Result<(), AskError> {
                    ctx.emit((x, r?.iter().sum::<i64>()));
                    Ok(())
                },
            );
        })
        .sink();
    let (_, out) = run::<(i64, i64)>(rt, app.build().unwrap(), 14, "/app/workflows/client/stream");
    let mut got = out.values().concat();
    got.sort();
    assert_eq!(got, vec![(1, 3), (5, 15), (7, 21)]);
}

fn atoms_are_isolated_from_a_second_app_asking_between_them(rt: Rt) {
    for seed in 0..20 {
        let app = AppBuilder::new("sum");
        let g = app.generator_from_atoms("g", vec![vec![1i64, 2, 3, 4]; 10]);
        let total = app.portal::<(), i64>("total");
        let sum = PerTaskState::<i64>::new("sum");
        let s2 = sum.clone();
        app.workflow("acc")
            .source(&g)
            .replier_with(
                &total,
                move |ctx: &mut pods_sdk::Ctx<'_, i64>, x: i64| {
                    sum.update(ctx, |s| *s += x);
                },
                move |ctx, (), to| {
                    let s = s2.get(ctx);
                    ctx.reply(to, s);
                },
            )
            .sink();
        let mut system = Sys::new(rt, seed);
        system.launch(app.build().unwrap()).unwrap();

        let observer = AppBuilder::new("observer");
        let ticks = observer.generator_from_atoms("ticks", vec![vec![()]; 30]);
        let remote = observer.portal_ref::<(), i64>("/sum/portals/total");
        let r = remote.clone();
        observer
            .workflow("watch")
            .source(&ticks)
            .asker(&remote, move |ctx, (): ()| {
                let h = ctx.ask(&r, ());
                ctx.on_reply(h, |ctx, s: Result<i64, AskError>| -> Result<(), AskError> {
                    ctx.emit(s?);
                    Ok(())
                });
            })
            .sink();
        system.launch(observer.build().unwrap()).unwrap();
        let seen = system
            .subscribe::<i64>("/observer/workflows/watch/stream")
            .unwrap();
        system.run_until_quiescent();
        let sums = seen.values().concat();
        assert_eq!(sums.len(), 30, "seed {seed}");
        assert!(
            sums.iter().all(|s| s % 10 == 0),
            "seed {seed}: a sum saw half an atom: {sums:?}"
        );
        assert!(
            sums.windows(2).all(|w| w[0] <= w[1]),
            "seed {seed}: sums go back in time: {sums:?}"
        );
    }
}

fn splitter_routes_even_and_odd_keeping_atoms(rt: Rt) {
    let app = AppBuilder::new("app");
    let g = app.generator_from_range("g", 0..12, 5);
    let sp = app.splitter("sp", &g);
    let even = app.split(&sp, "even", |x| x % 2 == 0);
    let odd = app.split(&sp, "odd", |x| x % 2 == 1);
    app.workflow("e").source(&even).identity().sink();
    app.workflow("o").source(&odd).identity().sink();
    let mut system = Sys::new(rt, 6);
    system.launch(app.build().unwrap()).unwrap();
    let e = system.subscribe::<i64>("/app/workflows/e/stream").unwrap();
    let o = system.subscribe::<i64>("/app/workflows/o/stream").unwrap();
    system.run_until_quiescent();
    assert_eq!(
        atoms_and_seal(&e),
        (vec![vec![0, 2, 4], vec![6, 8], vec![10]], true)
    );
    assert_eq!(
        atoms_and_seal(&o),
        (vec![vec![1, 3], vec![5, 7, 9], vec![11]], true)
    );
}

fn a_failing_task_errors_its_stream_and_others_go_on(rt: Rt) {
    let app = AppBuilder::new("app");
    let g = app.generator_from_atoms("g", vec![vec![1i64], vec![2], vec![3]]);
    app.workflow("bad")
        .source(&g)
        .processor(|ctx, x: i64| -> Result<(), String> {
            if x == 2 {
                return Err("two is not allowed".into());
            }
            ctx.emit(x);
            Ok(())
        })
        .sink();
    app.workflow("panics")
        .source(&g)
        .map(|x: i64| if x == 3 { panic!("three") } else { x })
        .sink();
    app.workflow("good").source(&g).map(|x: i64| x * 10).sink();
    let mut system = Sys::new(rt, 8);
    system.launch(app.build().unwrap()).unwrap();
    let bad = system
        .subscribe::<i64>("/app/workflows/bad/stream")
        .unwrap();
    let panics = system
        .subscribe::<i64>("/app/workflows/panics/stream")
        .unwrap();
    let good = system
        .subscribe::<i64>("/app/workflows/good/stream")
        .unwrap();
    system.run_until_quiescent();
    assert_eq!(bad.values(), vec![vec![1]]);
    assert_eq!(
        bad.items().last(),
        Some(&StreamItem::Error("two is not allowed".into()))
    );
    assert_eq!(panics.values(), vec![vec![1], vec![2]]);
    assert_eq!(
        panics.items().last(),
        Some(&StreamItem::Error("task panicked: three".into()))
    );
    assert_eq!(
        atoms_and_seal(&good),
        (vec![vec![10], vec![20], vec![30]], true)
    );
}

fn a_later_app_consumes_an_earlier_apps_stream_by_path(rt: Rt) {
    let first = AppBuilder::new("first");
    let feed = first.generator_external::<i64>("feed");
    first.workflow("double").source(&feed).map(|x| x * 2).sink();
    let mut system = Sys::new(rt, 3);
    system.launch(first.build().unwrap()).unwrap();
    let feeder = system.feeder::<i64>("/first/generators/feed").unwrap();
    feeder.push(vec![1, 2]).unwrap();
    system.run_until_quiescent();

    let second = AppBuilder::new("second");
    let doubled = second.stream_ref::<i64>("/first/workflows/double/stream");
    second
        .workflow("plus")
        .source(&doubled)
        .map(|x| x + 1)
        .sink();
    system.launch(second.build().unwrap()).unwrap();
    let out = system
        .subscribe::<i64>("/second/workflows/plus/stream")
        .unwrap();
    feeder.push(vec![5]).unwrap();
    feeder.push(vec![]).unwrap();
    feeder.seal();
    system.run_until_quiescent();
    assert_eq!(
        atoms_and_seal(&out),
        (vec![vec![11]], true),
        "sees the atoms appended after it connected"
    );
    assert!(matches!(
        feeder.push(vec![1]),
        Err(pods_sdk::Error::FeederSealed { .. })
    ));
}

fn envelopes_follow_events_through_tasks_and_portals_unless_non_personal(rt: Rt) {
    use pods_sdk::{Envelope, Event};
    let app = AppBuilder::new("app");
    let alice = Envelope::new("alice", &["health.heart_rate"]);
    let g = app.generator_from_events(
        "g",
        vec![vec![Event::personal(70i64, alice.clone()), Event::new(1)]],
    );
    let echo = app.portal::<i64, i64>("echo");
    serve(&app, "server", &echo, |ctx, x, to| ctx.reply(to, x));
    let e = echo.clone();
    let flow = app
        .workflow("wf")
        .source(&g)
        .map(|x| x + 1)
        .asker(&echo, move |ctx, x: i64| {
            let h = ctx.ask(&e, x);
            ctx.on_reply(h, |ctx, r: Result<i64, AskError>| -> Result<(), AskError> {
                ctx.emit(r?);
                Ok(())
            });
        });
    flow.sink();
    flow.map(|x| x).non_personal().identity();
    let (_, out) = run::<i64>(rt, app.build().unwrap(), 21, "/app/workflows/wf/stream");
    let mut events: Vec<Event<i64>> = out
        .items()
        .into_iter()
        .filter_map(|i| match i {
            StreamItem::Atom(a) => Some(a),
            _ => None,
        })
        .flatten()
        .collect();
    events.sort_by_key(|e| e.value);
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].value, 2);
    assert_eq!(events[0].envelope, None);
    assert_eq!(events[1].value, 71);
    assert_eq!(events[1].envelope.as_deref(), Some(&alice));
}

fn non_personal_tasks_drop_the_envelope(rt: Rt) {
    use pods_sdk::{Envelope, Event};
    let app = AppBuilder::new("app");
    let g = app.generator_from_events(
        "g",
        vec![vec![Event::personal(
            1i64,
            Envelope::new("bob", &["contact"]),
        )]],
    );
    app.workflow("wf")
        .source(&g)
        .map(|x| x * 3)
        .non_personal()
        .sink();
    let (_, out) = run::<i64>(rt, app.build().unwrap(), 1, "/app/workflows/wf/stream");
    assert_eq!(out.items()[0], StreamItem::Atom(vec![Event::new(3)]));
}

fn split_inside_a_workflow_then_union_keeps_atoms(rt: Rt) {
    let app = AppBuilder::new("app");
    let g = app.generator_from_atoms("g", vec![vec![1i64, 2, 3, 4], vec![5]]);
    let (even, odd) = app.workflow("wf").source(&g).split(|x| x % 2 == 0);
    even.map(|x| x * 10).union(&[&odd]).sink();
    let (_, out) = run::<i64>(rt, app.build().unwrap(), 3, "/app/workflows/wf/stream");
    assert_eq!(
        atoms_and_seal(&out),
        (vec![vec![20, 40, 1, 3], vec![5]], true)
    );
}

fn removed_state_leaves_the_store_and_reads_the_initial_value_again(rt: Rt) {
    let app = AppBuilder::new("app");
    let g = app.generator_from_atoms("g", vec![vec![1i64, 2], vec![-1], vec![1]]);
    let seen = PerKeyState::<i64>::with_initial("seen", 100);
    app.workflow("wf")
        .source(&g)
        .key_by(|x| x.abs())
        .processor(move |ctx, x: i64| {
            if x < 0 {
                seen.remove(ctx);
            } else {
                let before = seen.get(ctx);
                ctx.emit(before);
                seen.set(ctx, x);
            }
        })
        .sink();
    let (system, out) = run::<i64>(rt, app.build().unwrap(), 5, "/app/workflows/wf/stream");
    assert_eq!(out.values(), vec![vec![100, 100], vec![100]]);
    let stored = system
        .storage()
        .values::<i64>("/app/workflows/wf", "seen")
        .unwrap();
    let mut values: Vec<i64> = stored.into_iter().map(|(_, v)| v).collect();
    values.sort();
    assert_eq!(
        values,
        vec![1, 2],
        "key 1 was removed, then written again; key 2 kept"
    );
}

fn volatile_storage_counts_commits_and_keeps_positions(rt: Rt) {
    use pods_sdk::{Path, VolatileStorage};
    let app = AppBuilder::new("app");
    let g = app.generator_from_atoms("g", vec![vec![1i64], vec![2], vec![3]]);
    let total = PerTaskState::<i64>::new("total");
    app.workflow("wf")
        .source(&g)
        .processor(move |ctx, x: i64| {
            let t = total.get(ctx) + x;
            total.set(ctx, t);
            ctx.emit(t);
        })
        .sink();
    let mut system = Sys::with_storage(rt, 2, VolatileStorage::new());
    system.launch(app.build().unwrap()).unwrap();
    let out = system.subscribe::<i64>("/app/workflows/wf/stream").unwrap();
    system.run_until_quiescent();
    assert_eq!(out.values(), vec![vec![1], vec![3], vec![6]]);
    assert_eq!(system.storage().commits(), 3);
    let storage = system.storage();
    let position = storage
        .position(&Path::parse("/app/workflows/wf").unwrap())
        .unwrap();
    assert_eq!(
        (position.stream.as_str(), position.next),
        ("/app/generators/g/stream", 3)
    );
}

fn a_later_app_feeds_an_earlier_sequencer_and_splits_an_earlier_splitter(rt: Rt) {
    let first = AppBuilder::new("first");
    let seq = first.sequencer::<i64>("merge");
    let input = first.generator_external::<i64>("input");
    first.connect(&input, &seq);
    first
        .workflow("all")
        .source(&seq.stream())
        .identity()
        .sink();
    let sp = first.splitter("by-sign", &seq.stream());
    let negative = first.split(&sp, "negative", |x| *x < 0);
    first.workflow("neg").source(&negative).identity().sink();
    let mut system = Sys::new(rt, 17);
    system.launch(first.build().unwrap()).unwrap();
    let all = system
        .subscribe::<i64>("/first/workflows/all/stream")
        .unwrap();

    let second = AppBuilder::new("second");
    let more = second.generator_from_atoms("more", vec![vec![5i64, -6]]);
    let remote_seq = second.sequencer_ref::<i64>("/first/sequencers/merge");
    second.connect(&more, &remote_seq);
    let remote_sp = second.splitter_ref::<i64>("/first/splitters/by-sign");
    let positive = second.split(&remote_sp, "positive", |x| *x > 0);
    second.workflow("pos").source(&positive).identity().sink();
    system.launch(second.build().unwrap()).unwrap();
    let pos = system
        .subscribe::<i64>("/second/workflows/pos/stream")
        .unwrap();
    let neg = system
        .subscribe::<i64>("/first/workflows/neg/stream")
        .unwrap();

    system
        .feeder::<i64>("/first/generators/input")
        .unwrap()
        .push(vec![1, -2])
        .unwrap();
    system.run_until_quiescent();
    let mut merged = all.values();
    merged.sort();
    assert_eq!(merged, vec![vec![1, -2], vec![5, -6]]);
    let mut p = pos.values().concat();
    p.sort();
    assert_eq!(p, vec![1, 5]);
    let mut n = neg.values().concat();
    n.sort();
    assert_eq!(n, vec![-6, -2]);
    assert!(system.registry().contains(&(
        "/first/splitters/by-sign/splits/positive".to_string(),
        "stream"
    )));
}

fn the_policy_gate_keeps_denied_events_out_of_every_task(rt: Rt) {
    use pods_sdk::{Decision, Envelope, Event, Path, PolicyGate};
    struct NoBob;
    impl PolicyGate for NoBob {
        fn admit(&self, _workflow: &Path, envelope: Option<&Envelope>) -> Decision {
            match envelope {
                Some(e) if e.subject.0 == "bob" => Decision::Deny,
                _ => Decision::Admit,
            }
        }
    }
    let app = AppBuilder::new("app");
    let ann = Envelope::new("ann", &["contact"]);
    let bob = Envelope::new("bob", &["contact"]);
    let g = app.generator_from_events(
        "g",
        vec![
            vec![
                Event::personal(1i64, ann.clone()),
                Event::personal(2, bob.clone()),
                Event::new(3),
            ],
            vec![Event::personal(4, bob)],
        ],
    );
    let seen = PerTaskState::<Vec<i64>>::new("seen");
    app.workflow("wf")
        .source(&g)
        .processor(move |ctx, x: i64| {
            seen.update(ctx, |v| v.push(x));
            ctx.emit(x);
        })
        .sink();
    let mut system = Sys::new(rt, 1);
    system.set_gate(NoBob);
    system.launch(app.build().unwrap()).unwrap();
    let out = system.subscribe::<i64>("/app/workflows/wf/stream").unwrap();
    system.run_until_quiescent();
    assert_eq!(
        out.values(),
        vec![vec![1, 3]],
        "an atom left empty by the gate is not passed on"
    );
    assert_eq!(system.denied("/app/workflows/wf"), 2);
    assert_eq!(
        system
            .storage()
            .values::<Vec<i64>>("/app/workflows/wf", "seen")
            .unwrap(),
        vec![(None, vec![1, 3])]
    );
}

crate::on_both_runtimes!(
    identity_keeps_atoms_then_seals,
    four_chained_maps_and_four_chained_workflows,
    diamond_yields_one_atom_with_both_branches,
    per_key_versus_per_task_state,
    on_atom_complete_emits_the_running_sum,
    a_cycle_through_a_sequencer_ends_when_the_data_does,
    portal_replies_req_plus_one,
    recursive_ping_pong_reaches_zero,
    an_unanswered_ask_times_out_once_and_the_asker_goes_on,
    fibonacci_asks_itself,
    on_replies_over_two_portals_sums_to_three_x,
    atoms_are_isolated_from_a_second_app_asking_between_them,
    splitter_routes_even_and_odd_keeping_atoms,
    a_failing_task_errors_its_stream_and_others_go_on,
    a_later_app_consumes_an_earlier_apps_stream_by_path,
    envelopes_follow_events_through_tasks_and_portals_unless_non_personal,
    non_personal_tasks_drop_the_envelope,
    split_inside_a_workflow_then_union_keeps_atoms,
    removed_state_leaves_the_store_and_reads_the_initial_value_again,
    volatile_storage_counts_commits_and_keeps_positions,
    a_later_app_feeds_an_earlier_sequencer_and_splits_an_earlier_splitter,
    the_policy_gate_keeps_denied_events_out_of_every_task,
);
