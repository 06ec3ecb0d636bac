//! A unit's step in three parts: take the input ([`Core::begin`]), do the work
//! ([`Work::run`], outside the core), release the results ([`Core::finish`]).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};

use super::{Core, OpenRequest, Source, Unit};
use crate::batch::Batch;
use crate::error::{AskError, TaskError};
use crate::gate::{Decision, PolicyGate};
use crate::path::Path;
use crate::portal::ReplyMsg;
use crate::runtime::engine::{Parallel, StepInput, StepOutput, WorkflowInstance, panic_message};
use crate::runtime::stream::{End, Item};
use crate::runtime::units::SplitRouter;
use crate::storage::{InputPosition, Storage};

/// What [`Core::begin`] did.
pub(crate) enum Begun {
    /// The unit could not take a step.
    Idle,
    /// The step was taken inside the core (a sequencer's move, an end marker, a feeder's atom).
    Done,
    /// Work to run outside the core, then to give to [`Core::finish`].
    Work(Work),
}

/// The part of a step that runs outside the core.
pub(crate) enum Work {
    /// Make the generator's next atom.
    Generate(Source),
    /// Route an atom to the splits.
    Split(Arc<Mutex<Box<dyn SplitRouter>>>, Arc<dyn Batch>),
    /// Run a workflow step over an input atom, which the gate filters first (unless it admits
    /// everything).
    Atom(
        Box<WorkflowInstance>,
        Arc<dyn Batch>,
        InputPosition,
        Arc<dyn PolicyGate>,
    ),
    /// Run a workflow step over asks or replies.
    Step(Box<WorkflowInstance>, StepInput),
}

/// What the work produced.
pub(crate) enum Done {
    Generated(Source, Option<Arc<dyn Batch>>),
    Split(Result<Vec<Option<Box<dyn Batch>>>, String>),
    Stepped {
        engine: Box<WorkflowInstance>,
        denied: u64,
        result: Result<StepOutput, TaskError>,
    },
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
            Work::Split(router, atom) => {
                // Split predicates are user code: a panic ends this splitter only.
                let parts = match router.lock() {
                    Ok(r) => catch_unwind(AssertUnwindSafe(|| r.route(atom)))
                        .map_err(|p| format!("split predicate panicked: {}", panic_message(&*p))),
                    Err(_) => Err("splitter unusable after a panic".to_owned()),
                };
                Done::Split(parts)
            }
            Work::Atom(mut engine, atom, position, gate) => {
                let mut batch = atom.unshare();
                let mut denied = 0;
                if !gate.admits_everything() {
                    let path = &engine.path;
                    denied = batch
                        .retain_envelopes(&mut |env| gate.admit(path, env) == Decision::Admit)
                        as u64;
                }
                let result = engine.step(StepInput::Atom(batch, position), storage, par);
                Done::Stepped {
                    engine,
                    denied,
                    result,
                }
            }
            Work::Step(mut engine, input) => {
                let result = engine.step(input, storage, par);
                Done::Stepped {
                    engine,
                    denied: 0,
                    result,
                }
            }
        }
    }
}

