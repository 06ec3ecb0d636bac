//! WAL checkpoints on a thread of the store's own. SQLite's automatic checkpoint runs inside
//! the commit that fills the WAL past 1,000 pages: that commit copies the pages into the
//! database file and waits for two fsyncs, on the workflow's thread. Here the store's
//! connection only counts the WAL's pages after each commit (its WAL hook, which replaces the
//! automatic checkpoint) and wakes this thread, whose own connection copies what the WAL holds
//! (a passive checkpoint: it never blocks a commit, nor is blocked by one). Commits meanwhile
//! append to the WAL, which SQLite starts over only once a checkpoint has copied all of it, so
//! under steady commits it grows; past [`LIMIT_PAGES`] the committing connection checkpoints
//! itself, as SQLite would have, finding most pages copied already.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use rusqlite::{Connection, OpenFlags};

use crate::error::NodeError;

/// WAL pages after which a commit wakes the checkpoint thread (SQLite's own default for its
/// automatic checkpoint).
const WAKE_PAGES: i32 = 1_000;

/// WAL pages after which the committing connection checkpoints itself (the WAL then holds
/// about 32 MB at 4 KiB pages).
const LIMIT_PAGES: i32 = 8_000;

/// What the store and its checkpoint thread share.
#[derive(Default)]
struct Signal {
    state: Mutex<Flags>,
    wake: Condvar,
}

/// What the thread is asked to do.
#[derive(Default)]
struct Flags {
    /// A checkpoint (at most one is pending).
    due: bool,
    /// Return (the store is closing).
    stopping: bool,
}

/// The checkpoint thread of one store; stopped and joined when dropped.
pub(super) struct Checkpointer {
    signal: Arc<Signal>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Opens a connection of its own to `file` (with the store's `synchronous` level, which
    /// sets the checkpoint's fsyncs) and starts the thread; installs the WAL hook on `conn`,
    /// the store's connection.
    pub(super) fn start(
        file: &Path,
        synchronous: &str,
        conn: &mut Connection,
    ) -> Result<Checkpointer, NodeError> {
        let sql = |e| NodeError::sqlite(file, e);
        let own = Connection::open_with_flags(
            file,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sql)?;
        own.pragma_update(None, "synchronous", synchronous)
            .map_err(sql)?;
        let signal = Arc::new(Signal::default());
        let thread = {
            let (signal, path) = (signal.clone(), file.to_path_buf());
            std::thread::Builder::new()
                .name("pods-checkpoint".to_owned())
                .spawn(move || run(&own, &signal, &path))
                .map_err(|e| NodeError::DataDir {
                    path: file.to_path_buf(),
                    reason: format!("cannot start the checkpoint thread: {e}"),
                })?
        };
        let checkpointer = Checkpointer {
            signal,
            thread: Some(thread),
        };
        let (signal, file) = (checkpointer.signal.clone(), file.to_path_buf());
        conn.wal_hook(Some(move |wal: &mut rusqlite::hooks::Wal, pages: i32| {
            if pages >= LIMIT_PAGES {
                // The commit stands whatever happens here: an error is logged, not returned
                // (SQLite would report it as the commit's).
                if let Err(e) = wal.checkpoint() {
                    tracing::warn!(file = %file.display(), error = %e, "checkpoint failed");
                }
            } else if pages >= WAKE_PAGES {
                signal.nudge();
            }
            Ok(())
        }))
        .map_err(sql)?;
        Ok(checkpointer)
    }
}

impl Signal {
    /// Asks the thread for a checkpoint (at most one is pending).
    fn nudge(&self) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if !state.due {
            state.due = true;
            self.wake.notify_one();
        }
    }
}

/// The thread: a passive checkpoint each time it is asked, until the store stops.
fn run(conn: &Connection, signal: &Signal, file: &Path) {
    loop {
        {
            let mut state = signal.state.lock().unwrap_or_else(|p| p.into_inner());
            while !state.due && !state.stopping {
                state = signal.wake.wait(state).unwrap_or_else(|p| p.into_inner());
            }
            if state.stopping {
                return;
            }
            state.due = false;
        }
        let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
        });
        match done {
            Ok((pages, copied)) => tracing::trace!(pages, copied, "checkpoint"),
            Err(e) => tracing::warn!(file = %file.display(), error = %e, "checkpoint failed"),
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        {
            let mut state = self.signal.state.lock().unwrap_or_else(|p| p.into_inner());
            state.stopping = true;
            self.signal.wake.notify_one();
        }
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the checkpoint thread panicked");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use pods_sdk::{Key, Path, StateName, StateValue, StateWrite};

    use crate::store::tests::commit_step;
    use crate::store::{DATABASE, SqliteStore, StoreOptions, Synchronous};

    /// Commits `n` records of 1,000 fresh values of 16 characters each (about 28 KB, 8 pages
    /// of WAL).
    fn commit_records(store: &mut SqliteStore, n: u64) {
        let state = StateName {
            workflow: Path::parse("/app/workflows/wf").unwrap(),
            task: 1,
            name: Arc::from("count"),
            id: 7,
        };
        for step in 1..=n {
            let value = format!("{step:016}");
            let writes: Vec<StateWrite<'_>> = (0..1_000)
                .map(|k| StateWrite {
                    state: &state,
                    key: Some(Key(step * 1_000 + k)),
                    value: Some(&value as &dyn StateValue),
                    owner: None,
                })
                .collect();
            commit_step(store, (step, 1), Some(step), &writes, &[]).expect("commit");
        }
    }

    fn file_bytes(dir: &std::path::Path, name: &str) -> u64 {
        std::fs::metadata(dir.join(name)).map_or(0, |m| m.len())
    }

    /// A fresh store (never compacting) after 200 records, and its database file's size
    /// before them.
    fn after_200_records(synchronous: Synchronous) -> (tempfile::TempDir, SqliteStore, u64) {
        let dir = tempfile::tempdir().unwrap();
        let options = StoreOptions {
            synchronous,
            compact_every: 0,
            ..StoreOptions::default()
        };
        let mut store = SqliteStore::open(dir.path(), options).unwrap();
        let before = file_bytes(dir.path(), DATABASE);
        commit_records(&mut store, 200);
        (dir, store, before)
    }

    #[test]
    fn under_normal_the_thread_copies_the_wal_into_the_database_file() {
        // About 1,600 pages: past the wake-up, far below the limit where commits checkpoint.
        let (dir, store, before) = after_200_records(Synchronous::Normal);
        let wal = file_bytes(dir.path(), &format!("{DATABASE}-wal"));
        assert!(wal > 4 << 20, "the WAL holds the records ({wal} bytes)");
        // The commits returned; the copy happens on the thread (of the first 1,000 frames at
        // least: once it copied all the WAL held, SQLite may start the WAL over, and what the
        // rest of the commits wrote then stays below the wake-up). Those frames hold about
        // 700 distinct pages.
        let end = Instant::now() + Duration::from_secs(10);
        while file_bytes(dir.path(), DATABASE) < before + (2 << 20) {
            assert!(Instant::now() < end, "no checkpoint within 10 s");
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(store);
        let store = SqliteStore::open(dir.path(), StoreOptions::default()).unwrap();
        assert_eq!(store.recover(crate::store::tests::WF).unwrap().step, 200);
    }

    #[test]
    fn under_full_commits_checkpoint_as_sqlite_does() {
        let (dir, _store, before) = after_200_records(Synchronous::Full);
        // The commit that passed 1,000 pages copied them before it returned.
        assert!(file_bytes(dir.path(), DATABASE) > before + (3 << 20));
    }
}
