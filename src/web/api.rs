//! The JSON API under `/api/v1`: its router, who may call it ([`ApiCaller`]:
//! a bearer token, the `SWITCHBOARD_API_TOKEN` automation token, or a
//! signed-in browser session for reads), and the extractors that turn bad
//! input into JSON errors (`{"error": {"code", "message"}}`): malformed JSON
//! is 400 with serde's message, well-formed JSON of the wrong shape 422.
//! Task endpoints live in `api_tasks`, call endpoints in `api_calls`.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use axum_extra::extract::CookieJar;
use chrono::Utc;
use serde::de::DeserializeOwned;

use super::auth::{token_hash, SESSION_COOKIE};
use super::{api_calls, api_tasks, sse, AppState, WebError};
use crate::store::StoreError;

pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(api_tasks::routes())
        .merge(api_calls::routes())
        .route("/events", get(events))
        .fallback(not_found)
}

async fn not_found() -> ApiError {
    ApiError(WebError::NotFound("that API endpoint".into()))
}

async fn events(_caller: ApiCaller, state: axum::extract::State<AppState>) -> Response {
    sse::event_stream(&state).into_response()
}

/// An API handler's error: a [`WebError`] rendered as JSON.
#[derive(Debug)]
pub struct ApiError(pub WebError);

impl From<WebError> for ApiError {
    fn from(e: WebError) -> Self {
        ApiError(e)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError(WebError::from(e))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let unauthorized = matches!(self.0, WebError::Unauthorized);
        let mut resp = self.0.into_json();
        if unauthorized {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"switchboard\""),
            );
        }
        resp
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// Who is calling the API; `actor` is what audit trails record.
#[derive(Debug, Clone)]
pub struct ApiCaller {
    pub actor: String,
}

impl FromRequestParts<AppState> for ApiCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        if let Some(value) = parts.headers.get(header::AUTHORIZATION) {
            let token = value
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .ok_or(ApiError(WebError::Unauthorized))?;
            return bearer(token, state).await;
        }
        // A browser session may read, never write: forms carry CSRF tokens, the API does not.
        if parts.method == Method::GET || parts.method == Method::HEAD {
            let jar = CookieJar::from_headers(&parts.headers);
            if let Some(cookie) = jar.get(SESSION_COOKIE) {
                let hash = token_hash(cookie.value());
                if let Some(rec) = state.store().session(&hash, Utc::now()).await? {
                    return Ok(ApiCaller {
                        actor: format!("user:{}", rec.user.email),
                    });
                }
            }
        }
        Err(ApiError(WebError::Unauthorized))
    }
}

async fn bearer(token: &str, state: &AppState) -> ApiResult<ApiCaller> {
    if let Some(admin) = &state.config().api_token {
        use subtle::ConstantTimeEq;
        // Compare digests so the comparison time does not depend on the length either.
        let a = token_hash(token);
        let b = token_hash(admin.expose());
        if bool::from(a.as_bytes().ct_eq(b.as_bytes())) {
            return Ok(ApiCaller {
                actor: "api:automation".into(),
            });
        }
    }
    match state.store().api_token_by_hash(&token_hash(token)).await? {
        Some(t) => Ok(ApiCaller {
            actor: format!("token:{}", t.name),
        }),
        None => Err(ApiError(WebError::Unauthorized)),
    }
}

/// A JSON body: syntax errors are 400, shape errors (unknown field, wrong type) 422.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> ApiResult<Self> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError(WebError::BadRequest(format!("cannot read the body: {e}"))))?;
        parse_json(&bytes).map(ApiJson)
    }
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    use serde_json::error::Category;
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError(match e.classify() {
            Category::Data => WebError::Unprocessable(e.to_string()),
            _ => WebError::BadRequest(format!("malformed JSON: {e}")),
        })
    })
}

/// Query parameters; a value of the wrong form is a 400 naming the parameter.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> ApiResult<Self> {
        let query = parts.uri.query().unwrap_or_default();
        serde_urlencoded::from_str(query)
            .map(ApiQuery)
            .map_err(|e| ApiError(WebError::BadRequest(format!("bad query string: {e}"))))
    }
}

/// Treats an empty query value (as plain HTML forms send) as absent.
pub fn non_empty(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        #[allow(dead_code)]
        to: String,
    }

    #[test]
    fn syntax_is_400_and_shape_is_422() {
        let e = parse_json::<Body>(b"{\"to\": ").unwrap_err();
        assert_eq!(e.0.status(), 400);
        assert!(e.0.to_string().contains("malformed JSON"), "{}", e.0);
        let e = parse_json::<Body>(b"{\"to\": \"x\", \"bogus\": 1}").unwrap_err();
        assert_eq!(e.0.status(), 422);
        assert!(e.0.to_string().contains("unknown field `bogus`"), "{}", e.0);
        let e = parse_json::<Body>(b"{\"to\": 5}").unwrap_err();
        assert_eq!(e.0.status(), 422);
        assert!(parse_json::<Body>(b"{\"to\": \"closed\"}").is_ok());
    }
}
