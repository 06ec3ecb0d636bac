//! The deterministic runtime: one thread, one step at a time, the next unit chosen by a seeded
//! random generator, so a seed fixes the interleaving and the outputs.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use crate::batch::Batch;
use crate::builder::spec::{Kind, TypeInfo};
use crate::data::{Data, Envelope, MixBuild};
use crate::error::Error;
use crate::gate::{AllowAll, PolicyGate};
use crate::path::Path;
use crate::portal::{AskId, AskMsg, Origin, ReplyMsg};
use crate::runtime::engine::WorkflowInstance;
use crate::runtime::registry::{Entry, Registry};
use crate::runtime::stream::{End, StreamLog};
use crate::runtime::units::{Feeder, FeederQueue, SplitRouter, Subscription};
use crate::storage::{MemoryStorage, Storage};

enum Source {
    Atoms(Box<dyn Iterator<Item = Arc<dyn Batch>> + Send>),
    Feeder(Arc<Mutex<FeederQueue>>),
}

struct WorkflowUnit {
    engine: WorkflowInstance,
    /// Input stream and consumer.
    input: (usize, usize),
    out: usize,
    asks: VecDeque<(usize, Vec<AskMsg>)>,
    replies: VecDeque<Vec<ReplyMsg>>,
    input_ended: bool,
    failed: bool,
    /// Hosts a replier, so it keeps serving after its input ends.
    serves: bool,
    denied: u64,
    /// Requests this workflow accepted and has not answered yet, so that its failure answers
    /// them.
    open: HashMap<AskId, OpenRequest, MixBuild>,
}

/// What is needed to answer a request with an error.
struct OpenRequest {
    from: Origin,
    portal: Path,
    envelope: Option<Arc<Envelope>>,
}

enum Unit {
    Generator {
        stream: usize,
        source: Source,
        closed: bool,
    },
    Sequencer {
        inputs: Vec<(usize, usize)>,
        ended: usize,
        out: usize,
    },
    Splitter {
        input: (usize, usize),
        router: Box<dyn SplitRouter>,
        outs: Vec<usize>,
        /// How the splitter ended (its input ended, or a predicate panicked); a split added
        /// later ends the same way at once.
        ended: Option<End>,
    },
    Workflow(Box<WorkflowUnit>),
}

/// A system that runs apps deterministically: for tests, examples and the reference semantics.
/// Launch apps, then run it step by step or until nothing can progress.
pub struct DeterministicSystem<S: Storage = MemoryStorage> {
    rng: u64,
    streams: Vec<StreamLog>,
    units: Vec<Unit>,
    registry: Registry,
    storage: S,
    gate: Box<dyn PolicyGate>,
    steps: u64,
    /// Scratch list of runnable units, reused by every step.
    scratch_runnable: Vec<usize>,
}

impl DeterministicSystem<MemoryStorage> {
    /// A system with in-memory storage and the allow-all gate; `seed` fixes the interleaving.
    pub fn new(seed: u64) -> DeterministicSystem<MemoryStorage> {
        DeterministicSystem::with_storage(seed, MemoryStorage::new())
    }
}

impl<S: Storage> DeterministicSystem<S> {
    /// A system committing to `storage`.
    pub fn with_storage(seed: u64, storage: S) -> DeterministicSystem<S> {
        DeterministicSystem {
            rng: seed ^ 0x9e37_79b9_7f4a_7c15,
            streams: Vec::new(),
            units: Vec::new(),
            registry: Registry::default(),
            storage,
            gate: Box::new(AllowAll),
            steps: 0,
            scratch_runnable: Vec::new(),
        }
    }

    /// Replaces the policy gate applied to every atom a workflow consumes.
    pub fn set_gate(&mut self, gate: impl PolicyGate + 'static) {
        self.gate = Box::new(gate);
    }

    /// The storage, for inspection.
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Every registered path with its kind, sorted.
    pub fn registry(&self) -> Vec<(String, &'static str)> {
        let mut v: Vec<_> = self
            .registry
            .entries
            .iter()
            .map(|(p, e)| (p.to_string(), e.kind.name()))
            .collect();
        v.sort();
        v
    }

