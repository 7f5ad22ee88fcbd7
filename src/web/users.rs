//! `/admin/users`: list, create, delete and change the role of users. Admins
//! only; every POST checks the session's CSRF token. An admin cannot delete
//! or demote themselves, so a signed-in admin never locks everyone out.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

use super::auth::{hash_password, AdminUser};
use super::{AppState, WebError};
use crate::store::Role;

/// Shortest password accepted for a new account.
pub const MIN_PASSWORD_LEN: usize = 8;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/users", get(list).post(create))
        .route("/admin/users/{id}/delete", post(delete))
        .route("/admin/users/{id}/role", post(change_role))
}

struct UserRow {
    id: i64,
    email: String,
    role: &'static str,
    created: String,
    is_self: bool,
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    me: String,
    csrf: String,
    users: Vec<UserRow>,
    error: Option<String>,
    notice: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Flash {
    done: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    admin: AdminUser,
    Query(flash): Query<Flash>,
) -> Result<Response, WebError> {
    let notice = flash.done.map(|d| match d.as_str() {
        "created" => "User added.".to_string(),
        "deleted" => "User deleted.".to_string(),
        _ => "Role changed.".to_string(),
    });
    render(&state, &admin, StatusCode::OK, None, notice).await
}

async fn render(
    state: &AppState,
    AdminUser(me): &AdminUser,
    status: StatusCode,
    error: Option<String>,
    notice: Option<String>,
) -> Result<Response, WebError> {
    let users = state
        .store()
        .list_users()
        .await?
        .into_iter()
        .map(|u| UserRow {
            is_self: u.id == me.user.id,
            id: u.id,
            email: u.email,
            role: u.role.as_str(),
            created: u.created_at.format("%Y-%m-%d %H:%M UTC").to_string(),
        })
        .collect();
    let page = UsersPage {
        me: me.user.email.clone(),
        csrf: me.csrf.clone(),
        users,
        error,
        notice,
    };
    let html = page
        .render()
        .map_err(|e| WebError::Internal(format!("rendering users page: {e}")))?;
    Ok((status, Html(html)).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct NewUser {
    email: String,
    role: String,
    password: String,
    _csrf: String,
}

async fn create(
    State(state): State<AppState>,
    admin: AdminUser,
    Form(form): Form<NewUser>,
) -> Result<Response, WebError> {
    admin.0.check_csrf(&form._csrf)?;
    let problem = match (Role::parse(&form.role), form.password.chars().count()) {
        (None, _) => Some(format!("`{}` is not a role (admin or agent).", form.role)),
        (_, n) if n < MIN_PASSWORD_LEN => Some(format!(
            "The password needs at least {MIN_PASSWORD_LEN} characters."
        )),
        _ => None,
    };
    if let Some(msg) = problem {
        return render(
            &state,
            &admin,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(msg),
            None,
        )
        .await;
    }
    let role = Role::parse(&form.role).unwrap_or(Role::Agent);
    let password = form.password.clone();
    let hash = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| WebError::Internal(format!("password hashing task: {e}")))??;
    match state.store().create_user(&form.email, &hash, role).await {
        Ok(user) => {
            tracing::info!(by = %admin.0.user.email, email = %user.email, role = role.as_str(), "user created");
            Ok(Redirect::to("/admin/users?done=created").into_response())
        }
        Err(e) => {
            let e = WebError::from(e);
            match e {
                WebError::Conflict(_) | WebError::Unprocessable(_) => {
                    let status = e.status();
                    render(&state, &admin, status, Some(e.to_string()), None).await
                }
                other => Err(other),
            }
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RoleForm {
    role: String,
    _csrf: String,
}

async fn change_role(
    State(state): State<AppState>,
    admin: AdminUser,
    Path(id): Path<i64>,
    Form(form): Form<RoleForm>,
) -> Result<Response, WebError> {
    admin.0.check_csrf(&form._csrf)?;
    let role = Role::parse(&form.role)
        .ok_or_else(|| WebError::Unprocessable(format!("`{}` is not a role", form.role)))?;
    if id == admin.0.user.id && role != Role::Admin {
        return Err(WebError::Conflict(
            "you cannot remove your own admin role; ask another admin".into(),
        ));
    }
    state.store().set_user_role(id, role).await?;
    tracing::info!(by = %admin.0.user.email, user_id = id, role = role.as_str(), "role changed");
    Ok(Redirect::to("/admin/users?done=role").into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CsrfForm {
    _csrf: String,
}

async fn delete(
    State(state): State<AppState>,
    admin: AdminUser,
    Path(id): Path<i64>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, WebError> {
    admin.0.check_csrf(&form._csrf)?;
    if id == admin.0.user.id {
        return Err(WebError::Conflict(
            "you cannot delete your own account".into(),
        ));
    }
    state.store().delete_user(id).await?;
    tracing::info!(by = %admin.0.user.email, user_id = id, "user deleted");
    Ok(Redirect::to("/admin/users?done=deleted").into_response())
}
