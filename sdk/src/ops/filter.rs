//! `filter` and `split`: keep the events a predicate accepts.

use std::marker::PhantomData;
use std::sync::Arc;

use crate::batch::{Batch, downcast};
use crate::builder::Flow;
use crate::data::Data;
use crate::error::TaskError;
use crate::task::Task;
use crate::task::effects::Effects;

struct FilterTask<T, F> {
    f: Arc<F>,
    keep: bool,
    _t: PhantomData<fn(T)>,
}

impl<T: Data, F: Fn(&T) -> bool + Send + Sync + 'static> Task for FilterTask<T, F> {
    fn process(&mut self, input: Box<dyn Batch>, fx: &mut Effects) -> Option<Box<dyn Batch>> {
        let Some(mut events) = downcast::<T>(input) else {
            fx.fail(TaskError::new("filter input of an unexpected type"));
            return None;
        };
        let (f, keep) = (&*self.f, self.keep);
        events.retain(|_, v| f(v) == keep);
        Some(Box::new(events))
    }
}

impl<T: Data> Flow<T> {
    /// Adds a node keeping the events for which `f` returns `keep`.
    fn filter_node<F: Fn(&T) -> bool + Send + Sync + 'static>(
        &self,
        name: &str,
        f: Arc<F>,
        keep: bool,
    ) -> Flow<T> {
        let factory = move |_: &crate::path::Path, _: u32| {
            Box::new(FilterTask {
                f: f.clone(),
                keep,
                _t: PhantomData,
            }) as Box<dyn Task>
        };
        self.add(name, vec![self.node], Arc::new(factory))
    }

    /// Keeps the events for which `f` holds.
    pub fn filter(&self, f: impl Fn(&T) -> bool + Send + Sync + 'static) -> Flow<T> {
        self.filter_node("filter", Arc::new(f), true)
    }

    /// Splits the flow in two branches of this workflow: events for which `f` holds, and the
    /// others. Each branch keeps the atom grouping; union them again with [`Flow::union`].
    pub fn split(&self, f: impl Fn(&T) -> bool + Send + Sync + 'static) -> (Flow<T>, Flow<T>) {
        let f = Arc::new(f);
        (
            self.filter_node("split-yes", f.clone(), true),
            self.filter_node("split-no", f, false),
        )
    }
}
