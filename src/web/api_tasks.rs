//! `/api/v1/tasks`: list with the queue's filters, create, read, edit
//! (fields and assignee), move through the lifecycle, read the audit trail.
//! Field names are the store's `Task` fields; categories are checked against
//! the configured list here, at the edge.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};
use serde_json::json;

use super::api::{non_empty, ApiCaller, ApiError, ApiJson, ApiQuery, ApiResult};
use super::{AppState, WebError};
use crate::domain::{TaskStatus, Urgency};
use crate::store::{TaskFields, TaskFilter, TaskSort};

/// Page size when the client names none, and the most it may ask for.
const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 500;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/tasks", get(list).post(create))
        .route("/tasks/{reference}", get(show).patch(edit))
        .route("/tasks/{reference}/transitions", post(transition))
        .route("/tasks/{reference}/events", get(events))
}

/// The queue's filters, as query parameters.
#[derive(Debug, Default, Deserialize)]
pub struct TaskQuery {
    pub status: Option<String>,
    pub category: Option<String>,
    pub urgency: Option<String>,
    pub q: Option<String>,
    pub sort: Option<String>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

impl TaskQuery {
    /// The store filter, or a 400 naming the bad parameter.
    pub fn to_filter(&self) -> Result<TaskFilter, WebError> {
        let bad = |what: &str, e: String| WebError::BadRequest(format!("`{what}`: {e}"));
        let sort = match non_empty(&self.sort) {
            None => TaskSort::Newest,
            Some(s) => serde_json::from_value(json!(s)).map_err(|_| {
                bad(
                    "sort",
                    format!("unknown sort `{s}` (expected newest, oldest, urgency or updated)"),
                )
            })?,
        };
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(bad("limit", format!("{limit} is outside 1..={MAX_LIMIT}")));
        }
        let offset = self.offset.unwrap_or(0);
        if offset < 0 {
            return Err(bad("offset", "must not be negative".into()));
        }
        Ok(TaskFilter {
            status: non_empty(&self.status)
                .map(str::parse::<TaskStatus>)
                .transpose()
                .map_err(|e| bad("status", e))?,
            category: non_empty(&self.category).map(str::to_lowercase),
            urgency: non_empty(&self.urgency)
                .map(str::parse::<Urgency>)
                .transpose()
                .map_err(|e| bad("urgency", e))?,
            text: non_empty(&self.q).map(str::to_string),
            sort,
            limit,
            offset,
        })
    }
}

async fn list(
    _caller: ApiCaller,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<TaskQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    let filter = query.to_filter()?;
    let tasks = state.store().list_tasks(&filter).await?;
    let total = state.store().count_tasks(&filter).await?;
    Ok(Json(json!({
        "tasks": tasks,
        "total": total,
        "limit": filter.limit,
        "offset": filter.offset,
    })))
}

/// The editable fields shared by create and edit.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTask {
    call_id: Option<i64>,
    category: Option<String>,
    issue: Option<String>,
    location: Option<String>,
    requested_time: Option<String>,
    requested_at: Option<DateTime<Utc>>,
    urgency: Option<Urgency>,
    caller_name: Option<String>,
    caller_number: Option<String>,
    confidence: Option<f32>,
    summary: Option<String>,
    assignee: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskPatch {
    category: Option<String>,
    issue: Option<String>,
    location: Option<String>,
    requested_time: Option<String>,
    requested_at: Option<DateTime<Utc>>,
    urgency: Option<Urgency>,
    caller_name: Option<String>,
    caller_number: Option<String>,
    confidence: Option<f32>,
    summary: Option<String>,
    /// Absent: unchanged; `null` or `""`: unassigned.
    #[serde(default, deserialize_with = "present")]
    assignee: Option<Option<String>>,
    /// Recorded with each change in the audit trail.
    note: Option<String>,
}

/// Distinguishes a field given as `null` from a missing one.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Ok(Some(Option::deserialize(d)?))
}

/// Normalises and checks the category against the configured list.
fn check_category(state: &AppState, category: Option<String>) -> Result<Option<String>, WebError> {
    let Some(c) = category.map(|c| c.trim().to_lowercase()) else {
        return Ok(None);
    };
    let known = &state.config().business.categories;
    if known.contains(&c) {
        Ok(Some(c))
    } else {
        Err(WebError::Unprocessable(format!(
            "unknown category `{c}` (expected one of: {})",
            known.join(", ")
        )))
    }
}

