//! The threaded runtime's moving parts: the shared state behind one lock, the scheduling of
//! units onto the thread pool, and a unit's turn on a worker.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};

use crate::error::StorageError;
use crate::runtime::core::remote::Flush;
use crate::runtime::core::{Begun, Core};
use crate::runtime::engine::Parallel;
use crate::storage::{Commit, Storage};

/// Attempts to take the lock by spinning before blocking on it.
const SPINS: u32 = 2_000;

/// How often the deadline timer looks at the asks in flight (at most), and how long a wait
/// for quiescence sleeps before it looks at them again.
pub(super) const TICK: std::time::Duration = std::time::Duration::from_millis(20);

/// The deadline timer's thread: answers asks past their deadline with a timeout and schedules
/// the units that receive them, until the system stops or is gone.
pub(super) fn timer<S: Storage + 'static>(shared: &std::sync::Weak<Shared<S>>) {
    loop {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let mut st = shared.lock();
        if st.stopping {
            return;
        }
        if st.core.expire() {
            shared.schedule(&mut st);
        }
        let wait = st.core.deadlines.next_in().unwrap_or(TICK).min(TICK);
        shared.unlock(st);
        // Waits on the condvar `stop` signals, so stopping does not wait out a tick; the
        // flag is read again under the lock the wait releases, so no signal is missed.
        let st = shared.lock();
        if st.stopping {
            return;
        }
        let wait = wait.max(std::time::Duration::from_millis(1));
        drop(shared.timer.wait_timeout(st, wait));
    }
}

/// Steps a unit takes in one turn on a worker before it yields to other units.
const STEPS_PER_TURN: u32 = 32;

/// Most asks or replies a host call hands in that a step may take on the calling thread (see
/// [`Shared::unlock_stepping_here`]): more make a step long enough that the caller (the node's
/// network task) should not wait for it.
const HERE_AT_MOST: usize = 64;

/// A unit whose last step took longer than this (µs) takes its next one on a worker, not on a
/// host's calling thread: the caller would wait that long, and work for other units on it too.
const HERE_AT_MOST_MICROS: u32 = 200;

/// What the lock guards: the core and the scheduling state.
pub(super) struct State {
    pub core: Core,
    /// Per unit: scheduled on the pool or running.
    pub busy: Vec<bool>,
    /// Per unit: how long its last step's work took, in microseconds (saturating).
    pub step_micros: Vec<u32>,
    /// Units scheduled or running.
    pub running: usize,
    /// Set by `start`: units are scheduled until `stop`.
    pub started: bool,
    /// `run_until_quiescent` calls under way (units are scheduled while there is one).
    pub runs: usize,
    /// Set by `stop`: no unit begins another step.
    pub stopping: bool,
    /// Round-robin counter for choices among ready inputs.
    pub turn: usize,
    /// Busy units waiting for a worker, oldest first. Pool jobs name no unit: each takes the
    /// oldest, so units take turns in order (rayon runs a worker's own jobs last-in first-out,
    /// which would let a unit that never runs out of work keep its worker).
    pub runq: std::collections::VecDeque<usize>,
    /// Pool jobs still to be started, once the lock is released (starting one may wake a
    /// worker thread, which is not done under the lock).
    pub jobs: usize,
}

/// Everything the workers share.
pub(super) struct Shared<S> {
    pub state: Mutex<State>,
    /// Signalled when `running` drops to zero.
    pub quiet: Condvar,
    /// Signalled by `stop`, to end the deadline timer's wait at once.
    pub timer: Condvar,
    pub storage: Mutex<S>,
    pub pool: RwLock<Option<Arc<rayon::ThreadPool>>>,
    /// How partitioned workflows run their partitions.
    pub parallel: Parallel,
    /// Whether the storage keeps state values, and whether they survive a restart (asked
    /// once, at start).
    pub keeps_state: (bool, bool),
    /// What the core gave to carry out outside the lock (asks for the gateway, reply
    /// callbacks), in the order it gave them.
    pub flushes: Mutex<Flushes>,
}

/// Flushes waiting to run, one at a time and in order, whichever thread released them: the
/// thread that finds none running runs them all, including those queued meanwhile (by other
/// threads, or by host code it called that called back into the system).
#[derive(Default)]
pub(super) struct Flushes {
    queue: std::collections::VecDeque<Flush>,
    running: bool,
}

