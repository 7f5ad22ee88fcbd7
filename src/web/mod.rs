//! The HTTP surface: the admin dashboard (server-rendered), the JSON API under
//! `/api/v1`, server-sent events, health and metrics. [`router`] builds the
//! whole app from an [`AppState`] so tests drive it without a socket.

pub mod auth;
pub mod error;
pub mod pages;
pub mod state;

pub use error::WebError;
pub use state::AppState;

use axum::Router;

/// The complete HTTP application.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(auth::routes())
        .merge(pages::routes())
        .with_state(state)
}
