//! The state both runtimes share: streams, units, the registry and the policy gate, with the
//! rules for launching apps, taking steps and routing what a step released. A step is taken in
//! three parts: [`Core::begin`] takes the unit's next input (under the system's lock, in the
//! threaded runtime), [`Work::run`] does the work without touching the core (running tasks,
//! committing, splitting), and [`Core::finish`] releases what the work produced. The
//! deterministic runtime runs the three back to back; the threaded one runs the middle part on
//! a worker thread while other units take steps.

pub(crate) mod deadline;
mod launch;
mod outside;
pub(crate) mod remote;
pub(crate) mod resume;
mod route;
mod step;
mod work;

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
pub(crate) use step::Begun;

pub(crate) enum Source {
    Atoms(Box<dyn Iterator<Item = Arc<dyn Batch>> + Send>),
    Feeder(Arc<Mutex<FeederQueue>>),
}

pub(crate) struct WorkflowUnit {
    pub path: Path,
    /// The step machine; `None` while a step runs outside the core.
    pub engine: Option<Box<WorkflowInstance>>,
    /// Shared with the engine: whether the output stream has consumers (so it is logged).
    pub log_output: Arc<std::sync::atomic::AtomicBool>,
    /// Input stream and consumer.
    pub input: (usize, usize),
    pub out: usize,
    pub asks: VecDeque<(usize, Vec<AskMsg>)>,
    pub replies: VecDeque<Vec<ReplyMsg>>,
    pub input_ended: bool,
    /// Stream atoms it still takes one per step after its launch, each first announced to the
    /// store, which says whether to run it or to quarantine it (an atom that crashed the
    /// process on earlier launches). As many as a group commit holds, so that an atom lost with
    /// an uncommitted group is among them at the next launch.
    pub probation: usize,
    pub failed: bool,
    /// Hosts a replier, so it keeps serving after its input ends.
    pub serves: bool,
    pub denied: u64,
    /// Continuations waiting for replies, as of the last finished step.
    pub pending: usize,
    /// Steps staged and not flushed, as of the last finished step (a store that survives
    /// restarts holds an asking atom's commit until its continuations ran).
    pub unflushed: usize,
    /// Requests this workflow accepted and has not answered yet, so that its failure answers
    /// them.
    pub open: HashMap<AskId, OpenRequest, MixBuild>,
}

/// What is needed to answer a request with an error.
pub(crate) struct OpenRequest {
    pub from: Origin,
    pub portal: Path,
    pub envelope: Option<Arc<Envelope>>,
}

pub(crate) enum Unit {
    Generator {
        stream: usize,
        /// `None` while the next atom is being made outside the core.
        source: Option<Source>,
        closed: bool,
    },
    Sequencer {
        path: Path,
        inputs: Vec<(usize, usize)>,
        ended: usize,
        out: usize,
    },
    Splitter {
        path: Path,
        input: (usize, usize),
        /// Shared with the work routing an atom outside the core; a split launched meanwhile
        /// waits for the routing to finish.
        router: Arc<Mutex<Box<dyn SplitRouter>>>,
        /// Predicates of splits launched while the router was routing an atom, added before
        /// the splitter's next atom (a launch never waits for user code).
        pending: Vec<Box<dyn std::any::Any + Send>>,
        outs: Vec<usize>,
        /// How the splitter ended (its input ended, or a predicate panicked); a split added
        /// later ends the same way at once.
        ended: Option<End>,
    },
    Workflow(Box<WorkflowUnit>),
}

/// Streams, units, registry and gate of a running system.
pub(crate) struct Core {
    pub streams: Vec<StreamLog>,
    pub units: Vec<Unit>,
    pub registry: Registry,
    pub gate: Arc<dyn PolicyGate>,
    /// Atoms a non-feedback stream holds before its producer waits; `None`: unbounded.
    pub bound: Option<usize>,
    /// Continuations a workflow may have waiting before it takes no more stream atoms;
    /// `None`: no limit.
    pub pending_limit: Option<usize>,
    pub steps: u64,
    /// Whether what sequencers and splitters move is logged in the store (it logs atoms), so
    /// that consumers of their outputs resume after a restart.
    pub log_moves: bool,
    /// Most stream atoms a workflow step takes when they are queued, committed together
    /// (group commit; 1: one atom per step).
    pub group: usize,
    /// Per unit: the units a step of it may make runnable (the producers of what it reads,
    /// the consumers of what it writes).
    pub neighbors: Vec<Vec<usize>>,
    /// Units sent asks or replies since the list was last drained.
    pub woken: Vec<usize>,
    /// The deadlines of asks in flight.
    pub deadlines: deadline::Deadlines,
    /// Asks across processes in flight, and what to carry out for them outside the lock.
    pub remote: remote::Remote,
    /// Streams read from outside the system (exported to peers): logged like consumed ones.
    pub exported: std::collections::HashSet<usize>,
}

