//! The threaded runtime: the same apps and results as the deterministic runtime, with every
//! unit (generator, sequencer, splitter, workflow) taking steps concurrently on a thread pool
//! and the partitions of a partitioned workflow running each stage at once on threads of their
//! own, or in turn where the workflow measured that faster ([`PartitionThreads`]).
//!
//! One lock guards the core (streams, queues, registry); it is held only to take a unit's
//! input and to release its results, never while tasks run or storage commits. Streams are
//! bounded (a producer waits while its stream holds [`ThreadedConfig::stream_bound`] unread
//! atoms), except feedback streams that close a cycle through a sequencer, so a slow consumer
//! slows its producers and cycles cannot deadlock.
//!
//! ```
//! use pods_sdk::{AppBuilder, PerKeyState, ThreadedSystem};
//!
//! let app = AppBuilder::new("count");
//! let numbers = app.generator_from_range("numbers", 0..10_000, 1_000);
//! let seen = PerKeyState::<u64>::new("seen");
//! app.workflow("parity")
//!     .partitions(2)
//!     .source(&numbers)
//!     .key_by(|x| x % 2)
//!     .processor(move |ctx, x: i64| {
//!         let n = seen.get(ctx) + 1;
//!         seen.set(ctx, n);
//!         if n == 5_000 {
//!             ctx.emit(x % 2);
//!         }
//!     })
//!     .sink();
//!
//! let system = ThreadedSystem::new()?;
//! system.launch(app.build()?)?;
//! let done = system.subscribe::<i64>("/count/workflows/parity/stream")?;
//! system.run_until_quiescent();
//! let mut last: Vec<i64> = done.values().concat();
//! last.sort();
//! assert_eq!(last, vec![0, 1]);
//! system.stop();
//! # Ok::<(), pods_sdk::Error>(())
//! ```

mod worker;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use crate::builder::App;
use crate::data::{Data, Envelope};
use crate::error::{AskError, Error};
use crate::gate::PolicyGate;
use crate::path::Path;
use crate::portal::AskId;
use crate::remote::{Gateway, InboundAsk};
use crate::runtime::core::deadline::Deadlines;
use crate::runtime::core::{Core, Source, Unit};
use crate::runtime::engine::Parallel;
use crate::runtime::units::{FeedLog, Feeder, Subscription, Waker};
use crate::storage::{MemoryStorage, Storage};
use worker::{Shared, State};

/// Settings of a [`ThreadedSystem`].
#[derive(Clone, Debug)]
pub struct ThreadedConfig {
    /// Worker threads (default: the machine's cores).
    pub workers: usize,
    /// Unread atoms a stream holds before its producer waits (default 32; at least 1). As
    /// many as a group commit takes, so a producer fills the stream again while its consumer
    /// works through a whole group.
    pub stream_bound: usize,
    /// Events (or asks, or replies) a step of a partitioned workflow needs before its
    /// partitions may run on threads of their own (default 512): handing a stage to another
    /// thread costs a few microseconds, so smaller steps run their partitions one after another.
    pub parallel_step: usize,
    /// Whether steps of at least `parallel_step` run their partitions at once always, or as
    /// the workflow measures faster (the default).
    pub partition_threads: PartitionThreads,
    /// Continuations a workflow may have waiting for replies before it takes no more stream
    /// atoms (default 4,096): the bound on asks in flight, as `stream_bound` bounds atoms. It
    /// still answers asks and takes replies meanwhile.
    pub pending_asks: usize,
    /// Most stream atoms queued for a workflow that one step takes and commits together, in one
    /// transaction of a durable store (group commit; default 32; 1 turns it off). Each atom
    /// still gets its own step, state changes and output atom. A record holds the last value
    /// of each key the group wrote, so larger groups write fewer values per atom: over 1,024
    /// keys, groups of up to 32 atoms ran the durable pipeline about 10 % faster than groups
    /// of up to 16, and groups of up to 64 no faster than 32.
    pub group_commit: usize,
    /// How long an ask waits for its reply before its continuation receives
    /// [`AskError::Timeout`](crate::AskError::Timeout) (default 30 s).
    pub ask_deadline: std::time::Duration,
}

