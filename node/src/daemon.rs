//! The daemon: a node with its network and admin API, run until a signal. `pods init` and
//! `pods node start` are thin wrappers around [`init`] and [`run`].

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use libp2p::PeerId;
use pods_sdk::App;
use tokio::sync::{mpsc, watch};

use crate::admin::api::{ADMIN_FILE, AdminFile};
use crate::admin::server::{AdminState, router};
use crate::audit::AuditLog;
use crate::config::{CONFIG_FILE, Settings};
use crate::error::NodeError;
use crate::identity::{create_identity, load_identity, peer_id_of};
use crate::net::shell::{NetGateway, Shell};
use crate::node::{Node, NodeConfig};
use crate::privacy::Privacy;
use crate::store::Correction;
use pods_policy::SystemClock;

/// Builds an app the daemon can host, from the argument `pods.toml` gives it (the text after
/// `:` in `apps = ["name:argument"]`; empty when there is none).
pub type AppFactory = Box<dyn Fn(&str) -> Result<App, NodeError> + Send + Sync>;

/// The apps a daemon can host, by the name `pods.toml` lists them under.
#[derive(Default)]
pub struct Catalog(BTreeMap<String, AppFactory>);

impl Catalog {
    /// An empty catalog.
    pub fn new() -> Catalog {
        Catalog::default()
    }

    /// Adds the app `name`, built by `factory` when a node lists it.
    pub fn with(
        mut self,
        name: &str,
        factory: impl Fn(&str) -> Result<App, NodeError> + Send + Sync + 'static,
    ) -> Catalog {
        self.0.insert(name.to_owned(), Box::new(factory));
        self
    }

