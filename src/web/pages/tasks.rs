//! The task queue (`/admin/tasks`) and its CSV export (`/admin/tasks.csv`).
//!
//! Both read the same query (status, category, urgency, `q`, sort), so the
//! export is exactly the filtered list, every matching row. `?partial=1`
//! returns only the queue fragment, which the page's script re-fetches on
//! live task events; without script the page is complete on its own.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;

use super::{
    csv_line, fmt_time, non_empty, page_count, page_links, parse_page, render, Layout, PageLink,
    PAGE_SIZE,
};
use crate::domain::{TaskStatus, Urgency};
use crate::store::{Task, TaskFilter, TaskSort};
use crate::web::auth::CurrentUser;
use crate::web::{AppState, WebError};

#[derive(Debug, Default, Deserialize)]
pub struct QueueQuery {
    status: Option<String>,
    category: Option<String>,
    urgency: Option<String>,
    q: Option<String>,
    sort: Option<String>,
    page: Option<String>,
    partial: Option<String>,
}

/// The query, checked: what the filter form shows and what links carry on.
#[derive(Debug, Default, Clone)]
struct Criteria {
    status: Option<TaskStatus>,
    category: Option<String>,
    urgency: Option<Urgency>,
    q: Option<String>,
    sort: TaskSort,
}

const SORTS: [(TaskSort, &str, &str); 4] = [
    (TaskSort::Newest, "newest", "Newest first"),
    (TaskSort::Oldest, "oldest", "Oldest first"),
    (TaskSort::Urgency, "urgency", "Most urgent"),
    (TaskSort::Updated, "updated", "Recently updated"),
];

fn sort_key(sort: TaskSort) -> &'static str {
    SORTS
        .iter()
        .find(|(s, _, _)| *s == sort)
        .map(|(_, k, _)| *k)
        .unwrap_or("newest")
}

impl Criteria {
    fn parse(q: &QueueQuery, categories: &[String]) -> Result<Criteria, WebError> {
        let status = non_empty(&q.status)
            .map(|s| s.parse::<TaskStatus>())
            .transpose()
            .map_err(WebError::BadRequest)?;
        let urgency = non_empty(&q.urgency)
            .map(|s| s.parse::<Urgency>())
            .transpose()
            .map_err(WebError::BadRequest)?;
        let category = non_empty(&q.category).map(str::to_string);
        if let Some(c) = &category {
            if !categories.contains(c) {
                return Err(WebError::BadRequest(format!("unknown category `{c}`")));
            }
        }
        let sort = match non_empty(&q.sort) {
            None => TaskSort::Newest,
            Some(s) => SORTS
                .iter()
                .find(|(_, key, _)| *key == s)
                .map(|(sort, _, _)| *sort)
                .ok_or_else(|| {
                    WebError::BadRequest(format!(
                        "unknown sort `{s}` (expected newest, oldest, urgency or updated)"
                    ))
                })?,
        };
        Ok(Criteria {
            status,
            category,
            urgency,
            q: non_empty(&q.q).map(str::to_string),
            sort,
        })
    }

    fn filter(&self) -> TaskFilter {
        TaskFilter {
            status: self.status,
            category: self.category.clone(),
            urgency: self.urgency,
            text: self.q.clone(),
            sort: self.sort,
            limit: 0,
            offset: 0,
        }
    }

    /// The query string (`?…`, or empty) for these criteria and a page number.
    fn query(&self, page: i64) -> String {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        if let Some(s) = self.status {
            pairs.push(("status", s.as_str().into()));
        }
        if let Some(c) = &self.category {
            pairs.push(("category", c.clone()));
        }
        if let Some(u) = self.urgency {
            pairs.push(("urgency", u.as_str().into()));
        }
        if let Some(q) = &self.q {
            pairs.push(("q", q.clone()));
        }
        if self.sort != TaskSort::Newest {
            pairs.push(("sort", sort_key(self.sort).into()));
        }
        if page > 1 {
            pairs.push(("page", page.to_string()));
        }
        match serde_urlencoded::to_string(&pairs) {
            Ok(s) if !s.is_empty() => format!("?{s}"),
            _ => String::new(),
        }
    }
}

/// A status tab: its count under the other filters, and the link selecting it.
pub struct Tab {
    pub label: &'static str,
    pub key: &'static str,
    pub count: i64,
    pub href: String,
    pub active: bool,
}

/// One queue row, formatted for display.
pub struct Row {
    pub reference: String,
    pub status: &'static str,
    pub status_label: &'static str,
    pub urgency: &'static str,
    pub category: String,
    pub issue: String,
    pub caller: String,
    pub assignee: String,
    pub created: String,
    pub updated: String,
}

pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "tasks.html")]
pub struct QueuePage {
    pub layout: Layout,
    pub fragment: QueueFragment,
    pub statuses: Vec<Choice>,
    pub categories: Vec<Choice>,
    pub urgencies: Vec<Choice>,
    pub sorts: Vec<Choice>,
    pub q: String,
    pub csv_href: String,
}

#[derive(Template)]
#[template(path = "tasks_fragment.html")]
pub struct QueueFragment {
    pub tabs: Vec<Tab>,
    pub rows: Vec<Row>,
    pub total: i64,
    pub page: i64,
    pub pages: i64,
    pub links: Vec<PageLink>,
}

