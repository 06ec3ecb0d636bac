//! The admin API's privacy routes: policy, consents, data import, and what a data subject can
//! ask for (access, rectification, restriction, erasure).

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use pods_policy::{Grant, Purpose};
use serde::Deserialize;
use serde_json::json;

use super::api::{ImportRequest, PolicyLoad, Rectified, Rectify, Restrict, Withdraw};
use super::server::{ADMIN_ACTOR, AdminState, error, unaudited};
use crate::error::NodeError;

/// The largest import the API takes, in bytes.
const MAX_IMPORT: usize = 64 << 20;

/// The privacy routes.
pub(super) fn routes() -> Router<AdminState> {
    Router::new()
        .route("/policy", get(show_policy).post(load_policy))
        .route("/consents", get(list_consents).post(grant))
        .route("/consents/withdraw", post(withdraw))
        .route(
            "/data/{dataset}",
            post(import).layer(DefaultBodyLimit::max(MAX_IMPORT)),
        )
        .route("/subjects/{subject}", get(export_subject))
        .route("/subjects/{subject}/rectify", post(rectify))
        .route("/subjects/{subject}/restrict", post(restrict))
        .route("/subjects/{subject}/erase", post(erase))
        .route("/subjects/{subject}/erasure", get(erasure))
}

/// The body, or a 400 naming what was expected.
fn body<T>(what: &str, b: Result<Json<T>, JsonRejection>) -> Result<T, String> {
    b.map(|Json(t)| t)
        .map_err(|e| format!("the body is not {what}: {e}"))
}

