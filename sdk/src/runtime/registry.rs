//! The registry of a running system, and the checks made when an app is launched into it.

use std::collections::{HashMap, HashSet};

use crate::builder::App;
use crate::builder::spec::{Kind, TypeInfo};
use crate::error::Error;
use crate::path::Path;

/// One registered element.
#[derive(Clone)]
pub(crate) struct Entry {
    pub kind: Kind,
    pub ty: TypeInfo,
    /// The reply type, for portals.
    pub ty2: Option<TypeInfo>,
    /// The stream id (streams) or unit id (everything else).
    pub target: usize,
    /// For portals: the replier's unit and node.
    pub replier: Option<(usize, usize)>,
}

/// Every path of every launched app.
#[derive(Default)]
pub(crate) struct Registry {
    pub entries: HashMap<Path, Entry>,
    pub apps: HashSet<Path>,
}

impl Registry {
    pub(crate) fn get(&self, path: &Path, kind: Kind) -> Option<&Entry> {
        self.entries.get(path).filter(|e| e.kind == kind)
    }
}

type Def = (Kind, TypeInfo, Option<TypeInfo>);

/// What an app defines, by path.
fn definitions(app: &App) -> HashMap<Path, Def> {
    let el = &app.elements;
    let mut defs = HashMap::new();
    for g in &el.generators {
        defs.insert(g.path.clone(), (Kind::Generator, g.ty, None));
        defs.insert(g.stream.clone(), (Kind::Stream, g.ty, None));
    }
    for w in &el.workflows {
        defs.insert(w.path.clone(), (Kind::Workflow, w.out_ty, None));
        defs.insert(w.stream.clone(), (Kind::Stream, w.out_ty, None));
    }
    for s in &el.sequencers {
        defs.insert(s.path.clone(), (Kind::Sequencer, s.ty, None));
        defs.insert(s.stream.clone(), (Kind::Stream, s.ty, None));
    }
    for s in &el.splitters {
        defs.insert(s.path.clone(), (Kind::Splitter, s.ty, None));
    }
    for s in &el.splits {
        defs.insert(s.stream.clone(), (Kind::Stream, s.ty, None));
    }
    for p in &el.portals {
        defs.insert(p.path.clone(), (Kind::Portal, p.req, Some(p.rep)));
    }
    defs
}

