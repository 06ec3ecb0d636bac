//! `map` and `identity`: one output event per input event.

use std::marker::PhantomData;
use std::sync::Arc;

use crate::batch::{Batch, Columns, downcast};
use crate::builder::Flow;
use crate::data::Data;
use crate::error::TaskError;
use crate::task::Task;
use crate::task::effects::Effects;

struct MapTask<T, U, F> {
    f: Arc<F>,
    _t: PhantomData<fn(T) -> U>,
}

impl<T: Data, U: Data, F: Fn(T) -> U + Send + Sync + 'static> Task for MapTask<T, U, F> {
    fn process(&mut self, input: Box<dyn Batch>, fx: &mut Effects) -> Option<Box<dyn Batch>> {
        let Some(events) = downcast::<T>(input) else {
            fx.fail(TaskError::new("map input of an unexpected type"));
            return None;
        };
        let f = &*self.f;
        let out: Columns<U> = Columns {
            values: events.values.into_iter().map(f).collect(),
            keys: events.keys,
            envelopes: events.envelopes,
        };
        Some(Box::new(out))
    }
}

struct Identity;

impl Task for Identity {
    fn process(&mut self, input: Box<dyn Batch>, _fx: &mut Effects) -> Option<Box<dyn Batch>> {
        Some(input)
    }
}

impl<T: Data> Flow<T> {
    /// Transforms each event's value with `f`; key and envelope are kept.
    ///
    /// ```
    /// # use pods_sdk::AppBuilder;
    /// let app = AppBuilder::new("a");
    /// let s = app.generator_from_atoms("g", vec![vec![1i64, 2]]);
    /// app.workflow("wf").source(&s).map(|x| x + 1).sink();
    /// ```
    pub fn map<U: Data>(&self, f: impl Fn(T) -> U + Send + Sync + 'static) -> Flow<U> {
        let f = Arc::new(f);
        self.add(
            "map",
            vec![self.node],
            Arc::new(move |_, _| {
                Box::new(MapTask {
                    f: f.clone(),
                    _t: PhantomData,
                })
            }),
        )
    }

    /// Passes every event on unchanged.
    pub fn identity(&self) -> Flow<T> {
        self.add(
            "identity",
            vec![self.node],
            Arc::new(|_, _| Box::new(Identity)),
        )
    }

    pub(crate) fn identity_of(&self, inputs: Vec<usize>) -> Flow<T> {
        self.add("union", inputs, Arc::new(|_, _| Box::new(Identity)))
    }
}
