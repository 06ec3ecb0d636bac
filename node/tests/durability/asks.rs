//! Asks whose replies nobody awaits still commit exactly once: the asking atom commits only
//! once the replier committed them, even when the replier holds them behind asks of its own.

use pods_node::{SqliteStore, StoreOptions};
use pods_sdk::{App, AppBuilder, AskError, Ctx, PerKeyState, PerTaskState};

/// `ask`: each event asks `apply` and ignores the reply (or, `grouped`, asks `apply` and
/// `broken`, whose replier fails, waiting on both with `on_replies`: the group fails at once),
/// counting what it asked → `apply` answers only after asking `echo` (so it holds its step),
/// counting per key what it applied.
fn asking_app(grouped: bool) -> App {
    let app = AppBuilder::new("forget");
    let none = app.generator_from_atoms::<i64>("none", vec![]);
    let echo = app.portal::<i64, i64>("echo");
    app.workflow("echo")
        .source(&none)
        .replier(&echo, |ctx, x: i64, to| ctx.reply(to, x))
        .sink();
    let broken = app.portal::<i64, i64>("broken");
    let none3 = app.generator_from_atoms::<i64>("none3", vec![]);
    app.workflow("broken")
        .source(&none3)
        .replier(&broken, |_ctx, _x: i64, _to| -> Result<(), String> {
            Err("it fails".into())
        })
        .sink();
    let apply = app.portal_keyed::<i64, i64, _>("apply", |x| (*x % 10) as u64);
    let applied = PerKeyState::<u64>::new("applied");
    let e = echo.clone();
    let none2 = app.generator_from_atoms::<i64>("none2", vec![]);
    app.workflow("apply")
        .source(&none2)
        .replier(&apply, move |ctx, x: i64, to| {
            applied.update(ctx, |a| *a += 1);
            let h = ctx.ask(&e, x);
            ctx.on_reply(
                h,
                move |ctx, r: Result<i64, AskError>| -> Result<(), AskError> {
                    ctx.reply(to, r?);
                    Ok(())
                },
            );
        })
        .sink();
    let g = app.generator_from_range("g", 0..3_000, 30);
    let asked = PerTaskState::<u64>::new("asked");
    app.workflow("ask")
        .source(&g)
        .processor(move |ctx: &mut Ctx<'_, ()>, x: i64| {
            asked.update(ctx, |a| *a += 1);
            if grouped {
                let failing = ctx.ask(&broken, x);
                let held = ctx.ask(&apply, x);
                ctx.on_replies(
                    vec![failing, held],
                    |_ctx, _r: Result<Vec<i64>, AskError>| {},
                );
            } else {
                let _ignored = ctx.ask(&apply, x);
            }
        })
        .sink();
    app.build().expect("app")
}

/// The sum of the u64 state values `workflow` of app `forget` committed.
fn sum(store: &SqliteStore, workflow: &str) -> u64 {
    crate::committed_sum_of(store, &format!("/forget/workflows/{workflow}"))
}

/// Runs the app through 5 crashes at different points, checking at each stop that every ask
/// the asker committed is committed at its replier, then to the end: each ask applied once.
fn crash_and_finish(grouped: bool) {
    let dir = tempfile::tempdir().expect("dir");
    for seed in 0..5u64 {
        let store = SqliteStore::open(dir.path(), StoreOptions::default()).expect("store");
        let mut system = pods_sdk::DeterministicSystem::with_storage(seed, store);
        system.launch(asking_app(grouped)).expect("launch");
        for _ in 0..20 {
            system.run_steps(5);
            let (asked, applied) = (sum(system.storage(), "ask"), sum(system.storage(), "apply"));
            assert!(
                applied >= asked,
                "a committed ask must be committed at its replier: {asked} asked, {applied} applied"
            );
        }
        // A crash.
        drop(system);
    }
    let store = SqliteStore::open(dir.path(), StoreOptions::default()).expect("store");
    let mut system = pods_sdk::DeterministicSystem::with_storage(99, store);
    system.launch(asking_app(grouped)).expect("launch");
    system.run_until_quiescent();
    assert_eq!(sum(system.storage(), "ask"), 3_000);
    assert_eq!(
        sum(system.storage(), "apply"),
        3_000,
        "each ask applied once"
    );
}

#[test]
fn an_ask_nobody_awaits_commits_only_with_its_replier_and_once() {
    crash_and_finish(false);
}

#[test]
fn the_other_asks_of_a_group_that_failed_early_commit_only_with_their_replier_and_once() {
    crash_and_finish(true);
}