    /// The names of the apps it holds.
    pub fn names(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// Creates a node in `dir`: its identity (mode 0600), `pods.toml` and its audit log (with a
/// `node.init` entry). Refuses a directory that has either already. Returns the new PeerId.
pub fn init(dir: &Path, name: &str) -> Result<PeerId, NodeError> {
    let settings = Settings::new(name);
    if let Some(p) = settings.problems().first() {
        return Err(NodeError::Config(p.to_string()));
    }
    {
        use std::os::unix::fs::DirBuilderExt;
        // Only the node's user reads its data (state, kept replies, its key).
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| NodeError::DataDir {
                path: dir.to_path_buf(),
                reason: e.to_string(),
            })?;
    }
    let config = dir.join(CONFIG_FILE);
    if config.exists() {
        return Err(NodeError::Config(format!(
            "{} exists already: this data dir has a node; use it, or choose another directory",
            config.display()
        )));
    }
    let key = create_identity(dir)?;
    settings.save(dir)?;
    let peer_id = peer_id_of(&key);
    AuditLog::open(dir, &key)?.record(
        "admin",
        "node.init",
        serde_json::json!({"name": name, "peer_id": peer_id.to_string()}),
    )?;
    Ok(peer_id)
}

/// What a started node reports, once it listens.
#[derive(Clone)]
pub struct Started {
    /// Its PeerId.
    pub peer_id: PeerId,
    /// Where it listens for peers.
    pub listen: Vec<String>,
    /// The admin API's address.
    pub admin: String,
    /// The apps it runs.
    pub apps: Vec<String>,
    /// The node itself: its streams, feeders and runtime.
    pub node: Arc<Node>,
}

/// `config` with what `pods.toml` sets of it: how the store commits (`[store] synchronous`,
/// when the file says).
fn with_settings(mut config: NodeConfig, settings: &Settings) -> NodeConfig {
    if let Some(synchronous) = settings.store.synchronous {
        config.store.synchronous = synchronous;
    }
    config
}

/// Runs the node in `dir` until `shutdown` completes: opens the store, launches the apps
/// `pods.toml` lists (resuming them), listens for peers, serves the admin API and writes
/// `admin.json`; then finishes the atoms in flight, commits, and stops everything. The store
/// commits as `pods.toml` says (`[store] synchronous`) when it says, else as `config.store` does.
pub async fn run(
    dir: &Path,
    catalog: &Catalog,
    config: NodeConfig,
    on_started: impl FnOnce(&Started),
    shutdown: impl Future<Output = ()>,
) -> Result<(), NodeError> {
    let settings = Settings::load(dir)?;
    let config = with_settings(config, &settings);
    tracing::info!(synchronous = ?config.store.synchronous, "store commits");
    let key = load_identity(dir)?;
    let peer_id = peer_id_of(&key);
    let audit = AuditLog::open(dir, &key)?;
    let mut apps = Vec::new();
    for entry in &settings.apps {
        let (name, argument) = entry.split_once(':').unwrap_or((entry, ""));
        let Some(factory) = catalog.0.get(name) else {
            return Err(NodeError::Config(format!(
                "{}: app {name:?} is not one this binary hosts; it hosts {:?}",
                dir.join(CONFIG_FILE).display(),
                catalog.names()
            )));
        };
        apps.push((entry.clone(), factory(argument)?));
    }
    let node = Arc::new(Node::open(dir, config)?);
    // Every atom of every app passes the policy gate, from the first.
    let privacy = Privacy::open(dir, Arc::new(SystemClock))?;
    node.system().set_gate(privacy.gate());
    privacy.set_feed(Arc::new(NodeFeeds(Arc::clone(&node))));
    let eraser = node.system().storage().eraser();
    let rectifier = eraser.clone();
    privacy.set_key_eraser(Arc::new(move |subject: &str| {
        eraser.erase_subject_for_good(subject).map(|k| k.existed)
    }));
    privacy.set_rectifier(Arc::new(
        move |subject: &str, changes: &[Correction], streams: Option<&[String]>| {
            rectifier.rectify_subject(subject, changes, streams)
        },
    ));
    resume_erasures(&privacy, &peer_id.to_string(), &audit)?;
    let (tx, rx) = mpsc::unbounded_channel();
    node.system().set_gateway(Arc::new(NetGateway(tx.clone())));
    let mut hosted = Vec::new();
    for (name, app) in apps {
        let workflows = app.workflows().iter().map(ToString::to_string).collect();
        node.launch(app)?;
        hosted.push((name, workflows));
    }
    // An import a crash cut between storing its records and feeding them is fed now, before
    // the admin API can take another.
    for import in privacy.resume_feeds()? {
        audit.record(
            "node",
            "data.import",
            serde_json::json!({"dataset": import.dataset, "records": import.records, "resumed": true, "fed_at_start": import.fed}),
        )?;
    }
    let exported = export_streams(&node, &settings, dir)?;
    let admin_addr = settings.admin.clone();
    let settings = Arc::new(RwLock::new(settings));
    let mut shell = Shell::new(
        key,
        Arc::clone(&settings),
        Arc::clone(&node),
        exported,
        tx.clone(),
        privacy.clone(),
        audit.clone(),
    )?;
    let listen = shell.listening().await?;
    audit.record(
        "node",
        "node.start",
        serde_json::json!({
            "peer_id": peer_id.to_string(),
            "listen": listen.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "apps": hosted.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        }),
    )?;
    node.start();

    let listener = tokio::net::TcpListener::bind(&admin_addr)
        .await
        .map_err(|e| NodeError::Admin(format!("cannot listen on {admin_addr}: {e}")))?;
    let admin = listener
        .local_addr()
        .map_err(|e| NodeError::Admin(e.to_string()))?
        .to_string();
    let token = random_token()?;
    AdminFile {
        address: admin.clone(),
        token: token.clone(),
        pid: std::process::id(),
    }
    .write(dir)?;
    let state = AdminState {
        token: Arc::new(token),
        settings,
        dir: Arc::new(dir.to_path_buf()),
        net: tx,
        node: Arc::clone(&node),
        apps: Arc::new(hosted.clone()),
        privacy: privacy.clone(),
        peer_id: Arc::new(peer_id.to_string()),
        audit: audit.clone(),
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut admin_stop = stop_rx.clone();
    let server = tokio::spawn(async move {
        let served = axum::serve(listener, router(state))
            .with_graceful_shutdown(async move {
                let _ = admin_stop.changed().await;
            })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "admin API stopped");
        }
    });
    let housekeeping = tokio::spawn(crate::privacy::housekeeping::run(
        privacy.clone(),
        audit.clone(),
        stop_rx.clone(),
    ));
    let network = tokio::spawn(shell.run(rx, stop_rx));
    let started = Started {
        peer_id,
        listen: listen.iter().map(ToString::to_string).collect(),
        admin,
        apps: hosted.into_iter().map(|(n, _)| n).collect(),
        node: Arc::clone(&node),
    };
    tracing::info!(peer_id = %started.peer_id, listen = ?started.listen, admin = %started.admin, "node started");
    on_started(&started);

    shutdown.await;
    tracing::info!("stopping: finishing the atoms in flight");
    let stopping = Arc::clone(&node);
    let _ = tokio::task::spawn_blocking(move || stopping.stop()).await;
    let _ = stop_tx.send(true);
    let _ = server.await;
    let _ = network.await;
    let _ = housekeeping.await;
    let _ = std::fs::remove_file(dir.join(ADMIN_FILE));
    if let Err(e) = audit.record("node", "node.stop", serde_json::json!({})) {
        tracing::error!(error = %e, "the stop could not be audited");
    }
    tracing::info!("node stopped");
    Ok(())
}

