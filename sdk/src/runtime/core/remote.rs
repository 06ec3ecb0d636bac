//! The core's side of asks across processes, as a state machine without I/O: asks to remote
//! portals it sent (and where their replies go), asks from other processes it took (and the
//! callbacks their replies go to), and what the runtime carries out once it released the
//! system's lock ([`Flush`]): handing asks to the [`Gateway`], calling reply callbacks.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use crate::data::{Envelope, MixBuild};
use crate::error::AskError;
use crate::path::Path;
use crate::portal::{AskId, AskMsg, Origin, ReplyMsg};
use crate::remote::{Encoded, Gateway, OutboundAsk};

/// Where the reply to an ask from another process goes.
pub(crate) type Respond = Box<dyn FnOnce(Result<Vec<u8>, AskError>) + Send>;

/// A reply to an ask from another process (its encoding, or the error) and the callbacks
/// waiting for it.
type Answered = (Vec<Respond>, Result<Vec<u8>, AskError>);

/// An ask sent to a remote portal, waiting for its reply.
struct Sent {
    to: Origin,
    /// The remote portal's path, which errors from the far side are given.
    portal: Path,
    /// The request's envelope, which the reply carries (data keeps its subject).
    envelope: Option<Arc<Envelope>>,
}

/// Asks across processes in flight. Sent asks leave when answered or when their deadline
/// passes; taken asks when their replier answers or fails (their asker's deadline governs
/// them: they get none here), so both maps are bounded by the asks in flight.
#[derive(Default)]
pub(crate) struct Remote {
    gateway: Option<Arc<dyn Gateway>>,
    /// Asks sent to remote portals, by id.
    sent: HashMap<AskId, Sent, MixBuild>,
    /// Asks from other processes being answered here, by id: the callbacks waiting for the
    /// reply (more than one if the same id was asked again meanwhile).
    taken: HashMap<AskId, Vec<Respond>, MixBuild>,
    /// Asks to hand to the gateway once the lock is released.
    outbox: Vec<OutboundAsk>,
    /// Replies to hand to callbacks once the lock is released.
    answers: Vec<Answered>,
}

/// What the runtime does once it released the system's lock: hand the asks of a routing pass
/// to the gateway, call the callbacks of asks from other processes.
#[must_use = "a flush does nothing until run"]
pub(crate) struct Flush {
    send: Option<(Arc<dyn Gateway>, Vec<OutboundAsk>)>,
    answers: Vec<Answered>,
}

impl Flush {
    /// Whether there is nothing to carry out.
    pub(crate) fn is_empty(&self) -> bool {
        self.send.is_none() && self.answers.is_empty()
    }

    /// Hands the asks to the gateway (one call), then calls every callback. A panic there
    /// (host code) is logged; the system goes on.
    pub(crate) fn run(self) {
        if let Some((gateway, asks)) = self.send
            && catch_unwind(AssertUnwindSafe(|| gateway.send(asks))).is_err()
        {
            tracing::error!("the gateway panicked while taking asks; they time out");
        }
        for (callbacks, reply) in self.answers {
            for respond in callbacks {
                let reply = reply.clone();
                if catch_unwind(AssertUnwindSafe(move || respond(reply))).is_err() {
                    tracing::error!("a reply callback of an ask from another process panicked");
                }
            }
        }
    }
}

impl Remote {
    /// Sends asks to remote portals through `gateway` from now on.
    pub(crate) fn set_gateway(&mut self, gateway: Arc<dyn Gateway>) {
        self.gateway = Some(gateway);
    }

    /// Whether an ask sent to a remote portal waits for its reply.
    pub(crate) fn awaits_replies(&self) -> bool {
        !self.sent.is_empty()
    }

