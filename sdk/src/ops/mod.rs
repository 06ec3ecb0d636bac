//! Operators on flows, one per file: each adds a method to [`Flow`](crate::Flow) and holds the
//! task that runs it.

mod filter;
mod flat_map;
mod key_by;
mod map;
mod processor;
mod replier;
mod union;
