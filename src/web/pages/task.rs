//! One task (`/admin/tasks/{ref}`): every field, the call's transcript, the
//! audit trail, and the actions (move, assign, note, edit) as small forms.
//!
//! Only the moves the lifecycle allows are offered; a forged illegal move is
//! refused by the store and shown as the 409 page. Closing needs a note.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

use super::{fmt_opt_time, fmt_time, non_empty, render, speaker_label, Layout};
use crate::domain::{TaskStatus, Urgency};
use crate::store::{Task, TaskEvent, TaskFields};
use crate::web::auth::CurrentUser;
use crate::web::{AppState, WebError};

/// Flash codes a redirect may carry, and what they say.
const FLASHES: [(&str, &str); 8] = [
    ("in_progress", "Task is now in progress."),
    ("escalated", "Task escalated."),
    ("closed", "Task closed."),
    ("assigned", "Assignee updated."),
    ("unassigned", "Task unassigned."),
    ("noted", "Note added."),
    ("edited", "Fields saved."),
    ("unchanged", "Nothing changed."),
];

#[derive(Debug, Default, Deserialize)]
pub struct ShowQuery {
    flash: Option<String>,
}

/// A move offered on the page.
pub struct Action {
    pub to: &'static str,
    pub label: &'static str,
    /// Closing asks for a resolution note.
    pub needs_note: bool,
}

pub struct Field {
    pub label: &'static str,
    pub value: String,
}

pub struct Line {
    pub speaker: &'static str,
    pub offset: String,
    pub text: String,
}

pub struct AuditRow {
    pub at: String,
    pub actor: String,
    pub field: String,
    pub from: String,
    pub to: String,
    pub note: String,
}

pub struct SelectOption {
    pub value: String,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "task.html")]
pub struct TaskPage {
    pub layout: Layout,
    pub reference: String,
    pub status: &'static str,
    pub status_label: &'static str,
    pub fields: Vec<Field>,
    pub actions: Vec<Action>,
    pub assignee: String,
    pub transcript: Vec<Line>,
    pub call_id: Option<i64>,
    /// The caller left a voice message (speech recognition was down).
    pub has_recording: bool,
    pub audit: Vec<AuditRow>,
    pub categories: Vec<SelectOption>,
    pub urgencies: Vec<SelectOption>,
    pub edit: TaskFields,
}

fn action_for(from: TaskStatus, to: TaskStatus) -> Action {
    let label = match (from, to) {
        (TaskStatus::New, TaskStatus::InProgress) => "Start",
        (TaskStatus::Closed, TaskStatus::InProgress) => "Reopen",
        (_, TaskStatus::InProgress) => "Back to in progress",
        (_, TaskStatus::Escalated) => "Escalate",
        (_, TaskStatus::Closed) => "Close",
        (_, TaskStatus::New) => "Mark new",
    };
    Action {
        to: to.as_str(),
        label,
        needs_note: to == TaskStatus::Closed,
    }
}

fn fields(t: &Task, tz: chrono_tz::Tz) -> Vec<Field> {
    let s = |v: &Option<String>| v.clone().unwrap_or_default();
    vec![
        Field {
            label: "Status",
            value: t.status.label().into(),
        },
        Field {
            label: "Urgency",
            value: t.urgency.as_str().into(),
        },
        Field {
            label: "Category",
            value: s(&t.category),
        },
        Field {
            label: "Issue",
            value: s(&t.issue),
        },
        Field {
            label: "Location",
            value: s(&t.location),
        },
        Field {
            label: "Requested time",
            value: s(&t.requested_time),
        },
        Field {
            label: "Requested at",
            value: fmt_opt_time(t.requested_at, tz),
        },
        Field {
            label: "Caller name",
            value: s(&t.caller_name),
        },
        Field {
            label: "Caller number",
            value: s(&t.caller_number),
        },
        Field {
            label: "Assignee",
            value: s(&t.assignee),
        },
        Field {
            label: "Confidence",
            value: format!("{:.0}%", t.confidence * 100.0),
        },
        Field {
            label: "Summary",
            value: s(&t.summary),
        },
        Field {
            label: "Created",
            value: fmt_time(t.created_at, tz),
        },
        Field {
            label: "Updated",
            value: fmt_time(t.updated_at, tz),
        },
        Field {
            label: "Closed",
            value: fmt_opt_time(t.closed_at, tz),
        },
    ]
}

