//! Portals: named request/reply services, and the messages that carry asks and replies.

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::data::{Data, Envelope, Key};
use crate::error::AskError;
use crate::path::Path;

/// The function from a request to its key, so that an ask reaches the replier's per-key state
/// (and, with partitions, the partition that owns the key).
pub(crate) type KeyFn<Req> = Arc<dyn Fn(&Req) -> Key + Send + Sync>;

/// A handle on a portal with request type `Req` and reply type `Rep`: defined with
/// [`AppBuilder::portal`](crate::AppBuilder::portal) or referred to by path with
/// [`AppBuilder::portal_ref`](crate::AppBuilder::portal_ref). Tasks ask through it with
/// [`Ctx::ask`](crate::Ctx::ask); it is cheap to clone and may be moved into task closures.
pub struct Portal<Req, Rep> {
    pub(crate) path: Path,
    pub(crate) key_fn: Option<KeyFn<Req>>,
    pub(crate) _types: PhantomData<fn(Req) -> Rep>,
}

impl<Req, Rep> Clone for Portal<Req, Rep> {
    fn clone(&self) -> Self {
        Portal {
            path: self.path.clone(),
            key_fn: self.key_fn.clone(),
            _types: PhantomData,
        }
    }
}

impl<Req: Data, Rep: Data> Portal<Req, Rep> {
    /// The portal's registry path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl<Req, Rep> fmt::Debug for Portal<Req, Rep> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Portal({})", self.path)
    }
}

/// The deterministic id of an ask: derived from the asking workflow, what it was processing
/// when it asked (the scope) and the ask's position there, never random, so a replayed atom
/// asks with the same ids whatever else interleaved with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AskId {
    /// Hash of the asking workflow's path.
    pub origin: u64,
    /// What the workflow was processing: a stream atom (its offset, below 2^63), or a request
    /// it answers or a reply it continues from ([`AskId::scope_of`] that ask's id, at or above
    /// 2^63).
    pub scope: u64,
    /// The asking partition of the workflow.
    pub partition: u32,
    /// The ask's position within its scope.
    pub seq: u32,
}

/// The bit that marks a scope derived from another ask (not an atom's offset).
const DERIVED: u64 = 1 << 63;

impl AskId {
    /// Ask `seq` of one fixed scope of one fixed asker, for tests.
    #[cfg(test)]
    pub(crate) fn numbered(seq: u32) -> AskId {
        AskId {
            origin: 1,
            scope: 2,
            partition: 0,
            seq,
        }
    }

    /// The scope of asks made while continuing from this ask's reply: a hash of the id, so
    /// that such asks get the same ids in every run.
    pub fn scope_of(&self) -> u64 {
        self.derive(0x636f_6e74)
    }

    /// The scope of asks made while answering this ask (by its replier): another hash of the
    /// id, apart from [`AskId::scope_of`], since an asker-replier may both answer and
    /// continue the same ask.
    pub fn answer_scope(&self) -> u64 {
        self.derive(0x616e_7377)
    }

    fn derive(&self, role: u64) -> u64 {
        let mut h = self.origin ^ self.scope.rotate_left(17) ^ role.rotate_left(43);
        h ^= (u64::from(self.partition) << 32) | u64::from(self.seq);
        h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (h ^ (h >> 31)) | DERIVED
    }

    /// The scope of asks made while processing stream atom `offset`.
    pub fn atom_scope(offset: u64) -> u64 {
        offset & !DERIVED
    }
}

impl fmt::Display for AskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:016x}/{:x}/{}/{}",
            self.origin, self.scope, self.partition, self.seq
        )
    }
}

/// Where an ask came from, so its reply can return: the workflow, its partition and its task.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Origin {
    pub workflow: Path,
    pub partition: u32,
    pub task: u32,
}

impl Origin {
    /// The origin of an ask that came from another process: its reply leaves the system
    /// through the callback given with the ask. `/peers` is never a workflow's path.
    pub(crate) fn external() -> Origin {
        Origin {
            workflow: Path::peers(),
            partition: 0,
            task: 0,
        }
    }

    /// Whether the ask came from another process.
    pub(crate) fn is_external(&self) -> bool {
        self.workflow.is_peers()
    }
}

/// A request on its way to a portal's replier.
pub(crate) struct AskMsg {
    pub id: AskId,
    pub portal: Path,
    pub from: Origin,
    pub request: Box<dyn Any + Send>,
    pub envelope: Option<Arc<Envelope>>,
}

/// A reply (or the reason there is none) on its way back to the asking task.
pub(crate) struct ReplyMsg {
    pub id: AskId,
    pub to: Origin,
    pub reply: Result<Box<dyn Any + Send>, AskError>,
    pub envelope: Option<Arc<Envelope>>,
}

impl ReplyMsg {
    /// The error reply for an ask that cannot be answered.
    pub(crate) fn failed(ask: AskMsg, error: AskError) -> ReplyMsg {
        ReplyMsg {
            id: ask.id,
            to: ask.from,
            reply: Err(error),
            envelope: ask.envelope,
        }
    }
}

/// The handle of an ask in flight, returned by [`Ctx::ask`](crate::Ctx::ask); give it to
/// [`Ctx::on_reply`](crate::Ctx::on_reply) or [`Ctx::on_replies`](crate::Ctx::on_replies) to run
/// code when the reply arrives.
#[must_use = "a reply handle does nothing unless given to on_reply or on_replies"]
pub struct ReplyHandle<Rep> {
    pub(crate) id: AskId,
    pub(crate) _rep: PhantomData<fn() -> Rep>,
}

impl<Rep> ReplyHandle<Rep> {
    /// The ask's id.
    pub fn id(&self) -> AskId {
        self.id
    }
}

/// The right to answer one request, given to a replier's ask handler; pass it to
/// [`Ctx::reply`](crate::Ctx::reply), now or from a continuation after asking further portals.
/// It is consumed by the reply, so a request is answered at most once.
#[must_use = "an unanswered request leaves its asker waiting"]
pub struct ReplyTo<Rep> {
    pub(crate) id: AskId,
    pub(crate) portal: Path,
    pub(crate) to: Origin,
    pub(crate) envelope: Option<Arc<Envelope>>,
    pub(crate) _rep: PhantomData<fn(Rep)>,
}

impl<Rep> ReplyTo<Rep> {
    /// The id of the ask being answered.
    pub fn ask_id(&self) -> AskId {
        self.id
    }
}

impl<Rep> fmt::Debug for ReplyTo<Rep> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReplyTo({} via {})", self.id, self.portal)
    }
}
