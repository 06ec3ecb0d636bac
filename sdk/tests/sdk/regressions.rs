//! Regression tests, each named after the defect it pins: failed repliers answer what they
//! held, splitters in every position and state, the gate on asks, typed asks, edge sizes.

use std::sync::atomic::{AtomicI64, Ordering};

use pods_sdk::{AppBuilder, AskError, PerKeyState, StreamItem};

use crate::{Rt, Sys, atoms_and_seal, run, serve};

/// What a continuation emits for a reply: the value, or -1 for `ReplierFailed`, -2 otherwise.
fn code(r: Result<i64, AskError>) -> i64 {
    match r {
        Ok(v) => v,
        Err(AskError::ReplierFailed { .. }) => -1,
        Err(_) => -2,
    }
}

/// A replier that panics on one request of a batch fails its workflow; every ask of that very
/// batch (already taken off its queue) is answered with `ReplierFailed`, so the asker seals.
fn asks_of_the_batch_a_replier_fails_on_get_replier_failed(rt: Rt) {
    let app = AppBuilder::new("app");
    let portal = app.portal::<i64, i64>("p");
    serve(&app, "server", &portal, |ctx, req: i64, to| {
        if req == 2 {
            panic!("no two");
        }
        ctx.reply(to, req * 10);
    });
    let g = app.generator_from_atoms("g", vec![vec![1i64, 2, 3]]);
    let p = portal.clone();
    app.workflow("client")
        .source(&g)
        .asker(&portal, move |ctx, x: i64| {
            let h = ctx.ask(&p, x);
            ctx.on_reply(h, |ctx, r: Result<i64, AskError>| ctx.emit(code(r)));
        })
        .sink();
    let (_, out) = run::<i64>(rt, app.build().unwrap(), 3, "/app/workflows/client/stream");
    let (atoms, sealed) = atoms_and_seal(&out);
    assert_eq!(
        (atoms.concat(), sealed),
        (vec![-1, -1, -1], true),
        "every ask of the failed batch must be answered with ReplierFailed"
    );
}

/// A replier that asks another portal holds its request's `ReplyTo` in a continuation. When
/// that continuation fails (here by `?` on a failed nested ask), the held request is answered
/// with `ReplierFailed` and the original asker seals.
fn requests_held_by_a_failed_replier_get_replier_failed(rt: Rt) {
    let app = AppBuilder::new("app");
    let outer = app.portal::<i64, i64>("outer");
    let inner = app.portal::<i64, i64>("inner");
    let none = app.generator_from_atoms::<i64>("none", vec![]);
    let none2 = app.generator_from_atoms::<i64>("none2", vec![]);
    app.workflow("inner")
        .source(&none)
        .replier(&inner, |_ctx, _req: i64, _to| -> Result<(), String> {
            Err("inner refuses".into())
        })
        .sink();
    let i = inner.clone();
    app.workflow("outer")
        .source(&none2)
        .replier(&outer, move |ctx, req: i64, to| {
            let h = ctx.ask(&i, req);
            ctx.on_reply(
                h,
                move |ctx, r: Result<i64, AskError>| -> Result<(), AskError> {
                    ctx.reply(to, r?);
                    Ok(())
                },
            );
        })
        .sink();
    let g = app.generator_from_atoms("g", vec![vec![7i64]]);
    let o = outer.clone();
    app.workflow("client")
        .source(&g)
        .asker(&outer, move |ctx, x: i64| {
            let h = ctx.ask(&o, x);
            ctx.on_reply(h, |ctx, r: Result<i64, AskError>| ctx.emit(code(r)));
        })
        .sink();
    let (_, out) = run::<i64>(rt, app.build().unwrap(), 4, "/app/workflows/client/stream");
    assert_eq!(atoms_and_seal(&out), (vec![vec![-1]], true));
}

