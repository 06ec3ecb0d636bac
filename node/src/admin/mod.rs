//! The admin API: how the CLI (and a browser) talk to a running node.

pub mod api;
pub mod client;
pub mod server;
