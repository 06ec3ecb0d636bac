//! `replier`: the task that answers a portal's requests (and, by asking, an asker-replier).

use std::sync::Arc;

use crate::builder::Flow;
use crate::data::{Data, Key};
use crate::error::Outcome;
use crate::portal::{KeyFn, Portal, ReplyTo};
use crate::task::ctx::Ctx;
use crate::task::handler::{AskHandler, EventFn, OnAsk, Replier};

impl<T: Data> Flow<T> {
    /// Answers `portal`: `on_ask` runs for each request with the request's key (from the
    /// portal's key function) and envelope, and answers it with [`Ctx::reply`], now or from a
    /// continuation after asking other portals (or this one: an asker-replier). `on_event`
    /// handles the workflow's own stream events. A portal has exactly one replier.
    ///
    /// ```
    /// # use pods_sdk::AppBuilder;
    /// let app = AppBuilder::new("a");
    /// let inc = app.portal::<i64, i64>("inc");
    /// let none = app.generator_from_atoms::<i64>("none", vec![]);
    /// app.workflow("server").source(&none).replier_with(&inc, |ctx, x: i64| ctx.emit(x), |ctx, req, to| {
    ///     ctx.reply(to, req + 1);
    /// }).sink();
    /// assert!(app.build().is_ok());
    /// ```
    pub fn replier_with<Req: Data, Rep: Data, U: Data, R1: Outcome + 'static, R2: Outcome>(
        &self,
        portal: &Portal<Req, Rep>,
        on_event: impl Fn(&mut Ctx<'_, U>, T) -> R1 + Send + Sync + 'static,
        on_ask: impl Fn(&mut Ctx<'_, U>, Req, ReplyTo<Rep>) -> R2 + Send + Sync + 'static,
    ) -> Flow<U> {
        let on_ask: OnAsk<Req, Rep, U> =
            Arc::new(move |ctx, req, to| on_ask(ctx, req, to).into_result());
        let key_fn: KeyFn<Req> = portal
            .key_fn
            .clone()
            .unwrap_or_else(|| Arc::new(|_: &Req| Key(0)));
        let handler: Arc<dyn AskHandler<U>> = Arc::new(Replier { key_fn, on_ask });
        let flow = self.handler_node(
            "replier",
            EventFn(on_event, std::marker::PhantomData),
            Some(handler),
        );
        self.wf
            .borrow_mut()
            .repliers
            .push((portal.path.clone(), flow.node));
        flow
    }

    /// Answers `portal` with `on_ask` (see [`Flow::replier_with`]); the workflow's own stream
    /// events pass through unchanged.
    ///
    /// ```
    /// # use pods_sdk::AppBuilder;
    /// let app = AppBuilder::new("a");
    /// let inc = app.portal::<i64, i64>("inc");
    /// let none = app.generator_from_atoms::<i64>("none", vec![]);
    /// app.workflow("server").source(&none).replier(&inc, |ctx, req, to| ctx.reply(to, req + 1));
    /// assert!(app.build().is_ok());
    /// ```
    pub fn replier<Req: Data, Rep: Data, R: Outcome>(
        &self,
        portal: &Portal<Req, Rep>,
        on_ask: impl Fn(&mut Ctx<'_, T>, Req, ReplyTo<Rep>) -> R + Send + Sync + 'static,
    ) -> Flow<T> {
        self.replier_with(portal, |ctx: &mut Ctx<'_, T>, x: T| ctx.emit(x), on_ask)
    }
}