/// A splitter whose input is a split of another splitter of the same app receives its events:
/// launch creates every stream of the app before any consumer.
fn a_splitter_over_a_split_of_the_same_app_receives_its_events(rt: Rt) {
    let app = AppBuilder::new("app");
    let g = app.generator_from_atoms("g", vec![vec![1i64, 2, 3, 4, 12, 14]]);
    let first = app.splitter("parity", &g);
    let even = app.split(&first, "even", |x| x % 2 == 0);
    let second = app.splitter("size", &even);
    let big = app.split(&second, "big", |x| *x > 10);
    app.workflow("wf").source(&big).identity().sink();
    let (_, out) = run::<i64>(rt, app.build().unwrap(), 1, "/app/workflows/wf/stream");
    assert_eq!(atoms_and_seal(&out), (vec![vec![12, 14]], true));
}

/// A split predicate is user code: its panic ends that splitter with `Error` on its splits and
/// does not unwind out of the system, so other apps go on.
fn a_panicking_split_predicate_does_not_stop_other_apps(rt: Rt) {
    let other = AppBuilder::new("other");
    let og = other.generator_from_atoms("g", vec![vec![1i64], vec![2]]);
    other.workflow("wf").source(&og).map(|x: i64| x * 10).sink();
    let app = AppBuilder::new("app");
    let g = app.generator_from_atoms("g", vec![vec![1i64, 2]]);
    let sp = app.splitter("sp", &g);
    let s = app.split(&sp, "s", |x: &i64| {
        if *x == 2 {
            panic!("predicate");
        }
        true
    });
    app.workflow("wf").source(&s).identity().sink();
    let mut system = Sys::new(rt, 2);
    system.launch(other.build().unwrap()).unwrap();
    system.launch(app.build().unwrap()).unwrap();
    let good = system
        .subscribe::<i64>("/other/workflows/wf/stream")
        .unwrap();
    let split = system
        .subscribe::<i64>("/app/splitters/sp/splits/s")
        .unwrap();
    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        system.run_until_quiescent();
    }));
    assert!(ran.is_ok(), "a user predicate's panic escaped the runtime");
    assert_eq!(atoms_and_seal(&good), (vec![vec![10], vec![20]], true));
    assert!(matches!(split.items().last(), Some(StreamItem::Error(_))));
}

/// A split added by a later app to a splitter whose input has already ended ends at once, the
/// way the splitter did.
fn a_split_added_after_the_splitter_ended_is_sealed(rt: Rt) {
    let first = AppBuilder::new("first");
    let g = first.generator_from_atoms("g", vec![vec![1i64]]);
    let sp = first.splitter("sp", &g);
    let a = first.split(&sp, "a", |_| true);
    first.workflow("wf").source(&a).identity().sink();
    let mut system = Sys::new(rt, 5);
    system.launch(first.build().unwrap()).unwrap();
    system.run_until_quiescent();

    let second = AppBuilder::new("second");
    let remote = second.splitter_ref::<i64>("/first/splitters/sp");
    let b = second.split(&remote, "b", |_| true);
    second.workflow("wf").source(&b).identity().sink();
    system.launch(second.build().unwrap()).unwrap();
    let out = system
        .subscribe::<i64>("/second/workflows/wf/stream")
        .unwrap();
    system.run_until_quiescent();
    assert_eq!(atoms_and_seal(&out), (vec![], true));
}

/// Asks are atoms of the replier's workflow too: the policy gate keeps a personal request out
/// of a replier whose workflow it denies that subject's data.
fn the_policy_gate_also_guards_asks_a_replier_consumes(rt: Rt) {
    use pods_sdk::{Decision, Envelope, Event, Path, PolicyGate};
    struct NoBobAtServer;
    impl PolicyGate for NoBobAtServer {
        fn admit(&self, workflow: &Path, envelope: Option<&Envelope>) -> Decision {
            match envelope {
                Some(e) if e.subject.0 == "bob" && workflow.as_str() == "/app/workflows/server" => {
                    Decision::Deny
                }
                _ => Decision::Admit,
            }
        }
    }
    let app = AppBuilder::new("app");
    let portal = app.portal::<i64, i64>("p");
    let none = app.generator_from_atoms::<i64>("none", vec![]);
    app.workflow("server")
        .source(&none)
        .replier_with(
            &portal,
            |_ctx, _x: i64| {},
            |ctx, req: i64, to| {
                ctx.emit(req);
                ctx.reply(to, req);
            },
        )
        .sink();
    let g = app.generator_from_events(
        "g",
        vec![vec![Event::personal(42i64, Envelope::new("bob", &["c"]))]],
    );
    let p = portal.clone();
    app.workflow("client")
        .source(&g)
        .asker(&portal, move |ctx, x: i64| {
            let h = ctx.ask(&p, x);
            ctx.on_reply(
                h,
                |ctx: &mut pods_sdk::Ctx<'_, i64>, r: Result<i64, AskError>| ctx.emit(code(r)),
            );
        })
        .sink();
    let mut system = Sys::new(rt, 9);
    system.set_gate(NoBobAtServer);
    system.launch(app.build().unwrap()).unwrap();
    let server = system
        .subscribe::<i64>("/app/workflows/server/stream")
        .unwrap();
    system.run_until_quiescent();
    assert_eq!(
        server.values(),
        Vec::<Vec<i64>>::new(),
        "bob's request reached a workflow the gate denies bob's data"
    );
}

