//! The context a task's handlers receive: emit, key, envelope, state, ask, reply.

use std::any::Any;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::batch::Columns;
use crate::data::{Data, Envelope, Key};
use crate::error::{AskError, Outcome, TaskError};
use crate::portal::{AskId, AskMsg, Portal, ReplyHandle, ReplyMsg, ReplyTo};
use crate::remote::{self, Encoded, Untyped};
use crate::task::continuations::{Body, Continuations, Pending, Replies};
use crate::task::effects::Effects;
use crate::task::state::StateTables;

/// The context of a running task, emitting events of type `Out`: processors, repliers and
/// continuations receive it. It gives the current event's key and envelope, emits events
/// (which carry that envelope), reaches the task's state ([`PerKeyState`](crate::PerKeyState),
/// [`PerTaskState`](crate::PerTaskState)), asks portals and answers requests.
pub struct Ctx<'a, Out> {
    pub(crate) out: &'a mut Columns<Out>,
    pub(crate) key: Option<Key>,
    pub(crate) envelope: Option<Arc<Envelope>>,
    pub(crate) states: &'a mut StateTables,
    pub(crate) conts: &'a mut Continuations<Out>,
    pub(crate) fx: &'a mut Effects,
}

impl<'a, Out: Data> Ctx<'a, Out> {
    /// Emits an event downstream; it carries the current key and envelope.
    pub fn emit(&mut self, value: Out) {
        self.out
            .push(value, self.key.unwrap_or_default(), self.envelope.clone());
    }

    /// Emits a personal event about `envelope`'s subject (for a task that reads personal data
    /// from a non-personal input, such as a generator of raw records).
    pub fn emit_personal(&mut self, value: Out, envelope: Envelope) {
        self.out.push(
            value,
            self.key.unwrap_or_default(),
            Some(Arc::new(envelope)),
        );
    }

    /// The current event's key; `None` in `on_atom_complete`, which runs for no single event.
    pub fn key(&self) -> Option<Key> {
        self.key
    }

    /// The current event's envelope, if it is personal.
    pub fn envelope(&self) -> Option<&Envelope> {
        self.envelope.as_deref()
    }

    /// Fails the task: the workflow puts `Error` with this message on its output and stops.
    /// Returning an `Err` from the handler does the same.
    pub fn fail(&mut self, message: impl Into<String>) {
        self.fx.fail(TaskError::new(message));
    }

    /// Asks `portal` with `request`; the request carries the current envelope. The reply arrives
    /// in a later step of this workflow: register what to do with it with [`Ctx::on_reply`].
    pub fn ask<Req: Data, Rep: Data>(
        &mut self,
        portal: &Portal<Req, Rep>,
        request: Req,
    ) -> ReplyHandle<Rep> {
        if self.fx.record_answers && !self.fx.replayable {
            // On a store that replays asking atoms, this ask's id would differ in a replay,
            // and its replier could apply it twice.
            self.fx.fail(TaskError::new(format!(
                "ask to {} made downstream of a continuation or a replier, or in on_atom_complete of a step over replies or asks: on a durable store its id would not survive a replay; ask from the continuation or the replier itself",
                portal.path
            )));
        }
        let id = self.fx.next_ask_id();
        // A remote portal's types are checked on the far side: its request leaves encoded.
        let request: Box<dyn Any + Send> = if portal.path.is_remote() {
            match Encoded::of(&request) {
                Ok(encoded) => Box::new(encoded),
                Err(e) => {
                    let message = format!("cannot encode the request to {}: {e}", portal.path);
                    self.fx.fail(TaskError::new(message));
                    return ReplyHandle {
                        id,
                        _rep: PhantomData,
                    };
                }
            }
        } else {
            Box::new(request)
        };
        if self.fx.record_answers {
            // Until a continuation takes it, its reply is awaited all the same: the asking
            // atom commits once the replier committed the ask.
            self.conts.await_reply(id);
        }
        let envelope = if self.fx.non_personal {
            None
        } else {
            self.envelope.clone()
        };
        self.fx.asks.push(AskMsg {
            id,
            portal: portal.path.clone(),
            from: self.fx.origin(),
            request,
            envelope,
        });
        ReplyHandle {
            id,
            _rep: PhantomData,
        }
    }