/// How a partitioned workflow runs the partitions of a step of at least
/// [`ThreadedConfig::parallel_step`] events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PartitionThreads {
    /// At once on threads of their own, or one after another on the stepping thread, whichever
    /// the workflow measured faster over its latest steps; it tries the other way again every
    /// few hundred steps. Where the cores are busy with other work (a generator beside the
    /// workflow, other workflows), running partitions in turn can be the faster way.
    #[default]
    Measured,
    /// Always at once on threads of their own.
    AtOnce,
}

impl Default for ThreadedConfig {
    fn default() -> Self {
        ThreadedConfig {
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            stream_bound: 32,
            parallel_step: 512,
            partition_threads: PartitionThreads::Measured,
            pending_asks: 4_096,
            group_commit: 32,
            ask_deadline: Duration::from_secs(30),
        }
    }
}

static SYSTEMS: AtomicU64 = AtomicU64::new(0);

/// A system that runs apps on a pool of worker threads. Launch apps, then either
/// [`start`](ThreadedSystem::start) it to run until [`stop`](ThreadedSystem::stop), or
/// [`run_until_quiescent`](ThreadedSystem::run_until_quiescent) to run until nothing can
/// progress (between such runs, a system not started rests). Dropping it stops it.
pub struct ThreadedSystem<S: Storage + 'static = MemoryStorage> {
    shared: Arc<Shared<S>>,
    /// The worker threads, joined by `stop`.
    threads: Arc<Mutex<Vec<std::thread::JoinHandle<()>>>>,
    /// Held for the whole of `stop`, so that a second `stop` returns only once all is stopped.
    stopping: Mutex<()>,
    id: u64,
}

impl ThreadedSystem<MemoryStorage> {
    /// A system with in-memory storage, the allow-all gate and default settings.
    pub fn new() -> Result<ThreadedSystem<MemoryStorage>, Error> {
        ThreadedSystem::with_storage(ThreadedConfig::default(), MemoryStorage::new())
    }
}

