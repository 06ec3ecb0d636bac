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

use super::api::{ImportRequest, PolicyLoad, Rectified, Rectify, Restrict, Withdraw};
use super::server::{AdminState, error};
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
    reply(done)
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
        Ok(g) => reply(state.privacy.grant(g)),
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
    reply(state.privacy.withdraw(&w.subject, purpose.as_ref()))
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
        Ok(r) => reply(r),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn export_subject(
    State(state): State<AdminState>,
    UrlPath(subject): UrlPath<String>,
) -> Response {
    reply(state.privacy.export_subject(&subject))
}

async fn rectify(
    State(state): State<AdminState>,
    UrlPath(subject): UrlPath<String>,
    b: Result<Json<Rectify>, JsonRejection>,
) -> Response {
    match body("a rectification", b) {
        Ok(r) => reply(
            state
                .privacy
                .rectify(&subject, &r.dataset, &r.changes)
                .map(|records| Rectified { records }),
        ),
        Err(e) => error(StatusCode::BAD_REQUEST, e),
    }
}

async fn restrict(
    State(state): State<AdminState>,
    UrlPath(subject): UrlPath<String>,
    b: Result<Json<Restrict>, JsonRejection>,
) -> Response {
    match body("a restriction", b) {
        Ok(r) => reply(state.privacy.restrict(&subject, r.restricted).map(|()| r)),
        Err(e) => error(StatusCode::BAD_REQUEST, e),
    }
}
