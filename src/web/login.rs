//! Signing in and out. Before a session exists, the sign-in form is guarded
//! by a double-submit cookie (`sb_csrf` must equal the form's `_csrf`).
//! Failures are throttled per (client address, account). A successful
//! sign-in stores the SHA-256 of a fresh session token for 8 hours and sets
//! `sb_session` (HttpOnly, SameSite=Lax, Path=/, Secure behind https).

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Instant;

use askama::Template;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use axum_extra::extract::CookieJar;
use chrono::Utc;
use serde::Deserialize;

use super::auth::{
    hash_password, random_token, token_hash, verify_password, CurrentUser, SESSION_COOKIE,
};
use super::throttle::Throttle;
use super::{AppState, WebError};

pub const CSRF_COOKIE: &str = "sb_csrf";
const SESSION_HOURS: i64 = 8;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/admin/tasks") }))
        .route("/login", get(form).post(submit))
        .route("/logout", post(logout))
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    csrf: &'a str,
    email: &'a str,
    error: Option<&'a str>,
}

fn page(status: StatusCode, csrf: &str, email: &str, error: Option<&str>) -> Response {
    match (LoginPage { csrf, email, error }).render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => WebError::Internal(format!("rendering login page: {e}")).into_response(),
    }
}

/// A `Set-Cookie` value; tokens are hex, so nothing needs quoting.
pub fn cookie(state: &AppState, name: &str, value: &str, max_age_secs: i64) -> HeaderValue {
    let secure = if state.config().secure_cookies() {
        "; Secure"
    } else {
        ""
    };
    let text =
        format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{secure}");
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

async fn form(State(state): State<AppState>, jar: CookieJar) -> Response {
    // Reuse the cookie's token so two open sign-in tabs both work.
    let token = jar
        .get(CSRF_COOKIE)
        .map(|c| c.value().to_string())
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or_else(random_token);
    let mut resp = page(StatusCode::OK, &token, "", None);
    let set = cookie(&state, CSRF_COOKIE, &token, 3600);
    resp.headers_mut().append(header::SET_COOKIE, set);
    resp
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Credentials {
    email: String,
    password: String,
    _csrf: String,
}

/// The client's address from the connection; `unknown` when not served over a socket.
pub struct ClientAddr(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let addr = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string())
            .unwrap_or_else(|| "unknown".to_string());
        Ok(ClientAddr(addr))
    }
}

async fn submit(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    jar: CookieJar,
    Form(creds): Form<Credentials>,
) -> Response {
    use subtle::ConstantTimeEq;
    let cookie_token = jar.get(CSRF_COOKIE).map(|c| c.value().to_string());
    let Some(csrf) = cookie_token
        .filter(|c| !c.is_empty() && bool::from(c.as_bytes().ct_eq(creds._csrf.as_bytes())))
    else {
        return WebError::Forbidden(
            "the sign-in form expired or came from elsewhere; reload the page and try again".into(),
        )
        .into_response();
    };
    let key = Throttle::key(&addr, &creds.email);
    if !state.throttle().allowed(&key, Instant::now()) {
        tracing::warn!(%addr, email = %creds.email, "sign-in throttled");
        let msg = "Too many failed sign-ins for this account from your address. Wait a minute and try again.";
        return page(
            StatusCode::TOO_MANY_REQUESTS,
            &csrf,
            &creds.email,
            Some(msg),
        );
    }
    match check_credentials(&state, &creds.email, &creds.password).await {
        Ok(Some(user_id)) => {
            state.throttle().clear(&key);
            start_session(&state, user_id)
                .await
                .unwrap_or_else(IntoResponse::into_response)
        }
        Ok(None) => {
            state.throttle().record_failure(&key, Instant::now());
            tracing::info!(%addr, email = %creds.email, "sign-in failed");
            page(
                StatusCode::UNAUTHORIZED,
                &csrf,
                &creds.email,
                Some("Wrong e-mail or password."),
            )
        }
        Err(e) => e.into_response(),
    }
}

/// The user's id when the password matches. An unknown account still costs
/// one argon2 verification, so timing does not reveal which accounts exist.
async fn check_credentials(
    state: &AppState,
    email: &str,
    password: &str,
) -> Result<Option<i64>, WebError> {
    let user = state.store().user_by_email(email).await?;
    let (id, phc) = match user {
        Some(u) => (Some(u.id), u.password_hash),
        None => (None, dummy_hash().to_string()),
    };
    let password = password.to_string();
    let ok = tokio::task::spawn_blocking(move || verify_password(&password, &phc))
        .await
        .map_err(|e| WebError::Internal(format!("password check task: {e}")))?;
    Ok(if ok { id } else { None })
}

fn dummy_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| hash_password(&random_token()).unwrap_or_default())
}

async fn start_session(state: &AppState, user_id: i64) -> Result<Response, WebError> {
    let token = random_token();
    let expires = Utc::now() + chrono::Duration::hours(SESSION_HOURS);
    state
        .store()
        .create_session(&token_hash(&token), user_id, &random_token(), expires)
        .await?;
    let mut resp = Redirect::to("/admin/tasks").into_response();
    let set = cookie(state, SESSION_COOKIE, &token, SESSION_HOURS * 3600);
    resp.headers_mut().append(header::SET_COOKIE, set);
    Ok(resp)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CsrfOnly {
    _csrf: String,
}

async fn logout(
    State(state): State<AppState>,
    user: CurrentUser,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, WebError> {
    user.check_csrf(&form._csrf)?;
    state.store().delete_session(&user.session_hash).await?;
    let mut resp = Redirect::to("/login").into_response();
    resp.headers_mut()
        .append(header::SET_COOKIE, cookie(&state, SESSION_COOKIE, "", 0));
    Ok(resp)
}
