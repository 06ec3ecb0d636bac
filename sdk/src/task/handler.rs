//! The task behind processors, askers and repliers: user handlers with the full context.

use std::sync::Arc;

use crate::batch::{Batch, Columns, downcast};
use crate::data::{Data, Key};
use crate::error::{AskError, Outcome, TaskError};
use crate::portal::{AskMsg, KeyFn, ReplyMsg, ReplyTo};
use crate::remote::{self, Encoded};
use crate::storage::StateWrite;
use crate::task::Task;
use crate::task::continuations::Continuations;
use crate::task::ctx::Ctx;
use crate::task::effects::Effects;
use crate::task::state::StateTables;

/// A handler for each input event; generic (not boxed) so the per-event call inlines.
pub(crate) trait OnEvent<In, Out>: Send + Sync + 'static {
    /// Handles one event.
    fn call(&self, ctx: &mut Ctx<'_, Out>, value: In) -> Result<(), TaskError>;
}

/// A user closure as an [`OnEvent`], with the outcome type it returns.
pub(crate) struct EventFn<F, R>(pub F, pub std::marker::PhantomData<fn() -> R>);

impl<In, Out, F, R> OnEvent<In, Out> for EventFn<F, R>
where
    F: Fn(&mut Ctx<'_, Out>, In) -> R + Send + Sync + 'static,
    R: Outcome + 'static,
{
    #[inline]
    fn call(&self, ctx: &mut Ctx<'_, Out>, value: In) -> Result<(), TaskError> {
        (self.0)(ctx, value).into_result()
    }
}
/// A handler run once per step after the task's input.
pub(crate) type OnComplete<Out> =
    Arc<dyn Fn(&mut Ctx<'_, Out>) -> Result<(), TaskError> + Send + Sync>;
/// A replier's handler for each request.
pub(crate) type OnAsk<Req, Rep, Out> =
    Arc<dyn Fn(&mut Ctx<'_, Out>, Req, ReplyTo<Rep>) -> Result<(), TaskError> + Send + Sync>;

/// The erased ask side of a replier task.
pub(crate) trait AskHandler<Out>: Send + Sync {
    /// Answers one ask in `ctx` (whose key and envelope it sets).
    fn handle(&self, ctx: &mut Ctx<'_, Out>, ask: AskMsg) -> Result<(), TaskError>;

    /// The key of an ask's request (`None` if the request is not of the portal's type). An
    /// encoded request (from another process) is decoded in place first.
    fn key(&self, ask: &mut AskMsg) -> Option<Key>;

    /// A reply recorded by [`Ctx::reply`] (its encoding), as a reply value again.
    fn decode_reply(&self, bytes: &[u8]) -> Result<Box<dyn std::any::Any + Send>, String>;
}

/// The typed ask side of a replier: the portal's key function and the user's handler.
pub(crate) struct Replier<Req, Rep, Out> {
    pub key_fn: KeyFn<Req>,
    pub on_ask: OnAsk<Req, Rep, Out>,
}

impl<Req: Data, Rep: Data, Out: Data> AskHandler<Out> for Replier<Req, Rep, Out> {
    fn key(&self, ask: &mut AskMsg) -> Option<Key> {
        if let Some(encoded) = ask.request.downcast_ref::<Encoded>()
            && let Ok(request) = encoded.decode::<Req>()
        {
            // Decoded once, here; the handler then finds the typed request.
            ask.request = Box::new(request);
        }
        ask.request.downcast_ref::<Req>().map(|r| (self.key_fn)(r))
    }

    fn decode_reply(&self, bytes: &[u8]) -> Result<Box<dyn std::any::Any + Send>, String> {
        ciborium::from_reader::<Rep, _>(bytes)
            .map(|r| Box::new(r) as Box<dyn std::any::Any + Send>)
            .map_err(|e| e.to_string())
    }

    fn handle(&self, ctx: &mut Ctx<'_, Out>, ask: AskMsg) -> Result<(), TaskError> {
        // A request from another process comes encoded; bytes that are no `Req` are a request
        // of the wrong type like any other.
        let request = match remote::take::<Req>(ask.request) {
            Ok(r) => r,
            Err(_) => {
                // Only this ask fails: its asker gets a typed error, the replier carries on.
                let portal = ask.portal.to_string();
                let reply = ReplyMsg {
                    id: ask.id,
                    to: ask.from,
                    reply: Err(AskError::WrongRequestType { portal }),
                    envelope: None,
                };
                ctx.fx.replies.push(reply);
                return Ok(());
            }
        };
        ctx.key = Some((self.key_fn)(&request));
        ctx.envelope = ask.envelope.clone();
        let to = ReplyTo {
            id: ask.id,
            portal: ask.portal,
            to: ask.from,
            envelope: ask.envelope,
            _rep: std::marker::PhantomData,
        };
        (self.on_ask)(ctx, request, to)
    }
}

/// A task running user handlers with state and continuations.
pub(crate) struct HandlerTask<In, Out, E> {
    pub on_event: Arc<E>,
    pub _in: std::marker::PhantomData<fn(In)>,
    pub on_complete: Option<OnComplete<Out>>,
    pub on_ask: Option<Arc<dyn AskHandler<Out>>>,
    pub states: StateTables,
    pub conts: Continuations<Out>,
}

impl<In: Data, Out: Data, E: OnEvent<In, Out>> HandlerTask<In, Out, E> {
    pub(crate) fn new(
        workflow: &crate::path::Path,
        index: u32,
        on_event: Arc<E>,
        on_complete: Option<OnComplete<Out>>,
        on_ask: Option<Arc<dyn AskHandler<Out>>>,
    ) -> HandlerTask<In, Out, E> {
        HandlerTask {
            on_event,
            _in: std::marker::PhantomData,
            on_complete,
            on_ask,
            states: StateTables::new(workflow.clone(), index),
            conts: Continuations::default(),
        }
    }
}

/// The context for one handler call of this task.
#[inline]
fn ctx<'a, Out>(
    out: &'a mut Columns<Out>,
    key: Option<crate::data::Key>,
    envelope: Option<Arc<crate::data::Envelope>>,
    states: &'a mut StateTables,
    conts: &'a mut Continuations<Out>,
    fx: &'a mut Effects,
) -> Ctx<'a, Out> {
    Ctx {
        out,
        key,
        envelope,
        states,
        conts,
        fx,
    }
}

#[inline]
fn check(fx: &mut Effects, result: Result<(), TaskError>) -> bool {
    if let Err(e) = result {
        fx.fail(e);
    }
    !fx.failed()
}

impl<In: Data, Out: Data, E: OnEvent<In, Out>> Task for HandlerTask<In, Out, E> {
    fn begin(&mut self, fx: &Effects) {
        self.states.track(fx.track_writes);
    }

    fn process(&mut self, input: Box<dyn Batch>, fx: &mut Effects) -> Option<Box<dyn Batch>> {
        let Some(events) = downcast::<In>(input) else {
            fx.fail(TaskError::new("task input of an unexpected type"));
            return None;
        };
        let mut out: Columns<Out> = Columns::with_capacity(events.len());
        let f = &*self.on_event;
        // One context for the whole atom; only the current key and envelope change per event.
        let mut ctx = ctx(&mut out, None, None, &mut self.states, &mut self.conts, fx);
        for (value, key, envelope) in events.into_rows() {
            ctx.key = Some(key);
            ctx.envelope = envelope;
            let result = f.call(&mut ctx, value);
            if !check(ctx.fx, result) {
                break;
            }
        }
        Some(Box::new(out))
    }

    fn on_atom_complete(&mut self, fx: &mut Effects) -> Option<Box<dyn Batch>> {
        let f = self.on_complete.as_ref()?;
        let mut out: Columns<Out> = Columns::default();
        let mut ctx = ctx(&mut out, None, None, &mut self.states, &mut self.conts, fx);
        let result = f(&mut ctx);
        check(fx, result);
        Some(Box::new(out))
    }

    fn ask_key(&self, ask: &mut AskMsg) -> Option<Key> {
        self.on_ask.as_ref().and_then(|h| h.key(ask))
    }

    fn decode_reply(&self, bytes: &[u8]) -> Option<Result<Box<dyn std::any::Any + Send>, String>> {
        self.on_ask.as_ref().map(|h| h.decode_reply(bytes))
    }

    fn handle_asks(&mut self, asks: Vec<AskMsg>, fx: &mut Effects) -> Option<Box<dyn Batch>> {
        let Some(handler) = self.on_ask.clone() else {
            fx.fail(TaskError::new(
                "asks delivered to a task that is not a replier",
            ));
            return None;
        };
        let mut out: Columns<Out> = Columns::default();
        for ask in asks {
            let saved = fx.enter(ask.id.answer_scope());
            let mut ctx = ctx(&mut out, None, None, &mut self.states, &mut self.conts, fx);
            let result = handler.handle(&mut ctx, ask);
            fx.leave(saved);
            if !check(fx, result) {
                break;
            }
        }
        Some(Box::new(out))
    }

    fn handle_replies(
        &mut self,
        replies: Vec<ReplyMsg>,
        fx: &mut Effects,
    ) -> Option<Box<dyn Batch>> {
        let mut out: Columns<Out> = Columns::default();
        for reply in replies {
            let Some(ready) = self.conts.deliver(reply) else {
                continue;
            };
            let saved = fx.enter(ready.ask.scope_of());
            let mut ctx = ctx(
                &mut out,
                ready.pending.key,
                ready.pending.envelope,
                &mut self.states,
                &mut self.conts,
                fx,
            );
            let result = (ready.pending.body)(&mut ctx, ready.replies);
            fx.leave(saved);
            if !check(fx, result) {
                break;
            }
        }
        Some(Box::new(out))
    }

    fn pending(&self) -> usize {
        self.conts.len()
    }

    fn writes<'a>(&'a self, out: &mut Vec<StateWrite<'a>>) {
        self.states.writes(out);
    }

    fn place(&mut self, partition: u32, partitions: u32) {
        self.states.place(partition, partitions);
    }

    fn restore(&mut self, recovery: &crate::storage::Recovery, partitions: usize) {
        self.states.restore(recovery, partitions);
    }

    fn committed(&mut self) {
        self.states.committed();
    }

    fn purge(&mut self, erased: &dyn Fn(&crate::data::SubjectId) -> bool) -> usize {
        self.states.purge(erased)
    }
}