fn audit_row(e: &TaskEvent, tz: chrono_tz::Tz) -> AuditRow {
    AuditRow {
        at: fmt_time(e.at, tz),
        actor: e.actor.clone(),
        field: e.field.clone(),
        from: e.from_value.clone().unwrap_or_default(),
        to: e.to_value.clone().unwrap_or_default(),
        note: e.note.clone().unwrap_or_default(),
    }
}

/// The offset of a turn from the start of the call, `m:ss`.
fn offset(ms: Option<i64>) -> String {
    ms.map(|ms| {
        let s = ms.max(0) / 1000;
        format!("{}:{:02}", s / 60, s % 60)
    })
    .unwrap_or_default()
}

pub async fn show(
    user: CurrentUser,
    State(state): State<AppState>,
    Path(reference): Path<String>,
    Query(query): Query<ShowQuery>,
) -> Result<Response, WebError> {
    let store = state.store();
    let tz = state.config().business.timezone;
    let task = store.task(&reference).await?;
    let transcript = match task.call_id {
        Some(id) => store.transcript(id).await?,
        None => Vec::new(),
    };
    let audit = store.task_events(&reference).await?;
    let has_recording = store.task_recording(&reference).await?.is_some();
    let mut layout = Layout::new(&user, format!("{} · Task", task.reference), "tasks");
    layout.flash = non_empty(&query.flash)
        .and_then(|code| FLASHES.iter().find(|(c, _)| *c == code))
        .map(|(_, text)| *text);
    let option = |value: &str, current: Option<&str>| SelectOption {
        value: value.to_string(),
        selected: current == Some(value),
    };
    let page = TaskPage {
        layout,
        reference: task.reference.clone(),
        status: task.status.as_str(),
        status_label: task.status.label(),
        fields: fields(&task, tz),
        actions: TaskStatus::ALL
            .into_iter()
            .filter(|to| task.status.can_move_to(*to))
            .map(|to| action_for(task.status, to))
            .collect(),
        assignee: task.assignee.clone().unwrap_or_default(),
        transcript: transcript
            .iter()
            .map(|t| Line {
                speaker: speaker_label(t.speaker),
                offset: offset(t.start_ms),
                text: t.text.clone(),
            })
            .collect(),
        call_id: task.call_id,
        has_recording,
        audit: audit.iter().map(|e| audit_row(e, tz)).collect(),
        categories: state
            .config()
            .business
            .categories
            .iter()
            .map(|c| option(c, task.category.as_deref()))
            .collect(),
        urgencies: Urgency::ALL
            .iter()
            .map(|u| option(u.as_str(), Some(task.urgency.as_str())))
            .collect(),
        edit: current_fields(&task),
    };
    Ok(render(&page)?.into_response())
}

fn current_fields(t: &Task) -> TaskFields {
    TaskFields {
        category: t.category.clone(),
        issue: t.issue.clone(),
        location: t.location.clone(),
        requested_time: t.requested_time.clone(),
        urgency: Some(t.urgency),
        caller_name: t.caller_name.clone(),
        caller_number: t.caller_number.clone(),
        summary: t.summary.clone(),
        ..TaskFields::default()
    }
}

fn back(reference: &str, flash: &str) -> Response {
    // The reference comes from the store (`T-…`), so it is safe in a path.
    Redirect::to(&format!("/admin/tasks/{reference}?flash={flash}")).into_response()
}

#[derive(Debug, Default, Deserialize)]
pub struct TransitionForm {
    #[serde(default)]
    _csrf: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    note: String,
}

pub async fn transition(
    user: CurrentUser,
    State(state): State<AppState>,
    Path(reference): Path<String>,
    Form(form): Form<TransitionForm>,
) -> Result<Response, WebError> {
    user.check_csrf(&form._csrf)?;
    let to: TaskStatus = form.to.trim().parse().map_err(WebError::BadRequest)?;
    let note = form.note.trim();
    if to == TaskStatus::Closed && note.is_empty() {
        return Err(WebError::Unprocessable(
            "closing a task needs a resolution note".into(),
        ));
    }
    let note = (!note.is_empty()).then_some(note);
    let task = state
        .store()
        .transition_task(&reference, to, &user.actor(), note)
        .await?;
    Ok(back(&task.reference, to.as_str()))
}

#[derive(Debug, Default, Deserialize)]
pub struct AssignForm {
    #[serde(default)]
    _csrf: String,
    #[serde(default)]
    assignee: String,
}

