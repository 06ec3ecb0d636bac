//! Each validation error, as a typed error naming the element at fault.

use crate::serve;
use pods_sdk::{AppBuilder, DeterministicSystem, Error};

fn launch(app: AppBuilder) -> Result<(), Error> {
    DeterministicSystem::new(0).launch(app.build()?)
}

#[test]
fn duplicate_paths_are_refused() {
    let app = AppBuilder::new("app");
    let g = app.generator_from_atoms("g", vec![vec![1i64]]);
    app.workflow("wf").source(&g).sink();
    app.workflow("wf").source(&g).sink();
    assert_eq!(
        app.build().err(),
        Some(Error::DuplicatePath {
            path: "/app/workflows/wf".into()
        })
    );

    let mut system = DeterministicSystem::new(0);
    let make = || {
        let app = AppBuilder::new("same");
        app.generator_from_atoms("g", vec![vec![1i64]]);
        app.build().unwrap()
    };
    system.launch(make()).unwrap();
    assert_eq!(
        system.launch(make()),
        Err(Error::DuplicatePath {
            path: "/same".into()
        })
    );
}

#[test]
fn a_portal_needs_exactly_one_replier() {
    let app = AppBuilder::new("app");
    app.portal::<i64, i64>("p");
    assert_eq!(
        app.build().err(),
        Some(Error::PortalWithoutReplier {
            portal: "/app/portals/p".into()
        })
    );

    let app = AppBuilder::new("app");
    let p = app.portal::<i64, i64>("p");
    let g = app.generator_from_atoms::<i64>("g", vec![]);
    for name in ["a", "b"] {
        app.workflow(name)
            .source(&g)
            .replier(&p, |ctx, x, to| ctx.reply(to, x))
            .sink();
    }
    assert_eq!(
        app.build().err(),
        Some(Error::PortalWithTwoRepliers {
            portal: "/app/portals/p".into(),
            first: "/app/workflows/a".into(),
            second: "/app/workflows/b".into()
        })
    );
}

#[test]
fn a_second_replier_from_another_app_is_refused() {
    let mut system = DeterministicSystem::new(0);
    let first = AppBuilder::new("first");
    let p = first.portal::<i64, i64>("p");
    let g = first.generator_from_atoms::<i64>("g", vec![]);
    first
        .workflow("server")
        .source(&g)
        .replier(&p, |ctx, x, to| ctx.reply(to, x))
        .sink();
    system.launch(first.build().unwrap()).unwrap();

    let second = AppBuilder::new("second");
    let p = second.portal_ref::<i64, i64>("/first/portals/p");
    let g = second.generator_from_atoms::<i64>("g", vec![]);
    second
        .workflow("rival")
        .source(&g)
        .replier(&p, |ctx, x, to| ctx.reply(to, x))
        .sink();
    assert_eq!(
        system.launch(second.build().unwrap()),
        Err(Error::PortalWithTwoRepliers {
            portal: "/first/portals/p".into(),
            first: "/first/workflows/server".into(),
            second: "/second/workflows/rival".into()
        })
    );
}

#[test]
fn references_to_missing_paths_are_refused_and_change_nothing() {
    let app = AppBuilder::new("app");
    let s = app.stream_ref::<i64>("/nowhere/workflows/wf/stream");
    app.workflow("wf").source(&s).sink();
    let mut system = DeterministicSystem::new(0);
    assert_eq!(
        system.launch(app.build().unwrap()),
        Err(Error::UnknownPath {
            path: "/nowhere/workflows/wf/stream".into(),
            referrer: "/app".into()
        })
    );
    assert!(
        system.registry().is_empty(),
        "a refused launch registers nothing"
    );

    let app = AppBuilder::new("app");
    app.portal_ref::<i64, i64>("/nowhere/portals/p");
    assert!(matches!(launch(app), Err(Error::UnknownPath { .. })));
}

#[test]
fn a_workflow_without_a_source_is_refused() {
    let app = AppBuilder::new("app");
    let _ = app.workflow("lonely");
    assert_eq!(
        app.build().err(),
        Some(Error::NoSource {
            workflow: "/app/workflows/lonely".into()
        })
    );
}

#[test]
fn type_mismatches_name_both_types() {
    let mut system = DeterministicSystem::new(0);
    let first = AppBuilder::new("first");
    let g = first.generator_from_atoms("g", vec![vec![1i64]]);
    first.workflow("wf").source(&g).sink();
    let p = first.portal::<i64, String>("p");
    serve(&first, "server", &p, |ctx, x, to| {
        ctx.reply(to, x.to_string())
    });
    system.launch(first.build().unwrap()).unwrap();

    let second = AppBuilder::new("second");
    let s = second.stream_ref::<String>("/first/workflows/wf/stream");
    second.workflow("wf").source(&s).sink();
    assert_eq!(
        system.launch(second.build().unwrap()),
        Err(Error::TypeMismatch {
            path: "/first/workflows/wf/stream".into(),
            expected: "alloc::string::String".into(),
            found: "i64".into()
        })
    );

    let third = AppBuilder::new("third");
    third.portal_ref::<i64, i64>("/first/portals/p");
    assert_eq!(
        system.launch(third.build().unwrap()),
        Err(Error::TypeMismatch {
            path: "/first/portals/p".into(),
            expected: "i64".into(),
            found: "alloc::string::String".into()
        })
    );

    assert!(matches!(
        system.subscribe::<u8>("/first/workflows/wf/stream"),
        Err(Error::TypeMismatch { .. })
    ));
    assert!(matches!(
        system.subscribe::<i64>("/first/workflows/wf"),
        Err(Error::WrongKind { .. })
    ));
}

#[test]
fn bad_names_and_structure_are_reported_at_build() {
    assert!(matches!(
        AppBuilder::new("a b").build(),
        Err(Error::InvalidPath { .. })
    ));
    let app = AppBuilder::new("app");
    let g = app.generator_from_atoms("g", vec![vec![1i64]]);
    let wf = app.workflow("wf");
    wf.source(&g);
    wf.source(&g).sink();
    assert_eq!(
        app.build().err(),
        Some(Error::TwoSources {
            workflow: "/app/workflows/wf".into()
        })
    );

    let app = AppBuilder::new("app");
    let g = app.generator_from_atoms("g", vec![vec![1i64]]);
    let f = app.workflow("wf").source(&g);
    f.sink();
    f.map(|x| x).sink();
    assert_eq!(
        app.build().err(),
        Some(Error::TwoSinks {
            workflow: "/app/workflows/wf".into()
        })
    );

    let app = AppBuilder::new("app");
    let g = app.generator_from_atoms("g", vec![vec![1i64]]);
    app.workflow("wf")
        .source(&g)
        .map(|x| x)
        .on_atom_complete(|_ctx| {})
        .sink();
    assert!(matches!(app.build(), Err(Error::InvalidPath { .. })));
}

#[test]
fn a_full_feeder_says_to_run_the_system() {
    let app = AppBuilder::new("app");
    let g = app.generator_external_bounded::<i64>("feed", 2);
    app.workflow("wf").source(&g).sink();
    let mut system = DeterministicSystem::new(0);
    system.launch(app.build().unwrap()).unwrap();
    let feeder = system.feeder::<i64>("/app/generators/feed").unwrap();
    feeder.push(vec![1]).unwrap();
    feeder.push(vec![2]).unwrap();
    assert_eq!(
        feeder.push(vec![3]),
        Err(Error::FeederFull {
            path: "/app/generators/feed".into(),
            capacity: 2
        })
    );
    system.run_until_quiescent();
    assert_eq!(feeder.push(vec![3]), Ok(()));
}
