//! The admin API: how the CLI (and a browser) talk to a running node.

pub mod api;
pub mod client;
mod privacy;
pub mod server;