impl<S: Storage + 'static> Shared<S> {
    /// Takes the lock, spinning a few microseconds before sleeping: it is held only briefly,
    /// and a worker put to sleep and woken again costs more than the wait.
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        for _ in 0..SPINS {
            match self.state.try_lock() {
                Ok(guard) => return guard,
                Err(std::sync::TryLockError::Poisoned(p)) => return p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => std::hint::spin_loop(),
            }
        }
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Releases the lock, then hands asks to remote portals to the gateway and replies to
    /// asks from other processes to their callbacks (host code, which may call back into the
    /// system), and starts the pool jobs owed for units queued under it.
    pub(super) fn unlock(self: &Arc<Self>, mut st: MutexGuard<'_, State>) {
        let jobs = std::mem::take(&mut st.jobs);
        let flush = st.core.remote.flush();
        let flushed = !flush.is_empty();
        if flushed {
            // Queued under the lock: flushes run in the order the core gave them.
            self.flushes().queue.push_back(flush);
        }
        drop(st);
        if flushed {
            self.run_flushes();
        }
        if jobs == 0 {
            return;
        }
        let pool = self.pool.read().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(pool) = pool {
            for _ in 0..jobs {
                let shared = self.clone();
                pool.spawn(move || shared.job());
            }
        }
    }

    fn flushes(&self) -> MutexGuard<'_, Flushes> {
        self.flushes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs the queued flushes unless another thread is running them (it runs these too).
    fn run_flushes(&self) {
        let mut flushes = self.flushes();
        if flushes.running {
            return;
        }
        flushes.running = true;
        while let Some(flush) = flushes.queue.pop_front() {
            drop(flushes);
            flush.run();
            flushes = self.flushes();
        }
        flushes.running = false;
        drop(flushes);
        // A wait for quiescence waits for the flushes too.
        self.quiet.notify_all();
    }

    /// Whether flushes are queued or running (host code is still to hear of what the system
    /// did).
    pub(super) fn flushing(&self) -> bool {
        let flushes = self.flushes();
        flushes.running || !flushes.queue.is_empty()
    }

    /// Schedules every runnable unit that is not scheduled yet.
    pub(super) fn schedule(self: &Arc<Self>, st: &mut State) {
        st.core.woken.clear();
        for u in 0..st.core.units.len() {
            self.schedule_unit(st, u);
        }
    }

    /// Schedules what a step of unit `u` may have made runnable: its neighbors and the units
    /// it sent asks or replies.
    fn schedule_after(self: &Arc<Self>, st: &mut State, u: usize) {
        self.schedule_woken(st);
        let neighbors = std::mem::take(&mut st.core.neighbors);
        for &v in neighbors.get(u).into_iter().flatten() {
            self.schedule_unit(st, v);
        }
        st.core.neighbors = neighbors;
    }

    /// Schedules the units sent asks or replies since the list was last drained.
    pub(super) fn schedule_woken(self: &Arc<Self>, st: &mut State) {
        let mut woken = std::mem::take(&mut st.core.woken);
        for v in woken.drain(..) {
            self.schedule_unit(st, v);
        }
        st.core.woken = woken;
    }

    fn schedule_unit(self: &Arc<Self>, st: &mut State, u: usize) {
        if !(st.started || st.runs > 0) || st.stopping {
            return;
        }
        if st.busy.len() < st.core.units.len() {
            st.busy.resize(st.core.units.len(), false);
        }
        if !st.busy[u] && st.core.runnable(u) {
            st.busy[u] = true;
            st.running += 1;
            st.runq.push_back(u);
            st.jobs += 1;
        }
    }

    /// Marks unit `u` idle; wakes waiters when nothing runs any more.
    fn release(&self, st: &mut State, u: usize) {
        if let Some(b) = st.busy.get_mut(u) {
            *b = false;
        }
        st.running = st.running.saturating_sub(1);
        if st.running == 0 {
            self.quiet.notify_all();
        }
    }

    /// Unlocks after a host call that handed in `handed` asks or replies from another process
    /// and made units runnable. When they were at most [`HERE_AT_MOST`], the one unit they
    /// queued is the only one running, and its last step was short, that unit takes one step
    /// on the calling thread first: waking a sleeping worker would cost tens of microseconds of
    /// the round trip, and no other work runs meanwhile. Otherwise, or once that step is done
    /// with more to do, the pool runs the unit as usual.
    pub(super) fn unlock_stepping_here(
        self: &Arc<Self>,
        mut st: MutexGuard<'_, State>,
        handed: usize,
    ) {
        let short = |u: &usize| {
            st.step_micros
                .get(*u)
                .is_none_or(|&m| m <= HERE_AT_MOST_MICROS)
        };
        if handed <= HERE_AT_MOST
            && st.running == 1
            && st.jobs == 1
            && st.runq.front().is_some_and(short)
            && let Some(u) = st.runq.pop_front()
        {
            st.jobs = 0;
            self.guarded_turn(u, st, 1);
            return;
        }
        self.unlock(st);
    }

    /// One pool job: a turn of the oldest queued unit.
    fn job(self: Arc<Self>) {
        let mut st = self.lock();
        let Some(u) = st.runq.pop_front() else {
            return;
        };
        self.guarded_turn(u, st, STEPS_PER_TURN);
    }

    /// A turn of unit `u` of at most `steps` steps; a panic of the runtime itself (user code's
    /// are caught inside a step) fails the unit and keeps the system consistent.
    fn guarded_turn(self: &Arc<Self>, u: usize, st: MutexGuard<'_, State>, steps: u32) {
        let ran = catch_unwind(AssertUnwindSafe(|| self.turn(u, st, steps)));
        if let Err(panic) = ran {
            let mut st = self.lock();
            // A defect of the runtime, not of user code (steps catch that): keep the system
            // consistent, answer what the unit owes and let it fail.
            let message = crate::runtime::engine::panic_message(&*panic);
            tracing::error!(unit = u, %message, "runtime worker panicked");
            st.core
                .recover(u, format!("runtime worker panicked: {message}"));
            self.release(&mut st, u);
            self.schedule_after(&mut st, u);
            self.unlock(st);
        }
    }

    /// A turn of unit `u`: steps while it can, up to `steps`, then queues it again. The lock
    /// is held from releasing one step's results to taking the next step's input, so a step
    /// costs one acquisition.
    fn turn<'a>(self: &'a Arc<Self>, u: usize, mut st: MutexGuard<'a, State>, steps: u32) {
        for _ in 0..steps {
            if st.stopping {
                self.release(&mut st, u);
                self.unlock(st);
                return;
            }
            let mut turn = st.turn;
            let begun = st.core.begin(u, &mut |n| {
                turn = turn.wrapping_add(1);
                turn % n
            });
            st.turn = turn;
            let work = match begun {
                Begun::Idle => {
                    self.release(&mut st, u);
                    self.schedule_after(&mut st, u);
                    self.unlock(st);
                    return;
                }
                Begun::Done => {
                    st.core.steps += 1;
                    self.schedule_after(&mut st, u);
                    continue;
                }
                Begun::Work(work) => work,
            };
            self.unlock(st);
            let started = std::time::Instant::now();
            let done = work.run(
                &mut LockedStorage::new(&self.storage, self.keeps_state),
                &self.parallel,
            );
            let micros = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
            st = self.lock();
            if st.step_micros.len() <= u {
                st.step_micros.resize(u + 1, 0);
            }
            st.step_micros[u] = micros;
            st.core.finish(u, done);
            self.schedule_after(&mut st, u);
        }
        // Out of budget: to the back of the queue, so other units take their turns.
        st.runq.push_back(u);
        st.jobs += 1;
        self.unlock(st);
    }
}

