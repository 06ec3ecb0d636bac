//! The middle part of a step, run outside the core: make a generator's atom, route a
//! splitter's atom, or run a workflow step (admitting its input through the policy gate and
//! committing). Everything here that calls user or host code (tasks, key functions, split
//! predicates, the gate, the storage) runs under `catch_unwind`, so a panic fails one workflow
//! or one splitter and never loses what the core handed out.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};

use super::{OpenRequest, Source};
use crate::batch::Batch;
use crate::error::{AskError, TaskError};
use crate::gate::{Decision, PolicyGate};
use crate::path::Path;
use crate::portal::{AskId, AskMsg, ReplyMsg};
use crate::runtime::engine::{Parallel, StepInput, StepOutput, WorkflowInstance, panic_message};
use crate::runtime::units::SplitRouter;
use crate::storage::{Attempt, InputPosition, Moved, Storage, consumer_id};

/// The part of a step that runs outside the core.
pub(crate) enum Work {
    /// Make the generator's next atom.
    Generate(Source),
    /// Route an atom to the splits (logging the parts, if the store logs moves).
    Split(
        Arc<Mutex<Box<dyn SplitRouter>>>,
        Arc<dyn Batch>,
        Option<MoveLog>,
    ),
    /// Log a sequencer's move of an atom to its output.
    Move(MoveLog, Arc<dyn Batch>),
    /// Run a workflow step over each of one or more input atoms (with the input position after
    /// each), committed together; the gate filters each atom first (unless it admits
    /// everything). With `true` (an atom of the workflow's probation after its launch, alone),
    /// the store is asked first whether to run it or to quarantine it.
    Atoms(
        Box<WorkflowInstance>,
        Vec<(Arc<dyn Batch>, InputPosition)>,
        Arc<dyn PolicyGate>,
        bool,
    ),
    /// Run a workflow step over the asks for its replier at a node, each admitted by the gate
    /// first (a denied ask is answered with `AskError::Denied`).
    Asks(
        Box<WorkflowInstance>,
        usize,
        Vec<AskMsg>,
        Arc<dyn PolicyGate>,
    ),
    /// Run a workflow step over replies.
    Replies(Box<WorkflowInstance>, Vec<ReplyMsg>, Arc<dyn PolicyGate>),
}

/// What the work produced.
/// Where a sequencer's or splitter's move is logged: the unit, its input position after the
/// atom, and each output stream with the offset its next atom gets.
pub(crate) struct MoveLog {
    pub unit: Path,
    pub input: InputPosition,
    pub outs: Vec<(Path, u64)>,
}

impl MoveLog {
    /// Logs `parts` (one per output, `None`: nothing for it) in `storage`.
    fn write(&self, parts: &[Option<&dyn Batch>], storage: &mut dyn Storage) -> Result<(), String> {
        let mut encoded = Vec::new();
        for ((stream, offset), part) in self.outs.iter().zip(parts) {
            if let Some(part) = part {
                let mut bytes = Vec::new();
                part.encode(&mut bytes)?;
                encoded.push((stream, *offset, bytes));
            }
        }
        let outputs: Vec<(&Path, u64, &[u8])> = encoded
            .iter()
            .map(|(s, o, b)| (*s, *o, b.as_slice()))
            .collect();
        let moved = Moved {
            unit: &self.unit,
            consumer_id: consumer_id(&self.unit, &self.input.stream),
            input: &self.input,
            outputs: &outputs,
        };
        storage
            .log_moved(&moved)
            .map_err(|e| format!("{} could not log its move: {e}", self.unit))
    }
}

pub(crate) enum Done {
    Generated(Source, Option<Arc<dyn Batch>>),
    /// A sequencer's atom, logged (or why it could not be).
    Moved(Result<Arc<dyn Batch>, String>),
    Split(Result<Vec<Option<Box<dyn Batch>>>, String>),
    Stepped {
        engine: Box<WorkflowInstance>,
        /// Events or asks the gate kept out.
        denied: u64,
        /// Requests the workflow accepted (it owes each an answer, even if it fails).
        opened: Vec<(AskId, OpenRequest)>,
        /// Answers to asks the gate denied.
        refused: Vec<ReplyMsg>,
        /// What committed steps produced (and asks that leave before their commit), in order.
        released: Vec<StepOutput>,
        /// The step's outcome; `None` when nothing was left to step on.
        result: Option<Result<(), TaskError>>,
    },
}