impl Core {
    /// Takes unit `u`'s next input. `pick(n)` chooses among `n` ready alternatives (the
    /// sequencer's inputs; a workflow's input, asks and replies).
    pub(crate) fn begin(&mut self, u: usize, pick: &mut dyn FnMut(usize) -> usize) -> Begun {
        if !self.runnable(u) {
            return Begun::Idle;
        }
        match &mut self.units[u] {
            Unit::Generator {
                stream,
                source,
                closed,
            } => {
                let stream = *stream;
                match source.take() {
                    Some(Source::Feeder(q)) => {
                        let next = match q.lock() {
                            Ok(mut queue) => match queue.atoms.pop_front() {
                                Some(a) => Some(Some(a)),
                                None if queue.sealed => Some(None),
                                None => None,
                            },
                            Err(_) => Some(None),
                        };
                        *source = Some(Source::Feeder(q));
                        match next {
                            Some(Some(atom)) => self.streams[stream].push(atom),
                            Some(None) => {
                                *closed = true;
                                self.streams[stream].close(End::Seal);
                            }
                            None => return Begun::Idle,
                        }
                        Begun::Done
                    }
                    Some(s) => Begun::Work(Work::Generate(s)),
                    None => Begun::Idle,
                }
            }
            Unit::Sequencer { inputs, .. } => {
                let inputs = inputs.clone();
                let ready: Vec<usize> = (0..inputs.len())
                    .filter(|&i| self.ready(inputs[i]))
                    .collect();
                if ready.is_empty() {
                    return Begun::Idle;
                }
                let choice = ready[pick(ready.len()).min(ready.len() - 1)];
                let Unit::Sequencer { inputs, ended, out } = &mut self.units[u] else {
                    return Begun::Idle;
                };
                let (stream, consumer) = inputs[choice];
                let out = *out;
                match self.streams[stream].take(consumer) {
                    Some(Item::Atom(atom)) => self.streams[out].push(atom),
                    Some(Item::End(End::Seal)) => {
                        *ended += 1;
                        if *ended == inputs.len() {
                            self.streams[out].close(End::Seal);
                        }
                    }
                    Some(Item::End(End::Error(m))) => self.streams[out].close(End::Error(m)),
                    None => {}
                }
                Begun::Done
            }
            Unit::Splitter {
                input,
                router,
                outs,
                ended,
            } => match self.streams[input.0].take(input.1) {
                Some(Item::Atom(atom)) => Begun::Work(Work::Split(router.clone(), atom)),
                Some(Item::End(end)) => {
                    for out in outs.iter() {
                        self.streams[*out].close(end.clone());
                    }
                    *ended = Some(end);
                    Begun::Done
                }
                None => Begun::Idle,
            },
            Unit::Workflow(_) => self.begin_workflow(u, pick),
        }
    }

    fn begin_workflow(&mut self, u: usize, pick: &mut dyn FnMut(usize) -> usize) -> Begun {
        #[derive(Clone, Copy)]
        enum Choice {
            Input,
            Asks,
            Replies,
        }
        let Unit::Workflow(w) = &self.units[u] else {
            return Begun::Idle;
        };
        let mut choices = [Choice::Input; 3];
        let mut count = 0;
        for (available, choice) in [
            (self.ready(w.input) && self.has_room(w.out), Choice::Input),
            (!w.asks.is_empty(), Choice::Asks),
            (!w.replies.is_empty(), Choice::Replies),
        ] {
            if available {
                choices[count] = choice;
                count += 1;
            }
        }
        if count == 0 {
            return Begun::Idle;
        }
        let choice = choices[pick(count).min(count - 1)];
        let gate = self.gate.clone();
        let Unit::Workflow(w) = &mut self.units[u] else {
            return Begun::Idle;
        };
        let input = match choice {
            Choice::Input => {
                let (stream, consumer) = w.input;
                let log = &mut self.streams[stream];
                match log.take(consumer) {
                    Some(Item::Atom(atom)) => {
                        let position = InputPosition {
                            stream: log.path.clone(),
                            next: log.cursor(consumer),
                        };
                        return match w.engine.take() {
                            Some(e) => Begun::Work(Work::Atom(e, atom, position, gate)),
                            None => Begun::Idle,
                        };
                    }
                    Some(Item::End(End::Seal)) => {
                        w.input_ended = true;
                        self.maybe_seal(u);
                        return Begun::Done;
                    }
                    Some(Item::End(End::Error(m))) => {
                        let message = format!("input {} failed: {m}", log.path);
                        self.fail(u, message);
                        return Begun::Done;
                    }
                    None => return Begun::Idle,
                }
            }
            Choice::Asks => {
                let Some((node, asks)) = next_asks(&mut w.asks) else {
                    return Begun::Idle;
                };
                let mut admitted = Vec::with_capacity(asks.len());
                let mut denied = Vec::new();
                for ask in asks {
                    if admits(&*gate, &w.path, ask.envelope.as_deref()) {
                        let open = OpenRequest {
                            from: ask.from.clone(),
                            portal: ask.portal.clone(),
                            envelope: ask.envelope.clone(),
                        };
                        w.open.insert(ask.id, open);
                        admitted.push(ask);
                    } else {
                        let portal = ask.portal.to_string();
                        denied.push(ReplyMsg::failed(ask, AskError::Denied { portal }));
                    }
                }
                w.denied += denied.len() as u64;
                let empty = admitted.is_empty();
                let engine = if empty { None } else { w.engine.take() };
                if !denied.is_empty() {
                    self.route_replies(denied);
                }
                return match engine {
                    Some(e) => Begun::Work(Work::Step(e, StepInput::Asks(node, admitted))),
                    None => Begun::Done,
                };
            }
            Choice::Replies => match w.replies.pop_front() {
                Some(replies) => StepInput::Replies(replies),
                None => return Begun::Idle,
            },
        };
        match w.engine.take() {
            Some(e) => Begun::Work(Work::Step(e, input)),
            None => Begun::Idle,
        }
    }

