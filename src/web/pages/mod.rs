//! The server-rendered admin dashboard: the task queue (with CSV export), one
//! task with its actions, calls, and statistics with inline SVG charts.
//!
//! Pages read and write only through [`crate::store::Store`]; every form POST
//! checks the session's CSRF token and answers with a 303 back to the page,
//! carrying a flash *code* (never free text, so a crafted link cannot put
//! words on the page). Sign-in, users and the JSON API live elsewhere in `web`.

mod calls;
pub mod charts;
mod csv;
mod latency;
mod stats;
mod task;
mod tasks;

use askama::Template;
use axum::response::Html;
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::auth::CurrentUser;
use super::{AppState, WebError};
use crate::domain::Speaker;

pub use self::csv::csv_line;

/// Rows per page on the queue and the call list.
pub const PAGE_SIZE: i64 = 25;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/tasks", get(tasks::queue))
        .route("/admin/tasks.csv", get(tasks::export_csv))
        .route("/admin/tasks/{reference}", get(task::show))
        .route(
            "/admin/tasks/{reference}/transition",
            post(task::transition),
        )
        .route("/admin/tasks/{reference}/assign", post(task::assign))
        .route("/admin/tasks/{reference}/note", post(task::note))
        .route("/admin/tasks/{reference}/edit", post(task::edit))
        .route("/admin/tasks/{reference}/recording", get(task::recording))
        .route("/admin/calls", get(calls::list))
        .route("/admin/calls/{id}", get(calls::show))
        .route("/admin/stats", get(stats::show))
}

/// What the shared layout (`base.html`) needs from every page.
pub struct Layout {
    pub title: String,
    /// `tasks`, `calls`, `stats` or `users`: the highlighted nav entry.
    pub section: &'static str,
    pub email: String,
    pub is_admin: bool,
    pub csrf: String,
    pub flash: Option<&'static str>,
}

impl Layout {
    pub fn new(user: &CurrentUser, title: impl Into<String>, section: &'static str) -> Layout {
        Layout {
            title: title.into(),
            section,
            email: user.user.email.clone(),
            is_admin: user.is_admin(),
            csrf: user.csrf.clone(),
            flash: None,
        }
    }
}

/// Renders a template into an HTML response; a template failure is an internal error.
pub fn render<T: Template>(page: &T) -> Result<Html<String>, WebError> {
    page.render()
        .map(Html)
        .map_err(|e| WebError::Internal(format!("template rendering failed: {e}")))
}

/// A time as the business sees it: `2026-11-21 14:05` in the configured zone.
pub fn fmt_time(at: DateTime<Utc>, tz: Tz) -> String {
    at.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string()
}

pub fn fmt_opt_time(at: Option<DateTime<Utc>>, tz: Tz) -> String {
    at.map(|t| fmt_time(t, tz)).unwrap_or_default()
}

/// A duration in words short enough for a table cell: `45s`, `3m 07s`, `2h 05m`, `3d 4h`.
pub fn fmt_duration(secs: i64) -> String {
    let secs = secs.max(0);
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m {:02}s", s / 60, s % 60),
        s if s < 86_400 => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
        s => format!("{}d {}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// How a transcript names who spoke.
pub fn speaker_label(s: Speaker) -> &'static str {
    match s {
        Speaker::Caller => "Caller",
        Speaker::Agent => "Receptionist",
        Speaker::Human => "Human agent",
        Speaker::System => "System",
    }
}

/// Treats an absent or blank query value as absent.
pub fn non_empty(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// Parses `?page=`: absent means 1; anything else must be a positive number.
pub fn parse_page(v: &Option<String>) -> Result<i64, WebError> {
    match non_empty(v) {
        None => Ok(1),
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|p| *p >= 1)
            .ok_or_else(|| WebError::BadRequest(format!("page `{s}` is not a positive number"))),
    }
}

/// One entry of a pagination bar; `href: None` is a gap (…) or the current page.
pub struct PageLink {
    pub label: String,
    pub href: Option<String>,
    pub current: bool,
}

/// The pagination bar: first, last, and two pages either side of the current one.
/// `href_for(n)` builds the link for page `n`.
pub fn page_links(page: i64, pages: i64, href_for: impl Fn(i64) -> String) -> Vec<PageLink> {
    if pages <= 1 {
        return Vec::new();
    }
    let mut out = Vec::new();
    if page > 1 {
        out.push(PageLink {
            label: "‹ Prev".into(),
            href: Some(href_for(page - 1)),
            current: false,
        });
    }
    let mut last_shown = 0;
    for n in 1..=pages {
        let near = (n - page).abs() <= 2;
        if n == 1 || n == pages || near {
            if last_shown != 0 && n > last_shown + 1 {
                out.push(PageLink {
                    label: "…".into(),
                    href: None,
                    current: false,
                });
            }
            out.push(PageLink {
                label: n.to_string(),
                href: (n != page).then(|| href_for(n)),
                current: n == page,
            });
            last_shown = n;
        }
    }
    if page < pages {
        out.push(PageLink {
            label: "Next ›".into(),
            href: Some(href_for(page + 1)),
            current: false,
        });
    }
    out
}

/// How many pages `total` rows fill (at least one, so "page 1 of 1" reads right).
pub fn page_count(total: i64) -> i64 {
    ((total + PAGE_SIZE - 1) / PAGE_SIZE).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_links_window_and_gaps() {
        let links = page_links(6, 12, |n| format!("?page={n}"));
        let labels: Vec<&str> = links.iter().map(|l| l.label.as_str()).collect();
        assert_eq!(
            labels,
            ["‹ Prev", "1", "…", "4", "5", "6", "7", "8", "…", "12", "Next ›"]
        );
        let current: Vec<&PageLink> = links.iter().filter(|l| l.current).collect();
        assert_eq!(current.len(), 1);
        assert_eq!(current[0].label, "6");
        assert!(current[0].href.is_none());
        assert_eq!(links[0].href.as_deref(), Some("?page=5"));
        assert!(page_links(1, 1, |n| n.to_string()).is_empty());
    }

    #[test]
    fn page_count_rounds_up() {
        assert_eq!(page_count(0), 1);
        assert_eq!(page_count(25), 1);
        assert_eq!(page_count(26), 2);
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(fmt_duration(-3), "0s");
        assert_eq!(fmt_duration(45), "45s");
        assert_eq!(fmt_duration(187), "3m 07s");
        assert_eq!(fmt_duration(7500), "2h 05m");
        assert_eq!(fmt_duration(3 * 86_400 + 4 * 3600), "3d 4h");
    }

    #[test]
    fn page_parameter_is_checked() {
        assert_eq!(parse_page(&None).unwrap(), 1);
        assert_eq!(parse_page(&Some(" ".into())).unwrap(), 1);
        assert_eq!(parse_page(&Some("3".into())).unwrap(), 3);
        assert!(parse_page(&Some("0".into())).is_err());
        assert!(parse_page(&Some("x".into())).is_err());
    }
}
