//! Continuations waiting for replies, held by the task that asked.
//!
//! One map, by ask id: a continuation waiting for one reply is stored under that ask (one
//! lookup per reply); one waiting for several is stored under its first ask, and its other asks
//! point there.

use std::any::Any;
use std::sync::Arc;

use crate::ask_map::AskMap;
use crate::data::{Envelope, Key};
use crate::error::{AskError, TaskError};
use crate::portal::{AskId, ReplyMsg};
use crate::task::ctx::Ctx;

/// The reply values a continuation receives.
pub(crate) enum Replies {
    /// The reply to a single ask.
    One(Box<dyn Any + Send>),
    /// The replies to several asks, in the order of their handles.
    Many(Vec<Box<dyn Any + Send>>),
}

/// The erased body of a continuation.
pub(crate) type Body<Out> =
    Box<dyn FnOnce(&mut Ctx<'_, Out>, Result<Replies, AskError>) -> Result<(), TaskError> + Send>;

/// A continuation and the context it runs in: the key and envelope current when it was
/// registered.
pub(crate) struct Pending<Out> {
    pub key: Option<Key>,
    pub envelope: Option<Arc<Envelope>>,
    pub body: Body<Out>,
}

/// A continuation waiting for several replies.
struct Group<Out> {
    pending: Pending<Out>,
    asks: Vec<AskId>,
    replies: Vec<Option<Box<dyn Any + Send>>>,
    missing: usize,
}

enum Waiting<Out> {
    /// A continuation waiting for this ask alone.
    One(Pending<Out>),
    /// A continuation waiting for several asks, stored under the first.
    Group(Box<Group<Out>>),
    /// Another ask of the group stored under `leader`, at `position`.
    Member { leader: AskId, position: usize },
}

/// The continuations of one task, by the asks they wait for.
pub(crate) struct Continuations<Out> {
    waiting: AskMap<Waiting<Out>>,
    /// Number of continuations (not asks) waiting.
    count: usize,
    /// Asks made without a continuation yet, whose replies are still awaited (tracked only
    /// where atoms replay: an asking atom commits once every reply is in, even an ignored one).
    unawaited: AskMap<()>,
    /// Whether replies are awaited for every ask (set by the first [`Continuations::await_reply`]):
    /// then the other asks of a group that failed early stay awaited too.
    await_all: bool,
}

impl<Out> Default for Continuations<Out> {
    fn default() -> Self {
        Continuations {
            waiting: AskMap::default(),
            count: 0,
            unawaited: Default::default(),
            await_all: false,
        }
    }
}

/// A continuation ready to run, with what it receives.
pub(crate) struct Ready<Out> {
    /// The ask it was registered for (the first, for several): the scope of its own asks.
    pub ask: AskId,
    pub pending: Pending<Out>,
    pub replies: Result<Replies, AskError>,
}

impl<Out> Continuations<Out> {
    /// Registers `pending` to run once every ask in `asks` (at least one) has its reply.
    /// Awaits the reply to `ask`, which no continuation may ever take.
    pub(crate) fn await_reply(&mut self, ask: AskId) {
        self.await_all = true;
        self.unawaited.insert(ask, ());
    }

    pub(crate) fn register(&mut self, asks: Vec<AskId>, pending: Pending<Out>) {
        for ask in &asks {
            self.unawaited.remove(ask);
        }
        let Some(&leader) = asks.first() else { return };
        self.count += 1;
        if asks.len() == 1 {
            self.waiting.insert(leader, Waiting::One(pending));
            return;
        }
        for (position, ask) in asks.iter().enumerate().skip(1) {
            self.waiting
                .insert(*ask, Waiting::Member { leader, position });
        }
        let missing = asks.len();
        let replies = (0..missing).map(|_| None).collect();
        self.waiting.insert(
            leader,
            Waiting::Group(Box::new(Group {
                pending,
                asks,
                replies,
                missing,
            })),
        );
    }

    /// Takes a reply; returns the continuation if it is now ready (all replies in, or one
    /// failed). A reply that nothing waits for (a duplicate, or after a failure) is ignored.
    pub(crate) fn deliver(&mut self, reply: ReplyMsg) -> Option<Ready<Out>> {
        if self.unawaited.remove(&reply.id).is_some() {
            return None;
        }
        let (leader, position) = match self.waiting.remove(&reply.id)? {
            Waiting::One(mut pending) => {
                self.count -= 1;
                adopt_envelope(&mut pending, reply.envelope);
                return Some(Ready {
                    ask: reply.id,
                    pending,
                    replies: reply.reply.map(Replies::One),
                });
            }
            Waiting::Group(group) => {
                // The leader's own reply: put the group back until it is complete.
                self.waiting.insert(reply.id, Waiting::Group(group));
                (reply.id, 0)
            }
            Waiting::Member { leader, position } => (leader, position),
        };
        let Some(Waiting::Group(group)) = self.waiting.get_mut(&leader) else {
            return None;
        };
        let value = match reply.reply {
            Ok(value) => value,
            Err(error) => {
                let group = self.take_group(leader)?;
                if self.await_all {
                    // The continuation runs now; the group's other asks are still in flight,
                    // and the atom commits only once their repliers committed them.
                    for (i, ask) in group.asks.iter().enumerate() {
                        if i != position && group.replies.get(i).is_some_and(Option::is_none) {
                            self.unawaited.insert(*ask, ());
                        }
                    }
                }
                return Some(Ready {
                    ask: leader,
                    pending: group.pending,
                    replies: Err(error),
                });
            }
        };
        adopt_envelope(&mut group.pending, reply.envelope);
        if let Some(slot) = group.replies.get_mut(position)
            && slot.is_none()
        {
            *slot = Some(value);
            group.missing -= 1;
        }
        if group.missing > 0 {
            return None;
        }
        let group = self.take_group(leader)?;
        let replies = group.replies.into_iter().flatten().collect();
        Some(Ready {
            ask: leader,
            pending: group.pending,
            replies: Ok(Replies::Many(replies)),
        })
    }

    /// Removes a group and the entries of its other asks.
    fn take_group(&mut self, leader: AskId) -> Option<Group<Out>> {
        let Some(Waiting::Group(group)) = self.waiting.remove(&leader) else {
            return None;
        };
        for ask in group.asks.iter().skip(1) {
            self.waiting.remove(ask);
        }
        self.count -= 1;
        Some(*group)
    }

    /// Number of continuations still waiting, and of asks whose replies are awaited without
    /// one.
    pub(crate) fn len(&self) -> usize {
        self.count + self.unawaited.len()
    }
}

/// Data keeps its subject: a reply about a person makes what follows personal.
fn adopt_envelope<Out>(pending: &mut Pending<Out>, envelope: Option<Arc<Envelope>>) {
    if pending.envelope.is_none() {
        pending.envelope = envelope;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path::Path;
    use crate::portal::Origin;

    fn reply(seq: u32, value: Result<i64, AskError>) -> ReplyMsg {
        ReplyMsg {
            id: AskId::numbered(seq),
            to: Origin {
                workflow: Path::placeholder("/a/workflows/w"),
                partition: 0,
                task: 1,
            },
            reply: value.map(|v| Box::new(v) as Box<dyn Any + Send>),
            envelope: None,
        }
    }

    fn pending() -> Pending<i64> {
        Pending {
            key: None,
            envelope: None,
            body: Box::new(|_, _| Ok(())),
        }
    }

    fn values(r: Result<Replies, AskError>) -> Result<Vec<i64>, AskError> {
        r.map(|r| match r {
            Replies::One(v) => vec![*v.downcast::<i64>().unwrap_or_default()],
            Replies::Many(vs) => vs
                .into_iter()
                .map(|v| *v.downcast::<i64>().unwrap_or_default())
                .collect(),
        })
    }

    #[test]
    fn a_single_reply_readies_its_continuation_once() {
        let mut c = Continuations::default();
        c.register(vec![AskId::numbered(0)], pending());
        assert_eq!(c.len(), 1);
        let ready = c.deliver(reply(0, Ok(5))).map(|r| values(r.replies));
        assert_eq!(ready, Some(Ok(vec![5])));
        assert_eq!(c.len(), 0);
        assert!(
            c.deliver(reply(0, Ok(5))).is_none(),
            "a duplicate reply is ignored"
        );
    }

    #[test]
    fn a_group_is_ready_when_all_replies_are_in_whatever_their_order() {
        for order in [[0u32, 1, 2], [2, 1, 0], [1, 0, 2], [2, 0, 1]] {
            let mut c = Continuations::default();
            c.register(
                vec![AskId::numbered(0), AskId::numbered(1), AskId::numbered(2)],
                pending(),
            );
            let mut ready = None;
            for (i, seq) in order.iter().enumerate() {
                let r = c.deliver(reply(*seq, Ok(10 * i64::from(*seq))));
                assert_eq!(r.is_some(), i == 2, "order {order:?}");
                ready = r.or(ready);
            }
            assert_eq!(
                ready.map(|r| values(r.replies)),
                Some(Ok(vec![0, 10, 20])),
                "order {order:?}"
            );
            assert_eq!(c.len(), 0);
            assert!(c.waiting.is_empty());
        }
    }

    #[test]
    fn where_every_reply_is_awaited_a_failed_group_still_awaits_its_other_asks() {
        let mut c = Continuations::default();
        for seq in 0..3 {
            c.await_reply(AskId::numbered(seq));
        }
        c.register(
            vec![AskId::numbered(0), AskId::numbered(1), AskId::numbered(2)],
            pending(),
        );
        assert_eq!(c.len(), 1);
        assert!(c.deliver(reply(1, Ok(1))).is_none());
        let failed = AskError::ReplierFailed {
            portal: "/a/portals/p".into(),
        };
        assert!(c.deliver(reply(2, Err(failed))).is_some());
        assert_eq!(c.len(), 1, "ask 0 is still in flight");
        assert!(c.deliver(reply(0, Ok(0))).is_none());
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn a_failed_ask_ends_its_group_at_once_and_late_replies_are_ignored() {
        let mut c = Continuations::default();
        c.register(
            vec![AskId::numbered(0), AskId::numbered(1), AskId::numbered(2)],
            pending(),
        );
        assert!(c.deliver(reply(1, Ok(1))).is_none());
        let failed = AskError::ReplierFailed {
            portal: "/a/portals/p".into(),
        };
        let ready = c
            .deliver(reply(2, Err(failed.clone())))
            .map(|r| values(r.replies));
        assert_eq!(ready, Some(Err(failed)));
        assert!(c.deliver(reply(0, Ok(0))).is_none());
        assert_eq!(c.len(), 0);
        assert!(c.waiting.is_empty());
    }
}
