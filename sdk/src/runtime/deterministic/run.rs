//! One step of each kind of unit, and the routing of what a workflow step released.

use std::panic::{AssertUnwindSafe, catch_unwind};

use super::{DeterministicSystem, OpenRequest, Source, Unit};
use crate::builder::spec::Kind;
use crate::error::AskError;
use crate::gate::Decision;
use crate::path::Path;
use crate::portal::{AskMsg, ReplyMsg};
use crate::runtime::engine::{StepInput, StepOutput, panic_message};
use crate::runtime::stream::{End, Item};
use crate::storage::{InputPosition, Storage};

/// Which queue of a workflow a step serves.
#[derive(Clone, Copy)]
enum Work {
    Input,
    Asks,
    Replies,
}

impl<S: Storage> DeterministicSystem<S> {
    pub(super) fn run_unit(&mut self, u: usize) {
        match &mut self.units[u] {
            Unit::Generator {
                stream,
                source,
                closed,
            } => {
                let next = match source {
                    Source::Atoms(iter) => iter.next().map(Some).unwrap_or(None),
                    Source::Feeder(q) => match q.lock() {
                        Ok(mut q) => match q.atoms.pop_front() {
                            Some(a) => Some(a),
                            None if q.sealed => None,
                            None => return,
                        },
                        Err(_) => None,
                    },
                };
                let stream = *stream;
                match next {
                    Some(atom) => self.streams[stream].push(atom),
                    None => {
                        *closed = true;
                        self.streams[stream].close(End::Seal);
                    }
                }
            }
            Unit::Sequencer { inputs, .. } => {
                let inputs = inputs.clone();
                let ready: Vec<usize> = (0..inputs.len())
                    .filter(|&i| self.ready(inputs[i]))
                    .collect();
                if ready.is_empty() {
                    return;
                }
                let choice = ready[self.pick(ready.len())];
                let Unit::Sequencer { inputs, ended, out } = &mut self.units[u] else {
                    return;
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
            }
            Unit::Splitter {
                input,
                router,
                outs,
                ended,
            } => {
                let end = match self.streams[input.0].take(input.1) {
                    Some(Item::Atom(atom)) => {
                        // Split predicates are user code: a panic ends this splitter only.
                        match catch_unwind(AssertUnwindSafe(|| router.route(atom))) {
                            Ok(parts) => {
                                for (part, out) in parts.into_iter().zip(outs.iter()) {
                                    if let Some(part) = part {
                                        self.streams[*out].push(part.into());
                                    }
                                }
                                None
                            }
                            Err(panic) => Some(End::Error(format!(
                                "split predicate panicked: {}",
                                panic_message(&*panic)
                            ))),
                        }
                    }
                    Some(Item::End(end)) => Some(end),
                    None => None,
                };
                if let Some(end) = end {
                    for out in outs.iter() {
                        self.streams[*out].close(end.clone());
                    }
                    *ended = Some(end);
                }
            }
            Unit::Workflow(_) => self.run_workflow(u),
        }
    }

    fn run_workflow(&mut self, u: usize) {
        let Unit::Workflow(w) = &self.units[u] else {
            return;
        };
        let mut choices = [Work::Input; 3];
        let mut count = 0;
        for (available, work) in [
            (self.ready(w.input), Work::Input),
            (!w.asks.is_empty(), Work::Asks),
            (!w.replies.is_empty(), Work::Replies),
        ] {
            if available {
                choices[count] = work;
                count += 1;
            }
        }
        if count == 0 {
            return;
        }
        let work = choices[self.pick(count)];
        let Unit::Workflow(w) = &mut self.units[u] else {
            return;
        };
        let input = match work {
            Work::Input => {
                let (stream, consumer) = w.input;
                let log = &mut self.streams[stream];
                match log.take(consumer) {
                    Some(Item::Atom(atom)) => {
                        let mut batch = atom.unshare();
                        if !self.gate.admits_everything() {
                            let (gate, path) = (&self.gate, &w.engine.path);
                            w.denied += batch.retain_envelopes(&mut |env| {
                                gate.admit(path, env) == Decision::Admit
                            }) as u64;
                        }
                        let position = InputPosition {
                            stream: log.path.clone(),
                            next: log.cursor(consumer),
                        };
                        StepInput::Atom(batch, position)
                    }
                    Some(Item::End(End::Seal)) => {
                        w.input_ended = true;
                        self.maybe_seal(u);
                        return;
                    }
                    Some(Item::End(End::Error(m))) => {
                        let message = format!("input {} failed: {m}", log.path);
                        self.fail(u, message);
                        return;
                    }
                    None => return,
                }
            }
            Work::Asks => {
                let Some((node, asks)) = w.asks.pop_front() else {
                    return;
                };
                let mut admitted = Vec::with_capacity(asks.len());
                let mut denied = Vec::new();
                for ask in asks {
                    let allowed = self.gate.admits_everything()
                        || self.gate.admit(&w.engine.path, ask.envelope.as_deref())
                            == Decision::Admit;
                    if allowed {
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
                if !denied.is_empty() {
                    self.route_replies(denied);
                }
                if admitted.is_empty() {
                    return;
                }
                let Unit::Workflow(w) = &mut self.units[u] else {
                    return;
                };
                match w
                    .engine
                    .step(StepInput::Asks(node, admitted), &mut self.storage)
                {
                    Ok(out) => self.released(u, out),
                    Err(e) => self.fail(u, e.message),
                }
                return;
            }
            Work::Replies => match w.replies.pop_front() {
                Some(replies) => StepInput::Replies(replies),
                None => return,
            },
        };
        match w.engine.step(input, &mut self.storage) {
            Ok(out) => self.released(u, out),
            Err(e) => self.fail(u, e.message),
        }
    }

    /// Releases what a committed step of workflow `u` produced.
    fn released(&mut self, u: usize, out: StepOutput) {
        let Unit::Workflow(w) = &mut self.units[u] else {
            return;
        };
        for reply in &out.replies {
            w.open.remove(&reply.id);
        }
        let stream = w.out;
        if let Some(batch) = out.output {
            self.streams[stream].push(batch.into());
        }
        self.route_asks(out.asks);
        self.route_replies(out.replies);
        self.maybe_seal(u);
    }

    /// Delivers asks to their repliers, one batch per portal, or answers them with an error:
    /// the portal does not exist, its replier failed, or the request is not of its type.
    fn route_asks(&mut self, asks: Vec<AskMsg>) {
        let mut batches: Vec<(Path, Vec<AskMsg>)> = Vec::new();
        for ask in asks {
            match batches.iter_mut().find(|(p, _)| *p == ask.portal) {
                Some((_, b)) => b.push(ask),
                None => batches.push((ask.portal.clone(), vec![ask])),
            }
        }
        let mut failed = Vec::new();
        for (portal, batch) in batches {
            let entry = self.registry.get(&portal, Kind::Portal);
            let (target, request_type) = (entry.and_then(|e| e.replier), entry.map(|e| e.ty.id));
            let (good, wrong): (Vec<AskMsg>, Vec<AskMsg>) = batch.into_iter().partition(|a| {
                Some((*a.request).type_id()) == request_type || request_type.is_none()
            });
            failed.extend(wrong.into_iter().map(|a| {
                let portal = portal.to_string();
                ReplyMsg::failed(a, AskError::WrongRequestType { portal })
            }));
            if good.is_empty() {
                continue;
            }
            match target.and_then(|(unit, node)| match self.units.get_mut(unit) {
                Some(Unit::Workflow(w)) if !w.failed => Some((w, node)),
                _ => None,
            }) {
                Some((w, node)) => w.asks.push_back((node, good)),
                None => {
                    let error = match target {
                        Some(_) => AskError::ReplierFailed {
                            portal: portal.to_string(),
                        },
                        None => AskError::UnknownPortal {
                            portal: portal.to_string(),
                        },
                    };
                    failed.extend(good.into_iter().map(|a| ReplyMsg::failed(a, error.clone())));
                }
            }
        }
        if !failed.is_empty() {
            self.route_replies(failed);
        }
    }

    /// Delivers replies to their asking workflows, one batch per workflow.
    fn route_replies(&mut self, replies: Vec<ReplyMsg>) {
        let mut batches: Vec<(Path, Vec<ReplyMsg>)> = Vec::new();
        for r in replies {
            match batches.iter_mut().find(|(p, _)| *p == r.to.workflow) {
                Some((_, b)) => b.push(r),
                None => batches.push((r.to.workflow.clone(), vec![r])),
            }
        }
        for (path, batch) in batches {
            let unit = self.registry.get(&path, Kind::Workflow).map(|e| e.target);
            if let Some(Unit::Workflow(w)) = unit.and_then(|u| self.units.get_mut(u))
                && !w.failed
            {
                w.replies.push_back(batch);
            }
        }
    }

    /// Seals a workflow's output once its input ended and nothing of it is outstanding.
    fn maybe_seal(&mut self, u: usize) {
        let Unit::Workflow(w) = &self.units[u] else {
            return;
        };
        let done = w.input_ended
            && !w.failed
            && !w.serves
            && w.engine.pending() == 0
            && w.asks.is_empty()
            && w.replies.is_empty();
        if done {
            let out = w.out;
            self.streams[out].close(End::Seal);
        }
    }

    /// Stops a failed workflow: `Error` on its output; it stops consuming its input; asks
    /// queued for it, and requests it accepted and had not answered, get `ReplierFailed`.
    fn fail(&mut self, u: usize, message: String) {
        let Unit::Workflow(w) = &mut self.units[u] else {
            return;
        };
        tracing::warn!(workflow = %w.engine.path, error = %message, "workflow failed");
        w.failed = true;
        w.replies.clear();
        let mut failed: Vec<ReplyMsg> = w
            .asks
            .drain(..)
            .flat_map(|(_, b)| b)
            .map(|a| {
                let portal = a.portal.to_string();
                ReplyMsg::failed(a, AskError::ReplierFailed { portal })
            })
            .collect();
        failed.extend(w.open.drain().map(|(id, r)| ReplyMsg {
            id,
            to: r.from,
            reply: Err(AskError::ReplierFailed {
                portal: r.portal.to_string(),
            }),
            envelope: r.envelope,
        }));
        let (out, (stream, consumer)) = (w.out, w.input);
        self.streams[out].close(End::Error(message));
        if let Some(s) = self.streams.get_mut(stream) {
            s.drop_consumer(consumer);
        }
        self.route_replies(failed);
    }
}