/// A reply carries the envelope of the data it was made from; the gate checks it against the
/// asking workflow, so an app cannot take data through another app's portal that its own
/// purpose could not receive. A refused reply reaches its continuation as `ReplyDenied`.
fn the_policy_gate_checks_replies_against_the_asker(rt: Rt) {
    use pods_sdk::{Decision, Envelope, Event, Path, PolicyGate};
    struct NoBobRepliesAtClient;
    impl PolicyGate for NoBobRepliesAtClient {
        fn admit(&self, _workflow: &Path, _envelope: Option<&Envelope>) -> Decision {
            Decision::Admit
        }
        fn admit_reply(&self, workflow: &Path, envelope: Option<&Envelope>) -> Decision {
            match envelope {
                Some(e) if e.subject.0 == "bob" && workflow.as_str() == "/app/workflows/client" => {
                    Decision::Deny
                }
                _ => Decision::Admit,
            }
        }
    }
    let app = AppBuilder::new("app");
    let portal = app.portal::<i64, i64>("p");
    serve(&app, "server", &portal, |ctx, req: i64, to| {
        ctx.reply(to, req * 10)
    });
    let g = app.generator_from_events(
        "g",
        vec![vec![
            Event::personal(1i64, Envelope::new("ann", &["c"])),
            Event::personal(2i64, Envelope::new("bob", &["c"])),
        ]],
    );
    let p = portal.clone();
    app.workflow("client")
        .source(&g)
        .asker(&portal, move |ctx, x: i64| {
            let h = ctx.ask(&p, x);
            ctx.on_reply(
                h,
                |ctx: &mut pods_sdk::Ctx<'_, i64>, r: Result<i64, AskError>| {
                    ctx.emit(match r {
                        Err(AskError::ReplyDenied { .. }) => -3,
                        other => code(other),
                    })
                },
            );
        })
        .sink();
    let mut system = Sys::new(rt, 9);
    system.set_gate(NoBobRepliesAtClient);
    system.launch(app.build().unwrap()).unwrap();
    let out = system
        .subscribe::<i64>("/app/workflows/client/stream")
        .unwrap();
    system.run_until_quiescent();
    let mut got: Vec<i64> = out.values().concat();
    got.sort();
    assert_eq!(got, vec![-3, 10]);
    assert_eq!(system.denied("/app/workflows/client"), 1);
}

/// Per-key state with a store that keeps values: set, then in later atoms remove followed by
/// update in one step, then a lone remove; reads, emitted values and stored values are exact.
fn remove_then_update_in_one_step_and_lone_remove_are_committed_exactly(rt: Rt) {
    let app = AppBuilder::new("app");
    // 5: set 5; 0: remove then update(+1); 9: read; -1: remove; 9: read.
    let g = app.generator_from_atoms("g", vec![vec![5i64], vec![0], vec![9], vec![-1], vec![9]]);
    let st = PerKeyState::<i64>::with_initial("st", 100);
    app.workflow("wf")
        .source(&g)
        .key_by(|_| 1u8)
        .processor(move |ctx, x: i64| match x {
            0 => {
                st.remove(ctx);
                let v = st.update(ctx, |v| {
                    *v += 1;
                    *v
                });
                ctx.emit(v.unwrap_or(-99));
            }
            -1 => st.remove(ctx),
            9 => {
                let v = st.get(ctx);
                ctx.emit(v);
            }
            v => st.set(ctx, v),
        })
        .sink();
    let mut system = Sys::new(rt, 1);
    system.launch(app.build().unwrap()).unwrap();
    let out = system.subscribe::<i64>("/app/workflows/wf/stream").unwrap();
    system.run_until_quiescent();
    assert_eq!(
        atoms_and_seal(&out),
        (vec![vec![101], vec![101], vec![100]], true)
    );
    assert_eq!(
        system
            .storage()
            .values::<i64>("/app/workflows/wf", "st")
            .unwrap(),
        vec![]
    );
}

