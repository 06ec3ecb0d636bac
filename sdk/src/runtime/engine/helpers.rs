//! Threads that run the partitions of one workflow beside the thread stepping it: partition 0
//! runs on the stepping thread, partition `i` on helper `i`. A stage is handed over by moving
//! the partition to its helper and back, so nothing is shared while it runs. Between stages
//! both sides wait briefly before they block, so that a workflow taking atoms back to back
//! hands stages over without waking threads from sleep; while waiting they yield their core,
//! since with more busy threads than cores (the generator beside the partitions) a thread
//! spinning on a core can hold up the very thread it waits for.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::partition::Partition;
use super::plan::Plan;
use crate::error::TaskError;

/// How long a side waits (yielding its core) for the other before it blocks.
const SPIN: Duration = Duration::from_micros(50);

/// One stage of one partition, handed to a helper.
struct Job {
    partition: Partition,
    plan: Arc<Plan>,
    stage: usize,
    parts: usize,
}

struct Helper {
    jobs: Option<Sender<Job>>,
    done: Receiver<Partition>,
    thread: Option<JoinHandle<()>>,
}

/// The helper threads of one partitioned workflow (one fewer than its partitions).
pub(crate) struct Helpers {
    helpers: Vec<Helper>,
}

/// Receives from `rx`, yielding for up to [`SPIN`] before blocking; `None` once the sender is
/// gone.
fn receive<T>(rx: &Receiver<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        match rx.try_recv() {
            Ok(v) => return Some(v),
            Err(TryRecvError::Disconnected) => return None,
            Err(TryRecvError::Empty) if start.elapsed() < SPIN => std::thread::yield_now(),
            Err(TryRecvError::Empty) => return rx.recv().ok(),
        }
    }
}

impl Helpers {
    /// Starts `n` helper threads named `<name>-<i>`.
    pub(crate) fn spawn(n: usize, name: &str) -> std::io::Result<Helpers> {
        let mut helpers = Vec::with_capacity(n);
        for i in 1..=n {
            let (jobs, job_rx) = channel::<Job>();
            let (done_tx, done) = channel::<Partition>();
            let thread = std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || {
                    while let Some(mut job) = receive(&job_rx) {
                        let plan = &job.plan;
                        let exchange = plan.exchange_after(job.stage);
                        job.partition
                            .run(&plan.stages[job.stage], exchange, job.parts);
                        if done_tx.send(job.partition).is_err() {
                            return;
                        }
                    }
                })?;
            helpers.push(Helper {
                jobs: Some(jobs),
                done,
                thread: Some(thread),
            });
        }
        Ok(Helpers { helpers })
    }

    /// Runs `stage` in every partition at once: partition 0 here, the others on the helpers;
    /// returns when all have finished, with the partitions back in `parts` in order.
    pub(crate) fn run_stage(
        &mut self,
        parts: &mut Vec<Partition>,
        plan: &Arc<Plan>,
        stage: usize,
    ) -> Result<(), TaskError> {
        let n = parts.len();
        let others = parts.split_off(1);
        let mut sent = 0;
        for (helper, partition) in self.helpers.iter().zip(others) {
            let job = Job {
                partition,
                plan: plan.clone(),
                stage,
                parts: n,
            };
            let delivered = match &helper.jobs {
                Some(jobs) => jobs.send(job).is_ok(),
                None => false,
            };
            if !delivered {
                return Err(TaskError::new("a partition's helper thread is gone"));
            }
            sent += 1;
        }
        if let Some(first) = parts.first_mut() {
            first.run(&plan.stages[stage], plan.exchange_after(stage), n);
        }
        for helper in self.helpers.iter().take(sent) {
            match receive(&helper.done) {
                Some(p) => parts.push(p),
                None => return Err(TaskError::new("a partition's helper thread failed")),
            }
        }
        Ok(())
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        // Closing the job channel ends the helper's loop; then it is joined (also when
        // starting a later helper failed, so no thread is left behind).
        self.jobs = None;
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            tracing::error!("a partition helper thread panicked");
        }
    }
}
