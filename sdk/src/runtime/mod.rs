//! Runtimes: the workflow step engine, streams, units, and the systems that schedule them.

pub(crate) mod core;
pub(crate) mod deterministic;
pub(crate) mod engine;
pub(crate) mod registry;
pub(crate) mod stream;
pub(crate) mod threaded;
pub(crate) mod units;