impl Done {
    /// A workflow's step that admitted nothing and refused nothing: what it released, or why
    /// it failed.
    fn stepped(engine: Box<WorkflowInstance>, done: Result<Vec<StepOutput>, TaskError>) -> Done {
        let (released, result) = match done {
            Ok(released) => (released, Ok(())),
            Err(e) => (Vec::new(), Err(e)),
        };
        Done::Stepped {
            engine,
            denied: 0,
            opened: Vec::new(),
            refused: Vec::new(),
            released,
            result: Some(result),
        }
    }
}

/// Runs `f`, turning a panic into a task error.
fn guarded<R>(what: &str, f: impl FnOnce() -> Result<R, TaskError>) -> Result<R, TaskError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|p| {
        Err(TaskError::new(format!(
            "{what} panicked: {}",
            panic_message(&*p)
        )))
    })
}

/// Removes the state of subjects erased since the workflow's last step (the gate answers
/// whom; a panic there leaves the state as it is, to try again before the next step).
fn purge(engine: &mut WorkflowInstance, gate: &dyn PolicyGate) {
    if let Err(e) = guarded("policy gate", || Ok(engine.purge_erased(gate))) {
        tracing::warn!(workflow = %engine.path, error = %e, "cannot purge erased subjects' state");
    }
}

fn admits(gate: &dyn PolicyGate, workflow: &Path, ask: &AskMsg) -> bool {
    gate.admits_everything()
        || gate.admit_ask(workflow, &ask.portal, ask.envelope.as_deref()) == Decision::Admit
}

/// Turns each reply whose data the gate keeps out of `workflow` into an error for its
/// continuation; returns how many.
fn refuse_replies(gate: &dyn PolicyGate, workflow: &Path, replies: &mut [ReplyMsg]) -> u64 {
    let mut refused = 0;
    for r in replies.iter_mut() {
        if r.reply.is_ok() && gate.admit_reply(workflow, r.envelope.as_deref()) != Decision::Admit {
            r.reply = Err(crate::error::AskError::ReplyDenied {
                workflow: workflow.to_string(),
            });
            r.envelope = None;
            refused += 1;
        }
    }
    refused
}

fn open(ask: &AskMsg) -> (AskId, OpenRequest) {
    let request = OpenRequest {
        from: ask.from.clone(),
        portal: ask.portal.clone(),
        envelope: ask.envelope.clone(),
    };
    (ask.id, request)
}