/// Checks that `app` can be launched into a system with `registry`; changes nothing.
pub(crate) fn check_launch(app: &App, registry: &Registry) -> Result<(), Error> {
    // `/peers` names other processes' elements: no app defines anything there.
    if app.path.is_reserved() {
        return Err(Error::ReservedPath {
            app: app.path.to_string(),
        });
    }
    if registry.apps.contains(&app.path) {
        return Err(Error::DuplicatePath {
            path: app.path.to_string(),
        });
    }
    let defs = definitions(app);
    for path in defs.keys() {
        if registry.entries.contains_key(path) {
            return Err(Error::DuplicatePath {
                path: path.to_string(),
            });
        }
    }
    let lookup = |path: &Path| -> Option<Def> {
        defs.get(path)
            .copied()
            .or_else(|| registry.entries.get(path).map(|e| (e.kind, e.ty, e.ty2)))
    };
    let expect =
        |path: &Path, kind: Kind, ty: TypeInfo, ty2: Option<TypeInfo>| -> Result<(), Error> {
            // A remote portal's types are checked on the far side, when it is asked.
            if kind == Kind::Portal && path.is_remote() {
                return Ok(());
            }
            let Some((found_kind, found_ty, found_ty2)) = lookup(path) else {
                return Err(Error::UnknownPath {
                    path: path.to_string(),
                    referrer: app.path.to_string(),
                });
            };
            if found_kind != kind {
                return Err(Error::WrongKind {
                    path: path.to_string(),
                    expected: kind.name(),
                    found: found_kind.name(),
                });
            }
            let mismatch = |expected: TypeInfo, found: TypeInfo| Error::TypeMismatch {
                path: path.to_string(),
                expected: expected.name.to_owned(),
                found: found.name.to_owned(),
            };
            if found_ty != ty {
                return Err(mismatch(ty, found_ty));
            }
            if let (Some(want), Some(have)) = (ty2, found_ty2)
                && want != have
            {
                return Err(mismatch(want, have));
            }
            Ok(())
        };
    let el = &app.elements;
    for r in &el.references {
        expect(&r.path, r.kind, r.ty, r.ty2)?;
    }
    for w in &el.workflows {
        expect(&w.source, Kind::Stream, w.source_ty, None)?;
        for (portal, _) in &w.repliers {
            if !el.portals.iter().any(|p| &p.path == portal) {
                return Err(match registry.get(portal, Kind::Portal) {
                    Some(e) => Error::PortalWithTwoRepliers {
                        portal: portal.to_string(),
                        first: replier_workflow(registry, e),
                        second: w.path.to_string(),
                    },
                    None => Error::UnknownPath {
                        path: portal.to_string(),
                        referrer: app.path.to_string(),
                    },
                });
            }
        }
        for (portal, req, rep) in &w.asks {
            expect(portal, Kind::Portal, *req, Some(*rep))?;
        }
    }
    for c in &el.connections {
        expect(&c.from, Kind::Stream, c.ty, None)?;
        expect(&c.to, Kind::Sequencer, c.ty, None)?;
    }
    for s in &el.splitters {
        expect(&s.input, Kind::Stream, s.ty, None)?;
    }
    for s in &el.splits {
        expect(&s.splitter, Kind::Splitter, s.ty, None)?;
    }
    Ok(())
}

fn replier_workflow(registry: &Registry, portal: &Entry) -> String {
    let unit = portal.replier.map(|r| r.0);
    registry
        .entries
        .iter()
        .find(|(_, e)| e.kind == Kind::Workflow && Some(e.target) == unit)
        .map(|(p, _)| p.to_string())
        .unwrap_or_else(|| "another workflow".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::AppBuilder;

    fn asker(name: &str, portal: &str) -> App {
        let app = AppBuilder::new(name);
        let remote = app.portal_ref::<i64, i64>(portal);
        let g = app.generator_from_atoms("g", vec![vec![1i64]]);
        let p = remote.clone();
        app.workflow("w")
            .source(&g)
            .asker(&remote, move |ctx: &mut crate::Ctx<'_, i64>, x: i64| {
                let _ = ctx.ask(&p, x);
            })
            .sink();
        app.build().unwrap_or_else(|e| panic!("builds: {e}"))
    }

    #[test]
    fn references_and_asks_to_remote_portals_are_checked_on_the_far_side() {
        let registry = Registry::default();
        let app = asker("a", "/peers/bob/shop/portals/stock");
        assert_eq!(check_launch(&app, &registry), Ok(()));
    }

    #[test]
    fn anything_else_below_peers_is_unknown() {
        let registry = Registry::default();
        let app = AppBuilder::new("a");
        let s = app.stream_ref::<i64>("/peers/bob/shop/workflows/w/stream");
        app.workflow("w").source(&s).identity().sink();
        let app = app.build().unwrap_or_else(|e| panic!("builds: {e}"));
        assert!(matches!(
            check_launch(&app, &registry),
            Err(Error::UnknownPath { path, .. }) if path == "/peers/bob/shop/workflows/w/stream"
        ));
        let app = asker("b", "/peers");
        assert!(
            matches!(
                check_launch(&app, &registry),
                Err(Error::UnknownPath { .. })
            ),
            "/peers itself is no remote portal"
        );
    }

    #[test]
    fn an_app_named_peers_is_refused() {
        let app = asker("peers", "/peers/bob/shop/portals/stock");
        assert_eq!(
            check_launch(&app, &Registry::default()),
            Err(Error::ReservedPath {
                app: "/peers".to_owned()
            })
        );
    }
}
