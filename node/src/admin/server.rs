//! The admin API's server: HTTP + JSON on 127.0.0.1, every route behind the bearer token
//! (401 without one, 403 with a wrong one). Peer changes are validated, written to
//! `pods.toml` atomically, applied to the network, then recorded in the audit log.

use std::sync::{Arc, RwLock};

use axum::extract::{Path as UrlPath, Request, State};
use axum::http::{StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use tokio::sync::{mpsc, oneshot};

use super::api::{ApiError, AppInfo, NewPeer, PeerInfo, Status};
use crate::audit::{AuditLog, MAX_TAIL};
use crate::config::{Peer, Settings, read};
use crate::net::shell::{Command, NetStatus};
use crate::node::Node;

/// What the handlers share.
#[derive(Clone)]
pub struct AdminState {
    /// The bearer token.
    pub token: Arc<String>,
    /// The node's settings (the file's content).
    pub settings: Arc<RwLock<Settings>>,
    /// Where `pods.toml` lives.
    pub dir: Arc<std::path::PathBuf>,
    /// The network task.
    pub net: mpsc::UnboundedSender<Command>,
    /// The running node.
    pub node: Arc<Node>,
    /// The apps it runs, with their workflows' paths.
    pub apps: Arc<Vec<(String, Vec<String>)>>,
    /// Its policy, consents and personal records.
    pub privacy: crate::privacy::Privacy,
    /// The node's PeerId, as receipts name it.
    pub peer_id: Arc<String>,
    /// The node's audit log: every administrative act is recorded there.
    pub audit: AuditLog,
}

/// The actor of acts done through the admin API, in audit entries.
pub const ADMIN_ACTOR: &str = "admin";

/// Entries `GET /audit` returns when `n` is not given.
pub const DEFAULT_TAIL: usize = 20;

/// The admin API's routes.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/status", get(status))
        .route("/peers", get(peers).post(add_peer))
        .route("/peers/{name}", delete(remove_peer))
        .merge(super::privacy::routes())
        .route("/audit", get(audit_tail))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such route") })
        .layer(middleware::from_fn_with_state(state.clone(), auth))
        .with_state(state)
}

pub(super) fn error(code: StatusCode, message: impl Into<String>) -> Response {
    (
        code,
        Json(ApiError {
            error: message.into(),
        }),
    )
        .into_response()
}

async fn auth(State(state): State<AdminState>, request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        None => error(
            StatusCode::UNAUTHORIZED,
            "missing bearer token: send `Authorization: Bearer <token>` with the token in admin.json",
        ),
        Some(t) if !same(t.as_bytes(), state.token.as_bytes()) => error(
            StatusCode::FORBIDDEN,
            "wrong token: use the token in this node's admin.json",
        ),
        Some(_) => next.run(request).await,
    }
}

/// Compares two tokens in time that depends on their length only.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn net_status(state: &AdminState) -> Option<NetStatus> {
    let (tx, rx) = oneshot::channel();
    state.net.send(Command::Status(tx)).ok()?;
    rx.await.ok()
}

fn peer_infos(settings: &Settings, net: Option<&NetStatus>) -> Vec<PeerInfo> {
    settings
        .peers
        .iter()
        .map(|p| PeerInfo {
            name: p.name.clone(),
            peer_id: p.peer_id.clone(),
            address: p.address.clone(),
            connected: net.is_some_and(|n| n.connected.contains(&p.peer_id)),
        })
        .collect()
}

async fn status(State(state): State<AdminState>) -> Response {
    let Some(net) = net_status(&state).await else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the node is stopping");
    };
    let settings = read(&state.settings).clone();
    let activity = state.node.activity().snapshot();
    let apps = state
        .apps
        .iter()
        .map(|(name, workflows)| AppInfo {
            name: name.clone(),
            workflows: workflows
                .iter()
                .map(|w| (w.clone(), activity.get(w).cloned().unwrap_or_default()))
                .collect(),
        })
        .collect();
    Json(Status {
        name: settings.name.clone(),
        peer_id: net.peer_id.clone(),
        listen: net.listen.clone(),
        peers: peer_infos(&settings, Some(&net)),
        apps,
        asks_out: net.asks_out,
        imports: net.imports.clone(),
        gate: state.privacy.counts(),
        erasures: state.privacy.pending_erasures().unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot read the pending erasures");
            Vec::new()
        }),
        rectifications: state.privacy.pending_rectifications().unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot read the pending rectifications");
            Vec::new()
        }),
    })
    .into_response()
}