impl Core {
    pub(crate) fn new(bound: Option<usize>, pending_limit: Option<usize>) -> Core {
        Core {
            pending_limit,
            streams: Vec::new(),
            units: Vec::new(),
            registry: Registry::default(),
            gate: Arc::new(AllowAll),
            bound,
            steps: 0,
            group: 1,
            log_moves: false,
            neighbors: Vec::new(),
            woken: Vec::new(),
            deadlines: deadline::Deadlines::real(None),
            remote: remote::Remote::default(),
            exported: std::collections::HashSet::new(),
        }
    }

    /// The same core, with `deadlines` for its asks.
    pub(crate) fn with_deadlines(mut self, deadlines: deadline::Deadlines) -> Core {
        self.deadlines = deadlines;
        self
    }

    /// Answers every ask whose deadline has passed with a timeout; whether any had.
    pub(crate) fn expire(&mut self) -> bool {
        let expired = self.deadlines.expired();
        if expired.is_empty() {
            return false;
        }
        // A remote portal's reply after its deadline finds no origin and is dropped.
        self.remote.expired(&expired);
        self.route_replies(expired);
        true
    }

    /// Recomputes every unit's neighbors (after a launch).
    pub(crate) fn link(&mut self) {
        let n = self.streams.len();
        let mut producer: Vec<Option<usize>> = vec![None; n];
        let mut consumers: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut reads: Vec<Vec<usize>> = vec![Vec::new(); self.units.len()];
        let mut writes: Vec<Vec<usize>> = vec![Vec::new(); self.units.len()];
        for (u, unit) in self.units.iter().enumerate() {
            match unit {
                Unit::Generator { stream, .. } => writes[u].push(*stream),
                Unit::Sequencer { inputs, out, .. } => {
                    reads[u].extend(inputs.iter().map(|i| i.0));
                    writes[u].push(*out);
                }
                Unit::Splitter { input, outs, .. } => {
                    reads[u].push(input.0);
                    writes[u].extend(outs.iter().copied());
                }
                Unit::Workflow(w) => {
                    reads[u].push(w.input.0);
                    writes[u].push(w.out);
                }
            }
            for &s in reads[u].iter().filter(|&&s| s < n) {
                consumers[s].push(u);
            }
            for &s in writes[u].iter().filter(|&&s| s < n) {
                producer[s] = Some(u);
            }
        }
        // A workflow's output with a consumer is logged by a store that logs.
        for unit in &self.units {
            if let Unit::Workflow(w) = unit {
                let consumed = consumers.get(w.out).is_some_and(|c| !c.is_empty())
                    || self.exported.contains(&w.out);
                w.log_output
                    .store(consumed, std::sync::atomic::Ordering::Release);
            }
        }
        self.neighbors = (0..self.units.len())
            .map(|u| {
                let mut v: Vec<usize> = reads[u]
                    .iter()
                    .filter_map(|&s| producer.get(s).copied().flatten())
                    .chain(
                        writes[u]
                            .iter()
                            .flat_map(|&s| consumers.get(s).into_iter().flatten().copied()),
                    )
                    .filter(|&v| v != u)
                    .collect();
                v.sort_unstable();
                v.dedup();
                v
            })
            .collect();
    }

    /// Every registered path with its kind, sorted.
    pub(crate) fn registry_list(&self) -> Vec<(String, &'static str)> {
        let mut v: Vec<_> = self
            .registry
            .entries
            .iter()
            .map(|(p, e)| (p.to_string(), e.kind.name()))
            .collect();
        v.sort();
        v
    }