/// A range generator's atom size above `i64::MAX` (say `usize::MAX`, "everything in one
/// atom") gives one atom, not a negative size and endless empty atoms.
fn a_range_generator_with_a_huge_atom_size_yields_one_atom(rt: Rt) {
    let app = AppBuilder::new("app");
    let g = app.generator_from_range("g", 0..5, usize::MAX);
    app.workflow("wf").source(&g).identity().sink();
    let mut system = Sys::new(rt, 1);
    system.launch(app.build().unwrap()).unwrap();
    let out = system.subscribe::<i64>("/app/workflows/wf/stream").unwrap();
    let steps = system.run_steps(1_000);
    assert!(steps < 1_000, "the system never became quiescent");
    assert_eq!(atoms_and_seal(&out), (vec![vec![0, 1, 2, 3, 4]], true));
}

/// A declared ask is type-checked at launch like sources, connections and `portal_ref`: a
/// portal handle of other types with the same path is refused.
fn asking_a_portal_of_other_types_is_refused_at_launch(rt: Rt) {
    use pods_sdk::Error;
    let first = AppBuilder::new("first");
    let p = first.portal::<i64, i64>("p");
    serve(&first, "server", &p, |ctx, x, to| ctx.reply(to, x + 1));
    let mut system = Sys::new(rt, 3);
    system.launch(first.build().unwrap()).unwrap();

    // A handle on the same path with other types (e.g. from a stale copy of the first app's
    // builder code).
    let stale = AppBuilder::new("first").portal::<String, i64>("p");
    let second = AppBuilder::new("second");
    let g = second.generator_from_atoms("g", vec![vec!["x".to_string()]]);
    let s = stale.clone();
    second
        .workflow("client")
        .source(&g)
        .asker(&stale, move |ctx, x: String| {
            let h = ctx.ask(&s, x);
            ctx.on_reply(
                h,
                |ctx: &mut pods_sdk::Ctx<'_, i64>, r: Result<i64, AskError>| ctx.emit(code(r)),
            );
        })
        .sink();
    let launched = system.launch(second.build().unwrap());
    assert!(
        matches!(&launched, Err(Error::TypeMismatch { path, .. }) if path == "/first/portals/p"),
        "got {launched:?}"
    );
}

/// A mistyped ask (an undeclared portal handle of other types) gets a typed error; the
/// replier, another app's service, goes on.
fn a_mistyped_ask_does_not_stop_the_replier(rt: Rt) {
    let first = AppBuilder::new("first");
    let p = first.portal::<i64, i64>("p");
    serve(&first, "server", &p, |ctx, x, to| ctx.reply(to, x + 1));
    let mut system = Sys::new(rt, 3);
    system.launch(first.build().unwrap()).unwrap();
    let server = system
        .subscribe::<i64>("/first/workflows/server/stream")
        .unwrap();

    let stale = AppBuilder::new("first").portal::<String, i64>("p");
    let second = AppBuilder::new("second");
    let g = second.generator_from_atoms("g", vec![vec!["x".to_string()]]);
    second
        .workflow("client")
        .source(&g)
        .processor(move |ctx, x: String| {
            let h = ctx.ask(&stale, x);
            ctx.on_reply(
                h,
                |ctx: &mut pods_sdk::Ctx<'_, i64>, r: Result<i64, AskError>| ctx.emit(code(r)),
            );
        })
        .sink();
    let _ = system.launch(second.build().unwrap());
    system.run_until_quiescent();
    assert!(
        !matches!(server.items().last(), Some(StreamItem::Error(_))),
        "the replier failed: {:?}",
        server.items()
    );
}

