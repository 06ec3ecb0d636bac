//! Nodes on 127.0.0.1 talking over real libp2p connections: remote asks between two and three
//! nodes, access control, and bad input from the network. Each node runs in this process on
//! its own thread and tokio runtime, with its own data dir; every test runs under a watchdog.

mod bad_peers;
mod crashes;
mod remote_asks;
mod streams;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pods_node::{Catalog, Export, NodeConfig, Peer, Settings, Started};
use pods_sdk::{AppBuilder, AskError, Ctx, Data, PerKeyState, StreamItem, Subscription};

/// Fails the test (aborting the process) if it runs longer than `secs`.
pub fn watchdog(name: &'static str, secs: u64) -> mpsc::Sender<()> {
    let (tx, rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(Duration::from_secs(secs)) {
            eprintln!("test {name} hung for {secs} s");
            std::process::abort();
        }
    });
    tx
}

/// A port free now on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A node made for a test: its dir, PeerId and address, before it starts.
pub struct Planned {
    pub dir: tempfile::TempDir,
    pub name: String,
    pub peer_id: String,
    pub address: String,
}

impl Planned {
    pub fn new(name: &str) -> Planned {
        let dir = tempfile::tempdir().unwrap();
        let peer_id = pods_node::init(dir.path(), name).unwrap().to_string();
        let address = format!("/ip4/127.0.0.1/tcp/{}", free_port());
        Planned {
            dir,
            name: name.to_owned(),
            peer_id,
            address,
        }
    }

    /// This node as a peer of another, which knows it by its own name.
    pub fn as_peer(&self) -> Peer {
        self.named(&self.name)
    }

    /// This node as a peer of another, which knows it as `name`.
    pub fn named(&self, name: &str) -> Peer {
        Peer {
            name: name.to_owned(),
            peer_id: self.peer_id.clone(),
            address: self.address.clone(),
        }
    }

    /// Writes its pods.toml: its address, `apps`, `peers`, and `exports` (path, allowed).
    pub fn configure(&self, apps: &[&str], peers: &[Peer], exports: &[(&str, Vec<String>)]) {
        let mut s = Settings::load(self.dir.path()).unwrap();
        s.listen = vec![self.address.clone()];
        s.apps = apps.iter().map(|a| (*a).to_owned()).collect();
        s.peers = peers.to_vec();
        s.exports = exports
            .iter()
            .map(|(path, allow)| Export {
                path: (*path).to_owned(),
                allow: allow.clone(),
            })
            .collect();
        s.save(self.dir.path()).unwrap();
    }
}

/// A running node.
pub struct Running {
    pub started: Started,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<(), pods_node::NodeError>>>,
}

impl Running {
    pub fn start(dir: &Path, catalog: fn() -> Catalog) -> Running {
        let dir: PathBuf = dir.to_path_buf();
        let (started_tx, started_rx) = mpsc::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            let catalog = catalog();
            let tx = started_tx.clone();
            rt.block_on(pods_node::run(
                &dir,
                &catalog,
                NodeConfig::default(),
                move |s| {
                    let _ = tx.send(s.clone());
                },
                async move {
                    let _ = stop_rx.await;
                },
            ))
        });
        let started = match started_rx.recv_timeout(Duration::from_secs(20)) {
            Ok(s) => s,
            Err(_) => panic!(
                "the node did not start: {:?}",
                thread.join().map(|r| r.err())
            ),
        };
        Running {
            started,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Stops the node and waits for it.
    pub fn stop(mut self) {
        self.shut();
    }

    fn shut(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join()
                .expect("node thread")
                .expect("node stopped cleanly");
        }
    }

    pub fn subscribe<T: Data>(&self, path: &str) -> Subscription<T> {
        self.started.node.subscribe(path).unwrap()
    }

    pub fn feed<T: Data>(&self, path: &str, atom: Vec<T>) {
        self.started
            .node
            .feeder::<T>(path)
            .unwrap()
            .push(atom)
            .unwrap();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.shut();
        }
    }
}

/// The values of `sub`'s atoms once `n` events have arrived (or the deadline passed).
pub fn collect<T: Data>(sub: &Subscription<T>, n: usize, within: Duration) -> Vec<Vec<T>> {
    let end = Instant::now() + within;
    loop {
        let atoms: Vec<Vec<T>> = sub
            .items()
            .into_iter()
            .filter_map(|i| match i {
                StreamItem::Atom(events) => Some(events.into_iter().map(|e| e.value).collect()),
                _ => None,
            })
            .collect();
        if atoms.iter().map(Vec::len).sum::<usize>() >= n || Instant::now() > end {
            return atoms;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `counter`: a portal `/counter/portals/count` whose replier counts each word it is asked
/// (per word) and replies with the count; its workflow emits `word=count` for every ask it
/// applies, so a test can see each application.
pub fn counter_catalog() -> Catalog {
    Catalog::new().with("counter", |_| {
        let app = AppBuilder::new("counter");
        let portal = app.portal_keyed::<String, u64, _>("count", |w| w.clone());
        let counts = PerKeyState::<u64>::with_initial("counts", 0);
        let none = app.generator_external::<String>("none");
        app.workflow("counts")
            .source(&none)
            .replier_with(
                &portal,
                |ctx: &mut Ctx<'_, String>, w: String| ctx.emit(w),
                move |ctx, word: String, to| {
                    let n = counts.get(ctx) + 1;
                    counts.set(ctx, n);
                    ctx.emit(format!("{word}={n}"));
                    ctx.reply(to, n);
                },
            )
            .sink();
        Ok(app.build()?)
    })
}

/// `asker:PEER`: a feeder `/asker/generators/words` whose words are asked, one ask each, at
/// `/peers/PEER/counter/portals/count`; the workflow emits `word=count` per reply, or
/// `word: error` when the ask failed.
pub fn asker_catalog() -> Catalog {
    Catalog::new().with("asker", |peer| {
        let app = AppBuilder::new("asker");
        let portal = app.portal_ref::<String, u64>(&format!("/peers/{peer}/counter/portals/count"));
        let words = app.generator_external::<String>("words");
        let asked = portal.clone();
        app.workflow("ask")
            .source(&words)
            .asker(&portal, move |ctx: &mut Ctx<'_, String>, w: String| {
                let h = ctx.ask(&asked, w.clone());
                ctx.on_reply(h, move |ctx, r: Result<u64, AskError>| match r {
                    Ok(n) => ctx.emit(format!("{w}={n}")),
                    Err(e) => ctx.emit(format!("{w}: {}", kind(&e))),
                });
            })
            .sink();
        Ok(app.build()?)
    })
}

/// A short, stable name of an ask error, for exact assertions.
pub fn kind(e: &AskError) -> &'static str {
    match e {
        AskError::UnknownPortal { .. } => "unknown portal",
        AskError::ReplierFailed { .. } => "replier failed",
        AskError::Denied { .. } => "denied",
        AskError::WrongRequestType { .. } => "wrong request type",
        AskError::Timeout { .. } => "timeout",
        _ => "other",
    }
}

pub fn words(ws: &[&str]) -> Vec<String> {
    ws.iter().map(|w| (*w).to_owned()).collect()
}
