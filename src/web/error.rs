//! The web layer's error: one enum, mapped to a status once, shown as JSON
//! (`{"error": {"code", "message"}}`) to API clients and as a short page to
//! browsers. Internal details are logged, never shown.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("{0}")]
    BadRequest(String),
    #[error("sign in required")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("too many attempts; try again in a minute")]
    TooManyRequests,
    #[error("internal error")]
    Internal(String),
}

impl WebError {
    pub fn status(&self) -> StatusCode {
        match self {
            WebError::BadRequest(_) => StatusCode::BAD_REQUEST,
            WebError::Unauthorized => StatusCode::UNAUTHORIZED,
            WebError::Forbidden(_) => StatusCode::FORBIDDEN,
            WebError::NotFound(_) => StatusCode::NOT_FOUND,
            WebError::Conflict(_) => StatusCode::CONFLICT,
            WebError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            WebError::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            WebError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            WebError::BadRequest(_) => "bad_request",
            WebError::Unauthorized => "unauthorized",
            WebError::Forbidden(_) => "forbidden",
            WebError::NotFound(_) => "not_found",
            WebError::Conflict(_) => "conflict",
            WebError::Unprocessable(_) => "unprocessable",
            WebError::TooManyRequests => "too_many_requests",
            WebError::Internal(_) => "internal",
        }
    }

    fn public_message(&self) -> String {
        match self {
            WebError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                "internal error".to_string()
            }
            other => other.to_string(),
        }
    }

    /// The JSON form, for `/api/v1`.
    pub fn into_json(self) -> Response {
        let status = self.status();
        let body = serde_json::json!({ "error": { "code": self.code(), "message": self.public_message() } });
        (status, Json(body)).into_response()
    }
}

impl From<StoreError> for WebError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => WebError::NotFound(what),
            StoreError::Conflict(msg) => WebError::Conflict(msg),
            StoreError::Invalid(msg) => WebError::Unprocessable(msg),
            other => WebError::Internal(other.to_string()),
        }
    }
}

/// Browsers get a plain page; the API wraps its handlers' errors with [`WebError::into_json`].
impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let status = self.status();
        let msg = self.public_message();
        let body = format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>{code}</title></head><body><h1>{code}</h1><p>{msg}</p><p><a href=\"/admin/tasks\">Back to tasks</a></p></body></html>",
            code = status,
            msg = html_escape(&msg)
        );
        (
            status,
            [(axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8")],
            body,
        )
            .into_response()
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