    /// Sends `asks` (to remote portals, their requests encoded) with `deadline`; returns the
    /// error replies of those that cannot leave (there is no gateway).
    pub(crate) fn send(&mut self, asks: Vec<AskMsg>, deadline: Option<Duration>) -> Vec<ReplyMsg> {
        let mut failed = Vec::new();
        for ask in asks {
            if self.gateway.is_none() {
                let portal = ask.portal.to_string();
                failed.push(ReplyMsg::failed(ask, AskError::UnknownPortal { portal }));
                continue;
            }
            let request = match ask.request.downcast::<Encoded>() {
                Ok(encoded) => encoded.0,
                Err(_) => {
                    // `Ctx::ask` encodes every request to a remote portal.
                    tracing::error!(ask = %ask.id, portal = %ask.portal, "a request to a remote portal is not encoded");
                    let portal = ask.portal.to_string();
                    failed.push(ReplyMsg {
                        id: ask.id,
                        to: ask.from,
                        reply: Err(AskError::WrongRequestType { portal }),
                        envelope: ask.envelope,
                    });
                    continue;
                }
            };
            self.outbox.push(OutboundAsk {
                id: ask.id,
                portal: ask.portal.clone(),
                request,
                envelope: ask.envelope.as_deref().cloned(),
                deadline: deadline.unwrap_or(Duration::MAX),
            });
            let sent = Sent {
                to: ask.from,
                portal: ask.portal,
                envelope: ask.envelope,
            };
            self.sent.insert(ask.id, sent);
        }
        failed
    }

    /// The reply from another process to sent ask `id`, to route to its asker; `None` if no
    /// ask waits for it (never sent, answered already, or timed out). An error names the
    /// portal as the asker named it.
    pub(crate) fn answer(
        &mut self,
        id: AskId,
        reply: Result<Vec<u8>, AskError>,
    ) -> Option<ReplyMsg> {
        let Some(sent) = self.sent.remove(&id) else {
            tracing::trace!(ask = %id, "a reply from another process that no ask waits for is dropped");
            return None;
        };
        Some(ReplyMsg {
            id,
            to: sent.to,
            reply: reply
                .map(|bytes| Box::new(Encoded(bytes)) as Box<dyn std::any::Any + Send>)
                .map_err(|e| e.asked_at(sent.portal.as_str())),
            envelope: sent.envelope,
        })
    }

    /// Forgets the sent asks among `expired` (their deadline passed: a reply is dropped).
    pub(crate) fn expired(&mut self, expired: &[ReplyMsg]) {
        if self.sent.is_empty() {
            return;
        }
        for reply in expired {
            self.sent.remove(&reply.id);
        }
    }

    /// Takes an ask from another process, whose reply goes to `respond`: `true` if it is new
    /// (route it to its replier), `false` if the same id is being answered already (`respond`
    /// gets the same reply; the replier does not answer it twice).
    pub(crate) fn take(&mut self, id: AskId, respond: Respond) -> bool {
        match self.taken.get_mut(&id) {
            Some(waiting) => {
                waiting.push(respond);
                false
            }
            None => {
                self.taken.insert(id, vec![respond]);
                true
            }
        }
    }

    /// Replies (or errors) to asks from other processes: their callbacks run at the next
    /// flush, with the reply's encoding.
    pub(crate) fn reply(&mut self, replies: Vec<ReplyMsg>) {
        for r in replies {
            let Some(callbacks) = self.taken.remove(&r.id) else {
                tracing::trace!(ask = %r.id, "a second reply to an ask from another process is dropped");
                continue;
            };
            let reply = r.reply.and_then(|value| match value.downcast::<Encoded>() {
                Ok(encoded) => Ok(encoded.0),
                Err(_) => {
                    // `Ctx::reply` encodes every reply to another process.
                    tracing::error!(ask = %r.id, "a reply to another process is not encoded");
                    Err(AskError::WrongReplyType {
                        ask: r.id.to_string(),
                    })
                }
            });
            self.answers.push((callbacks, reply));
        }
    }

    /// What to carry out once the lock is released (nothing, most of the time).
    pub(crate) fn flush(&mut self) -> Flush {
        let send = if self.outbox.is_empty() {
            None
        } else {
            let asks = std::mem::take(&mut self.outbox);
            self.gateway.clone().map(|g| (g, asks))
        };
        Flush {
            send,
            answers: std::mem::take(&mut self.answers),
        }
    }
}

