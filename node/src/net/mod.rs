//! Between nodes: the wire protocol, the state machines of asks sent and received, and the
//! libp2p shell that drives them.

mod egress;
mod erase;
mod filter;
pub mod inbox;
pub mod kept;
pub mod outbox;
pub mod pulls;
mod rectify;
pub mod requests;
pub mod shell;
mod streams;

pub(crate) use streams::reader_id;
pub mod wire;
