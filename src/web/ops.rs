//! Operations endpoints: `/healthz` (the process answers), `/readyz` (the
//! database answers and we are not shutting down; its detail also carries
//! the SIP registration state, which does not decide readiness), `/metrics`
//! (Prometheus).

use axum::extract::{Extension, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::AppState;
use crate::transport::sip::status::{RegistrationState, RegistrationStatus};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

async fn healthz() -> &'static str {
    "ok"
}

/// The SIP registration state; not configured when SIP is not running.
pub fn sip_registration(status: Option<Extension<RegistrationStatus>>) -> RegistrationState {
    status
        .map(|Extension(s)| s.get())
        .unwrap_or(RegistrationState::NotConfigured)
}

async fn readyz(
    State(state): State<AppState>,
    sip: Option<Extension<RegistrationStatus>>,
) -> Response {
    let sip = sip_registration(sip);
    if state.shutdown().is_cancelled() {
        let body =
            json!({ "status": "unavailable", "reason": "shutting down", "sip_registration": sip });
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    }
    match state.store().ping().await {
        Ok(()) => Json(json!({ "status": "ready", "database": "ok", "sip_registration": sip }))
            .into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check: database unreachable");
            let body = json!({
                "status": "unavailable",
                "database": "unreachable",
                "reason": format!("database unreachable: {e}"),
                "sip_registration": sip,
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
