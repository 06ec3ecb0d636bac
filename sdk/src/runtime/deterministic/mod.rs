//! The deterministic runtime: one thread, one step at a time, the next unit chosen by a seeded
//! random generator, so a seed fixes the interleaving and the outputs.

use std::sync::{Arc, Mutex};

use crate::builder::App;
use crate::data::{Data, Envelope};
use crate::error::{AskError, Error};
use crate::gate::PolicyGate;
use crate::path::Path;
use crate::portal::AskId;
use crate::remote::Gateway;
use crate::remote::InboundAsk;
use crate::runtime::core::deadline::Deadlines;
use crate::runtime::core::{Begun, Core};
use crate::runtime::engine::Parallel;
use crate::runtime::units::{Feeder, Subscription};
use crate::storage::{MemoryStorage, Storage};

/// A system that runs apps deterministically: for tests, examples and the reference semantics.
/// Launch apps, then run it step by step or until nothing can progress. Partitioned workflows
/// run their partitions one after another, with the same results as the threaded runtime.
pub struct DeterministicSystem<S: Storage = MemoryStorage> {
    rng: u64,
    core: Core,
    storage: S,
    /// Scratch list of runnable units, reused by every step.
    scratch_runnable: Vec<usize>,
    /// Asks and replies from other processes, taken at the next step.
    inbox: Mutex<Vec<Arrival>>,
    /// The last step returned quiescent while asks to remote portals waited: the next one
    /// with nothing new to run moves virtual time.
    parked: bool,
}