/// A node error as a response: what the caller asked wrong is a 400, the rest a 500.
fn failed(e: NodeError) -> Response {
    let code = match e {
        NodeError::Policy(_) | NodeError::Privacy(_) | NodeError::ImportRefused { .. } => {
            StatusCode::BAD_REQUEST
        }
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(code, e.to_string())
}

/// How audit entries name a data subject: the SHA-256 of their id, in hex, never the id.
fn subject_ref(subject: &str) -> String {
    pods_policy::audit::to_hex(&pods_policy::subject_digest(subject))
}

/// The outcome as a response, the act recorded in the audit log first if it succeeded.
fn audited<T: serde::Serialize>(
    state: &AdminState,
    action: &str,
    detail: impl FnOnce(&T) -> serde_json::Value,
    r: Result<T, NodeError>,
) -> Response {
    match r {
        Ok(t) => match state.audit.record(ADMIN_ACTOR, action, detail(&t)) {
            Ok(_) => Json(t).into_response(),
            Err(e) => unaudited(action, &e),
        },
        Err(e) => failed(e),
    }
}

fn reply<T: serde::Serialize>(r: Result<T, NodeError>) -> Response {
    match r {
        Ok(t) => Json(t).into_response(),
        Err(e) => failed(e),
    }
}

async fn show_policy(State(state): State<AdminState>) -> Response {
    reply(state.privacy.policy_info())
}

async fn load_policy(
    State(state): State<AdminState>,
    b: Result<Json<PolicyLoad>, JsonRejection>,
) -> Response {
    let load = match body("a policy", b) {
        Ok(l) => l,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let done = state.privacy.load_policy(&load.name, &load.text);
    if let Ok(info) = &done {
        tracing::info!(file = %load.name, purposes = info.purposes, "policy loaded");
    }
    let digest = pods_policy::audit::to_hex(&pods_policy::subject_digest(&load.text));
    audited(
        &state,
        "policy.load",
        |i: &crate::privacy::PolicyInfo| json!({"file": load.name, "sha256": digest, "purposes": i.purposes, "datasets": i.datasets, "rules": i.rules}),
        done,
    )
}

#[derive(Deserialize)]
struct SubjectQuery {
    subject: Option<String>,
}

async fn list_consents(State(state): State<AdminState>, Query(q): Query<SubjectQuery>) -> Response {
    Json(state.privacy.consents(q.subject.as_deref())).into_response()
}

async fn grant(State(state): State<AdminState>, b: Result<Json<Grant>, JsonRejection>) -> Response {
    match body("a consent", b) {
        Ok(g) => {
            let done = state.privacy.grant(g);
            audited(
                &state,
                "consent.grant",
                |c: &pods_policy::Consent| {
                    json!({"consent": c.id.0, "subject": subject_ref(&c.subject),
                        "purposes": c.purposes, "categories": c.categories, "expires_at": c.expires_at})
                },
                done,
            )
        }
        Err(e) => error(StatusCode::BAD_REQUEST, e),
    }
}

async fn withdraw(
    State(state): State<AdminState>,
    b: Result<Json<Withdraw>, JsonRejection>,
) -> Response {
    let w = match body("a withdrawal", b) {
        Ok(w) => w,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let purpose = match w.purpose.map(Purpose::new).transpose() {
        Ok(p) => p,
        Err(e) => return failed(e.into()),
    };
    let done = state.privacy.withdraw(&w.subject, purpose.as_ref());
    audited(
        &state,
        "consent.withdraw",
        |changed: &Vec<pods_policy::Consent>| {
            json!({"subject": subject_ref(&w.subject), "purpose": purpose,
                "consents": changed.iter().map(|c| c.id.0).collect::<Vec<_>>()})
        },
        done,
    )
}

async fn import(
    State(state): State<AdminState>,
    UrlPath(dataset): UrlPath<String>,
    b: Result<Json<ImportRequest>, JsonRejection>,
) -> Response {
    let req = match body("an import", b) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let privacy = state.privacy.clone();
    let done = tokio::task::spawn_blocking(move || {
        privacy.import(&dataset, req.format, &req.text, req.skip_bad)
    })
    .await;
    match done {
        Ok(r) => audited(
            &state,
            "data.import",
            |i: &crate::privacy::ImportReport| json!({"dataset": i.dataset, "records": i.imported, "subjects": i.subjects, "skipped": i.skipped.len()}),
            r,
        ),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn export_subject(
    State(state): State<AdminState>,
    UrlPath(subject): UrlPath<String>,
) -> Response {
    let done = state.privacy.export_subject(&subject);
    audited(
        &state,
        "subject.export",
        |e: &crate::privacy::SubjectExport| json!({"subject": subject_ref(&subject), "records": e.records.len(), "consents": e.consents.len()}),
        done,
    )
}

async fn rectify(
    State(state): State<AdminState>,
    UrlPath(subject): UrlPath<String>,
    b: Result<Json<Rectify>, JsonRejection>,
) -> Response {
    match body("a rectification", b) {
        Ok(r) => {
            let done = state
                .privacy
                .rectify(&subject, &r.dataset, &r.changes)
                .map(|c| Rectified {
                    records: c.records,
                    atoms: c.atoms,
                    peers: c.peers,
                });
            // The peers that received the subject's data are asked at once.
            let _ = state
                .net
                .send(crate::net::shell::Command::RectificationsChanged);
            let columns: Vec<&String> = r.changes.keys().collect();
            audited(
                &state,
                "subject.rectify",
                |d: &Rectified| json!({"subject": subject_ref(&subject), "dataset": r.dataset, "columns": columns, "records": d.records, "atoms": d.atoms, "peers": d.peers}),
                done,
            )
        }
        Err(e) => error(StatusCode::BAD_REQUEST, e),
    }
}

async fn restrict(
    State(state): State<AdminState>,
    UrlPath(subject): UrlPath<String>,
    b: Result<Json<Restrict>, JsonRejection>,
) -> Response {
    match body("a restriction", b) {
        Ok(r) => {
            let done = state.privacy.restrict(&subject, r.restricted).map(|()| r);
            audited(
                &state,
                "subject.restrict",
                |r: &Restrict| json!({"subject": subject_ref(&subject), "restricted": r.restricted}),
                done,
            )
        }
        Err(e) => error(StatusCode::BAD_REQUEST, e),
    }
}

/// `GET /subjects/{subject}/erasure`: the receipt of the subject's erasure as it stands, with
/// the peers' acknowledgements so far (404 if the subject was never erased here). Reads only,
/// so it is not audited; a client waiting for the peers polls it.
async fn erasure(State(state): State<AdminState>, UrlPath(subject): UrlPath<String>) -> Response {
    let privacy = state.privacy.clone();
    match tokio::task::spawn_blocking(move || privacy.erasure(&subject)).await {
        Ok(Ok(Some(receipt))) => Json(receipt).into_response(),
        Ok(Ok(None)) => error(
            StatusCode::NOT_FOUND,
            "this subject was never erased here; `pods subject erase` erases them",
        ),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn erase(State(state): State<AdminState>, UrlPath(subject): UrlPath<String>) -> Response {
    let (privacy, audit, node) = (
        state.privacy.clone(),
        state.audit.clone(),
        state.peer_id.clone(),
    );
    let who = subject.clone();
    let done = tokio::task::spawn_blocking(move || privacy.erase(&who, &node, &audit)).await;
    // The peers that received the subject's data are asked at once.
    let _ = state.net.send(crate::net::shell::Command::ErasuresChanged);
    match done {
        Ok(r) => audited(
            &state,
            "subject.erase",
            |e: &crate::privacy::ErasureReceipt| {
                json!({"subject": e.subject, "erased": e.erased,
                    "pending": e.pending_peers()})
            },
            r,
        ),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