    /// Runs `then` when the reply to `handle` arrives (or the ask fails), with this event's key,
    /// envelope and state scope. Events it emits flow on from this task.
    pub fn on_reply<Rep: Data, R: Outcome>(
        &mut self,
        handle: ReplyHandle<Rep>,
        then: impl FnOnce(&mut Ctx<'_, Out>, Result<Rep, AskError>) -> R + Send + 'static,
    ) {
        if !self.asked_now(handle.id) {
            return;
        }
        let ask = handle.id;
        let body: Body<Out> = Box::new(move |ctx, replies| {
            let reply = replies.and_then(|r| match r {
                Replies::One(one) => downcast_reply::<Rep>(one, ask),
                Replies::Many(_) => Err(AskError::WrongReplyType {
                    ask: ask.to_string(),
                }),
            });
            then(ctx, reply).into_result()
        });
        let pending = Pending {
            key: self.key,
            envelope: self.envelope.clone(),
            body,
        };
        self.conts.register(vec![handle.id], pending);
    }

    /// Runs `then` when every ask in `handles` has its reply, with the replies in the order of
    /// the handles; if any ask fails, `then` receives that error at once.
    pub fn on_replies<Rep: Data, R: Outcome>(
        &mut self,
        handles: Vec<ReplyHandle<Rep>>,
        then: impl FnOnce(&mut Ctx<'_, Out>, Result<Vec<Rep>, AskError>) -> R + Send + 'static,
    ) {
        let ids: Vec<_> = handles.iter().map(|h| h.id).collect();
        if !ids.iter().all(|id| self.asked_now(*id)) {
            return;
        }
        if ids.is_empty() {
            if let Err(e) = then(self, Ok(Vec::new())).into_result() {
                self.fx.fail(e);
            }
            return;
        }
        let ids_for_body = ids.clone();
        let body: Body<Out> = Box::new(move |ctx, replies| {
            let typed = replies.and_then(|r| {
                let all = match r {
                    Replies::One(one) => vec![one],
                    Replies::Many(all) => all,
                };
                all.into_iter()
                    .zip(&ids_for_body)
                    .map(|(one, ask)| downcast_reply::<Rep>(one, *ask))
                    .collect::<Result<Vec<Rep>, AskError>>()
            });
            then(ctx, typed).into_result()
        });
        let pending = Pending {
            key: self.key,
            envelope: self.envelope.clone(),
            body,
        };
        self.conts.register(ids, pending);
    }

    /// Whether `ask` was made by this workflow in the handler call running now; records a task
    /// failure if not (a reply can arrive before a continuation registered in a later step, so
    /// registration belongs to the call that asked).
    fn asked_now(&mut self, ask: AskId) -> bool {
        if ask.origin == self.fx.origin
            && ask.scope == self.fx.scope
            && ask.partition == self.fx.partition
        {
            return true;
        }
        self.fx.fail(TaskError::new(format!(
            "a continuation for ask {ask} was registered outside the handler call that asked: call on_reply or on_replies where you ask"
        )));
        false
    }

    /// Answers the request `to` stands for. The reply carries the request's envelope unless
    /// this task declared its output non-personal.
    pub fn reply<Rep: Data>(&mut self, to: ReplyTo<Rep>, reply: Rep) {
        let envelope = if self.fx.non_personal {
            None
        } else {
            to.envelope
        };
        // A reply to another process leaves encoded; a recorded reply is kept encoded.
        let external = to.to.is_external();
        let encoded = if self.fx.record_answers || external {
            match Encoded::of(&reply) {
                Ok(encoded) => Some(encoded),
                Err(e) => {
                    let message = format!("cannot encode the reply to ask {}: {e}", to.id);
                    self.fx.fail(TaskError::new(message));
                    return;
                }
            }
        } else {
            None
        };
        let value: Box<dyn Any + Send> = match encoded {
            Some(encoded) if external => {
                if self.fx.record_answers {
                    self.fx.answers.push((to.id, encoded.0.clone()));
                }
                Box::new(encoded)
            }
            Some(encoded) => {
                self.fx.answers.push((to.id, encoded.0));
                Box::new(reply)
            }
            None => Box::new(reply),
        };
        self.fx.replies.push(ReplyMsg {
            id: to.id,
            to: to.to,
            reply: Ok(value),
            envelope,
        });
    }
}

/// A reply value as `Rep`: the value itself, or decoded if it came from another process.
fn downcast_reply<Rep: Data>(value: Box<dyn Any + Send>, ask: AskId) -> Result<Rep, AskError> {
    remote::take::<Rep>(value).map_err(|e| match e {
        Untyped::Other => AskError::WrongReplyType {
            ask: ask.to_string(),
        },
        Untyped::Undecodable(message) => AskError::Undecodable {
            ask: ask.to_string(),
            message,
        },
    })
}
