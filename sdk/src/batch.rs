//! Type-erased atoms: how the runtime moves a `Vec<Event<T>>` between tasks, streams and units
//! without knowing `T`. Typed code converts at the edges with one downcast per atom.

use std::any::Any;
use std::sync::Arc;

use crate::data::{Data, Envelope, Event};

/// An atom's events of some event type, behind a trait object.
pub(crate) trait Batch: Any + Send + Sync {
    /// Number of events.
    fn len(&self) -> usize;
    /// A copy of the events.
    fn clone_batch(&self) -> Box<dyn Batch>;
    /// The events, owned: without copying when this is the last reference.
    fn unshare(self: Arc<Self>) -> Box<dyn Batch>;
    /// Appends `other`'s events (of the same type) after this batch's.
    fn append(&mut self, other: Box<dyn Batch>);
    /// Removes the envelope from every event (output of a non-personal task).
    fn strip_envelopes(&mut self);
    /// Keeps the events whose envelope `admit` accepts; returns how many were removed.
    fn retain_envelopes(&mut self, admit: &mut dyn FnMut(Option<&Envelope>) -> bool) -> usize;
    /// Upcast for downcasting.
    fn into_any(self: Box<Self>) -> Box<dyn Any>;
    /// Upcast for downcasting a shared batch.
    fn as_any_arc(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
}

impl<T: Data> Batch for Vec<Event<T>> {
    fn len(&self) -> usize {
        Vec::len(self)
    }
    fn clone_batch(&self) -> Box<dyn Batch> {
        Box::new(self.clone())
    }
    fn unshare(self: Arc<Self>) -> Box<dyn Batch> {
        Box::new(Arc::try_unwrap(self).unwrap_or_else(|shared| (*shared).clone()))
    }
    fn append(&mut self, other: Box<dyn Batch>) {
        match other.into_any().downcast::<Vec<Event<T>>>() {
            Ok(mut other) => Vec::append(self, &mut other),
            // The graph builder only unions flows of one type; a mismatch is a bug in the sdk.
            Err(_) => debug_assert!(false, "appending a batch of another type"),
        }
    }
    fn strip_envelopes(&mut self) {
        for e in self.iter_mut() {
            e.envelope = None;
        }
    }
    fn retain_envelopes(&mut self, admit: &mut dyn FnMut(Option<&Envelope>) -> bool) -> usize {
        let before = Vec::len(self);
        self.retain(|e| admit(e.envelope.as_deref()));
        before - Vec::len(self)
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
    fn as_any_arc(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

/// Converts an erased batch into typed events; `None` if it holds another type.
pub(crate) fn downcast<T: Data>(batch: Box<dyn Batch>) -> Option<Vec<Event<T>>> {
    batch
        .into_any()
        .downcast::<Vec<Event<T>>>()
        .ok()
        .map(|b| *b)
}

/// Borrows a shared erased batch as typed events; `None` if it holds another type.
pub(crate) fn downcast_shared<T: Data>(batch: &Arc<dyn Batch>) -> Option<Arc<Vec<Event<T>>>> {
    Arc::clone(batch)
        .as_any_arc()
        .downcast::<Vec<Event<T>>>()
        .ok()
}