impl<S: Storage + 'static> ThreadedSystem<S> {
    /// A system committing to `storage`, with `config`.
    pub fn with_storage(config: ThreadedConfig, storage: S) -> Result<ThreadedSystem<S>, Error> {
        let id = SYSTEMS.fetch_add(1, Ordering::Relaxed);
        let workers = config.workers.max(1);
        let threads: Arc<Mutex<Vec<std::thread::JoinHandle<()>>>> = Arc::default();
        let handles = threads.clone();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(workers)
            .spawn_handler(move |thread| {
                let handle = std::thread::Builder::new()
                    .name(format!("pods{id}-{}", thread.index()))
                    .spawn(|| thread.run())?;
                handles
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(handle);
                Ok(())
            })
            .build()
            .map_err(|e| Error::Runtime {
                message: format!("cannot start {workers} worker threads: {e}"),
            })?;
        let mut core = Core::new(
            Some(config.stream_bound.max(1)),
            Some(config.pending_asks.max(1)),
        );
        core.group = config.group_commit.max(1);
        core.log_moves = storage.logs_atoms();
        let core = core.with_deadlines(Deadlines::real(Some(config.ask_deadline)));
        let state = State {
            core,
            busy: Vec::new(),
            step_micros: Vec::new(),
            running: 0,
            started: false,
            runs: 0,
            stopping: false,
            turn: 0,
            runq: Default::default(),
            jobs: 0,
        };
        let keeps_state = (storage.keeps_state(), storage.holds_asking_atoms());
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            quiet: Condvar::new(),
            timer: Condvar::new(),
            storage: Mutex::new(storage),
            pool: RwLock::new(Some(Arc::new(pool))),
            parallel: Parallel::Threads {
                name: Arc::from(format!("pods{id}-p")),
                min_step: config.parallel_step,
                measured: config.partition_threads == PartitionThreads::Measured,
            },
            keeps_state,
            flushes: Mutex::default(),
        });
        let weak = Arc::downgrade(&shared);
        let timer = std::thread::Builder::new()
            .name(format!("pods{id}-timer"))
            .spawn(move || worker::timer(&weak))
            .map_err(|e| Error::Runtime {
                message: format!("cannot start the deadline timer thread: {e}"),
            })?;
        threads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(timer);
        Ok(ThreadedSystem {
            shared,
            threads,
            stopping: Mutex::new(()),
            id,
        })
    }

    /// Launches `app`: checks every reference, type and path against what is running, then
    /// starts its elements (at once, if the system is running). A failed check changes nothing.
    pub fn launch(&self, app: App) -> Result<(), Error> {
        let (recoveries, feeds, logs) = {
            let mut storage = self.storage();
            (
                crate::runtime::core::resume::recoveries(&app, &mut *storage)?,
                crate::runtime::core::resume::feed_heads(&app, &mut *storage)?,
                storage.logs_atoms(),
            )
        };
        let mut st = self.shared.lock();
        if st.stopping {
            return Err(Error::Stopped);
        }
        let path = app.path().clone();
        st.core.launch(app)?;
        let resumed = st
            .core
            .resume(&path, &recoveries, &feeds, &mut |stream, from, to| {
                self.storage().replay(stream, from, to)
            })?;
        resumed.finish(&recoveries, &mut *self.storage())?;
        let waker = self.waker();
        for unit in &st.core.units {
            if let Unit::Generator {
                source: Some(Source::Feeder(q)),
                stream,
                ..
            } = unit
                && let Ok(mut q) = q.lock()
                && q.waker.is_none()
            {
                q.waker = Some(waker.clone());
                if logs && let Some(log) = st.core.streams.get(*stream) {
                    q.log = Some(self.feed_log(log.path.clone()));
                }
            }
        }
        self.shared.schedule(&mut st);
        self.shared.unlock(st);
        Ok(())
    }

    /// Logs atoms fed to the stream at `stream` in the store, before the push returns.
    fn feed_log(&self, stream: crate::path::Path) -> FeedLog {
        let weak = Arc::downgrade(&self.shared);
        Arc::new(move |offset, bytes| match weak.upgrade() {
            Some(shared) => shared
                .storage
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .log_atom(&stream, offset, bytes)
                .map_err(|e| e.to_string()),
            None => Err("the system is gone".to_owned()),
        })
    }

    fn waker(&self) -> Waker {
        let weak = Arc::downgrade(&self.shared);
        Arc::new(move || {
            if let Some(shared) = weak.upgrade() {
                let mut st = shared.lock();
                shared.schedule(&mut st);
                shared.unlock(st);
            }
        })
    }

    /// Sends asks to remote portals (paths below `/peers`) through `gateway`; without one,
    /// such an ask fails at once with [`AskError::UnknownPortal`]. The gateway is called
    /// without the system's lock held, from any worker thread; it may call back into the
    /// system.
    pub fn set_gateway(&self, gateway: Arc<dyn Gateway>) {
        self.shared.lock().core.remote.set_gateway(gateway);
    }

    /// Takes an ask from another process to local portal `portal` (its request CBOR-encoded,
    /// decoded by the portal's replier: bytes of another type get
    /// [`AskError::WrongRequestType`]). The ask enters the replier's queue like a local one,
    /// without a deadline here (the asker's governs), and the workers are woken (a system neither started
    /// nor running takes it at its next run). `reply` is called once, without the system's
    /// lock held, after the replier's step committed, with the reply's encoding or the error
    /// (`ReplierFailed`, `Denied`, …). The same `id` asked again while it is being
    /// answered is not answered twice: each `reply` gets the one reply.
    ///
    /// A path that names no portal of this system is refused with [`Error::UnknownPath`] (or
    /// [`Error::WrongKind`]), a stopped system refuses with [`Error::Stopped`]; then `reply` is
    /// dropped uncalled: answer the asker yourself.
    pub fn ask_inbound(
        &self,
        portal: &Path,
        id: AskId,
        request: Vec<u8>,
        envelope: Option<Envelope>,
        reply: Box<dyn FnOnce(Result<Vec<u8>, AskError>) + Send>,
    ) -> Result<(), Error> {
        let mut st = self.shared.lock();
        if st.stopping {
            return Err(Error::Stopped);
        }
        let taken = st.core.ask_inbound(portal, id, request, envelope, reply);
        self.shared.schedule_woken(&mut st);
        self.shared.unlock(st);
        taken
    }

    /// Takes several asks from another process at once, under one lock and in one routing pass
    /// (each as [`ask_inbound`](ThreadedSystem::ask_inbound) takes one), so that the asks of one
    /// request to one portal reach its replier together and are answered in one step. Returns
    /// the index and error of each ask refused (its `reply` dropped uncalled); a stopped system
    /// refuses them all with [`Error::Stopped`].
    pub fn ask_inbound_all(&self, asks: Vec<InboundAsk>) -> Vec<(usize, Error)> {
        let mut st = self.shared.lock();
        if st.stopping {
            drop(st);
            return (0..asks.len()).map(|i| (i, Error::Stopped)).collect();
        }
        let handed = asks.len();
        let refused = st.core.ask_inbound_all(asks);
        self.shared.schedule_woken(&mut st);
        self.shared.unlock_stepping_here(st, handed);
        refused
    }

    /// Gives the reply another process sent (CBOR-encoded, or the error it answered with) to
    /// ask `id`, which this system sent through its gateway, and wakes the asker. A reply to an
    /// unknown ask, or one that timed out, is dropped.
    pub fn answer_outbound(&self, id: AskId, reply: Result<Vec<u8>, AskError>) {
        self.answer_outbound_all(vec![(id, reply)]);
    }

    /// Gives several replies at once (see [`answer_outbound`](ThreadedSystem::answer_outbound)):
    /// replies to one asker arrive together, as replies from a local portal do, so that its
    /// continuations for one atom's asks run in one step.
    pub fn answer_outbound_all(&self, replies: Vec<(AskId, Result<Vec<u8>, AskError>)>) {
        let handed = replies.len();
        let mut st = self.shared.lock();
        st.core.answer_outbound(replies);
        self.shared.schedule_woken(&mut st);
        self.shared.unlock_stepping_here(st, handed);
    }

    /// Replaces the policy gate applied to every atom a workflow consumes (atoms already
    /// taken keep the gate they were taken with).
    pub fn set_gate(&self, gate: impl PolicyGate + 'static) {
        self.shared.lock().core.gate = Arc::new(gate);
    }

    /// The storage, for inspection; commits wait while the guard is held.
    pub fn storage(&self) -> MutexGuard<'_, S> {
        self.shared
            .storage
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.shared.lock().core.steps
    }

    /// Every registered path with its kind, sorted.
    pub fn registry(&self) -> Vec<(String, &'static str)> {
        self.shared.lock().core.registry_list()
    }

    /// The path of the workflow that answers `portal`, if it is a portal of this system (a
    /// store keeps the replies that workflow gave under its path).
    pub fn replier_of(&self, portal: &Path) -> Option<Path> {
        self.shared.lock().core.replier_of(portal)
    }

    /// Events the policy gate kept out of `workflow` so far.
    pub fn denied(&self, workflow: &str) -> u64 {
        self.shared.lock().core.denied(workflow)
    }

    /// Observes the stream at `path` from now on: every atom appended later, and its end.
    pub fn subscribe<T: Data>(&self, path: &str) -> Result<Subscription<T>, Error> {
        self.shared.lock().core.subscribe(path)
    }

    /// The feeder of the external generator at `path` (`/app/generators/name`).
    pub fn feeder<T: Data>(&self, path: &str) -> Result<Feeder<T>, Error> {
        self.shared.lock().core.feeder(path)
    }

    /// Logs the stream at `path` (produced by a workflow) for readers outside the system, as
    /// a store that logs atoms logs a stream with a local consumer; call it before the
    /// system runs.
    pub fn export_stream(&self, path: &str) -> Result<(), Error> {
        self.shared.lock().core.export_stream(path)
    }

    /// The offset the external generator at `path` gives its next atom.
    pub fn feeder_next(&self, path: &str) -> Result<u64, Error> {
        self.shared.lock().core.feeder_next(path)
    }

    /// Feeds atom `offset` of the external generator at `path` as its encoding (a stream
    /// mirrored from another process): logged like any fed atom; an offset already taken is
    /// skipped (`Ok(false)`), one past the next is refused.
    pub fn feed_encoded(&self, path: &str, offset: u64, atom: &[u8]) -> Result<bool, Error> {
        // Fed without the system's lock: the push wakes the workers, which takes it.
        let target = self.shared.lock().core.feed_target(path)?;
        target.feed(offset, atom)
    }

    /// Runs continuously, until [`stop`](ThreadedSystem::stop): atoms fed and apps launched
    /// later are taken at once.
    pub fn start(&self) {
        let mut st = self.shared.lock();
        st.started = true;
        self.shared.schedule(&mut st);
        self.shared.unlock(st);
    }

    /// Runs until no unit can progress; returns the number of steps taken. A system not
    /// started rests afterwards.
    pub fn run_until_quiescent(&self) -> u64 {
        self.run_until_quiescent_within(Duration::MAX)
            .unwrap_or_default()
    }

    /// Like [`run_until_quiescent`](ThreadedSystem::run_until_quiescent), but gives up after
    /// `limit` with [`Error::Timeout`] (the system goes on running).
    pub fn run_until_quiescent_within(&self, limit: Duration) -> Result<u64, Error> {
        let deadline = Instant::now().checked_add(limit);
        let mut st = self.shared.lock();
        let start = st.core.steps;
        st.runs += 1;
        self.shared.schedule(&mut st);
        self.shared.unlock(st);
        let mut st = self.shared.lock();
        // Asks waiting for replies keep the run going until they are answered or time out
        // (unless the system stops: then nothing answers them); so do replies and asks still
        // to be handed to host code (reply callbacks, the gateway).
        while st.running > 0
            || (st.core.deadlines.pending() && !st.stopping)
            || self.shared.flushing()
        {
            let wait = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(w) => w,
                    None => {
                        st.runs -= 1;
                        return Err(Error::Timeout {
                            what: "running until quiescent".to_owned(),
                            millis: limit.as_millis(),
                        });
                    }
                },
                None => Duration::from_secs(3600),
            };
            st = self
                .shared
                .quiet
                .wait_timeout(st, wait.min(worker::TICK))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        st.runs -= 1;
        Ok(st.core.steps - start)
    }

    /// Stops: steps in flight finish, no other step begins, and every worker thread has
    /// exited when this returns. Launching afterwards fails with [`Error::Stopped`].
    pub fn stop(&self) {
        let _one_at_a_time = self.stopping.lock().unwrap_or_else(|p| p.into_inner());
        {
            let mut st = self.shared.lock();
            st.stopping = true;
            self.shared.timer.notify_all();
            while st.running > 0 {
                st = self
                    .shared
                    .quiet
                    .wait(st)
                    .unwrap_or_else(|p| p.into_inner());
            }
        }
        let pool = self
            .shared
            .pool
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if pool.is_none() {
            return;
        }
        // Partition helper threads end with their workflows' helpers.
        for unit in &mut self.shared.lock().core.units {
            if let Unit::Workflow(w) = unit
                && let Some(engine) = &mut w.engine
            {
                engine.stop_helpers();
            }
        }
        // Dropping the last handle on the pool tells its threads to exit; then join them.
        drop(pool);
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        for t in threads {
            if t.join().is_err() {
                tracing::error!("a worker thread panicked");
            }
        }
    }

    /// The prefix of this system's worker thread names (`pods<id>-`), for diagnostics.
    pub fn thread_prefix(&self) -> String {
        format!("pods{}-", self.id)
    }
}

impl<S: Storage + 'static> Drop for ThreadedSystem<S> {
    fn drop(&mut self) {
        self.stop();
    }
}
