//! Routing what a committed workflow step released: its atom to its output stream, asks to
//! repliers (or to other processes), replies to askers (or to other processes); asks and
//! replies arriving from other processes; and sealing or failing a workflow.

use std::collections::HashMap;

use super::remote::{Respond, inbound_ask};
use super::{Core, Unit};
use crate::builder::spec::Kind;
use crate::data::Envelope;
use crate::error::{AskError, Error};
use crate::path::Path;
use crate::portal::{AskId, AskMsg, ReplyMsg};
use crate::remote::{Encoded, InboundAsk};
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
    /// the portal does not exist, its replier failed, or the request is not of its type. Asks
    /// to remote portals leave through the gateway (all of this pass in one call, at the next
    /// flush), or fail with `UnknownPortal` if there is none.
    fn route_asks(&mut self, asks: Vec<AskMsg>) {
        self.route_asks_watched(asks, true);
    }

    /// Routes asks as [`Core::route_asks`] does; `watch` false leaves their deadlines unwatched
    /// (asks from another process: the asker's deadline governs).
    fn route_asks_watched(&mut self, asks: Vec<AskMsg>, watch: bool) {
        let mut batches: Vec<(Path, Vec<AskMsg>)> = Vec::new();
        let mut remote = Vec::new();
        for ask in asks {
            if watch {
                self.deadlines.watch(&ask);
            }
            if ask.portal.is_remote() {
                remote.push(ask);
                continue;
            }
            match batches.iter_mut().find(|(p, _)| *p == ask.portal) {
                Some((_, b)) => b.push(ask),
                None => batches.push((ask.portal.clone(), vec![ask])),
            }
        }
        let mut failed = if remote.is_empty() {
            Vec::new()
        } else {
            self.remote.send(remote, self.deadlines.limit())
        };
        for (portal, batch) in batches {
            let entry = self.registry.get(&portal, Kind::Portal);
            let (target, request_type) = (entry.and_then(|e| e.replier), entry.map(|e| e.ty.id));
            // An encoded request (from another process) is decoded, and checked, by the replier.
            let (good, wrong): (Vec<AskMsg>, Vec<AskMsg>) = batch.into_iter().partition(|a| {
                Some((*a.request).type_id()) == request_type
                    || request_type.is_none()
                    || (*a.request).is::<Encoded>()
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
            // Replies come grouped by asker: most go to the batch the last one went to.
            let at = match batches.last() {
                Some((last, _)) if *last == r.to.workflow => Some(batches.len() - 1),
                _ => index.get(&r.to.workflow).copied(),
            };
            match at {
                Some(i) => batches[i].1.push(r),
                None => {
                    index.insert(r.to.workflow.clone(), batches.len());
                    batches.push((r.to.workflow.clone(), vec![r]));
                }
            }
        }
        for (path, batch) in batches {
            if path.is_peers() {
                // Replies to asks from other processes leave through their callbacks.
                self.remote.reply(batch);
                continue;
            }
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

    /// Takes an ask from another process to local portal `portal`: it enters the replier's
    /// queue as a local ask would, with its deadline, and its reply (or error) goes to
    /// `respond` at a flush after the replier's step committed. The same id asked again while
    /// it is being answered is not answered twice: `respond` gets the same reply.
    pub(crate) fn ask_inbound(
        &mut self,
        portal: &Path,
        id: AskId,
        request: Vec<u8>,
        envelope: Option<Envelope>,
        respond: Respond,
    ) -> Result<(), Error> {
        let ask = InboundAsk {
            portal: portal.clone(),
            id,
            request,
            envelope,
            reply: respond,
        };
        match self.ask_inbound_all(vec![ask]).pop() {
            Some((_, e)) => Err(e),
            None => Ok(()),
        }
    }

    /// Takes asks from another process (see [`Core::ask_inbound`]) in one routing pass, so
    /// that the asks to one portal reach its replier as one batch. Returns the index and error
    /// of each ask refused because its path names no portal (its callback is dropped).
    pub(crate) fn ask_inbound_all(&mut self, asks: Vec<InboundAsk>) -> Vec<(usize, Error)> {
        let mut refused = Vec::new();
        let mut taken = Vec::with_capacity(asks.len());
        let mut known: Option<(Path, Path)> = None;
        for (i, ask) in asks.into_iter().enumerate() {
            // Asks of one request mostly go to one portal: look it up once.
            let portal = match &known {
                Some((asked, found)) if *asked == ask.portal => found.clone(),
                _ => match self.inbound_portal(&ask.portal) {
                    Ok(found) => {
                        known = Some((ask.portal.clone(), found.clone()));
                        found
                    }
                    Err(e) => {
                        refused.push((i, e));
                        continue;
                    }
                },
            };
            if self.remote.take(ask.id, ask.reply) {
                taken.push(inbound_ask(portal, ask.id, ask.request, ask.envelope));
            }
        }
        if !taken.is_empty() {
            // No deadline here: the asker's governs. Answering `Timeout` while the ask is still
            // queued would let the asker send it again and the replier apply it twice.
            self.route_asks_watched(taken, false);
        }
        refused
    }

    /// The registered path of local portal `portal`, which asks from other processes may
    /// ask: `UnknownPath` if no element has it, `WrongKind` if it is not a portal.
    pub(crate) fn inbound_portal(&self, portal: &Path) -> Result<Path, Error> {
        match self.registry.entries.get_key_value(portal) {
            Some((path, entry)) if entry.kind == Kind::Portal => Ok(path.clone()),
            Some((_, entry)) => Err(Error::WrongKind {
                path: portal.to_string(),
                expected: Kind::Portal.name(),
                found: entry.kind.name(),
            }),
            None => Err(Error::UnknownPath {
                path: portal.to_string(),
                referrer: "an ask from another process".to_owned(),
            }),
        }
    }

    /// Routes the reply another process gave to ask `id`, which this system sent to a remote
    /// portal, to its asker; dropped if no ask waits for it (unknown, or timed out).
    pub(crate) fn answer_outbound(&mut self, replies: Vec<(AskId, Result<Vec<u8>, AskError>)>) {
        let replies: Vec<_> = replies
            .into_iter()
            .filter_map(|(id, reply)| self.remote.answer(id, reply))
            .collect();
        if !replies.is_empty() {
            self.route_replies(replies);
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
