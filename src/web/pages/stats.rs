//! Statistics (`/admin/stats`): calls and tasks per day over the last 30
//! days, tasks by category and by status, the escalation rate and the median
//! time to close, drawn as inline SVG by [`super::charts`]; and a one-line
//! system status (the SIP registration).

use askama::Template;
use axum::extract::{Extension, State};
use axum::response::{IntoResponse, Response};
use chrono::Utc;

use super::charts::{bar_chart, line_chart, ratio_bar, Series};
use super::{fmt_duration, render, Layout};
use crate::transport::sip::status::RegistrationStatus;
use crate::web::auth::CurrentUser;
use crate::web::{AppState, WebError};

/// The window of the per-day chart.
const DAYS: i64 = 30;
/// The window of the per-day latency table.
const LATENCY_DAYS: i64 = 14;

#[derive(Template)]
#[template(path = "stats.html")]
pub struct StatsPage {
    pub layout: Layout,
    pub days: i64,
    pub calls_in_window: i64,
    pub tasks_in_window: i64,
    pub tasks_total: i64,
    pub escalated_total: i64,
    pub escalation_rate: String,
    pub median_close: String,
    /// Ready-made `<svg>` markup; its text was escaped by the chart functions.
    pub per_day_svg: String,
    pub by_category_svg: String,
    pub by_status_svg: String,
    pub escalation_svg: String,
    /// Turn latency p50/p95 per day, newest first.
    pub latency_days: Vec<super::latency::SummaryRow>,
    /// "registered with … until …", "failing with …: why", "not configured".
    pub sip_registration: String,
    /// The newest text messages in the outbox.
    pub texts: Vec<TextRow>,
}

pub struct TextRow {
    pub created: String,
    pub to: String,
    pub status: &'static str,
    pub attempts: i64,
    pub last_error: String,
}

/// The outbox rows as the page shows them (the body stays out of view).
fn text_rows(rows: &[crate::store::OutboxMessage], tz: chrono_tz::Tz) -> Vec<TextRow> {
    rows.iter()
        .map(|m| {
            let payload: serde_json::Value = serde_json::from_str(&m.payload).unwrap_or_default();
            TextRow {
                created: m
                    .created_at
                    .with_timezone(&tz)
                    .format("%Y-%m-%d %H:%M")
                    .to_string(),
                to: payload["to"].as_str().unwrap_or("?").to_string(),
                status: m.status().as_str(),
                attempts: m.attempts,
                last_error: m.last_error.clone().unwrap_or_default(),
            }
        })
        .collect()
}

pub async fn show(
    user: CurrentUser,
    State(state): State<AppState>,
    sip: Option<Extension<RegistrationStatus>>,
) -> Result<Response, WebError> {
    let sip_registration = crate::web::ops::sip_registration(sip).summary();
    let stats = state.store().stats(Utc::now(), DAYS).await?;
    let tz = state.config().business.timezone;
    let latencies = state
        .store()
        .turn_latencies_since(Utc::now() - chrono::Duration::days(LATENCY_DAYS))
        .await?;
    let texts = text_rows(&state.store().outbox_recent(10).await?, tz);
    // `MM-DD` is enough under a 30-day axis.
    let labels: Vec<String> = stats
        .per_day
        .iter()
        .map(|d| d.day.get(5..).unwrap_or(&d.day).to_string())
        .collect();
    let calls: Vec<f64> = stats.per_day.iter().map(|d| d.calls as f64).collect();
    let tasks: Vec<f64> = stats.per_day.iter().map(|d| d.tasks as f64).collect();
    let per_day_svg = line_chart(
        &format!("Calls and tasks per day, last {DAYS} days"),
        &labels,
        &[
            Series {
                name: "Calls",
                values: &calls,
                color: "#2563eb",
            },
            Series {
                name: "Tasks",
                values: &tasks,
                color: "#16a34a",
            },
        ],
    );
    let by_category: Vec<(String, f64)> = stats
        .by_category
        .iter()
        .map(|(c, n)| (c.clone(), *n as f64))
        .collect();
    let by_status: Vec<(String, f64)> = stats
        .by_status
        .iter()
        .map(|(s, n)| (s.label().to_string(), *n as f64))
        .collect();
    let rate = if stats.tasks_total > 0 {
        format!(
            "{:.1}%",
            100.0 * stats.escalated_total as f64 / stats.tasks_total as f64
        )
    } else {
        "–".into()
    };
    let page = StatsPage {
        layout: Layout::new(&user, "Statistics", "stats"),
        days: DAYS,
        calls_in_window: stats.per_day.iter().map(|d| d.calls).sum(),
        tasks_in_window: stats.per_day.iter().map(|d| d.tasks).sum(),
        tasks_total: stats.tasks_total,
        escalated_total: stats.escalated_total,
        escalation_rate: rate,
        median_close: stats
            .median_close_secs
            .map(|s| fmt_duration(s.round() as i64))
            .unwrap_or_else(|| "–".into()),
        per_day_svg,
        by_category_svg: bar_chart("Tasks by category", &by_category, "#7c3aed"),
        by_status_svg: bar_chart("Tasks by status", &by_status, "#0891b2"),
        latency_days: super::latency::per_day(&latencies, tz),
        escalation_svg: ratio_bar(
            "Escalation rate",
            stats.escalated_total,
            stats.tasks_total,
            "#dc2626",
        ),
        sip_registration,
        texts,
    };
    Ok(render(&page)?.into_response())
}
