//! Building applications: the typed builder, and the checks made when an app is built.

mod app;
mod flow;
pub(crate) mod spec;
mod streams;

pub use app::{App, AppBuilder};
pub use flow::{Flow, WorkflowBuilder};
pub use streams::{Sequencer, Splitter, StreamRef};
