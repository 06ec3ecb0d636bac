//! What the admin API speaks: its JSON bodies, and `admin.json`, where a running node tells
//! the CLI how to reach it.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::file::write_atomically;
use crate::error::NodeError;
use crate::store::WorkflowActivity;

/// The file in the data dir with the admin API's address and token (mode 0600).
pub const ADMIN_FILE: &str = "admin.json";

/// How to reach a running node's admin API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminFile {
    /// The API's address (always on 127.0.0.1).
    pub address: String,
    /// The bearer token every request must carry.
    pub token: String,
    /// The daemon's process id.
    pub pid: u32,
}

impl AdminFile {
    /// Reads `DIR/admin.json`.
    pub fn read(dir: &Path) -> Result<AdminFile, NodeError> {
        let file = dir.join(ADMIN_FILE);
        let text = std::fs::read_to_string(&file).map_err(|e| {
            NodeError::Admin(format!(
                "{}: {e}; is the node running? Start it with `pods node start --data-dir {}`",
                file.display(),
                dir.display()
            ))
        })?;
        serde_json::from_str(&text)
            .map_err(|e| NodeError::Admin(format!("{}: not an admin file ({e})", file.display())))
    }

    /// Writes `DIR/admin.json` with mode 0600.
    pub fn write(&self, dir: &Path) -> Result<(), NodeError> {
        let text = serde_json::to_vec_pretty(self).map_err(|e| NodeError::Admin(e.to_string()))?;
        write_atomically(&dir.join(ADMIN_FILE), &text, 0o600)
    }
}

/// A peer as `pods peer list` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    /// Its local name.
    pub name: String,
    /// Its identity.
    pub peer_id: String,
    /// Where it listens.
    pub address: String,
    /// Whether a connection to it is open now.
    pub connected: bool,
}

/// The body of `POST /peers`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewPeer {
    /// Its local name.
    pub name: String,
    /// Its identity.
    pub peer_id: String,
    /// Where it listens.
    pub address: String,
}

/// An app the node runs, with what each of its workflows committed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppInfo {
    /// The app's name.
    pub name: String,
    /// Its workflows by path.
    pub workflows: BTreeMap<String, WorkflowActivity>,
}

/// A stream mirrored from a peer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportInfo {
    /// The stream at the peer (`/peers/<name>/...`).
    pub from: String,
    /// The local external generator it feeds.
    pub into: String,
    /// Atoms taken so far (the offset pulled next).
    pub next: u64,
    /// Why it stopped, if it did (the peer dropped atoms it had not taken, or sent one that
    /// does not decode as the generator's type).
    pub stopped: Option<String>,
}

/// The body of `GET /status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The organization's name.
    pub name: String,
    /// This node's PeerId.
    pub peer_id: String,
    /// Where it listens for peers.
    pub listen: Vec<String>,
    /// Known peers.
    pub peers: Vec<PeerInfo>,
    /// Apps it runs.
    pub apps: Vec<AppInfo>,
    /// Asks to peers' portals waiting for replies.
    pub asks_out: usize,
    /// Streams mirrored from peers.
    pub imports: Vec<ImportInfo>,
    /// The policy gate's decisions per workflow and portal since the node started.
    #[serde(default)]
    pub gate: Vec<pods_policy::Counts>,
    /// Erasures some peer has not acknowledged yet (their requests are retried).
    #[serde(default)]
    pub erasures: Vec<crate::privacy::PendingErasure>,
    /// Rectifications some peer has not applied yet (their requests are retried).
    #[serde(default)]
    pub rectifications: Vec<crate::privacy::PendingRectification>,
}

/// An error body: what went wrong, for a person.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// The message.
    pub error: String,
}

/// `POST /policy`: a policy file to load.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PolicyLoad {
    /// The file's name, for error messages.
    pub name: String,
    /// Its text.
    pub text: String,
}

/// `POST /consents/withdraw`: whose consents, for which purpose (all if none).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Withdraw {
    /// The data subject.
    pub subject: String,
    /// The purpose withdrawn; every purpose if absent.
    pub purpose: Option<String>,
}

/// `POST /data/{dataset}`: records to import.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ImportRequest {
    /// How the text is written.
    pub format: crate::privacy::Format,
    /// The file's text.
    pub text: String,
    /// Import the good rows of a file with bad ones.
    pub skip_bad: bool,
}

/// `POST /subjects/{subject}/rectify`: corrected values.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Rectify {
    /// The dataset whose records are corrected.
    pub dataset: String,
    /// Column → new value (null removes the value).
    pub changes: serde_json::Map<String, serde_json::Value>,
}

/// `POST /subjects/{subject}/restrict`: restrict processing, or lift the restriction.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Restrict {
    /// `true` to restrict, `false` to lift.
    pub restricted: bool,
}

/// How many records a rectification changed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Rectified {
    /// Records changed.
    pub records: u64,
    /// Logged atoms (in `pods.db`) whose copies of the records changed.
    #[serde(default)]
    pub atoms: u64,
    /// Peers that pulled a stream holding the subject's data, asked to correct their copies
    /// (asked until each answers).
    #[serde(default)]
    pub peers: Vec<String>,
}
