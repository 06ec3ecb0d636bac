//! `flat_map`: any number of output events per input event.

use std::marker::PhantomData;
use std::sync::Arc;

use crate::batch::{Batch, Columns, downcast};
use crate::builder::Flow;
use crate::data::Data;
use crate::error::TaskError;
use crate::task::Task;
use crate::task::effects::Effects;

struct FlatMapTask<T, U, I, F> {
    f: Arc<F>,
    _t: PhantomData<fn(T) -> (U, I)>,
}

impl<T, U, I, F> Task for FlatMapTask<T, U, I, F>
where
    T: Data,
    U: Data,
    I: IntoIterator<Item = U> + 'static,
    F: Fn(T) -> I + Send + Sync + 'static,
{
    fn process(&mut self, input: Box<dyn Batch>, fx: &mut Effects) -> Option<Box<dyn Batch>> {
        let Some(events) = downcast::<T>(input) else {
            fx.fail(TaskError::new("flat_map input of an unexpected type"));
            return None;
        };
        let f = &*self.f;
        let mut out: Columns<U> = Columns::with_capacity(events.len());
        for (value, key, envelope) in events.into_rows() {
            for produced in f(value) {
                out.push(produced, key, envelope.clone());
            }
        }
        Some(Box::new(out))
    }
}

impl<T: Data> Flow<T> {
    /// Replaces each event by the values `f` returns for it (none, one or many); each keeps
    /// the input's key and envelope.
    pub fn flat_map<U: Data, I: IntoIterator<Item = U> + 'static>(
        &self,
        f: impl Fn(T) -> I + Send + Sync + 'static,
    ) -> Flow<U> {
        let f = Arc::new(f);
        self.add(
            "flat_map",
            vec![self.node],
            Arc::new(move |_, _| {
                Box::new(FlatMapTask {
                    f: f.clone(),
                    _t: PhantomData,
                })
            }),
        )
    }
}