/// Connecting to a sequencer whose inputs have all ended is refused: its atoms could go nowhere.
fn connecting_to_an_ended_sequencer_is_refused(rt: Rt) {
    let first = AppBuilder::new("first");
    let g = first.generator_from_atoms("g", vec![vec![1i64]]);
    let seq = first.sequencer::<i64>("seq");
    first.connect(&g, &seq);
    let mut system = Sys::new(rt, 1);
    system.launch(first.build().unwrap()).unwrap();
    system.run_until_quiescent();
    let second = AppBuilder::new("second");
    let more = second.generator_from_atoms("more", vec![vec![2i64]]);
    second.connect(&more, &second.sequencer_ref::<i64>("/first/sequencers/seq"));
    assert_eq!(
        system.launch(second.build().unwrap()),
        Err(pods_sdk::Error::Ended {
            path: "/first/sequencers/seq".into()
        })
    );
}

/// A continuation registered in a later step than its ask could miss its reply; the task fails
/// with a message that says so instead of waiting forever.
fn on_reply_in_a_later_step_than_the_ask_fails_the_task(rt: Rt) {
    use std::sync::{Arc, Mutex};
    let app = AppBuilder::new("app");
    let portal = app.portal::<i64, i64>("p");
    serve(&app, "server", &portal, |ctx, x, to| ctx.reply(to, x));
    let g = app.generator_from_atoms("g", vec![vec![1i64], vec![2]]);
    let kept: Arc<Mutex<Option<pods_sdk::ReplyHandle<i64>>>> = Arc::new(Mutex::new(None));
    let p = portal.clone();
    app.workflow("client")
        .source(&g)
        .processor(move |ctx: &mut pods_sdk::Ctx<'_, i64>, x: i64| {
            let mut kept = kept.lock().unwrap();
            match kept.take() {
                None => *kept = Some(ctx.ask(&p, x)),
                Some(old) => ctx.on_reply(
                    old,
                    |ctx: &mut pods_sdk::Ctx<'_, i64>, r: Result<i64, AskError>| ctx.emit(code(r)),
                ),
            }
        })
        .sink();
    let (_, out) = run::<i64>(rt, app.build().unwrap(), 2, "/app/workflows/client/stream");
    match out.items().last() {
        Some(StreamItem::Error(m)) => assert!(
            m.contains("registered outside the handler call that asked"),
            "{m}"
        ),
        other => panic!("expected an Error marker, got {other:?}"),
    }
}

/// A workflow failing on one split drops its consumer; the split then keeps no atoms for
/// anyone, so the splitter is never held back and the other split gets every atom and the seal.
fn a_failed_branch_of_a_splitter_does_not_starve_the_other(rt: Rt) {
    let app = AppBuilder::new("app");
    let atoms: Vec<Vec<i64>> = (0..10).map(|a| vec![2 * a, 2 * a + 1]).collect();
    let g = app.generator_from_atoms("g", atoms);
    let sp = app.splitter("sp", &g);
    let even = app.split(&sp, "even", |x: &i64| x % 2 == 0);
    let odd = app.split(&sp, "odd", |x: &i64| x % 2 == 1);
    app.workflow("bad")
        .source(&even)
        .processor(
            |_ctx: &mut pods_sdk::Ctx<'_, i64>, _x: i64| -> Result<(), String> { Err("no".into()) },
        )
        .sink();
    app.workflow("good").source(&odd).identity().sink();
    let mut system = Sys::new(rt, 1);
    system.launch(app.build().unwrap()).unwrap();
    let good = system
        .subscribe::<i64>("/app/workflows/good/stream")
        .unwrap();
    system.run_until_quiescent();
    let want: Vec<Vec<i64>> = (0..10).map(|a| vec![2 * a + 1]).collect();
    assert_eq!(atoms_and_seal(&good), (want, true));
}

