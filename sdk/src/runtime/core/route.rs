//! Routing what a committed workflow step released: its atom to its output stream, asks to
//! repliers, replies to askers; and sealing or failing a workflow.

use std::collections::HashMap;

use super::{Core, Unit};
use crate::builder::spec::Kind;
use crate::error::AskError;
use crate::path::Path;
use crate::portal::{AskMsg, ReplyMsg};
use crate::runtime::engine::StepOutput;
use crate::runtime::stream::End;

impl Core {
    /// Releases what a committed step of workflow `u` produced (the caller then checks
    /// whether the workflow is done: [`Core::maybe_seal`]).
    pub(super) fn released(&mut self, u: usize, out: StepOutput) {
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
    }

    /// Delivers asks to their repliers, one batch per portal, or answers them with an error:
    /// the portal does not exist, its replier failed, or the request is not of its type.
    fn route_asks(&mut self, asks: Vec<AskMsg>) {
        let mut batches: Vec<(Path, Vec<AskMsg>)> = Vec::new();
        for ask in asks {
            self.deadlines.watch(&ask);
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
                Some((w, node)) => {
                    w.asks.push_back((node, good));
                    if let Some((unit, _)) = target {
                        self.woken.push(unit);
                    }
                }
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
    pub(super) fn route_replies(&mut self, replies: Vec<ReplyMsg>) {
        let mut batches: Vec<(Path, Vec<ReplyMsg>)> = Vec::new();
        let mut index: HashMap<Path, usize> = HashMap::new();
        for r in replies {
            self.deadlines.answered(&r.id);
            match index.get(&r.to.workflow) {
                Some(&i) => batches[i].1.push(r),
                None => {
                    index.insert(r.to.workflow.clone(), batches.len());
                    batches.push((r.to.workflow.clone(), vec![r]));
                }
            }
        }
        for (path, batch) in batches {
            let unit = self.registry.get(&path, Kind::Workflow).map(|e| e.target);
            if let Some(u) = unit
                && let Some(Unit::Workflow(w)) = self.units.get_mut(u)
                && !w.failed
            {
                w.replies.push_back(batch);
                self.woken.push(u);
            }
        }
    }

    /// Seals a workflow's output once its input ended and nothing of it is outstanding.
    pub(super) fn maybe_seal(&mut self, u: usize) {
        let Unit::Workflow(w) = &self.units[u] else {
            return;
        };
        let done = w.input_ended
            && !w.failed
            && !w.serves
            && w.pending == 0
            && w.unflushed == 0
            && w.asks.is_empty()
            && w.replies.is_empty();
        if done {
            // It takes no more steps: its partition helpers can go.
            if let Unit::Workflow(w) = &mut self.units[u]
                && let Some(e) = &mut w.engine
            {
                e.stop_helpers();
            }
            let Unit::Workflow(w) = &self.units[u] else {
                return;
            };
            let out = w.out;
            self.streams[out].close(End::Seal);
        }
    }

    /// Puts unit `u` right after a defect of the runtime lost its step: a workflow fails
    /// (answering every request it owes), a generator ends with an error.
    pub(crate) fn recover(&mut self, u: usize, message: String) {
        match &mut self.units[u] {
            Unit::Workflow(w) if !w.failed => self.fail(u, message),
            Unit::Generator {
                source: None,
                closed,
                stream,
            } => {
                *closed = true;
                let stream = *stream;
                self.streams[stream].close(End::Error(message));
            }
            _ => {}
        }
    }

    /// Stops a failed workflow: `Error` on its output; it stops consuming its input; asks
    /// queued for it, and requests it accepted and had not answered, get `ReplierFailed`.
    pub(super) fn fail(&mut self, u: usize, message: String) {
        let Unit::Workflow(w) = &mut self.units[u] else {
            return;
        };
        tracing::warn!(workflow = %w.path, error = %message, "workflow failed");
        w.failed = true;
        w.replies.clear();
        if let Some(e) = &mut w.engine {
            e.stop_helpers();
        }
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