async fn create(
    caller: ApiCaller,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<NewTask>,
) -> ApiResult<Response> {
    let fields = TaskFields {
        category: check_category(&state, body.category)?,
        issue: body.issue,
        location: body.location,
        requested_time: body.requested_time,
        requested_at: body.requested_at,
        urgency: body.urgency,
        caller_name: body.caller_name,
        caller_number: body.caller_number,
        confidence: body.confidence,
        summary: body.summary,
    };
    let store = state.store();
    let mut task = store
        .create_task(body.call_id, fields, &caller.actor)
        .await?;
    if let Some(a) = body.assignee.as_deref().filter(|a| !a.trim().is_empty()) {
        task = store
            .assign_task(&task.reference, Some(a), &caller.actor)
            .await?;
    }
    let location = format!("/api/v1/tasks/{}", task.reference);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(task),
    )
        .into_response())
}

async fn show(
    _caller: ApiCaller,
    State(state): State<AppState>,
    Path(reference): Path<String>,
) -> ApiResult<Response> {
    Ok(Json(state.store().task(&reference).await?).into_response())
}

async fn edit(
    caller: ApiCaller,
    State(state): State<AppState>,
    Path(reference): Path<String>,
    ApiJson(body): ApiJson<TaskPatch>,
) -> ApiResult<Response> {
    let store = state.store();
    // Make a missing task a 404 before checking anything else.
    store.task(&reference).await?;
    let patch = TaskFields {
        category: check_category(&state, body.category)?,
        issue: body.issue,
        location: body.location,
        requested_time: body.requested_time,
        requested_at: body.requested_at,
        urgency: body.urgency,
        caller_name: body.caller_name,
        caller_number: body.caller_number,
        confidence: body.confidence,
        summary: body.summary,
    };
    let note = body
        .note
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty());
    let mut task = store
        .update_task_fields(&reference, &patch, &caller.actor, note)
        .await?;
    if let Some(assignee) = body.assignee {
        task = store
            .assign_task(&reference, assignee.as_deref(), &caller.actor)
            .await?;
    }
    Ok(Json(task).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Transition {
    to: String,
    note: Option<String>,
}

async fn transition(
    caller: ApiCaller,
    State(state): State<AppState>,
    Path(reference): Path<String>,
    ApiJson(body): ApiJson<Transition>,
) -> ApiResult<Response> {
    let to: TaskStatus = body
        .to
        .trim()
        .parse()
        .map_err(|e: String| ApiError(WebError::Unprocessable(e)))?;
    let note = body
        .note
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty());
    let task = state
        .store()
        .transition_task(&reference, to, &caller.actor, note)
        .await?;
    Ok(Json(task).into_response())
}

async fn events(
    _caller: ApiCaller,
    State(state): State<AppState>,
    Path(reference): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let events = state.store().task_events(&reference).await?;
    Ok(Json(json!({ "events": events })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_maps_to_filter_and_refuses_bad_values() {
        let q = TaskQuery {
            status: Some("escalated".into()),
            urgency: Some("".into()),
            sort: Some("urgency".into()),
            q: Some("  leak ".into()),
            limit: Some(10),
            ..Default::default()
        };
        let f = q.to_filter().unwrap();
        assert_eq!(f.status, Some(TaskStatus::Escalated));
        assert_eq!(f.urgency, None);
        assert_eq!(f.sort, TaskSort::Urgency);
        assert_eq!(f.text.as_deref(), Some("leak"));
        assert_eq!((f.limit, f.offset), (10, 0));

        let bad = TaskQuery {
            status: Some("done".into()),
            ..Default::default()
        };
        assert!(bad
            .to_filter()
            .unwrap_err()
            .to_string()
            .contains("`status`"));
        let bad = TaskQuery {
            limit: Some(0),
            ..Default::default()
        };
        assert!(bad.to_filter().unwrap_err().to_string().contains("`limit`"));
        let bad = TaskQuery {
            sort: Some("random".into()),
            ..Default::default()
        };
        assert!(bad.to_filter().unwrap_err().to_string().contains("`sort`"));
    }

    #[test]
    fn patch_tells_null_assignee_from_missing() {
        let p: TaskPatch = serde_json::from_str(r#"{"assignee": null}"#).unwrap();
        assert_eq!(p.assignee, Some(None));
        let p: TaskPatch = serde_json::from_str(r#"{"issue": "x"}"#).unwrap();
        assert_eq!(p.assignee, None);
    }
}