/// A splitter ended by a panicking predicate stops consuming its input, so the input keeps no
/// atoms for it and a sibling consumer of that stream gets every atom and the seal.
fn a_splitter_ended_by_a_panic_does_not_starve_its_inputs_other_consumers(rt: Rt) {
    let app = AppBuilder::new("app");
    let atoms: Vec<Vec<i64>> = (0..10).map(|a| vec![a]).collect();
    let g = app.generator_from_atoms("g", atoms.clone());
    let sp = app.splitter("sp", &g);
    let s = app.split(&sp, "s", |_: &i64| -> bool { panic!("predicate") });
    app.workflow("sw").source(&s).identity().sink();
    app.workflow("good").source(&g).identity().sink();
    let mut system = Sys::new(rt, 1);
    system.launch(app.build().unwrap()).unwrap();
    let good = system
        .subscribe::<i64>("/app/workflows/good/stream")
        .unwrap();
    system.run_until_quiescent();
    assert_eq!(atoms_and_seal(&good), (atoms, true));
}

/// A portal's key function that panics fails the replier (with one partition or several: the
/// key is computed to route the ask to its partition), and every asker gets `ReplierFailed`.
fn a_panicking_portal_key_fails_a_partitioned_replier(rt: Rt) {
    for partitions in [1, 2] {
        let app = AppBuilder::new("app");
        let portal = app.portal_keyed::<i64, i64, i64>("p", |x| {
            if *x == 3 {
                panic!("key of three");
            }
            *x
        });
        let none = app.generator_from_atoms::<i64>("none", vec![]);
        app.workflow("server")
            .partitions(partitions)
            .source(&none)
            .replier(&portal, |ctx, req: i64, to| ctx.reply(to, req * 10))
            .sink();
        let g = app.generator_from_atoms("g", vec![vec![1i64, 2, 3]]);
        let p = portal.clone();
        app.workflow("client")
            .source(&g)
            .asker(&portal, move |ctx, x: i64| {
                let h = ctx.ask(&p, x);
                ctx.on_reply(h, |ctx, r: Result<i64, AskError>| {
                    ctx.emit(match r {
                        Ok(v) => v,
                        Err(AskError::ReplierFailed { .. }) => -1,
                        Err(_) => -2,
                    })
                });
            })
            .sink();
        let mut system = Sys::new(rt, 3);
        system.launch(app.build().unwrap()).unwrap();
        let client = system
            .subscribe::<i64>("/app/workflows/client/stream")
            .unwrap();
        let server = system
            .subscribe::<i64>("/app/workflows/server/stream")
            .unwrap();
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            system.run_until_quiescent();
        }));
        assert!(
            ran.is_ok(),
            "P={partitions}: a key function's panic escaped the runtime"
        );
        assert!(
            matches!(server.items().last(), Some(StreamItem::Error(_))),
            "P={partitions}: the replier did not fail: {:?}",
            server.items()
        );
        let (atoms, sealed) = atoms_and_seal(&client);
        assert_eq!(
            (atoms.concat(), sealed),
            (vec![-1, -1, -1], true),
            "P={partitions}"
        );
    }
}

/// A policy gate that panics on a stream atom fails the workflow (`Error` on its output); the
/// runtime goes on.
fn a_panicking_gate_fails_the_workflow(rt: Rt) {
    use pods_sdk::{Decision, Envelope, Event, Path, PolicyGate};
    struct Panics;
    impl PolicyGate for Panics {
        fn admit(&self, _workflow: &Path, envelope: Option<&Envelope>) -> Decision {
            match envelope {
                Some(e) if e.subject.0 == "eve" => panic!("gate"),
                _ => Decision::Admit,
            }
        }
    }
    let app = AppBuilder::new("app");
    let g = app.generator_from_events(
        "g",
        vec![
            vec![Event::new(1i64)],
            vec![Event::personal(2i64, Envelope::new("eve", &["c"]))],
            vec![Event::new(3i64)],
        ],
    );
    app.workflow("wf").source(&g).identity().sink();
    let mut system = Sys::new(rt, 9);
    system.set_gate(Panics);
    system.launch(app.build().unwrap()).unwrap();
    let out = system.subscribe::<i64>("/app/workflows/wf/stream").unwrap();
    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        system.run_until_quiescent();
    }));
    assert!(ran.is_ok(), "the gate's panic escaped the runtime");
    assert!(
        matches!(out.items().last(), Some(StreamItem::Error(_))),
        "the workflow neither failed nor went on: {:?}",
        out.items()
    );
}

