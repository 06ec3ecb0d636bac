//! `pods-node`: the Pods node as a library. [`Node`] opens a data dir and runs apps on the
//! threaded runtime with durable state, resuming them after a stop or a crash (even `kill -9`)
//! with nothing lost and nothing applied twice. Its store is [`SqliteStore`], the sdk's
//! [`Storage`](pods_sdk::Storage) on SQLite (WAL): one changelog record per commit (an atom, or
//! atoms taken together) in one transaction, with the atoms produced, the replies given (so a
//! replayed ask gets the same reply) and the moves of sequencers and splitters; compaction into
//! snapshots; quarantine of atoms that crash the process on every launch. A damaged, foreign
//! or newer database is refused with a typed [`NodeError`] naming the file, and never
//! replaced.
//!
//! ```
//! use pods_node::{SqliteStore, StoreOptions};
//! use pods_sdk::{AppBuilder, DeterministicSystem, Path, PerKeyState};
//!
//! let dir = tempfile::tempdir()?;
//! let app = AppBuilder::new("shop");
//! let orders = app.generator_from_atoms("orders", vec![vec![("apple".to_string(), 2i64)]]);
//! let stock = PerKeyState::<i64>::with_initial("stock", 10);
//! app.workflow("reserve")
//!     .source(&orders)
//!     .key_by(|(item, _)| item.clone())
//!     .processor(move |ctx, (_, n): (String, i64)| {
//!         let left = stock.get(ctx) - n;
//!         stock.set(ctx, left);
//!         ctx.emit(left);
//!     })
//!     .sink();
//! let store = SqliteStore::open(dir.path(), StoreOptions::default())?;
//! let mut system = DeterministicSystem::with_storage(1, store);
//! system.launch(app.build()?)?;
//! system.run_until_quiescent();
//! drop(system);
//!
//! // Reopened: the committed value and input position are there.
//! let store = SqliteStore::open(dir.path(), StoreOptions::default())?;
//! let recovered = store.recover(Path::parse("/shop/workflows/reserve")?.stable_id())?;
//! assert_eq!(recovered.values.len(), 1);
//! assert_eq!(recovered.input.map(|p| p.next), Some(1));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The daemon around it ([`run`], [`run_until_signal`]) is what `pods node start` runs: it
//! reads `pods.toml` ([`Settings`]) and the node's ed25519 identity, launches the apps a
//! [`Catalog`] builds, and talks to peers over libp2p ([`net`]): asks to portals of other
//! nodes (`/peers/<name>/...`), exactly once across crashes of either side, and streams
//! mirrored from other nodes by offset; its [`admin`] API (HTTP + JSON on 127.0.0.1, behind a
//! bearer token) serves the CLI.
//!
//! ```
//! let dir = tempfile::tempdir()?;
//! let peer_id = pods_node::init(dir.path(), "acme")?;
//! let mut settings = pods_node::Settings::load(dir.path())?;
//! assert_eq!(settings.name, "acme");
//! settings.apps.push("inventory".into());
//! settings.save(dir.path())?;
//! assert_eq!(pods_node::peer_id_of(&pods_node::load_identity(dir.path())?), peer_id);
//! assert!(pods_node::init(dir.path(), "acme").is_err(), "an identity is never replaced");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

pub mod admin;
pub mod audit;
mod config;
mod daemon;
mod error;
mod identity;
pub mod net;
mod node;
pub mod privacy;
mod store;

pub use audit::AuditLog;
pub use config::{
    CONFIG_FILE, Export, Import, Limits, Peer, SettingError, Settings, StoreSettings,
};
pub use daemon::{AppFactory, Catalog, Started, init, run, run_until_signal};
pub use error::NodeError;
pub use identity::{IDENTITY_FILE, create_identity, load_identity, peer_id_of};
pub use node::{Node, NodeConfig};
pub use store::{
    Activity, Correction, DATABASE, ErasedKey, Eraser, KeptReplies, Pulled, Quarantined, Scrub,
    SqliteStore, StoreOptions, StreamReader, Synchronous, WorkflowActivity, failpoint,
};
