//! `pods.toml`: what a node is (its name, addresses, peers, exports and hosted apps). The file
//! is the one source of truth for peers and exports; the running node applies a change and
//! rewrites it atomically ([`Settings::save`]).

pub(crate) mod file;

use std::collections::HashSet;
use std::str::FromStr;

use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};

pub use file::CONFIG_FILE;

/// The settings of one node, as `pods.toml` holds them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The organization's name, shown to peers and in `pods status`.
    pub name: String,
    /// libp2p listen addresses (port 0: any free port).
    #[serde(default = "default_listen")]
    pub listen: Vec<String>,
    /// The admin API's address: always on 127.0.0.1; port 0 picks a free port.
    #[serde(default = "default_admin")]
    pub admin: String,
    /// Limits on what peers may send.
    #[serde(default)]
    pub limits: Limits,
    /// How the node's store commits.
    #[serde(default)]
    pub store: StoreSettings,
    /// Apps the stock `pods` binary hosts, by name.
    #[serde(default)]
    pub apps: Vec<String>,
    /// Known peers: no other peer can use anything of this node.
    #[serde(default, rename = "peer")]
    pub peers: Vec<Peer>,
    /// Portals and streams this node offers to peers.
    #[serde(default, rename = "export")]
    pub exports: Vec<Export>,
    /// Peers' streams this node mirrors into its own external generators.
    #[serde(default, rename = "import")]
    pub imports: Vec<Import>,
}

/// Bounds on a peer's traffic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest message accepted from a peer, in bytes; larger ones are refused unread.
    pub max_message_bytes: usize,
    /// Requests one peer may have in flight at this node; more are refused with `Busy`.
    pub max_requests_per_peer: usize,
    /// Streams one connection may open at once (libp2p's own bound).
    pub max_streams_per_connection: usize,
    /// Atoms an exported stream keeps for a peer that has not acknowledged them; past it the
    /// oldest go, and that peer's next pull of them is refused with `Truncated`.
    pub log_horizon_atoms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 1 << 20,
            max_requests_per_peer: 256,
            max_streams_per_connection: 128,
            log_horizon_atoms: 100_000,
        }
    }
}

/// How the node's store commits (`[store]` in `pods.toml`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSettings {
    /// `"full"`: a commit survives a power loss (an fsync per commit); `"normal"`: a commit
    /// survives a crash of the process, and a power loss may lose the last commits (never
    /// corrupting the store), for about twice the throughput. Absent: as the code that runs
    /// the node chose (`NodeConfig::store`, full unless it says otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub synchronous: Option<crate::store::Synchronous>,
}

/// A known peer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    /// The local name of the peer (used in paths: `/peers/<name>/...`).
    pub name: String,
    /// Its identity.
    pub peer_id: String,
    /// Where it listens.
    pub address: String,
}

/// A peer's exported stream, pulled atom by atom into an external generator of this node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Import {
    /// The stream at the peer: `/peers/<name>/<path there>`.
    pub from: String,
    /// The external generator here that takes its atoms (`/<app>/generators/<name>`).
    pub into: String,
}

/// A portal or stream offered to peers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Export {
    /// The registry path of the portal or stream in this node.
    pub path: String,
    /// Who may use it: known peers, each by its name here or by its PeerId.
    #[serde(default)]
    pub allow: Vec<String>,
}

fn default_listen() -> Vec<String> {
    vec!["/ip4/127.0.0.1/tcp/0".to_owned()]
}

fn default_admin() -> String {
    "127.0.0.1:0".to_owned()
}

/// What is wrong with a setting, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{place}: {problem}")]
pub struct SettingError {
    /// Where: the key, for example `peer "bob".peer_id`.
    pub place: String,
    /// What is wrong and what to write instead.
    pub problem: String,
}

impl Settings {
    /// The settings `pods init` writes for a new node called `name`.
    pub fn new(name: &str) -> Settings {
        Settings {
            name: name.to_owned(),
            listen: default_listen(),
            admin: default_admin(),
            limits: Limits::default(),
            store: StoreSettings::default(),
            apps: Vec::new(),
            peers: Vec::new(),
            exports: Vec::new(),
            imports: Vec::new(),
        }
    }

