//! `Node`: the library entry point. Opens a data dir (the SQLite store), runs apps on the
//! threaded runtime with durable state, and resumes every app it is given again from what it
//! committed before a stop or a crash.

use std::path::{Path, PathBuf};
use std::time::Instant;

use pods_sdk::{App, Data, Feeder, Subscription, ThreadedConfig, ThreadedSystem};

use crate::error::NodeError;
use crate::store::{Activity, SqliteStore, StoreOptions};

/// How to run a node.
#[derive(Clone, Debug, Default)]
pub struct NodeConfig {
    /// The store's options (durability of commits, size limit, compaction).
    pub store: StoreOptions,
    /// The runtime's options (worker threads, stream bounds).
    pub runtime: ThreadedConfig,
}

/// A Pods node: durable state in a data dir, apps on every core.
///
/// Launch the same apps after a restart and each workflow resumes from its last committed
/// atom: its state, and its position on a replayable generator (what is not durable yet is
/// listed in ARCHITECTURE.md).
pub struct Node {
    system: ThreadedSystem<SqliteStore>,
    dir: PathBuf,
    activity: Activity,
}

impl Node {
    /// Opens the node's data dir (created if absent). A damaged, foreign or newer database is
    /// refused with a typed error; nothing is ever started empty over existing data.
    pub fn open(dir: impl AsRef<Path>, config: NodeConfig) -> Result<Node, NodeError> {
        if config.store.answers_kept <= config.runtime.ask_deadline {
            return Err(NodeError::Config(format!(
                "replies are kept for {:?}, not longer than the ask deadline of {:?}: an ask \
                 retried within its deadline could be applied twice; keep them longer",
                config.store.answers_kept, config.runtime.ask_deadline
            )));
        }
        let dir = dir.as_ref().to_path_buf();
        let store = SqliteStore::open(&dir, config.store)?;
        let activity = store.activity();
        let system = ThreadedSystem::with_storage(config.runtime, store)?;
        tracing::info!(dir = %dir.display(), "node opened");
        Ok(Node {
            system,
            dir,
            activity,
        })
    }

    /// The data dir.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What each workflow committed so far (it follows later commits).
    pub fn activity(&self) -> &Activity {
        &self.activity
    }

    /// Launches `app`, resuming each of its workflows from what it committed in an earlier run.
    pub fn launch(&self, app: App) -> Result<(), NodeError> {
        let name = app.path().to_string();
        let started = Instant::now();
        self.system.launch(app)?;
        tracing::info!(app = %name, millis = started.elapsed().as_millis(), "app launched (recovery included)");
        Ok(())
    }

    /// Runs continuously until [`stop`](Node::stop).
    pub fn start(&self) {
        self.system.start();
    }

    /// Runs until nothing can progress; returns the steps taken.
    pub fn run_until_quiescent(&self) -> u64 {
        self.system.run_until_quiescent()
    }

    /// Stops: steps in flight finish and commit, no other begins, every thread is joined.
    pub fn stop(&self) {
        self.system.stop();
    }

    /// Observes the stream at `path` from now on.
    pub fn subscribe<T: Data>(&self, path: &str) -> Result<Subscription<T>, NodeError> {
        Ok(self.system.subscribe(path)?)
    }

    /// The feeder of the external generator at `path`.
    pub fn feeder<T: Data>(&self, path: &str) -> Result<Feeder<T>, NodeError> {
        Ok(self.system.feeder(path)?)
    }

    /// The runtime, for everything else.
    pub fn system(&self) -> &ThreadedSystem<SqliteStore> {
        &self.system
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_dir_that_is_a_file_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        let err = Node::open(&file, NodeConfig::default())
            .err()
            .expect("refused");
        assert!(matches!(err, NodeError::DataDir { .. }), "{err}");
        assert!(err.to_string().contains("not-a-dir"), "{err}");
    }

    #[test]
    fn replies_kept_no_longer_than_the_ask_deadline_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = NodeConfig::default();
        config.store.answers_kept = config.runtime.ask_deadline;
        let err = Node::open(dir.path(), config).err().expect("refused");
        assert!(matches!(err, NodeError::Config(_)), "{err}");
        assert!(
            !dir.path().join(crate::DATABASE).exists(),
            "nothing written"
        );
    }

    #[test]
    fn a_damaged_database_keeps_the_node_from_starting() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(crate::DATABASE), vec![7u8; 8192]).unwrap();
        let err = Node::open(dir.path(), NodeConfig::default())
            .err()
            .expect("refused");
        assert!(matches!(err, NodeError::Damaged { .. }), "{err}");
    }
}
