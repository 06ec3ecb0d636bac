//! `pods-sdk`: the Portals programming model for Pods, and the runtime that executes it.
//!
//! An **application** is built with [`AppBuilder`]: generators produce **atomic streams**
//! (sequences of atoms, each an ordered batch of events, then `Seal` or `Error`); **workflows**
//! consume one stream through a graph of tasks (`map`, `filter`, `flat_map`, `key_by`,
//! `processor`, `union`, `split`, …) and produce one; **sequencers** merge streams atom by atom
//! and close cycles; **splitters** route events to several streams; **portals** are named
//! request/reply services answered by a `replier` task and asked from any processor with
//! [`Ctx::ask`], whose reply a continuation handles ([`Ctx::on_reply`], [`Ctx::on_replies`]).
//! Every element has a registry path, and later apps refer to earlier apps' elements by it.
//! A portal path below `/peers` names a portal of another process: asks to it leave through a
//! [`Gateway`], and a system answers asks from other processes with `ask_inbound`.
//!
//! A workflow processes one whole atom at a time and commits it at once (state changes, output
//! atom, asks and replies) through the [`Storage`] trait: no observer sees half an atom.
//! Events may carry an [`Envelope`] naming their data subject and categories; the runtime
//! carries it through every task and portal, and applies a [`PolicyGate`] to every atom a
//! workflow consumes. Tasks keep state per key ([`PerKeyState`]), per task ([`PerTaskState`])
//! or per data subject ([`PerSubjectState`]); the runtime knows whose data each per-key and
//! per-subject value is, so a store can seal it under its subject's key, and it removes the
//! values of subjects the gate reports erased.
//!
//! Two runtimes run the same apps with the same results: [`DeterministicSystem`] (one thread,
//! a seed fixes the interleaving: for tests and the reference semantics) and
//! [`ThreadedSystem`] (units on a thread pool, partitioned workflows on several threads,
//! bounded streams: what a node runs).
//!
//! ```
//! use pods_sdk::{AppBuilder, DeterministicSystem, PerKeyState};
//!
//! let app = AppBuilder::new("shop");
//! let order = |item: &str, n: i64| (item.to_string(), n);
//! let orders = app.generator_from_atoms("orders", vec![vec![order("apple", 2), order("pear", 1)], vec![order("apple", 3)]]);
//! let stock = PerKeyState::<i64>::with_initial("stock", 10);
//! app.workflow("reserve")
//!     .source(&orders)
//!     .key_by(|(item, _)| item.clone())
//!     .processor(move |ctx, (item, n): (String, i64)| {
//!         let left = stock.get(ctx) - n;
//!         stock.set(ctx, left);
//!         ctx.emit(format!("{item}: {left} left"));
//!     })
//!     .sink();
//!
//! let mut system = DeterministicSystem::new(42);
//! system.launch(app.build()?)?;
//! let out = system.subscribe::<String>("/shop/workflows/reserve/stream")?;
//! system.run_until_quiescent();
//! assert_eq!(out.values(), vec![vec!["apple: 8 left", "pear: 9 left"], vec!["apple: 5 left"]]);
//! # Ok::<(), pods_sdk::Error>(())
//! ```
#![warn(missing_docs)]

mod ask_map;
mod batch;
mod builder;
mod data;
mod error;
mod gate;
mod ops;
mod path;
mod portal;
mod remote;
mod runtime;
mod storage;
mod task;

pub use builder::{App, AppBuilder, Flow, Sequencer, Splitter, StreamRef, WorkflowBuilder};
pub use data::{Data, Envelope, Event, Key, StreamItem, SubjectId};
pub use error::{AskError, Error, Outcome, StorageError, TaskError};
pub use gate::{AllowAll, AtomGate, Decision, PolicyGate, Redaction};
pub use path::Path;
pub use portal::{AskId, Portal, ReplyHandle, ReplyTo};
pub use remote::{Gateway, InboundAsk, OutboundAsk};
pub use runtime::deterministic::DeterministicSystem;
pub use runtime::threaded::{PartitionThreads, ThreadedConfig, ThreadedSystem};
pub use runtime::units::{Feeder, Subscription};
pub use storage::{
    Answer, Attempt, Commit, InputPosition, MemoryStorage, Moved, OutputAtom, Recovery, StateName,
    StateValue, StateWrite, Storage, ValueOwner, VolatileStorage, consumer_id,
};
pub use task::ctx::Ctx;
pub use task::state::{PerKeyState, PerSubjectState, PerTaskState};
