//! Liveness and readiness probes for orchestrators and load balancers.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::AppState;

/// Readiness answers within this even when the database hangs, so probes
/// do not pile up.
const READY_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /healthz`: the process is up and serving HTTP.
pub(super) async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: the database answers and every migration is applied,
/// and the server is not shutting down; 503 otherwise, so a load balancer
/// sends traffic elsewhere.
pub(super) async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    if *state.leaving.borrow() {
        return (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "shutting down" })));
    }
    let ready = tokio::time::timeout(READY_CHECK_TIMEOUT, db::is_ready(&state.pool)).await;
    match ready {
        Ok(Ok(true)) => (StatusCode::OK, Json(json!({ "status": "ready" }))),
        Ok(Ok(false)) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "migrations pending" }))),
        Ok(Err(_)) | Err(_) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "database unavailable" }))),
    }
}
