//! Calls: the list (`/admin/calls`, newest first, paginated) and one call
//! (`/admin/calls/{id}`) with its transcript, the call core's decision
//! events, and the task it produced.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{
    fmt_duration, fmt_opt_time, fmt_time, page_count, page_links, parse_page, render,
    speaker_label, Layout, PageLink, PAGE_SIZE,
};
use crate::store::{Call, CallFilter};
use crate::web::auth::CurrentUser;
use crate::web::{AppState, WebError};

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    page: Option<String>,
}

/// One call, formatted for display.
pub struct CallRow {
    pub id: i64,
    pub from: String,
    pub to: String,
    pub transport: &'static str,
    pub external_id: String,
    pub started: String,
    pub answered: String,
    pub ended: String,
    pub duration: String,
    pub end_reason: String,
    pub node: String,
    pub direction: String,
    pub task_ref: Option<String>,
}

#[derive(Template)]
#[template(path = "calls.html")]
pub struct CallsPage {
    pub layout: Layout,
    pub rows: Vec<CallRow>,
    pub total: i64,
    pub page: i64,
    pub pages: i64,
    pub links: Vec<PageLink>,
}

pub struct Turn {
    pub speaker: &'static str,
    pub at: String,
    pub text: String,
}

pub struct Decision {
    pub at: String,
    pub kind: String,
    pub detail: String,
}

pub struct TaskLink {
    pub reference: String,
    pub status: &'static str,
    pub status_label: &'static str,
    pub summary: String,
}

#[derive(Template)]
#[template(path = "call.html")]
pub struct CallPage {
    pub layout: Layout,
    pub call: CallRow,
    pub carrier_status: String,
    pub transcript: Vec<Turn>,
    pub decisions: Vec<Decision>,
    /// Engine errors, fallbacks and latency summaries.
    pub engine_events: Vec<Decision>,
    pub latency: Vec<super::latency::TurnRow>,
    pub latency_summary: super::latency::SummaryRow,
    pub task: Option<TaskLink>,
}

fn call_row(c: &Call, task_ref: Option<String>, tz: chrono_tz::Tz) -> CallRow {
    let duration = c
        .ended_at
        .map(|end| fmt_duration((end - c.started_at).num_seconds()))
        .unwrap_or_else(|| "live".into());
    CallRow {
        id: c.id,
        from: c.from_number.clone(),
        to: c.to_number.clone(),
        transport: c.transport.as_str(),
        external_id: c.external_id.clone(),
        started: fmt_time(c.started_at, tz),
        answered: fmt_opt_time(c.answered_at, tz),
        ended: fmt_opt_time(c.ended_at, tz),
        duration,
        end_reason: c.end_reason.clone().unwrap_or_default(),
        node: c.node.clone(),
        direction: c.direction.clone(),
        task_ref,
    }
}

pub async fn list(
    user: CurrentUser,
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Response, WebError> {
    let store = state.store();
    let tz = state.config().business.timezone;
    let total = store.count_calls().await?;
    let pages = page_count(total);
    let page = parse_page(&query.page)?.min(pages);
    let calls = store
        .list_calls(&CallFilter {
            external_id: None,
            limit: PAGE_SIZE,
            offset: (page - 1) * PAGE_SIZE,
        })
        .await?;
    let mut rows = Vec::with_capacity(calls.len());
    for c in &calls {
        let task_ref = store.task_for_call(c.id).await?.map(|t| t.reference);
        rows.push(call_row(c, task_ref, tz));
    }
    let page_view = CallsPage {
        layout: Layout::new(&user, "Calls", "calls"),
        rows,
        total,
        page,
        pages,
        links: page_links(page, pages, |n| format!("/admin/calls?page={n}")),
    };
    Ok(render(&page_view)?.into_response())
}

pub async fn show(
    user: CurrentUser,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    // Parsed by hand so a bad id is a page, not a bare rejection.
    let id: i64 = id
        .parse()
        .map_err(|_| WebError::NotFound(format!("call {id}")))?;
    let store = state.store();
    let tz = state.config().business.timezone;
    let call = store.call(id).await?;
    let task = store.task_for_call(id).await?;
    let transcript = store.transcript(id).await?;
    let events = store.call_events(id).await?;
    let latencies = store.turn_latencies(id).await?;
    let decision =
        |(at, kind, detail): &(chrono::DateTime<chrono::Utc>, String, serde_json::Value)| {
            Decision {
                at: at.with_timezone(&tz).format("%H:%M:%S%.3f").to_string(),
                kind: kind.clone(),
                detail: match detail {
                    serde_json::Value::Null => String::new(),
                    other => other.to_string(),
                },
            }
        };
    let page = CallPage {
        layout: Layout::new(&user, format!("Call {id}"), "calls"),
        call: call_row(&call, task.as_ref().map(|t| t.reference.clone()), tz),
        carrier_status: call.carrier_status.clone().unwrap_or_default(),
        transcript: transcript
            .iter()
            .map(|t| Turn {
                speaker: speaker_label(t.speaker),
                at: t.at.with_timezone(&tz).format("%H:%M:%S").to_string(),
                text: t.text.clone(),
            })
            .collect(),
        decisions: events
            .iter()
            .filter(|e| !e.1.starts_with("engine_"))
            .map(decision)
            .collect(),
        engine_events: events
            .iter()
            .filter(|e| e.1.starts_with("engine_"))
            .map(decision)
            .collect(),
        latency: super::latency::turn_rows(&latencies),
        latency_summary: super::latency::summary_row("This call", &latencies),
        task: task.map(|t| TaskLink {
            reference: t.reference,
            status: t.status.as_str(),
            status_label: t.status.label(),
            summary: t.summary.or(t.issue).unwrap_or_default(),
        }),
    };
    Ok(render(&page)?.into_response())
}