    /// Events the policy gate kept out of `workflow` so far.
    pub fn denied(&self, workflow: &str) -> u64 {
        let path = Path::parse(workflow).ok();
        let unit = path.and_then(|p| self.registry.get(&p, Kind::Workflow).map(|e| e.target));
        match unit.and_then(|u| self.units.get(u)) {
            Some(Unit::Workflow(w)) => w.denied,
            _ => 0,
        }
    }

    fn stream_entry<T: Data>(&self, path: &str, kind: Kind) -> Result<(Path, &Entry), Error> {
        let path = Path::parse(path)?;
        let entry = self
            .registry
            .entries
            .get(&path)
            .ok_or_else(|| Error::UnknownPath {
                path: path.to_string(),
                referrer: "the host".to_owned(),
            })?;
        if entry.kind != kind {
            return Err(Error::WrongKind {
                path: path.to_string(),
                expected: kind.name(),
                found: entry.kind.name(),
            });
        }
        if entry.ty != TypeInfo::of::<T>() {
            return Err(Error::TypeMismatch {
                path: path.to_string(),
                expected: std::any::type_name::<T>().to_owned(),
                found: entry.ty.name.to_owned(),
            });
        }
        Ok((path, entry))
    }

    /// Observes the stream at `path` from now on: every atom appended later, and its end.
    pub fn subscribe<T: Data>(&mut self, path: &str) -> Result<Subscription<T>, Error> {
        let id = self.stream_entry::<T>(path, Kind::Stream)?.1.target;
        let (sub, observer) = Subscription::<T>::new();
        if let Some(s) = self.streams.get_mut(id) {
            s.observe(observer);
        }
        Ok(sub)
    }

    /// The feeder of the external generator at `path` (`/app/generators/name`).
    pub fn feeder<T: Data>(&self, path: &str) -> Result<Feeder<T>, Error> {
        let (path, entry) = self.stream_entry::<T>(path, Kind::Generator)?;
        match self.units.get(entry.target) {
            Some(Unit::Generator {
                source: Source::Feeder(q),
                ..
            }) => Ok(Feeder {
                path,
                queue: q.clone(),
                _t: std::marker::PhantomData,
            }),
            _ => Err(Error::WrongKind {
                path: path.to_string(),
                expected: "external generator",
                found: "generator",
            }),
        }
    }

    /// Runs until no unit can progress; returns the number of steps taken.
    pub fn run_until_quiescent(&mut self) -> u64 {
        let start = self.steps;
        while self.step() {}
        self.steps - start
    }

    /// Runs at most `n` steps; returns the number taken (fewer if the system became quiescent).
    pub fn run_steps(&mut self, n: u64) -> u64 {
        let start = self.steps;
        for _ in 0..n {
            if !self.step() {
                break;
            }
        }
        self.steps - start
    }

    /// Takes one step of one runnable unit, chosen by the seeded generator; `false` if none
    /// could run (the system is quiescent).
    pub fn step(&mut self) -> bool {
        let mut runnable = std::mem::take(&mut self.scratch_runnable);
        runnable.clear();
        runnable.extend((0..self.units.len()).filter(|&u| self.runnable(u)));
        if runnable.is_empty() {
            self.scratch_runnable = runnable;
            return false;
        }
        let unit = runnable[self.pick(runnable.len())];
        self.scratch_runnable = runnable;
        self.run_unit(unit);
        self.steps += 1;
        true
    }

    fn pick(&mut self, n: usize) -> usize {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        (crate::data::mix(self.rng) % n as u64) as usize
    }

    fn ready(&self, (stream, consumer): (usize, usize)) -> bool {
        self.streams.get(stream).is_some_and(|s| s.ready(consumer))
    }

    fn runnable(&self, u: usize) -> bool {
        match &self.units[u] {
            Unit::Generator { closed, source, .. } => {
                !closed
                    && match source {
                        Source::Atoms(_) => true,
                        Source::Feeder(q) => q
                            .lock()
                            .map(|q| !q.atoms.is_empty() || q.sealed)
                            .unwrap_or(false),
                    }
            }
            Unit::Sequencer { inputs, .. } => inputs.iter().any(|i| self.ready(*i)),
            Unit::Splitter { input, ended, .. } => ended.is_none() && self.ready(*input),
            Unit::Workflow(w) => {
                !w.failed && (self.ready(w.input) || !w.asks.is_empty() || !w.replies.is_empty())
            }
        }
    }
}

mod launch;
mod run;
