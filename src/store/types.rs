//! Records the store reads and writes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{Speaker, TaskStatus, Urgency};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    Twilio,
    Sip,
    Browser,
    Simulated,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Twilio => "twilio",
            Transport::Sip => "sip",
            Transport::Browser => "browser",
            Transport::Simulated => "simulated",
        }
    }
    pub fn parse(s: &str) -> Option<Transport> {
        [
            Transport::Twilio,
            Transport::Sip,
            Transport::Browser,
            Transport::Simulated,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
    }
}

#[derive(Debug, Clone)]
pub struct NewCall {
    pub transport: Transport,
    /// Twilio CallSid or SIP Call-ID.
    pub external_id: String,
    pub from_number: String,
    pub to_number: String,
    pub started_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Call {
    pub id: i64,
    pub transport: Transport,
    pub external_id: String,
    pub from_number: String,
    pub to_number: String,
    pub started_at: DateTime<Utc>,
    pub answered_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub end_reason: Option<String>,
    /// The carrier's last reported status (Twilio status callback).
    pub carrier_status: Option<String>,
    pub node: String,
    /// `inbound`, or `outbound` for a callback we placed.
    pub direction: String,
}

#[derive(Debug, Clone)]
pub struct NewTurn {
    pub speaker: Speaker,
    pub text: String,
    /// Offsets from the start of the call.
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    pub confidence: Option<f32>,
    /// For agent turns cut by a barge-in: how many characters the caller heard.
    pub heard_chars: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TranscriptTurn {
    pub call_id: i64,
    pub seq: i64,
    pub speaker: Speaker,
    pub text: String,
    pub at: DateTime<Utc>,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    pub confidence: Option<f32>,
    pub heard_chars: Option<i64>,
}

/// Fields of a task that can be set on creation or edited.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskFields {
    pub category: Option<String>,
    pub issue: Option<String>,
    pub location: Option<String>,
    pub requested_time: Option<String>,
    pub requested_at: Option<DateTime<Utc>>,
    pub urgency: Option<Urgency>,
    pub caller_name: Option<String>,
    pub caller_number: Option<String>,
    pub confidence: Option<f32>,
    pub summary: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Task {
    pub id: i64,
    pub reference: String,
    pub call_id: Option<i64>,
    pub status: TaskStatus,
    pub category: Option<String>,
    pub issue: Option<String>,
    pub location: Option<String>,
    pub requested_time: Option<String>,
    pub requested_at: Option<DateTime<Utc>>,
    pub urgency: Urgency,
    pub caller_name: Option<String>,
    pub caller_number: Option<String>,
    pub confidence: f32,
    pub summary: Option<String>,
    pub assignee: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
}

/// One entry of a task's audit trail. `field` is `status` for moves,
/// `assignee`, a task field name, or `note`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskEvent {
    pub id: i64,
    pub task_id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub field: String,
    pub from_value: Option<String>,
    pub to_value: Option<String>,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TaskSort {
    #[default]
    Newest,
    Oldest,
    Urgency,
    Updated,
}

#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    pub status: Option<TaskStatus>,
    pub category: Option<String>,
    pub urgency: Option<Urgency>,
    /// Free text matched against reference, issue, location, name, number, summary.
    pub text: Option<String>,
    pub sort: TaskSort,
    /// 0 means no limit.
    pub limit: i64,
    pub offset: i64,
}

#[derive(Debug, Clone, Default)]
pub struct CallFilter {
    pub external_id: Option<String>,
    pub limit: i64,
    pub offset: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Agent,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Agent => "agent",
        }
    }
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "agent" => Some(Role::Agent),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct User {
    pub id: i64,
    pub email: String,
    #[serde(skip)]
    pub password_hash: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiToken {
    pub id: i64,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// One day's counts for the statistics page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DayCount {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    pub calls: i64,
    pub tasks: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    pub per_day: Vec<DayCount>,
    pub by_category: Vec<(String, i64)>,
    pub by_status: Vec<(TaskStatus, i64)>,
    pub tasks_total: i64,
    pub escalated_total: i64,
    /// Median seconds from creation to close over closed tasks.
    pub median_close_secs: Option<f64>,
}
