//! Protocols as pure state machines: configuration, messages, the CBOR codec and the secure
//! sum.

pub mod codec;
mod config;
mod engine;
mod message;
mod sum;

pub use config::{MAX_LEN, MAX_PARTICIPANTS, Mode, Receivers, Release, SumConfig};
pub use engine::SumOutput;
pub use message::{Header, Outgoing, SumBody, SumMessage};
pub use sum::SecureSum;