    /// The path of the workflow that answers `portal`, if it is a portal of this system.
    pub(crate) fn replier_of(&self, portal: &Path) -> Option<Path> {
        let (unit, _) = self.registry.get(portal, Kind::Portal)?.replier?;
        match self.units.get(unit)? {
            Unit::Workflow(w) => Some(w.path.clone()),
            _ => None,
        }
    }

    /// Events the policy gate kept out of `workflow` so far.
    pub(crate) fn denied(&self, workflow: &str) -> u64 {
        let path = Path::parse(workflow).ok();
        let unit = path.and_then(|p| self.registry.get(&p, Kind::Workflow).map(|e| e.target));
        match unit.and_then(|u| self.units.get(u)) {
            Some(Unit::Workflow(w)) => w.denied,
            _ => 0,
        }
    }

    fn stream_entry<T: Data>(&self, path: &str, kind: Kind) -> Result<(Path, &Entry), Error> {
        let (path, entry) = self.entry_of(path, kind)?;
        if entry.ty != TypeInfo::of::<T>() {
            return Err(Error::TypeMismatch {
                path: path.to_string(),
                expected: std::any::type_name::<T>().to_owned(),
                found: entry.ty.name.to_owned(),
            });
        }
        Ok((path, entry))
    }

    /// The registry entry at `path`, which must be of `kind`.
    pub(crate) fn entry_of(&self, path: &str, kind: Kind) -> Result<(Path, &Entry), Error> {
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
        Ok((path, entry))
    }

    /// Observes the stream at `path` from now on: every atom appended later, and its end.
    pub(crate) fn subscribe<T: Data>(&mut self, path: &str) -> Result<Subscription<T>, Error> {
        let id = self.stream_entry::<T>(path, Kind::Stream)?.1.target;
        let (sub, observer) = Subscription::<T>::new();
        if let Some(s) = self.streams.get_mut(id) {
            s.observe(observer);
        }
        Ok(sub)
    }

    /// The feeder of the external generator at `path` (`/app/generators/name`).
    pub(crate) fn feeder<T: Data>(&self, path: &str) -> Result<Feeder<T>, Error> {
        let (path, entry) = self.stream_entry::<T>(path, Kind::Generator)?;
        match self.units.get(entry.target) {
            Some(Unit::Generator {
                source: Some(Source::Feeder(q)),
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

    fn ready(&self, (stream, consumer): (usize, usize)) -> bool {
        self.streams.get(stream).is_some_and(|s| s.ready(consumer))
    }

    /// Whether workflow `w` can take a stream atom now: one is ready, its output has room, and
    /// it has credit for more asks in flight.
    fn takes_input(&self, w: &WorkflowUnit) -> bool {
        self.ready(w.input)
            && self.has_room(w.out)
            && self.has_ask_credit(w)
            && w.unflushed < self.group
            // In probation, one atom at a time is uncommitted, so a crash is counted against
            // the atom that caused it.
            && (w.probation == 0 || w.unflushed == 0)
    }

    /// Whether workflow `w` may take another stream atom: it has fewer continuations waiting
    /// for replies than the limit (asks would bypass the stream bounds otherwise).
    fn has_ask_credit(&self, w: &WorkflowUnit) -> bool {
        self.pending_limit.is_none_or(|l| w.pending < l)
    }

    fn has_room(&self, stream: usize) -> bool {
        self.streams.get(stream).is_none_or(StreamLog::has_room)
    }

    /// Whether unit `u` can take a step now.
    pub(crate) fn runnable(&self, u: usize) -> bool {
        match &self.units[u] {
            Unit::Generator {
                closed,
                source,
                stream,
            } => {
                !closed
                    && self.has_room(*stream)
                    && match source {
                        Some(Source::Atoms(_)) => true,
                        Some(Source::Feeder(q)) => q
                            .lock()
                            .map(|q| !q.atoms.is_empty() || q.sealed)
                            .unwrap_or(false),
                        None => false,
                    }
            }
            Unit::Sequencer { inputs, out, .. } => {
                self.has_room(*out) && inputs.iter().any(|i| self.ready(*i))
            }
            Unit::Splitter {
                input, ended, outs, ..
            } => ended.is_none() && outs.iter().all(|o| self.has_room(*o)) && self.ready(*input),
            Unit::Workflow(w) => {
                w.engine.is_some()
                    && !w.failed
                    && (self.takes_input(w) || !w.asks.is_empty() || !w.replies.is_empty())
            }
        }
    }
}
