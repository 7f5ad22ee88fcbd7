//! `/api/v1/calls`: the call list (or the call with a carrier id, via
//! `?external_id=`), and one call with its transcript and the task it produced.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::api::{non_empty, ApiCaller, ApiError, ApiQuery, ApiResult};
use super::{AppState, WebError};
use crate::domain::Speaker;
use crate::store::CallFilter;

const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 500;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/calls", get(list))
        .route("/calls/{id}", get(show))
}

#[derive(Debug, Deserialize)]
struct CallQuery {
    external_id: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

async fn list(
    _caller: ApiCaller,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<CallQuery>,
) -> ApiResult<Json<Value>> {
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError(WebError::BadRequest(format!(
            "`limit`: {limit} is outside 1..={MAX_LIMIT}"
        ))));
    }
    let offset = query.offset.unwrap_or(0).max(0);
    let filter = CallFilter {
        external_id: non_empty(&query.external_id).map(str::to_string),
        limit,
        offset,
    };
    let calls = state.store().list_calls(&filter).await?;
    let total = match filter.external_id {
        Some(_) => calls.len() as i64 + offset,
        None => state.store().count_calls().await?,
    };
    Ok(Json(json!({ "calls": calls, "total": total })))
}

/// One transcript line as the API shows it.
#[derive(Debug, Serialize)]
struct Line {
    speaker: Speaker,
    text: String,
    at: chrono::DateTime<chrono::Utc>,
}

async fn show(
    _caller: ApiCaller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    // A non-numeric id names no call: 404, not 400.
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError(WebError::NotFound(format!("call {id}"))))?;
    let store = state.store();
    let call = store.call(id).await?;
    let transcript: Vec<Line> = store
        .transcript(id)
        .await?
        .into_iter()
        .map(|t| Line {
            speaker: t.speaker,
            text: t.text,
            at: t.at,
        })
        .collect();
    let task = store.task_for_call(id).await?;
    let mut body = serde_json::to_value(&call)
        .map_err(|e| ApiError(WebError::Internal(format!("serialising call {id}: {e}"))))?;
    if let Value::Object(map) = &mut body {
        map.insert("transcript".into(), json!(transcript));
        map.insert("task".into(), json!(task));
    }
    Ok(Json(body))
}