/// An ask from another process as the core routes it: its request encoded, its origin
/// [`Origin::external`].
pub(crate) fn inbound_ask(
    portal: Path,
    id: AskId,
    request: Vec<u8>,
    envelope: Option<Envelope>,
) -> AskMsg {
    AskMsg {
        id,
        portal,
        from: Origin::external(),
        request: Box::new(Encoded(request)),
        envelope: envelope.map(Arc::new),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    type Reply = Result<Vec<u8>, AskError>;

    fn ask(seq: u32) -> AskMsg {
        AskMsg {
            id: AskId::numbered(seq),
            portal: Path::placeholder("/peers/bob/a/portals/p"),
            from: Origin {
                workflow: Path::placeholder("/a/workflows/w"),
                partition: 1,
                task: 2,
            },
            request: Box::new(Encoded(vec![seq as u8])),
            envelope: None,
        }
    }

    #[derive(Default)]
    struct Keep(Mutex<Vec<Vec<OutboundAsk>>>);
    impl Gateway for Keep {
        fn send(&self, asks: Vec<OutboundAsk>) {
            self.0.lock().map(|mut v| v.push(asks)).unwrap_or_default();
        }
    }

    #[test]
    fn without_a_gateway_a_remote_ask_fails_at_once() {
        let mut remote = Remote::default();
        let failed = remote.send(vec![ask(0)], None);
        assert_eq!(failed.len(), 1);
        assert!(matches!(
            &failed[0].reply,
            Err(AskError::UnknownPortal { portal }) if portal == "/peers/bob/a/portals/p"
        ));
        assert!(!remote.awaits_replies());
    }

    #[test]
    fn sent_asks_leave_in_one_call_and_their_replies_return_once() {
        let mut remote = Remote::default();
        let gateway = Arc::new(Keep::default());
        remote.set_gateway(gateway.clone());
        let failed = remote.send(vec![ask(0), ask(1)], Some(Duration::from_secs(2)));
        assert!(failed.is_empty() && remote.awaits_replies());
        remote.flush().run();
        let calls = gateway.0.lock().map(|v| v.clone()).unwrap_or_default();
        assert_eq!(calls.len(), 1, "one send per routing pass");
        let ids: Vec<_> = calls[0].iter().map(|a| (a.id, a.request.clone())).collect();
        assert_eq!(
            ids,
            vec![(AskId::numbered(0), vec![0]), (AskId::numbered(1), vec![1])]
        );
        assert_eq!(calls[0][0].deadline, Duration::from_secs(2));

        let reply = remote.answer(AskId::numbered(1), Ok(vec![7]));
        let Some(reply) = reply else {
            panic!("ask 1 waits for its reply")
        };
        assert_eq!((reply.to.partition, reply.to.task), (1, 2));
        let bytes = reply.reply.ok().and_then(|v| v.downcast::<Encoded>().ok());
        assert_eq!(bytes.map(|e| e.0), Some(vec![7]));
        assert!(
            remote.answer(AskId::numbered(1), Ok(vec![7])).is_none(),
            "once"
        );

        // Ask 0 times out: its origin is forgotten, and a late reply is dropped.
        remote.expired(&[ReplyMsg::failed(
            ask(0),
            AskError::ReplierFailed {
                portal: String::new(),
            },
        )]);
        assert!(!remote.awaits_replies());
        assert!(remote.answer(AskId::numbered(0), Ok(vec![0])).is_none());
        assert!(remote.flush().send.is_none(), "nothing more to send");
    }

    #[test]
    fn an_ask_taken_twice_is_answered_once_to_both_callbacks() {
        let mut remote = Remote::default();
        let got: Arc<Mutex<Vec<(u8, Reply)>>> = Arc::default();
        let respond = |tag: u8| -> Respond {
            let got = got.clone();
            Box::new(move |r| got.lock().map(|mut v| v.push((tag, r))).unwrap_or_default())
        };
        assert!(remote.take(AskId::numbered(0), respond(1)));
        assert!(
            !remote.take(AskId::numbered(0), respond(2)),
            "attached, not routed again"
        );
        let reply = ReplyMsg {
            id: AskId::numbered(0),
            to: Origin::external(),
            reply: Ok(Box::new(Encoded(vec![4]))),
            envelope: None,
        };
        remote.reply(vec![reply]);
        remote.flush().run();
        let got = got.lock().map(|v| v.clone()).unwrap_or_default();
        assert_eq!(got, vec![(1, Ok(vec![4])), (2, Ok(vec![4]))]);
        assert!(
            remote.take(AskId::numbered(0), respond(3)),
            "answered: a new ask again"
        );
    }
}