pub async fn assign(
    user: CurrentUser,
    State(state): State<AppState>,
    Path(reference): Path<String>,
    Form(form): Form<AssignForm>,
) -> Result<Response, WebError> {
    user.check_csrf(&form._csrf)?;
    let wanted = form.assignee.trim();
    let assignee = match wanted {
        "" => None,
        w if w.eq_ignore_ascii_case("me") => Some(user.user.email.as_str()),
        w => Some(w),
    };
    let task = state
        .store()
        .assign_task(&reference, assignee, &user.actor())
        .await?;
    let flash = if task.assignee.is_some() {
        "assigned"
    } else {
        "unassigned"
    };
    Ok(back(&task.reference, flash))
}

#[derive(Debug, Default, Deserialize)]
pub struct NoteForm {
    #[serde(default)]
    _csrf: String,
    #[serde(default)]
    note: String,
}

pub async fn note(
    user: CurrentUser,
    State(state): State<AppState>,
    Path(reference): Path<String>,
    Form(form): Form<NoteForm>,
) -> Result<Response, WebError> {
    user.check_csrf(&form._csrf)?;
    state
        .store()
        .add_task_note(&reference, &user.actor(), &form.note)
        .await?;
    let task = state.store().task(&reference).await?;
    Ok(back(&task.reference, "noted"))
}

#[derive(Debug, Default, Deserialize)]
pub struct EditForm {
    #[serde(default)]
    _csrf: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    issue: String,
    #[serde(default)]
    location: String,
    #[serde(default)]
    requested_time: String,
    #[serde(default)]
    urgency: String,
    #[serde(default)]
    caller_name: String,
    #[serde(default)]
    caller_number: String,
    #[serde(default)]
    summary: String,
}

/// A submitted text field as a patch entry: unchanged (blank over blank) is
/// `None`; blank over a value clears it.
fn text_patch(submitted: &str, current: &Option<String>) -> Option<String> {
    let v = submitted.trim();
    let cur = current.as_deref().unwrap_or("");
    (v != cur).then(|| v.to_string())
}

fn edit_patch(form: &EditForm, task: &Task, categories: &[String]) -> Result<TaskFields, WebError> {
    let category = form.category.trim();
    if !category.is_empty() && !categories.iter().any(|c| c == category) {
        return Err(WebError::Unprocessable(format!(
            "unknown category `{category}`"
        )));
    }
    let urgency: Urgency = form
        .urgency
        .trim()
        .parse()
        .map_err(WebError::Unprocessable)?;
    Ok(TaskFields {
        category: text_patch(category, &task.category),
        issue: text_patch(&form.issue, &task.issue),
        location: text_patch(&form.location, &task.location),
        requested_time: text_patch(&form.requested_time, &task.requested_time),
        urgency: (urgency != task.urgency).then_some(urgency),
        caller_name: text_patch(&form.caller_name, &task.caller_name),
        caller_number: text_patch(&form.caller_number, &task.caller_number),
        summary: text_patch(&form.summary, &task.summary),
        ..TaskFields::default()
    })
}

pub async fn edit(
    user: CurrentUser,
    State(state): State<AppState>,
    Path(reference): Path<String>,
    Form(form): Form<EditForm>,
) -> Result<Response, WebError> {
    user.check_csrf(&form._csrf)?;
    let store = state.store();
    let task = store.task(&reference).await?;
    let patch = edit_patch(&form, &task, &state.config().business.categories)?;
    if patch == TaskFields::default() {
        return Ok(back(&task.reference, "unchanged"));
    }
    store
        .update_task_fields(&reference, &patch, &user.actor(), None)
        .await?;
    Ok(back(&task.reference, "edited"))
}

/// The task's voice message as `audio/wav`.
pub async fn recording(
    _user: CurrentUser,
    State(state): State<AppState>,
    Path(reference): Path<String>,
) -> Result<Response, WebError> {
    let name = state
        .store()
        .task_recording(&reference)
        .await?
        .ok_or_else(|| WebError::NotFound(format!("a voice message for {reference}")))?;
    // The stored name is ours (`call-N.wav`), but never let it leave the directory.
    if name.contains('/') || name.contains('\\') || name.starts_with('.') {
        return Err(WebError::NotFound(format!(
            "a voice message for {reference}"
        )));
    }
    let path = state.config().recordings_dir.join(&name);
    let bytes = tokio::fs::read(&path).await.map_err(|e| {
        tracing::warn!(file = %path.display(), error = %e, "voice message missing");
        WebError::NotFound(format!("the voice message file for {reference}"))
    })?;
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "audio/wav".to_string()),
            (
                axum::http::header::CONTENT_DISPOSITION,
                format!("inline; filename=\"{reference}.wav\""),
            ),
        ],
        bytes,
    )
        .into_response())
}