    /// Releases what unit `u`'s work produced.
    pub(crate) fn finish(&mut self, u: usize, done: Done) {
        self.steps += 1;
        match (done, &mut self.units[u]) {
            (
                Done::Generated(s, next),
                Unit::Generator {
                    stream,
                    source,
                    closed,
                },
            ) => {
                *source = Some(s);
                match next {
                    Some(atom) => self.streams[*stream].push(atom),
                    None => {
                        *closed = true;
                        self.streams[*stream].close(End::Seal);
                    }
                }
            }
            (Done::Split(parts), Unit::Splitter { outs, ended, .. }) => match parts {
                Ok(parts) => {
                    for (part, out) in parts.into_iter().zip(outs.iter()) {
                        if let Some(part) = part {
                            self.streams[*out].push(part.into());
                        }
                    }
                }
                Err(message) => {
                    let end = End::Error(message);
                    for out in outs.iter() {
                        self.streams[*out].close(end.clone());
                    }
                    *ended = Some(end);
                }
            },
            (
                Done::Stepped {
                    engine,
                    denied,
                    result,
                },
                Unit::Workflow(w),
            ) => {
                w.denied += denied;
                w.pending = engine.pending();
                w.engine = Some(engine);
                match result {
                    Ok(out) => self.released(u, out),
                    Err(e) => self.fail(u, e.message),
                }
            }
            _ => tracing::error!(unit = u, "finished work of another kind of unit"),
        }
    }
}

/// Most asks one replier step takes when it merges queued batches.
const MERGED_ASKS: usize = 4096;

/// The next batch of asks for one replier node: the first queued batch, merged with the
/// batches queued behind it for the same node from other askers (up to [`MERGED_ASKS`]), so
/// many askers cost the replier one step. Batches of one asker stay apart, so that each of its
/// steps gets its replies in a batch of their own.
fn next_asks(
    queue: &mut std::collections::VecDeque<(usize, Vec<crate::portal::AskMsg>)>,
) -> Option<(usize, Vec<crate::portal::AskMsg>)> {
    let (node, mut asks) = queue.pop_front()?;
    let mut askers: std::collections::HashSet<Path> =
        asks.iter().map(|a| a.from.workflow.clone()).collect();
    while let Some((next, batch)) = queue.front() {
        let mergeable = *next == node
            && asks.len() + batch.len() <= MERGED_ASKS
            && batch.iter().all(|a| !askers.contains(&a.from.workflow));
        if !mergeable {
            break;
        }
        let Some((_, batch)) = queue.pop_front() else {
            break;
        };
        askers.extend(batch.iter().map(|a| a.from.workflow.clone()));
        asks.extend(batch);
    }
    Some((node, asks))
}

fn admits(
    gate: &dyn PolicyGate,
    workflow: &Path,
    envelope: Option<&crate::data::Envelope>,
) -> bool {
    gate.admits_everything() || gate.admit(workflow, envelope) == Decision::Admit
}