fn row(t: &Task, tz: chrono_tz::Tz) -> Row {
    Row {
        reference: t.reference.clone(),
        status: t.status.as_str(),
        status_label: t.status.label(),
        urgency: t.urgency.as_str(),
        category: t.category.clone().unwrap_or_default(),
        issue: t.issue.clone().unwrap_or_default(),
        caller: match (&t.caller_name, &t.caller_number) {
            (Some(n), Some(p)) => format!("{n} · {p}"),
            (Some(n), None) => n.clone(),
            (None, Some(p)) => p.clone(),
            (None, None) => String::new(),
        },
        assignee: t.assignee.clone().unwrap_or_default(),
        created: fmt_time(t.created_at, tz),
        updated: fmt_time(t.updated_at, tz),
    }
}

async fn tabs(state: &AppState, c: &Criteria) -> Result<Vec<Tab>, WebError> {
    let store = state.store();
    let mut all = c.clone();
    all.status = None;
    let mut tabs = vec![Tab {
        label: "All",
        key: "all",
        count: store.count_tasks(&all.filter()).await?,
        href: format!("/admin/tasks{}", all.query(1)),
        active: c.status.is_none(),
    }];
    for st in TaskStatus::ALL {
        let mut one = c.clone();
        one.status = Some(st);
        tabs.push(Tab {
            label: st.label(),
            key: st.as_str(),
            count: store.count_tasks(&one.filter()).await?,
            href: format!("/admin/tasks{}", one.query(1)),
            active: c.status == Some(st),
        });
    }
    Ok(tabs)
}

async fn fragment(state: &AppState, c: &Criteria, page: i64) -> Result<QueueFragment, WebError> {
    let store = state.store();
    let tz = state.config().business.timezone;
    let mut filter = c.filter();
    let total = store.count_tasks(&filter).await?;
    let pages = page_count(total);
    let page = page.min(pages);
    filter.limit = PAGE_SIZE;
    filter.offset = (page - 1) * PAGE_SIZE;
    let tasks = store.list_tasks(&filter).await?;
    Ok(QueueFragment {
        tabs: tabs(state, c).await?,
        rows: tasks.iter().map(|t| row(t, tz)).collect(),
        total,
        page,
        pages,
        links: page_links(page, pages, |n| format!("/admin/tasks{}", c.query(n))),
    })
}

fn choices<'a>(
    items: impl IntoIterator<Item = (&'a str, &'a str)>,
    selected: Option<&str>,
) -> Vec<Choice> {
    items
        .into_iter()
        .map(|(value, label)| Choice {
            value: value.to_string(),
            label: label.to_string(),
            selected: selected == Some(value),
        })
        .collect()
}

pub async fn queue(
    user: CurrentUser,
    State(state): State<AppState>,
    Query(query): Query<QueueQuery>,
) -> Result<Response, WebError> {
    let categories = &state.config().business.categories;
    let c = Criteria::parse(&query, categories)?;
    let fragment = fragment(&state, &c, parse_page(&query.page)?).await?;
    if non_empty(&query.partial).is_some() {
        return Ok(render(&fragment)?.into_response());
    }
    let page = QueuePage {
        layout: Layout::new(&user, "Tasks", "tasks"),
        fragment,
        statuses: choices(
            TaskStatus::ALL.iter().map(|s| (s.as_str(), s.label())),
            c.status.map(TaskStatus::as_str),
        ),
        categories: choices(
            categories.iter().map(|c| (c.as_str(), c.as_str())),
            c.category.as_deref(),
        ),
        urgencies: choices(
            Urgency::ALL.iter().map(|u| (u.as_str(), u.as_str())),
            c.urgency.map(Urgency::as_str),
        ),
        sorts: choices(
            SORTS.iter().map(|(_, k, l)| (*k, *l)),
            Some(sort_key(c.sort)),
        ),
        q: c.q.clone().unwrap_or_default(),
        csv_href: format!("/admin/tasks.csv{}", c.query(1)),
    };
    Ok(render(&page)?.into_response())
}

const CSV_HEADER: [&str; 16] = [
    "reference",
    "status",
    "urgency",
    "category",
    "issue",
    "location",
    "requested_time",
    "caller_name",
    "caller_number",
    "assignee",
    "confidence",
    "summary",
    "call_id",
    "created_at",
    "updated_at",
    "closed_at",
];

fn csv_record(t: &Task) -> String {
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    csv_line(&[
        t.reference.clone(),
        t.status.as_str().into(),
        t.urgency.as_str().into(),
        opt(&t.category),
        opt(&t.issue),
        opt(&t.location),
        opt(&t.requested_time),
        opt(&t.caller_name),
        opt(&t.caller_number),
        opt(&t.assignee),
        format!("{:.2}", t.confidence),
        opt(&t.summary),
        t.call_id.map(|id| id.to_string()).unwrap_or_default(),
        t.created_at.to_rfc3339(),
        t.updated_at.to_rfc3339(),
        t.closed_at.map(|c| c.to_rfc3339()).unwrap_or_default(),
    ])
}

pub async fn export_csv(
    _user: CurrentUser,
    State(state): State<AppState>,
    Query(query): Query<QueueQuery>,
) -> Result<Response, WebError> {
    let c = Criteria::parse(&query, &state.config().business.categories)?;
    let tasks = state.store().list_tasks(&c.filter()).await?;
    let mut body = csv_line(&CSV_HEADER);
    for t in &tasks {
        body.push_str(&csv_record(t));
    }
    let filename = format!("tasks-{}.csv", Utc::now().format("%Y%m%d-%H%M"));
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        body,
    )
        .into_response())
}