impl Work {
    /// Does the work: touches only what the work owns, the storage and the thread pool.
    pub(crate) fn run(self, storage: &mut dyn Storage, par: &Parallel) -> Done {
        match self {
            Work::Generate(mut source) => {
                let next = match &mut source {
                    Source::Atoms(iter) => iter.next(),
                    Source::Feeder(_) => None,
                };
                Done::Generated(source, next)
            }
            Work::Split(router, atom, log) => {
                // Split predicates are user code: a panic ends this splitter only.
                let parts = match router.lock() {
                    Ok(r) => catch_unwind(AssertUnwindSafe(|| r.route(atom)))
                        .map_err(|p| format!("split predicate panicked: {}", panic_message(&*p))),
                    Err(_) => Err("splitter unusable after a panic".to_owned()),
                };
                let parts = match (parts, log) {
                    (Ok(parts), Some(log)) => {
                        let refs: Vec<Option<&dyn Batch>> =
                            parts.iter().map(|p| p.as_deref()).collect();
                        log.write(&refs, storage).map(|()| parts)
                    }
                    (parts, _) => parts,
                };
                Done::Split(parts)
            }
            Work::Move(log, atom) => {
                Done::Moved(log.write(&[Some(&*atom)], storage).map(|()| atom))
            }
            Work::Atoms(mut engine, mut atoms, gate, probe) => {
                purge(&mut engine, &*gate);
                if probe && let Some(done) = quarantine(&mut engine, &mut atoms, storage, par) {
                    return Done::stepped(engine, done);
                }
                let mut denied = 0;
                let mut released = Vec::new();
                let result = guarded("step", || {
                    let mut admit = |atom: Arc<dyn Batch>| {
                        let mut batch = atom.unshare();
                        if !gate.admits_everything() {
                            let mut check = gate.for_atom(&engine.path);
                            denied += batch.filter_envelopes(&mut *check).denied;
                        }
                        batch
                    };
                    if atoms.len() == 1
                        && let Some((atom, position)) = atoms.pop()
                    {
                        let input = StepInput::Atom(admit(atom), position);
                        released = engine.step(input, storage, par)?;
                        return Ok(());
                    }
                    let admitted = atoms
                        .into_iter()
                        .map(|(atom, position)| (admit(atom), position))
                        .collect();
                    let (outputs, error) = engine.step_group(admitted, storage, par);
                    released = outputs;
                    error.map_or(Ok(()), Err)
                });
                Done::Stepped {
                    engine,
                    denied,
                    opened: Vec::new(),
                    refused: Vec::new(),
                    released,
                    result: Some(result),
                }
            }
            Work::Asks(mut engine, node, asks, gate) => {
                purge(&mut engine, &*gate);
                let path = engine.path.clone();
                let verdicts = guarded("policy gate", || {
                    Ok(asks
                        .iter()
                        .map(|a| admits(&*gate, &path, a))
                        .collect::<Vec<bool>>())
                });
                let verdicts = match verdicts {
                    Ok(v) => v,
                    // The workflow fails; it owes every one of these asks an answer.
                    Err(e) => {
                        return Done::Stepped {
                            engine,
                            denied: 0,
                            opened: asks.iter().map(open).collect(),
                            refused: Vec::new(),
                            released: Vec::new(),
                            result: Some(Err(e)),
                        };
                    }
                };
                let (mut opened, mut admitted, mut refused) = (Vec::new(), Vec::new(), Vec::new());
                for (ask, admit) in asks.into_iter().zip(verdicts) {
                    if admit {
                        opened.push(open(&ask));
                        admitted.push(ask);
                    } else {
                        let portal = ask.portal.to_string();
                        refused.push(ReplyMsg::failed(ask, AskError::Denied { portal }));
                    }
                }
                let mut released = Vec::new();
                let result = (!admitted.is_empty()).then(|| {
                    guarded("step", || {
                        released = engine.step(StepInput::Asks(node, admitted), storage, par)?;
                        Ok(())
                    })
                });
                Done::Stepped {
                    engine,
                    denied: refused.len() as u64,
                    opened,
                    refused,
                    released,
                    result,
                }
            }
            Work::Replies(mut engine, mut replies, gate) => {
                purge(&mut engine, &*gate);
                let mut denied = 0;
                let done = guarded("step", || {
                    if !gate.admits_everything() {
                        denied = refuse_replies(&*gate, &engine.path, &mut replies);
                    }
                    engine.step(StepInput::Replies(replies), storage, par)
                });
                match Done::stepped(engine, done) {
                    Done::Stepped {
                        engine,
                        opened,
                        refused,
                        released,
                        result,
                        ..
                    } => Done::Stepped {
                        engine,
                        denied,
                        opened,
                        refused,
                        released,
                        result,
                    },
                    other => other,
                }
            }
        }
    }
}

/// Asks the store whether to run an atom of the workflow's probation; if it says to
/// quarantine it, sets it aside and returns the outcome of the step that skips it. A store that
/// cannot say is not a reason to stop: the atom runs.
fn quarantine(
    engine: &mut WorkflowInstance,
    atoms: &mut Vec<(Arc<dyn Batch>, InputPosition)>,
    storage: &mut dyn Storage,
    par: &Parallel,
) -> Option<Result<Vec<StepOutput>, TaskError>> {
    let (atom, position) = atoms.first()?;
    let offset = position.next.checked_sub(1)?;
    let crashes = match storage.attempt(&engine.path, engine.origin(), &position.stream, offset) {
        Ok(Attempt::Run) => return None,
        Ok(Attempt::Quarantine { crashes }) => crashes,
        Err(e) => {
            tracing::warn!(workflow = %engine.path, error = %e, "cannot record the attempt of an atom");
            return None;
        }
    };
    let reason = format!(
        "the process stopped while {} was processing this atom, on {crashes} launches in a row",
        engine.path
    );
    tracing::error!(
        workflow = %engine.path,
        stream = %position.stream,
        offset,
        crashes,
        "atom quarantined: set aside, the workflow moves on"
    );
    let mut bytes = Vec::new();
    let set_aside = atom.encode(&mut bytes).and_then(|()| {
        let (path, id) = (&engine.path, engine.origin());
        storage
            .set_aside(path, id, &position.stream, offset, &bytes, &reason)
            .map_err(|e| e.to_string())
    });
    let position = position.clone();
    atoms.clear();
    Some(match set_aside {
        // The step that moves past it commits as any other (after staged steps, if any).
        Ok(()) => engine.step(StepInput::Skip(position), storage, par),
        Err(e) => Err(TaskError::new(format!("cannot set the atom aside: {e}"))),
    })
}
