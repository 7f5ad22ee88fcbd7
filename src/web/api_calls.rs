//! `/api/v1/calls`: the call list (or the call with a carrier id, via
//! `?external_id=`), one call with its transcript and the task it produced,
//! and placing a callback (`POST {"to", "task"}`): over SIP for a `sip:` URI,
//! over Twilio (REST Calls create with a `<Connect><Stream>` naming the task)
//! for an E.164 number. 202 with the carrier's call id once the call is on
//! its way; the conversation itself is the session's.

use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::api::{non_empty, ApiCaller, ApiError, ApiJson, ApiQuery, ApiResult};
use super::{AppState, WebError};
use crate::domain::Speaker;
use crate::store::{CallFilter, StoreError};
use crate::transport::sip::outbound::{DialError, SipDialer, Target, CALLBACK_TASK};
use crate::transport::twilio::TwilioRuntime;

const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 500;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/calls", get(list).post(place))
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlaceCall {
    /// A `sip:` URI, or an E.164 phone number (`+15551234567`).
    to: String,
    /// The reference of the task the call is about.
    task: String,
}

fn bad(message: String) -> ApiError {
    ApiError(WebError::BadRequest(message))
}

fn is_e164(to: &str) -> bool {
    to.strip_prefix('+')
        .is_some_and(|d| (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
}

async fn place(
    caller: ApiCaller,
    State(state): State<AppState>,
    sip: Option<Extension<SipDialer>>,
    twilio: Option<Extension<TwilioRuntime>>,
    ApiJson(body): ApiJson<PlaceCall>,
) -> ApiResult<Response> {
    let task = match state.store().task(body.task.trim()).await {
        Ok(t) => t,
        Err(StoreError::NotFound(_)) => {
            return Err(bad(format!(
                "`task`: there is no task {}",
                body.task.trim()
            )))
        }
        Err(e) => return Err(e.into()),
    };
    let to = body.to.trim();
    let (transport, id) = if to.starts_with("sip:") || to.starts_with("sips:") {
        let target = Target::parse(to).map_err(|e| bad(format!("`to`: {e}")))?;
        let Some(Extension(dialer)) = sip else {
            return Err(bad(
                "`to`: SIP is not enabled on this server (sip.addr)".into()
            ));
        };
        let id = dialer
            .dial(target, &task.reference)
            .await
            .map_err(|e| match e {
                DialError::BadTarget(..) => bad(format!("`to`: {e}")),
                DialError::AtCapacity => {
                    ApiError(WebError::Conflict(format!("{e}; try again later")))
                }
                DialError::NoMediaPort(_) | DialError::Stopped => {
                    ApiError(WebError::Internal(e.to_string()))
                }
            })?;
        ("sip", id)
    } else if is_e164(to) {
        (
            "twilio",
            place_over_twilio(&state, twilio, to, &task.reference).await?,
        )
    } else {
        return Err(bad(format!(
            "`to`: `{to}` is neither a sip: URI nor an E.164 phone number like +15551234567"
        )));
    };
    tracing::info!(actor = %caller.actor, %to, task = %task.reference, transport, call = %id, "outbound call placed");
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "call": { "id": id, "transport": transport, "to": to, "task": task.reference } })),
    )
        .into_response())
}

/// REST Calls create; when answered, Twilio opens our media stream with the
/// task in a `<Parameter>`, and the session opens with the task's context.
async fn place_over_twilio(
    state: &AppState,
    twilio: Option<Extension<TwilioRuntime>>,
    to: &str,
    task: &str,
) -> ApiResult<String> {
    let config = state.config();
    let rest = twilio.and_then(|Extension(t)| t.media.rest.clone());
    let (Some(rest), Some(from), Some(public)) = (
        rest,
        config.twilio.from_number.as_deref(),
        config.public_url.as_ref(),
    ) else {
        return Err(bad(
            "`to`: calling a phone number needs Twilio configured (twilio.account_sid, twilio.auth_token, twilio.from_number, public_url)".into(),
        ));
    };
    // Answered, the call fetches its TwiML from the voice webhook, which
    // connects the stream with the task to call back about.
    let mut answer = public.clone();
    answer.set_path("/twilio/voice");
    answer.query_pairs_mut().append_pair(CALLBACK_TASK, task);
    rest.create_call(to, from, answer.as_str())
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, %to, "Twilio refused the outbound call");
            ApiError(WebError::Conflict(format!(
                "Twilio did not place the call: {e}"
            )))
        })
}