    /// Every problem of the settings (empty: usable).
    pub fn problems(&self) -> Vec<SettingError> {
        let mut out = Vec::new();
        let mut bad = |place: String, problem: String| out.push(SettingError { place, problem });
        if !is_name(&self.name) {
            bad("name".into(), name_rule(&self.name));
        }
        if self.listen.is_empty() {
            bad(
                "listen".into(),
                "no address: give at least one, such as \"/ip4/127.0.0.1/tcp/0\"".into(),
            );
        }
        for (i, a) in self.listen.iter().enumerate() {
            if let Err(e) = Multiaddr::from_str(a) {
                bad(
                    format!("listen[{i}]"),
                    format!("{a:?} is not a multiaddr ({e})"),
                );
            }
        }
        match self.admin.parse::<std::net::SocketAddr>() {
            Ok(a) if a.ip().is_loopback() => {}
            Ok(a) => bad(
                "admin".into(),
                format!("{a} is not a loopback address: the admin API listens on 127.0.0.1 only"),
            ),
            Err(_) => bad(
                "admin".into(),
                format!(
                    "{:?} is not an address such as \"127.0.0.1:7700\"",
                    self.admin
                ),
            ),
        }
        let l = &self.limits;
        if l.max_message_bytes < 1024 || l.max_message_bytes > 64 << 20 {
            bad(
                "limits.max_message_bytes".into(),
                format!("{} is outside 1024..=67108864", l.max_message_bytes),
            );
        }
        if l.max_requests_per_peer == 0 || l.max_requests_per_peer > 65_536 {
            bad(
                "limits.max_requests_per_peer".into(),
                format!("{} is outside 1..=65536", l.max_requests_per_peer),
            );
        }
        if l.max_streams_per_connection == 0 || l.max_streams_per_connection > 65_536 {
            bad(
                "limits.max_streams_per_connection".into(),
                format!("{} is outside 1..=65536", l.max_streams_per_connection),
            );
        }
        let mut names = HashSet::new();
        let mut ids = HashSet::new();
        for p in &self.peers {
            let at = format!("peer {:?}", p.name);
            if !is_name(&p.name) {
                bad(format!("{at}.name"), name_rule(&p.name));
            } else if PeerId::from_str(&p.name).is_ok() {
                bad(
                    format!("{at}.name"),
                    "a PeerId: allow-lists would confuse it with that peer; choose a name".into(),
                );
            }
            if !names.insert(p.name.as_str()) {
                bad(format!("{at}.name"), "two peers have this name".into());
            }
            match PeerId::from_str(&p.peer_id) {
                Ok(id) if !ids.insert(id) => bad(
                    format!("{at}.peer_id"),
                    "another peer has this PeerId".into(),
                ),
                Ok(_) => {}
                Err(e) => bad(
                    format!("{at}.peer_id"),
                    format!("{:?} is not a PeerId ({e})", p.peer_id),
                ),
            }
            if let Err(e) = Multiaddr::from_str(&p.address) {
                bad(
                    format!("{at}.address"),
                    format!("{:?} is not a multiaddr ({e})", p.address),
                );
            }
        }
        let mut paths = HashSet::new();
        for e in &self.exports {
            let at = format!("export {:?}", e.path);
            match pods_sdk::Path::parse(&e.path) {
                Ok(path) if path.is_remote() || path.as_str() == "/peers" => bad(
                    format!("{at}.path"),
                    "a path under /peers names another node's element; export this node's own"
                        .into(),
                ),
                Ok(_) => {}
                Err(err) => bad(format!("{at}.path"), err.to_string()),
            }
            if !paths.insert(e.path.as_str()) {
                bad(format!("{at}.path"), "exported twice".into());
            }
            for who in &e.allow {
                if !self.peers.iter().any(|p| &p.name == who) && PeerId::from_str(who).is_err() {
                    bad(
                        format!("{at}.allow"),
                        format!("{who:?} is neither a known peer's name nor a PeerId"),
                    );
                }
            }
        }
        if l.log_horizon_atoms == 0 {
            bad(
                "limits.log_horizon_atoms".into(),
                "0 keeps nothing: give at least 1".into(),
            );
        }
        let mut intos = HashSet::new();
        for i in &self.imports {
            let at = format!("import {:?}", i.from);
            match i
                .from
                .strip_prefix("/peers/")
                .and_then(|r| r.split_once('/'))
            {
                Some((peer, rest)) if !rest.is_empty() => {
                    if let Err(e) = pods_sdk::Path::parse(&i.from) {
                        bad(format!("{at}.from"), e.to_string());
                    } else if self.peer(peer).is_none() {
                        bad(
                            format!("{at}.from"),
                            format!("{peer:?} is not a known peer"),
                        );
                    }
                }
                _ => bad(
                    format!("{at}.from"),
                    "give a peer's stream as /peers/<name>/<path there>".into(),
                ),
            }
            match pods_sdk::Path::parse(&i.into) {
                Ok(p) if p.is_remote() => bad(
                    format!("{at}.into"),
                    "an external generator of this node, not a path under /peers".into(),
                ),
                Ok(_) => {}
                Err(e) => bad(format!("{at}.into"), e.to_string()),
            }
            if !intos.insert(i.into.as_str()) {
                bad(
                    format!("{at}.into"),
                    "two imports feed this generator".into(),
                );
            }
        }
        let mut apps = HashSet::new();
        for a in &self.apps {
            if !apps.insert(a.as_str()) {
                bad("apps".into(), format!("{a:?} is listed twice"));
            }
        }
        out
    }

    /// The peer called `name`.
    pub fn peer(&self, name: &str) -> Option<&Peer> {
        self.peers.iter().find(|p| p.name == name)
    }

    /// The export of `path`, if this node offers it.
    pub fn export(&self, path: &str) -> Option<&Export> {
        self.exports.iter().find(|e| e.path == path)
    }

    /// Removes the peer called `name`, its place in every allow-list (by name and by PeerId,
    /// so that adding it again grants nothing by itself) and the imports from it; whether it
    /// was known.
    pub fn remove_peer(&mut self, name: &str) -> bool {
        let Some(at) = self.peers.iter().position(|p| p.name == name) else {
            return false;
        };
        let gone = self.peers.remove(at);
        for e in &mut self.exports {
            e.allow.retain(|a| *a != gone.name && *a != gone.peer_id);
        }
        let from = format!("/peers/{}/", gone.name);
        self.imports.retain(|i| !i.from.starts_with(&from));
        true
    }

    /// Whether the peer `name` (with PeerId `peer_id`) may use the export at `path`.
    pub fn allows(&self, path: &str, name: &str, peer_id: &str) -> bool {
        self.export(path)
            .is_some_and(|e| e.allow.iter().any(|a| a == name || a == peer_id))
    }
}

/// Reads settings shared behind a lock (a writer that panicked left them whole: changes are
/// applied only after they validated and were saved).
pub(crate) fn read(
    settings: &std::sync::RwLock<Settings>,
) -> std::sync::RwLockReadGuard<'_, Settings> {
    settings
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Names of nodes and peers: what a path segment may be.
fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn name_rule(s: &str) -> String {
    format!("{s:?} is not a name: use 1 to 64 letters, digits, '-' or '_'")
}

#[cfg(test)]
mod tests;
