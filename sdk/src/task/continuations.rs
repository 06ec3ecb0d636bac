//! Continuations waiting for replies, held by the task that asked.

use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;

use crate::data::{Envelope, Key};
use crate::error::{AskError, TaskError};
use crate::portal::{AskId, ReplyMsg};
use crate::task::ctx::Ctx;

/// The erased body of a continuation: it receives the replies in the order of its handles.
pub(crate) type Body<Out> = Box<
    dyn FnOnce(
            &mut Ctx<'_, Out>,
            Result<Vec<Box<dyn Any + Send>>, AskError>,
        ) -> Result<(), TaskError>
        + Send,
>;

/// A continuation and the context it runs in: the key, envelope and request being answered
/// when it was registered.
pub(crate) struct Pending<Out> {
    pub key: Option<Key>,
    pub envelope: Option<Arc<Envelope>>,
    replies: Vec<Option<Box<dyn Any + Send>>>,
    asks: Vec<AskId>,
    missing: usize,
    pub body: Body<Out>,
}

/// The continuations of one task, by the asks they wait for.
pub(crate) struct Continuations<Out> {
    waiting: HashMap<AskId, (u64, usize)>,
    pending: HashMap<u64, Pending<Out>>,
    next: u64,
}

impl<Out> Default for Continuations<Out> {
    fn default() -> Self {
        Continuations {
            waiting: HashMap::new(),
            pending: HashMap::new(),
            next: 0,
        }
    }
}

/// A continuation ready to run, with what it receives.
pub(crate) struct Ready<Out> {
    pub pending: Pending<Out>,
    pub replies: Result<Vec<Box<dyn Any + Send>>, AskError>,
}

impl<Out> Continuations<Out> {
    /// Registers `body` to run once every ask in `asks` has its reply.
    pub(crate) fn register(
        &mut self,
        asks: Vec<AskId>,
        key: Option<Key>,
        envelope: Option<Arc<Envelope>>,
        body: Body<Out>,
    ) {
        let id = self.next;
        self.next += 1;
        for (position, ask) in asks.iter().enumerate() {
            self.waiting.insert(*ask, (id, position));
        }
        let missing = asks.len();
        let replies = (0..missing).map(|_| None).collect();
        self.pending.insert(
            id,
            Pending {
                key,
                envelope,
                replies,
                asks,
                missing,
                body,
            },
        );
    }

    /// Takes a reply; returns the continuation if it is now ready (all replies in, or one failed).
    /// A reply that nothing waits for (a duplicate, or after a failure) is ignored.
    pub(crate) fn deliver(&mut self, reply: ReplyMsg) -> Option<Ready<Out>> {
        let (id, position) = self.waiting.remove(&reply.id)?;
        match reply.reply {
            Err(error) => {
                let pending = self.pending.remove(&id)?;
                for ask in &pending.asks {
                    self.waiting.remove(ask);
                }
                Some(Ready {
                    pending,
                    replies: Err(error),
                })
            }
            Ok(value) => {
                let pending = self.pending.get_mut(&id)?;
                if pending.envelope.is_none() {
                    // Data keeps its subject: a reply about a person makes what follows personal.
                    pending.envelope = reply.envelope;
                }
                if let Some(slot) = pending.replies.get_mut(position) {
                    *slot = Some(value);
                    pending.missing -= 1;
                }
                if pending.missing > 0 {
                    return None;
                }
                let pending = self.pending.remove(&id)?;
                let mut p = pending;
                let replies = std::mem::take(&mut p.replies)
                    .into_iter()
                    .flatten()
                    .collect();
                Some(Ready {
                    pending: p,
                    replies: Ok(replies),
                })
            }
        }
    }

    /// Number of continuations still waiting.
    pub(crate) fn len(&self) -> usize {
        self.pending.len()
    }
}
