//! `processor`, `asker` and `on_atom_complete`: tasks with the full context.

use std::sync::{Arc, Mutex};

use crate::builder::Flow;
use crate::builder::spec::TypeInfo;
use crate::data::Data;
use crate::error::{Error, Outcome};
use crate::path::Path;
use crate::portal::Portal;
use crate::task::Task;
use crate::task::ctx::Ctx;
use std::marker::PhantomData;

use crate::task::handler::{AskHandler, EventFn, HandlerTask, OnComplete, OnEvent};

/// The slot `on_atom_complete` fills for a processor-like node.
type Hook<U> = Arc<Mutex<Option<OnComplete<U>>>>;

impl<T: Data> Flow<T> {
    /// Adds a task running user handlers with state and continuations.
    pub(crate) fn handler_node<U: Data, E: OnEvent<T, U>>(
        &self,
        name: &str,
        on_event: E,
        on_ask: Option<Arc<dyn AskHandler<U>>>,
    ) -> Flow<U> {
        let on_event = Arc::new(on_event);
        let hook: Hook<U> = Arc::new(Mutex::new(None));
        let slot = hook.clone();
        let factory = Arc::new(move |wf: &Path, index: u32| {
            let complete = slot.lock().ok().and_then(|g| g.clone());
            Box::new(HandlerTask::<T, U, E>::new(
                wf,
                index,
                on_event.clone(),
                complete,
                on_ask.clone(),
            )) as Box<dyn Task>
        });
        self.add_with_hook::<U>(name, vec![self.node], factory, Some(Box::new(hook)))
    }

    /// A task with the full context: for each event, `f` may emit any number of events, read
    /// and write per-key and per-task state, ask portals and wait for replies.
    ///
    /// ```
    /// # use pods_sdk::{AppBuilder, PerTaskState};
    /// let app = AppBuilder::new("a");
    /// let s = app.generator_from_atoms("g", vec![vec![1i64, 2, 3]]);
    /// let total = PerTaskState::<i64>::new("total");
    /// app.workflow("wf").source(&s).processor(move |ctx, x: i64| {
    ///     let t = total.get(ctx) + x;
    ///     total.set(ctx, t);
    ///     ctx.emit(t);
    /// }).sink();
    /// ```
    pub fn processor<U: Data, R: Outcome + 'static>(
        &self,
        f: impl Fn(&mut Ctx<'_, U>, T) -> R + Send + Sync + 'static,
    ) -> Flow<U> {
        self.handler_node("processor", EventFn(f, PhantomData), None)
    }

    /// A processor that asks `portal` (any processor may ask; declaring the portal records the
    /// dependency in the registry). Use [`Ctx::ask`] and [`Ctx::on_reply`] in `f`.
    pub fn asker<Req: Data, Rep: Data, U: Data, R: Outcome + 'static>(
        &self,
        portal: &Portal<Req, Rep>,
        f: impl Fn(&mut Ctx<'_, U>, T) -> R + Send + Sync + 'static,
    ) -> Flow<U> {
        let ask = (
            portal.path.clone(),
            TypeInfo::of::<Req>(),
            TypeInfo::of::<Rep>(),
        );
        self.wf.borrow_mut().asks.push(ask);
        self.processor(f)
    }

    /// Runs `f` once per atom in which the task before it ran, after all of that atom's events
    /// (there is no current key or envelope; per-task state is available). Follows a
    /// `processor`, `asker` or `replier`.
    pub fn on_atom_complete<R: Outcome>(
        self,
        f: impl Fn(&mut Ctx<'_, T>) -> R + Send + Sync + 'static,
    ) -> Flow<T> {
        let f: OnComplete<T> = Arc::new(move |ctx| f(ctx).into_result());
        let set = self.with_hook(|slot| {
            let hook = slot.and_then(|b| b.downcast_mut::<Hook<T>>())?;
            let mut guard = hook.lock().ok()?;
            *guard = Some(f);
            Some(())
        });
        if set.is_none() {
            self.error(Error::InvalidPath {
                path: self.describe(),
                reason: "on_atom_complete follows a processor, asker or replier".to_owned(),
            });
        }
        self
    }
}
