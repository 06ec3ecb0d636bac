//! `AppBuilder` and the validation of a whole app.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use crate::builder::flow::{WorkflowBuilder, WorkflowState};
use crate::builder::spec::{Elements, Kind, Reference, TypeInfo};
use crate::error::Error;
use crate::path::{Path, check_name};

/// Builds one application: generators, workflows, sequencers, splitters and portals, each with
/// a registry path below `/<app name>`. Errors (bad names, a second source, …) are collected and
/// reported by [`AppBuilder::build`], so building reads straight through.
///
/// ```
/// use pods_sdk::{AppBuilder, DeterministicSystem, StreamItem};
/// let app = AppBuilder::new("hello");
/// let numbers = app.generator_from_atoms("numbers", vec![vec![1, 2], vec![3]]);
/// app.workflow("double").source(&numbers).map(|x: i64| x * 2).sink();
/// let mut system = DeterministicSystem::new(7);
/// system.launch(app.build()?)?;
/// let out = system.subscribe::<i64>("/hello/workflows/double/stream")?;
/// system.run_until_quiescent();
/// assert_eq!(out.values(), vec![vec![2, 4], vec![6]]);
/// assert_eq!(out.items().last(), Some(&StreamItem::Seal));
/// # Ok::<(), pods_sdk::Error>(())
/// ```
pub struct AppBuilder {
    pub(crate) state: Rc<RefCell<AppState>>,
}

pub(crate) struct AppState {
    pub path: Path,
    pub elements: Elements,
    pub errors: Vec<Error>,
    pub workflows: Vec<Rc<RefCell<WorkflowState>>>,
}

/// A built application, ready to launch into a system.
pub struct App {
    pub(crate) path: Path,
    pub(crate) elements: Elements,
}

impl App {
    /// The app's registry path (`/<name>`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The paths of the app's workflows, in the order they were defined.
    pub fn workflows(&self) -> Vec<Path> {
        self.elements
            .workflows
            .iter()
            .map(|w| w.path.clone())
            .collect()
    }
}

impl AppBuilder {
    /// Starts an app named `name` (letters, digits, `-`, `_`, `.`).
    pub fn new(name: &str) -> AppBuilder {
        let mut errors = Vec::new();
        let path = match check_name(name)
            .and_then(|_| Path::parse(&format!("/{name}")).map_err(|e| e.to_string()))
        {
            Ok(p) => p,
            Err(reason) => {
                errors.push(Error::InvalidPath {
                    path: name.to_owned(),
                    reason,
                });
                Path::placeholder("/invalid-app-name")
            }
        };
        AppBuilder {
            state: Rc::new(RefCell::new(AppState {
                path,
                elements: Elements::default(),
                errors,
                workflows: Vec::new(),
            })),
        }
    }

    /// The app's registry path.
    pub fn path(&self) -> Path {
        self.state.borrow().path.clone()
    }

    /// The path of a new element `name` of `kind` (e.g. `workflows`), recording a bad name.
    pub(crate) fn child(&self, kind: &str, name: &str) -> Path {
        let mut st = self.state.borrow_mut();
        if let Err(reason) = check_name(name) {
            st.errors.push(Error::InvalidPath {
                path: name.to_owned(),
                reason,
            });
        }
        st.path.child(kind, name)
    }

    /// Records a reference by path, returning the parsed path (or a placeholder after recording
    /// the error).
    pub(crate) fn reference(
        &self,
        path: &str,
        kind: Kind,
        ty: TypeInfo,
        ty2: Option<TypeInfo>,
    ) -> Path {
        let mut st = self.state.borrow_mut();
        match Path::parse(path) {
            Ok(p) => {
                st.elements.references.push(Reference {
                    path: p.clone(),
                    kind,
                    ty,
                    ty2,
                });
                p
            }
            Err(e) => {
                st.errors.push(e);
                st.path.join("invalid-reference")
            }
        }
    }

    /// Starts a workflow named `name`; give it a source with [`WorkflowBuilder::source`].
    pub fn workflow(&self, name: &str) -> WorkflowBuilder {
        let path = self.child("workflows", name);
        let wf = Rc::new(RefCell::new(WorkflowState::new(path)));
        self.state.borrow_mut().workflows.push(wf.clone());
        WorkflowBuilder { wf }
    }

    /// Checks the app and returns it ready to launch: names, duplicate paths, sources and
    /// sinks, and that each portal it defines has exactly one replier.
    pub fn build(self) -> Result<App, Error> {
        let mut st = self.state.borrow_mut();
        if let Some(e) = st.errors.drain(..).next() {
            return Err(e);
        }
        let workflows = std::mem::take(&mut st.workflows);
        for wf in workflows {
            let spec = wf.borrow_mut().take_spec()?;
            st.elements.workflows.push(spec);
        }
        check_duplicates(&st.elements)?;
        check_repliers(&st.elements)?;
        Ok(App {
            path: st.path.clone(),
            elements: std::mem::take(&mut st.elements),
        })
    }
}

/// Every path an app defines, once.
fn check_duplicates(el: &Elements) -> Result<(), Error> {
    let mut seen = HashSet::new();
    let mut paths: Vec<&Path> = Vec::new();
    for g in &el.generators {
        paths.extend([&g.path, &g.stream]);
    }
    for w in &el.workflows {
        paths.extend([&w.path, &w.stream]);
    }
    for s in &el.sequencers {
        paths.extend([&s.path, &s.stream]);
    }
    for s in &el.splitters {
        paths.push(&s.path);
    }
    for s in &el.splits {
        paths.push(&s.stream);
    }
    for p in &el.portals {
        paths.push(&p.path);
    }
    for p in paths {
        if !seen.insert(p.clone()) {
            return Err(Error::DuplicatePath {
                path: p.to_string(),
            });
        }
    }
    Ok(())
}

/// Each portal defined here has exactly one replier here.
fn check_repliers(el: &Elements) -> Result<(), Error> {
    let mut repliers: HashMap<&Path, Vec<&Path>> = HashMap::new();
    for w in &el.workflows {
        for (portal, _) in &w.repliers {
            repliers.entry(portal).or_default().push(&w.path);
        }
    }
    for p in &el.portals {
        match repliers.get(&p.path).map(Vec::as_slice) {
            None | Some([]) => {
                return Err(Error::PortalWithoutReplier {
                    portal: p.path.to_string(),
                });
            }
            Some([_]) => {}
            Some([first, second, ..]) => {
                return Err(Error::PortalWithTwoRepliers {
                    portal: p.path.to_string(),
                    first: first.to_string(),
                    second: second.to_string(),
                });
            }
        }
    }
    Ok(())
}