async fn peers(State(state): State<AdminState>) -> Response {
    let net = net_status(&state).await;
    let settings = read(&state.settings).clone();
    Json(peer_infos(&settings, net.as_ref())).into_response()
}

async fn add_peer(
    State(state): State<AdminState>,
    body: Result<Json<NewPeer>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(new) = match body {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("the body is not a peer: {e}"),
            );
        }
    };
    let changed = change(&state, |s| {
        if s.peer(&new.name).is_some() {
            return Err(format!(
                "a peer called {:?} exists already: remove it first",
                new.name
            ));
        }
        s.peers.push(Peer {
            name: new.name.clone(),
            peer_id: new.peer_id.clone(),
            address: new.address.clone(),
        });
        Ok(())
    });
    match changed {
        Ok(()) => {
            tracing::info!(peer = %new.name, id = %new.peer_id, "peer added");
            let detail = serde_json::json!({
                "name": new.name,
                "peer_id": new.peer_id,
                "address": new.address,
            });
            if let Err(e) = state.audit.record(ADMIN_ACTOR, "peer.add", detail) {
                return unaudited("peer added", &e);
            }
            (StatusCode::CREATED, Json(new)).into_response()
        }
        Err(e) => error(StatusCode::BAD_REQUEST, e),
    }
}

async fn remove_peer(State(state): State<AdminState>, UrlPath(name): UrlPath<String>) -> Response {
    let mut peer_id = String::new();
    let changed = change(&state, |s| {
        if let Some(p) = s.peer(&name) {
            peer_id = p.peer_id.clone();
        }
        if s.remove_peer(&name) {
            Ok(())
        } else {
            Err(format!("no peer called {name:?}"))
        }
    });
    match changed {
        Ok(()) => {
            tracing::info!(peer = %name, "peer removed");
            let detail = serde_json::json!({"name": name, "peer_id": peer_id});
            if let Err(e) = state.audit.record(ADMIN_ACTOR, "peer.remove", detail) {
                return unaudited("peer removed", &e);
            }
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => error(StatusCode::NOT_FOUND, e),
    }
}

/// The answer to an act that was done but could not be audited: a server error saying both.
pub(super) fn unaudited(done: &str, e: &crate::error::NodeError) -> Response {
    tracing::error!(error = %e, act = done, "an administrative act could not be audited");
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("{done}, but the audit log could not be written: {e}"),
    )
}

/// `GET /audit?n=N`: the last `N` audit entries (default [`DEFAULT_TAIL`], at most
/// [`MAX_TAIL`]), oldest first, hashes and signatures in hex.
async fn audit_tail(State(state): State<AdminState>, uri: Uri) -> Response {
    let n = match tail_length(uri.query()) {
        Ok(n) => n,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let audit = state.audit.clone();
    match tokio::task::spawn_blocking(move || audit.tail(n)).await {
        Ok(Ok(entries)) => Json(entries).into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// The `n` of a query string (default [`DEFAULT_TAIL`], capped at [`MAX_TAIL`]).
fn tail_length(query: Option<&str>) -> Result<usize, String> {
    let given = query
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == "n");
    match given {
        None => Ok(DEFAULT_TAIL),
        Some((_, v)) => v
            .parse::<usize>()
            .map(|n| n.min(MAX_TAIL))
            .map_err(|_| format!("n must be a count of entries, not {v:?}")),
    }
}

/// Applies `edit` to a copy of the settings; if the result is valid and written to
/// `pods.toml`, it replaces the node's settings and the network is told.
fn change(
    state: &AdminState,
    edit: impl FnOnce(&mut Settings) -> Result<(), String>,
) -> Result<(), String> {
    let mut guard = state
        .settings
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut next = guard.clone();
    edit(&mut next)?;
    next.save(&state.dir).map_err(|e| e.to_string())?;
    *guard = next;
    drop(guard);
    let _ = state.net.send(Command::PeersChanged);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_length_has_a_default_and_a_cap() {
        assert_eq!(tail_length(None), Ok(DEFAULT_TAIL));
        assert_eq!(tail_length(Some("x=1")), Ok(DEFAULT_TAIL));
        assert_eq!(tail_length(Some("x=1&n=5")), Ok(5));
        assert_eq!(tail_length(Some("n=1000000")), Ok(MAX_TAIL));
        assert!(tail_length(Some("n=-1")).is_err());
    }
}
