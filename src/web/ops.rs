//! Operations endpoints: `/healthz` (the process answers), `/readyz` (the
//! database answers and we are not shutting down), `/metrics` (Prometheus).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.shutdown().is_cancelled() {
        let body = json!({ "status": "unavailable", "reason": "shutting down" });
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    }
    match state.store().ping().await {
        Ok(()) => Json(json!({ "status": "ready", "database": "ok" })).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check: database unreachable");
            let body = json!({
                "status": "unavailable",
                "database": "unreachable",
                "reason": format!("database unreachable: {e}"),
            });
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let tasks = match state.store().count_by_status().await {
        Ok(t) => t,
        Err(e) => {
            // Still serve the HTTP series; the missing gauge shows the problem.
            tracing::warn!(error = %e, "metrics: cannot count tasks");
            Vec::new()
        }
    };
    let mut body = state.metrics().render(&tasks);
    match state.store().outbox_totals().await {
        Ok(t) => {
            body.push_str("# HELP switchboard_sms_outbox Text messages in the outbox by state.\n# TYPE switchboard_sms_outbox gauge\n");
            for (status, n) in [("pending", t.pending), ("sent", t.sent), ("dead", t.dead)] {
                body.push_str(&format!(
                    "switchboard_sms_outbox{{status=\"{status}\"}} {n}\n"
                ));
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: cannot count the outbox"),
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}
