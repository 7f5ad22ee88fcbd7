//! The HTTP surface: the admin dashboard (server-rendered), the JSON API under
//! `/api/v1`, server-sent events, health and metrics. [`router`] builds the
//! whole app from an [`AppState`] so tests drive it without a socket.

pub mod api;
pub mod api_calls;
pub mod api_tasks;
pub mod auth;
pub mod error;
pub mod login;
pub mod metrics;
pub mod ops;
pub mod pages;
pub mod sse;
pub mod state;
pub mod throttle;
pub mod users;

pub use error::WebError;
pub use state::AppState;

use axum::{middleware, Router};

/// The complete HTTP application. Routes are merged before the observing
/// layer so every route gets a request span and metrics under its pattern.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(login::routes())
        .merge(pages::routes())
        .merge(users::routes())
        .merge(ops::routes())
        .merge(crate::transport::twilio::routes())
        .nest("/api/v1", api::routes())
        .layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::observe,
        ))
        .with_state(state)
}
