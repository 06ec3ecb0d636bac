//! `key_by`: set each event's key, which scopes per-key state (and routes to partitions).

use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::batch::{Batch, downcast};
use crate::builder::Flow;
use crate::data::{Data, Key};
use crate::error::TaskError;
use crate::task::Task;
use crate::task::effects::Effects;

struct KeyByTask<T, K, F> {
    f: Arc<F>,
    _t: PhantomData<fn(T) -> K>,
}

impl<T: Data, K: Hash, F: Fn(&T) -> K + Send + Sync + 'static> Task for KeyByTask<T, K, F> {
    fn process(&mut self, input: Box<dyn Batch>, fx: &mut Effects) -> Option<Box<dyn Batch>> {
        let Some(mut events) = downcast::<T>(input) else {
            fx.fail(TaskError::new("key_by input of an unexpected type"));
            return None;
        };
        let f = &*self.f;
        let mut keys = events.keys.take().unwrap_or_default();
        keys.clear();
        keys.extend(events.values.iter().map(|v| Key::of(&f(v))));
        events.keys = Some(keys);
        Some(Box::new(events))
    }
}

impl<T: Data> Flow<T> {
    /// Keys each event by the hash of what `f` returns; downstream per-key state is scoped to it.
    pub fn key_by<K: Hash + 'static>(
        &self,
        f: impl Fn(&T) -> K + Send + Sync + 'static,
    ) -> Flow<T> {
        let f = Arc::new(f);
        self.add(
            "key_by",
            vec![self.node],
            Arc::new(move |_, _| {
                Box::new(KeyByTask {
                    f: f.clone(),
                    _t: PhantomData,
                })
            }),
        )
        .sets_keys()
    }
}
