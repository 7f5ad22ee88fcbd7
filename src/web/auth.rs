//! Who is asking: dashboard sessions (cookie `sb_session`, its SHA-256 stored),
//! CSRF tokens bound to the session, API bearer tokens, and argon2id passwords.
//!
//! Pages take [`CurrentUser`] (a missing or expired session redirects to
//! `/login`) or [`AdminUser`]; every form POST calls [`CurrentUser::check_csrf`].

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Router;
use axum_extra::extract::CookieJar;
use chrono::Utc;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::{AppState, WebError};
use crate::store::{Role, User};

pub const SESSION_COOKIE: &str = "sb_session";

pub fn routes() -> Router<AppState> {
    Router::new()
}

/// Hashes a password with argon2id and a random salt (PHC string).
pub fn hash_password(password: &str) -> Result<String, WebError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| WebError::Internal(format!("password hashing failed: {e}")))
}

/// Constant-time verification against a stored PHC string; a corrupt hash never verifies.
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A fresh random token, URL-safe.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// What is stored for a session or API token: its SHA-256, hex.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A signed-in dashboard user and the CSRF token of their session.
#[derive(Debug, Clone)]
pub struct CurrentUser {
    pub user: User,
    pub csrf: String,
    pub session_hash: String,
}

impl CurrentUser {
    /// Refuses a form whose `_csrf` field does not match the session's token.
    pub fn check_csrf(&self, submitted: &str) -> Result<(), WebError> {
        use subtle::ConstantTimeEq;
        if submitted.as_bytes().ct_eq(self.csrf.as_bytes()).into() {
            Ok(())
        } else {
            Err(WebError::Forbidden(
                "the form's CSRF token is missing or stale; reload the page and try again".into(),
            ))
        }
    }

    pub fn is_admin(&self) -> bool {
        self.user.role == Role::Admin
    }

    /// The actor name written to audit trails.
    pub fn actor(&self) -> String {
        format!("user:{}", self.user.email)
    }
}

/// Rejection for pages: send the browser to the sign-in form.
pub struct SignInRequired;

impl IntoResponse for SignInRequired {
    fn into_response(self) -> Response {
        Redirect::to("/login").into_response()
    }
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let jar = CookieJar::from_headers(&parts.headers);
        let Some(token) = jar.get(SESSION_COOKIE).map(|c| c.value().to_string()) else {
            return Err(SignInRequired.into_response());
        };
        let hash = token_hash(&token);
        match state.store().session(&hash, Utc::now()).await {
            Ok(Some(rec)) => Ok(CurrentUser {
                user: rec.user,
                csrf: rec.csrf_token,
                session_hash: hash,
            }),
            Ok(None) => Err(SignInRequired.into_response()),
            Err(e) => Err(WebError::from(e).into_response()),
        }
    }
}

/// A signed-in admin; agents get 403.
#[derive(Debug, Clone)]
pub struct AdminUser(pub CurrentUser);

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let user = CurrentUser::from_request_parts(parts, state).await?;
        if user.is_admin() {
            Ok(AdminUser(user))
        } else {
            Err(WebError::Forbidden("only admins may do that".into()).into_response())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_round_trip() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("x", "not a hash"));
    }
}
