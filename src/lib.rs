//! Pods: a privacy-first, peer-to-peer data service. This facade re-exports the crates and
//! holds the demo application that `pods demo` runs.
//!
//! ```
//! let lines = pods::demo::run(7)?;
//! assert!(lines.iter().any(|l| l.contains("alice")));
//! # Ok::<(), pods::sdk::Error>(())
//! ```
#![warn(missing_docs)]

pub mod apps;
pub mod demo;

pub use pods_mpc as mpc;
pub use pods_node as node;
pub use pods_policy as policy;
pub use pods_sdk as sdk;