/// Storage behind the shared lock, taken only for the call itself. It forwards every method a
/// step's work calls (`Work::run`): a method left to its default here would silently do
/// nothing.
struct LockedStorage<'a, S> {
    storage: &'a Mutex<S>,
    keeps_state: bool,
    holds_asking_atoms: bool,
}

impl<'a, S: Storage> LockedStorage<'a, S> {
    fn new(storage: &'a Mutex<S>, (keeps_state, holds_asking_atoms): (bool, bool)) -> Self {
        LockedStorage {
            storage,
            keeps_state,
            holds_asking_atoms,
        }
    }
}

impl<S: Storage> Storage for LockedStorage<'_, S> {
    fn commit(&mut self, commit: &Commit<'_>) -> Result<(), StorageError> {
        let mut s = self.storage.lock().unwrap_or_else(|p| p.into_inner());
        s.commit(commit)
    }

    fn log_moved(&mut self, moved: &crate::storage::Moved<'_>) -> Result<(), StorageError> {
        let mut s = self.storage.lock().unwrap_or_else(|p| p.into_inner());
        s.log_moved(moved)
    }

    fn holds_asking_atoms(&self) -> bool {
        self.holds_asking_atoms
    }

    fn attempt(
        &mut self,
        workflow: &crate::path::Path,
        workflow_id: u64,
        stream: &crate::path::Path,
        offset: u64,
    ) -> Result<crate::storage::Attempt, StorageError> {
        let mut s = self.storage.lock().unwrap_or_else(|p| p.into_inner());
        s.attempt(workflow, workflow_id, stream, offset)
    }

    fn set_aside(
        &mut self,
        workflow: &crate::path::Path,
        workflow_id: u64,
        stream: &crate::path::Path,
        offset: u64,
        atom: &[u8],
        reason: &str,
    ) -> Result<(), StorageError> {
        let mut s = self.storage.lock().unwrap_or_else(|p| p.into_inner());
        s.set_aside(workflow, workflow_id, stream, offset, atom, reason)
    }

    fn keeps_state(&self) -> bool {
        self.keeps_state
    }
}