/// A policy gate that panics on an ask fails the replier, and the ask is answered with an
/// error rather than lost.
fn a_gate_panicking_on_an_ask_fails_the_replier(rt: Rt) {
    use pods_sdk::{Decision, Envelope, Event, Path, PolicyGate};
    struct PanicsAtServer;
    impl PolicyGate for PanicsAtServer {
        fn admit(&self, workflow: &Path, envelope: Option<&Envelope>) -> Decision {
            if envelope.is_some() && workflow.as_str() == "/app/workflows/server" {
                panic!("gate");
            }
            Decision::Admit
        }
    }
    let app = AppBuilder::new("app");
    let portal = app.portal::<i64, i64>("p");
    serve(&app, "server", &portal, |ctx, req: i64, to| {
        ctx.reply(to, req)
    });
    let g = app.generator_from_events(
        "g",
        vec![vec![Event::personal(42i64, Envelope::new("eve", &["c"]))]],
    );
    let p = portal.clone();
    app.workflow("client")
        .source(&g)
        .asker(&portal, move |ctx, x: i64| {
            let h = ctx.ask(&p, x);
            ctx.on_reply(
                h,
                |ctx: &mut pods_sdk::Ctx<'_, i64>, r: Result<i64, AskError>| {
                    ctx.emit(if r.is_ok() { 0 } else { -1 })
                },
            );
        })
        .sink();
    let mut system = Sys::new(rt, 9);
    system.set_gate(PanicsAtServer);
    system.launch(app.build().unwrap()).unwrap();
    let client = system
        .subscribe::<i64>("/app/workflows/client/stream")
        .unwrap();
    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        system.run_until_quiescent();
    }));
    assert!(ran.is_ok(), "the gate's panic escaped the runtime");
    assert_eq!(
        atoms_and_seal(&client),
        (vec![vec![-1]], true),
        "the ask was lost"
    );
}

crate::on_both_runtimes!(
    the_policy_gate_checks_replies_against_the_asker,
    a_failed_branch_of_a_splitter_does_not_starve_the_other,
    a_splitter_ended_by_a_panic_does_not_starve_its_inputs_other_consumers,
    a_panicking_portal_key_fails_a_partitioned_replier,
    a_panicking_gate_fails_the_workflow,
    a_gate_panicking_on_an_ask_fails_the_replier,
    asks_of_the_batch_a_replier_fails_on_get_replier_failed,
    requests_held_by_a_failed_replier_get_replier_failed,
    a_splitter_over_a_split_of_the_same_app_receives_its_events,
    a_panicking_split_predicate_does_not_stop_other_apps,
    a_split_added_after_the_splitter_ended_is_sealed,
    the_policy_gate_also_guards_asks_a_replier_consumes,
    remove_then_update_in_one_step_and_lone_remove_are_committed_exactly,
    a_range_generator_with_a_huge_atom_size_yields_one_atom,
    asking_a_portal_of_other_types_is_refused_at_launch,
    a_mistyped_ask_does_not_stop_the_replier,
    connecting_to_an_ended_sequencer_is_refused,
    on_reply_in_a_later_step_than_the_ask_fails_the_task,
);

static CLONES: AtomicI64 = AtomicI64::new(0);

/// A value that counts its clones.
#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
struct Counted(i64);

impl Clone for Counted {
    fn clone(&self) -> Self {
        CLONES.fetch_add(1, Ordering::SeqCst);
        Counted(self.0)
    }
}

/// A dropped subscription is unregistered: the stream copies nothing more for it.
#[test]
fn a_dropped_subscription_stops_copying_atoms() {
    let app = AppBuilder::new("app");
    let atoms: Vec<Vec<Counted>> = (0..100).map(|a| vec![Counted(a)]).collect();
    app.generator_from_atoms("g", atoms);
    let mut system = pods_sdk::DeterministicSystem::new(1);
    system.launch(app.build().unwrap()).unwrap();
    let sub = system
        .subscribe::<Counted>("/app/generators/g/stream")
        .unwrap();
    drop(sub);
    let before = CLONES.load(Ordering::SeqCst);
    system.run_until_quiescent();
    let copied = CLONES.load(Ordering::SeqCst) - before;
    assert_eq!(
        copied, 0,
        "{copied} values copied for a dropped subscription"
    );
}
