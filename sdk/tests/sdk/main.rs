//! The sdk's scenario, validation and property tests (one test binary). Scenario and
//! regression tests run on both runtimes with the same assertions.

mod erasure;
mod properties;
mod regressions;
mod remote;
mod scenarios;
mod threaded;
mod validation;

use std::ops::Deref;
use std::time::Duration;

use pods_sdk::{
    App, AppBuilder, Ctx, Data, DeterministicSystem, Error, Feeder, MemoryStorage, Outcome,
    PartitionThreads, PolicyGate, Portal, ReplyTo, Storage, StreamItem, Subscription,
    ThreadedConfig, ThreadedSystem,
};

/// How long a threaded test may take before it fails as a hang.
pub const LIMIT: Duration = Duration::from_secs(60);

/// The runtime a shared test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rt {
    Deterministic,
    Threaded,
    /// The threaded runtime on a store that holds asking atoms until their continuations ran,
    /// as the node's store does.
    Held,
}

/// Either runtime, behind the API both share.
pub enum Sys<S: Storage + 'static = MemoryStorage> {
    Deterministic(Box<DeterministicSystem<S>>),
    Threaded(ThreadedSystem<S>),
}

impl Sys<MemoryStorage> {
    /// A system of runtime `rt` with in-memory storage; `seed` fixes the deterministic
    /// runtime's interleaving (the threaded one has its own).
    pub fn new(rt: Rt, seed: u64) -> Sys<MemoryStorage> {
        let storage = match rt {
            Rt::Held => MemoryStorage::holding_asking_atoms(),
            _ => MemoryStorage::new(),
        };
        Sys::with_storage(rt, seed, storage)
    }
}

impl<S: Storage + 'static> Sys<S> {
    pub fn with_storage(rt: Rt, seed: u64, storage: S) -> Sys<S> {
        match rt {
            Rt::Deterministic => {
                Sys::Deterministic(Box::new(DeterministicSystem::with_storage(seed, storage)))
            }
            Rt::Threaded | Rt::Held => {
                // Tiny stream bounds, and every partitioned step on helper threads.
                let config = ThreadedConfig {
                    workers: 2,
                    stream_bound: 1,
                    parallel_step: 1,
                    partition_threads: PartitionThreads::AtOnce,
                    pending_asks: 64,
                    group_commit: 4,
                    // Short, so that the timeout scenarios are quick; long enough for any
                    // reply of a loaded test machine.
                    ask_deadline: Duration::from_millis(1_500),
                };
                Sys::Threaded(ThreadedSystem::with_storage(config, storage).expect("threads"))
            }
        }
    }

    pub fn launch(&mut self, app: App) -> Result<(), Error> {
        match self {
            Sys::Deterministic(s) => s.launch(app),
            Sys::Threaded(s) => s.launch(app),
        }
    }

    pub fn subscribe<T: Data>(&mut self, path: &str) -> Result<Subscription<T>, Error> {
        match self {
            Sys::Deterministic(s) => s.subscribe(path),
            Sys::Threaded(s) => s.subscribe(path),
        }
    }

    pub fn feeder<T: Data>(&self, path: &str) -> Result<Feeder<T>, Error> {
        match self {
            Sys::Deterministic(s) => s.feeder(path),
            Sys::Threaded(s) => s.feeder(path),
        }
    }

    /// Runs until quiescent (a threaded run that exceeds [`LIMIT`] fails the test).
    pub fn run_until_quiescent(&mut self) -> u64 {
        match self {
            Sys::Deterministic(s) => s.run_until_quiescent(),
            Sys::Threaded(s) => s
                .run_until_quiescent_within(LIMIT)
                .expect("quiescent in time"),
        }
    }

    /// Runs at most `n` steps (the threaded runtime: until quiescent, within [`LIMIT`]).
    pub fn run_steps(&mut self, n: u64) -> u64 {
        match self {
            Sys::Deterministic(s) => s.run_steps(n),
            Sys::Threaded(s) => s
                .run_until_quiescent_within(LIMIT)
                .expect("quiescent in time"),
        }
    }

    pub fn storage(&self) -> Box<dyn Deref<Target = S> + '_> {
        match self {
            Sys::Deterministic(s) => Box::new(s.storage()),
            Sys::Threaded(s) => Box::new(s.storage()),
        }
    }

    pub fn set_gate(&mut self, gate: impl PolicyGate + 'static) {
        match self {
            Sys::Deterministic(s) => s.set_gate(gate),
            Sys::Threaded(s) => s.set_gate(gate),
        }
    }

    pub fn denied(&self, workflow: &str) -> u64 {
        match self {
            Sys::Deterministic(s) => s.denied(workflow),
            Sys::Threaded(s) => s.denied(workflow),
        }
    }

    pub fn registry(&self) -> Vec<(String, &'static str)> {
        match self {
            Sys::Deterministic(s) => s.registry(),
            Sys::Threaded(s) => s.registry(),
        }
    }
}

/// Runs `f` on a thread of its own and fails if it takes longer than [`LIMIT`].
pub fn within_limit(f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        let _ = tx.send(());
        result
    });
    match rx.recv_timeout(LIMIT) {
        Ok(()) => {
            if let Err(panic) = handle.join().expect("joined") {
                std::panic::resume_unwind(panic);
            }
        }
        Err(_) => panic!("test did not finish within {LIMIT:?}: a hang"),
    }
}

/// Generates, for each named `fn(Rt)`, a test on the deterministic runtime, one on the threaded
/// runtime and one on the threaded runtime holding asking atoms (both under [`within_limit`]).
#[macro_export]
macro_rules! on_both_runtimes {
    ($($name:ident),* $(,)?) => {
        mod deterministic {
            $(#[test]
            fn $name() {
                super::$name($crate::Rt::Deterministic)
            })*
        }
        mod threaded {
            $(#[test]
            fn $name() {
                $crate::within_limit(|| super::$name($crate::Rt::Threaded))
            })*
        }
        mod held {
            $(#[test]
            fn $name() {
                $crate::within_limit(|| super::$name($crate::Rt::Held))
            })*
        }
    };
}

/// Launches `app` on runtime `rt` with `seed`, subscribes to `stream`, runs to quiescence.
pub fn run<T: Data>(rt: Rt, app: App, seed: u64, stream: &str) -> (Sys, Subscription<T>) {
    let mut system = Sys::new(rt, seed);
    system.launch(app).expect("launch");
    let sub = system.subscribe::<T>(stream).expect("subscribe");
    system.run_until_quiescent();
    (system, sub)
}

/// The atoms' values, then whether the stream was sealed.
pub fn atoms_and_seal<T: Data + PartialEq>(sub: &Subscription<T>) -> (Vec<Vec<T>>, bool) {
    (sub.values(), sub.items().last() == Some(&StreamItem::Seal))
}

/// Adds to `app` a workflow `name` that only answers `portal` with `on_ask` (its own input is an
/// empty generator).
pub fn serve<Req: Data, Rep: Data, R: Outcome + 'static>(
    app: &AppBuilder,
    name: &str,
    portal: &Portal<Req, Rep>,
    on_ask: impl Fn(&mut Ctx<'_, Req>, Req, ReplyTo<Rep>) -> R + Send + Sync + 'static,
) {
    let none = app.generator_from_atoms::<Req>(&format!("{name}-input"), vec![]);
    app.workflow(name)
        .source(&none)
        .replier(portal, on_ask)
        .sink();
}