/// Finishes the erasures a crash interrupted, before any app runs.
fn resume_erasures(privacy: &Privacy, node: &str, audit: &AuditLog) -> Result<(), NodeError> {
    for subject in privacy.unfinished_erasures()? {
        let receipt = privacy.erase(&subject, node, audit)?;
        tracing::info!(subject = %receipt.subject, "an interrupted erasure was resumed");
        audit.record(
            "node",
            "subject.erase",
            serde_json::json!({"subject": receipt.subject, "erased": receipt.erased, "resumed": true}),
        )?;
    }
    Ok(())
}

/// Runs the node in `dir` on its own tokio runtime until SIGINT or SIGTERM.
pub fn run_until_signal(
    dir: PathBuf,
    catalog: &Catalog,
    config: NodeConfig,
    on_started: impl FnOnce(&Started),
) -> Result<(), NodeError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("pods-net")
        .enable_all()
        .build()
        .map_err(|e| NodeError::Network(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term =
            signal(SignalKind::terminate()).map_err(|e| NodeError::Network(e.to_string()))?;
        let mut int =
            signal(SignalKind::interrupt()).map_err(|e| NodeError::Network(e.to_string()))?;
        let shutdown = async move {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM"),
                _ = int.recv() => tracing::info!("SIGINT"),
            }
        };
        run(&dir, catalog, config, on_started, shutdown).await
    })
}

/// Checks every export names a portal or a stream this node runs; each exported stream is
/// logged for its peers, and each allowed peer is registered as a reader of it (so its log
/// keeps what that peer has not pulled). Returns the streams logged for peers.
fn export_streams(node: &Node, settings: &Settings, dir: &Path) -> Result<Vec<String>, NodeError> {
    let mut exported = Vec::new();
    let kinds: std::collections::HashMap<String, &str> =
        node.system().registry().into_iter().collect();
    for e in &settings.exports {
        let problem = |what: String| {
            NodeError::Config(format!(
                "{}: export {:?} {what}",
                dir.join(CONFIG_FILE).display(),
                e.path
            ))
        };
        match kinds.get(&e.path).copied() {
            Some("portal") => {}
            Some("stream") if e.allow.is_empty() => {
                tracing::warn!(stream = %e.path, "exported to nobody: not logged for peers");
            }
            Some("stream") => {
                node.system()
                    .export_stream(&e.path)
                    .map_err(|err| problem(err.to_string()))?;
                for who in &e.allow {
                    let id = settings
                        .peer(who)
                        .map_or(who.as_str(), |p| p.peer_id.as_str());
                    let Ok(id) = id.parse::<PeerId>() else {
                        continue;
                    };
                    let reader = crate::net::reader_id(&id, &e.path);
                    node.system()
                        .storage()
                        .register_reader(reader, who, &e.path)?;
                }
                exported.push(e.path.clone());
            }
            Some(other) => {
                return Err(problem(format!("is a {other}: export portals and streams")));
            }
            None => {
                return Err(problem(
                    "names nothing this node runs: check the path against the apps in pods.toml"
                        .to_owned(),
                ));
            }
        }
    }
    Ok(exported)
}

fn random_token() -> Result<String, NodeError> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| NodeError::Admin("no randomness for the admin token".to_owned()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Imported records reach the node's external generators.
struct NodeFeeds(Arc<Node>);

impl crate::privacy::Feeds for NodeFeeds {
    fn next(&self, path: &str) -> Result<u64, NodeError> {
        Ok(self.0.system().feeder_next(path)?)
    }

    fn feed(
        &self,
        path: &str,
        offset: u64,
        events: Vec<pods_sdk::Event<crate::privacy::Row>>,
    ) -> Result<bool, NodeError> {
        Ok(self
            .0
            .feeder::<crate::privacy::Row>(path)?
            .push_events_at(offset, events)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Synchronous;

    #[test]
    fn pods_toml_decides_how_the_store_commits() {
        let mut settings = Settings::new("acme");
        let mut config = NodeConfig::default();
        config.store.synchronous = Synchronous::Normal;
        // A file that does not say leaves what the embedding code passed.
        assert_eq!(
            with_settings(config.clone(), &settings).store.synchronous,
            Synchronous::Normal
        );
        assert_eq!(
            with_settings(NodeConfig::default(), &settings)
                .store
                .synchronous,
            Synchronous::Full
        );
        // A file that says wins.
        settings.store.synchronous = Some(Synchronous::Normal);
        config.store.synchronous = Synchronous::Full;
        assert_eq!(
            with_settings(config.clone(), &settings).store.synchronous,
            Synchronous::Normal
        );
        settings.store.synchronous = Some(Synchronous::Full);
        config.store.synchronous = Synchronous::Normal;
        assert_eq!(
            with_settings(config, &settings).store.synchronous,
            Synchronous::Full
        );
    }
}