/// Something another process sent, waiting for the next step.
enum Arrival {
    Asks(Vec<InboundAsk>),
    Answer(Vec<(AskId, Result<Vec<u8>, AskError>)>),
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
        let mut core = Core::new(None, None).with_deadlines(Deadlines::virtual_time(Some(
            crate::runtime::threaded::ThreadedConfig::default().ask_deadline,
        )));
        core.log_moves = storage.logs_atoms();
        DeterministicSystem {
            rng: seed ^ 0x9e37_79b9_7f4a_7c15,
            core,
            storage,
            scratch_runnable: Vec::new(),
            inbox: Mutex::new(Vec::new()),
            parked: false,
        }
    }

    /// Launches `app`: checks every reference, type and path against what is running, then
    /// starts its elements. A failed check changes nothing.
    /// What the workflows committed in an earlier run (the storage's
    /// [`recover`](Storage::recover)) is restored before their first step.
    pub fn launch(&mut self, app: App) -> Result<(), Error> {
        let recoveries = crate::runtime::core::resume::recoveries(&app, &mut self.storage)?;
        let heads = crate::runtime::core::resume::feed_heads(&app, &mut self.storage)?;
        let path = app.path().clone();
        self.core.launch(app)?;
        let storage = &mut self.storage;
        // This runtime does not log fed atoms (its store is not shared with feeders).
        let resumed = self
            .core
            .resume(&path, &recoveries, &heads, &mut |stream, from, to| {
                storage.replay(stream, from, to)
            })?;
        resumed.finish(&recoveries, &mut self.storage)
    }

    /// Gives asks routed from now on `deadline` (virtual time, which moves to the next deadline
    /// when nothing else can run) to be answered before they time out (default 30 s); `None`:
    /// asks wait forever.
    pub fn set_ask_deadline(&mut self, deadline: Option<std::time::Duration>) {
        self.core.deadlines.set_limit(deadline);
    }

    /// Sends asks to remote portals (paths below `/peers`) through `gateway`; without one,
    /// such an ask fails at once with [`AskError::UnknownPortal`]. The gateway is called from
    /// within [`step`](DeterministicSystem::step): keep the asks and answer them with
    /// [`answer_outbound`](DeterministicSystem::answer_outbound) once the run returned.
    ///
    /// Virtual time waits for remote portals once: a run that ends with only asks to remote
    /// portals waiting returns without moving time, so the host can bring their replies; the
    /// next run that finds nothing new to do moves time to the next deadline, and the asks
    /// past it time out.
    pub fn set_gateway(&mut self, gateway: Arc<dyn Gateway>) {
        self.core.remote.set_gateway(gateway);
    }

    /// Takes an ask from another process to local portal `portal` (its request CBOR-encoded,
    /// decoded by the portal's replier: bytes of another type get
    /// [`AskError::WrongRequestType`]). The ask enters at the next step and is answered like a
    /// local one, without a deadline here (the asker's governs); `reply` is called once, after the
    /// replier's step committed, with the reply's encoding or the error (`ReplierFailed`,
    /// `Denied`, …). The same `id` asked again while it is being answered is not
    /// answered twice: each `reply` gets the one reply.
    ///
    /// A path that names no portal of this system is refused with [`Error::UnknownPath`] (or
    /// [`Error::WrongKind`]), and `reply` is dropped uncalled: answer the asker yourself.
    pub fn ask_inbound(
        &self,
        portal: &Path,
        id: AskId,
        request: Vec<u8>,
        envelope: Option<Envelope>,
        reply: Box<dyn FnOnce(Result<Vec<u8>, AskError>) + Send>,
    ) -> Result<(), Error> {
        self.ask_inbound_all(vec![InboundAsk {
            portal: portal.clone(),
            id,
            request,
            envelope,
            reply,
        }])
        .pop()
        .map_or(Ok(()), |(_, e)| Err(e))
    }

    /// Takes several asks from another process at once (each as
    /// [`ask_inbound`](DeterministicSystem::ask_inbound) takes one): they enter together at
    /// the next step, so that the asks to one portal reach its replier as one batch. Returns
    /// the index and error of each ask refused (its `reply` dropped uncalled).
    pub fn ask_inbound_all(&self, asks: Vec<InboundAsk>) -> Vec<(usize, Error)> {
        let mut refused = Vec::new();
        let mut taken = Vec::with_capacity(asks.len());
        for (i, mut ask) in asks.into_iter().enumerate() {
            match self.core.inbound_portal(&ask.portal) {
                Ok(portal) => {
                    ask.portal = portal;
                    taken.push(ask);
                }
                Err(e) => refused.push((i, e)),
            }
        }
        if !taken.is_empty() {
            self.arrive(Arrival::Asks(taken));
        }
        refused
    }

    /// Gives the reply another process sent (CBOR-encoded, or the error it answered with) to
    /// ask `id`, which this system sent through its gateway; it reaches the asker at the next
    /// step. A reply to an unknown ask, or one that timed out, is dropped.
    pub fn answer_outbound(&self, id: AskId, reply: Result<Vec<u8>, AskError>) {
        self.answer_outbound_all(vec![(id, reply)]);
    }

    /// Gives several replies at once, delivered together to their askers (see
    /// [`answer_outbound`](DeterministicSystem::answer_outbound)).
    pub fn answer_outbound_all(&self, replies: Vec<(AskId, Result<Vec<u8>, AskError>)>) {
        self.arrive(Arrival::Answer(replies));
    }

    fn arrive(&self, arrival: Arrival) {
        self.inbox
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(arrival);
    }

    /// Routes what other processes sent since the last step; whether anything came.
    fn take_arrivals(&mut self) -> bool {
        let arrivals = std::mem::take(&mut *self.inbox.lock().unwrap_or_else(|p| p.into_inner()));
        if arrivals.is_empty() {
            return false;
        }
        for arrival in arrivals {
            match arrival {
                Arrival::Asks(asks) => {
                    // Checked on arrival, and a launch removes no portal.
                    for (_, e) in self.core.ask_inbound_all(asks) {
                        tracing::error!(error = %e, "an ask from another process was lost");
                    }
                }
                Arrival::Answer(replies) => self.core.answer_outbound(replies),
            }
        }
        true
    }

    /// Lets a workflow step take up to `atoms` stream atoms queued for it and commit them
    /// together (group commit; 1, the default, takes one atom per step).
    pub fn set_group_commit(&mut self, atoms: usize) {
        self.core.group = atoms.max(1);
    }

    /// Replaces the policy gate applied to every atom a workflow consumes.
    pub fn set_gate(&mut self, gate: impl PolicyGate + 'static) {
        self.core.gate = Arc::new(gate);
    }

    /// The storage, for inspection.
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.core.steps
    }

    /// Every registered path with its kind, sorted.
    pub fn registry(&self) -> Vec<(String, &'static str)> {
        self.core.registry_list()
    }

    /// Events the policy gate kept out of `workflow` so far.
    pub fn denied(&self, workflow: &str) -> u64 {
        self.core.denied(workflow)
    }

    /// Observes the stream at `path` from now on: every atom appended later, and its end.
    pub fn subscribe<T: Data>(&mut self, path: &str) -> Result<Subscription<T>, Error> {
        self.core.subscribe(path)
    }

    /// The feeder of the external generator at `path` (`/app/generators/name`).
    pub fn feeder<T: Data>(&self, path: &str) -> Result<Feeder<T>, Error> {
        self.core.feeder(path)
    }

    /// Runs until no unit can progress; returns the number of steps taken.
    pub fn run_until_quiescent(&mut self) -> u64 {
        let start = self.core.steps;
        while self.step() {}
        self.core.steps - start
    }

    /// Runs at most `n` steps; returns the number taken (fewer if the system became quiescent).
    pub fn run_steps(&mut self, n: u64) -> u64 {
        let start = self.core.steps;
        for _ in 0..n {
            if !self.step() {
                break;
            }
        }
        self.core.steps - start
    }

    /// Takes one step of one runnable unit, chosen by the seeded generator; `false` if none
    /// could run (the system is quiescent). When nothing can run but an ask waits for its
    /// reply, virtual time moves to the next deadline and the asks past it time out (with asks
    /// out at remote portals, after one quiescent return: see
    /// [`set_gateway`](DeterministicSystem::set_gateway)).
    pub fn step(&mut self) -> bool {
        if self.take_arrivals() {
            self.parked = false;
        }
        let mut runnable = std::mem::take(&mut self.scratch_runnable);
        loop {
            runnable.clear();
            runnable.extend((0..self.core.units.len()).filter(|&u| self.core.runnable(u)));
            if !runnable.is_empty() {
                break;
            }
            // Asks out at other processes: return once before their deadlines pass, so that
            // the host can bring their replies.
            if self.core.remote.awaits_replies() && !self.parked {
                self.parked = true;
                break;
            }
            if !self.core.deadlines.skip_to_next() {
                break;
            }
            self.core.expire();
        }
        self.core.remote.flush().run();
        if runnable.is_empty() {
            self.scratch_runnable = runnable;
            return false;
        }
        self.parked = false;
        let unit = runnable[pick(&mut self.rng, runnable.len())];
        self.scratch_runnable = runnable;
        self.core.woken.clear();
        let rng = &mut self.rng;
        match self.core.begin(unit, &mut |n| pick(rng, n)) {
            Begun::Idle => {}
            Begun::Done => self.core.steps += 1,
            Begun::Work(work) => {
                let done = work.run(&mut self.storage, &Parallel::Sequential);
                self.core.finish(unit, done);
            }
        }
        self.core.remote.flush().run();
        true
    }
}

/// The next choice among `n` of the seeded generator.
fn pick(rng: &mut u64, n: usize) -> usize {
    *rng = rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
    (crate::data::mix(*rng) % n as u64) as usize
}
