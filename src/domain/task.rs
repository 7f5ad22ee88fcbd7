//! Task status, the transition table, urgency and categories.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The ten categories a fresh install knows; operators may configure others.
pub const DEFAULT_CATEGORIES: [&str; 10] = [
    "plumbing",
    "electrical",
    "hvac",
    "appliance_repair",
    "locksmith",
    "pest_control",
    "cleaning",
    "roofing",
    "carpentry",
    "general_inquiry",
];

/// A service category. Free text validated against the configured list at the edges.
pub type Category = String;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    New,
    InProgress,
    Escalated,
    Closed,
}

impl TaskStatus {
    pub const ALL: [TaskStatus; 4] = [
        TaskStatus::New,
        TaskStatus::InProgress,
        TaskStatus::Escalated,
        TaskStatus::Closed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::New => "new",
            TaskStatus::InProgress => "in_progress",
            TaskStatus::Escalated => "escalated",
            TaskStatus::Closed => "closed",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            TaskStatus::New => "New",
            TaskStatus::InProgress => "In Progress",
            TaskStatus::Escalated => "Escalated",
            TaskStatus::Closed => "Closed",
        }
    }

    /// Whether the lifecycle allows moving from `self` to `to`.
    pub fn can_move_to(self, to: TaskStatus) -> bool {
        use TaskStatus::*;
        matches!(
            (self, to),
            (New, InProgress)
                | (New, Escalated)
                | (New, Closed)
                | (InProgress, Escalated)
                | (InProgress, Closed)
                | (Escalated, InProgress)
                | (Escalated, Closed)
                | (Closed, InProgress)
        )
    }

    /// Checks a move, explaining a refusal.
    pub fn check_move(self, to: TaskStatus) -> Result<(), IllegalTransition> {
        if self.can_move_to(to) {
            Ok(())
        } else {
            Err(IllegalTransition { from: self, to })
        }
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaskStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TaskStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                format!("unknown status `{s}` (expected new, in_progress, escalated or closed)")
            })
    }
}

/// A refused status change, with the reason in its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot move a task from {from} to {to}: {}", reason(*from, *to))]
pub struct IllegalTransition {
    pub from: TaskStatus,
    pub to: TaskStatus,
}

fn reason(from: TaskStatus, to: TaskStatus) -> &'static str {
    use TaskStatus::*;
    match (from, to) {
        (a, b) if a == b => "it already has that status",
        (_, New) => "a task never goes back to new",
        (Closed, Escalated) => "reopen it (in_progress) before escalating",
        _ => "that move is not in the task lifecycle",
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Urgency {
    Low,
    Normal,
    High,
    Emergency,
}

impl Urgency {
    pub const ALL: [Urgency; 4] = [
        Urgency::Low,
        Urgency::Normal,
        Urgency::High,
        Urgency::Emergency,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Urgency::Low => "low",
            Urgency::Normal => "normal",
            Urgency::High => "high",
            Urgency::Emergency => "emergency",
        }
    }
}

impl fmt::Display for Urgency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Urgency {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Urgency::ALL
            .into_iter()
            .find(|u| u.as_str() == s)
            .ok_or_else(|| {
                format!("unknown urgency `{s}` (expected low, normal, high or emergency)")
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TaskStatus::*;

    /// Every ordered pair of statuses, with the expected verdict.
    #[test]
    fn transition_table_is_exactly_the_lifecycle() {
        let allowed = [
            (New, InProgress),
            (New, Escalated),
            (New, Closed),
            (InProgress, Escalated),
            (InProgress, Closed),
            (Escalated, InProgress),
            (Escalated, Closed),
            (Closed, InProgress),
        ];
        let mut checked = 0;
        for from in TaskStatus::ALL {
            for to in TaskStatus::ALL {
                let expected = allowed.contains(&(from, to));
                assert_eq!(from.can_move_to(to), expected, "{from} -> {to}");
                assert_eq!(from.check_move(to).is_ok(), expected, "{from} -> {to}");
                checked += 1;
            }
        }
        assert_eq!(checked, 16);
    }

    #[test]
    fn refusal_names_the_move_and_why() {
        let err = Closed.check_move(Escalated).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot move a task from closed to escalated: reopen it (in_progress) before escalating"
        );
        let err = InProgress.check_move(New).unwrap_err();
        assert!(err.to_string().contains("never goes back to new"));
        let err = New.check_move(New).unwrap_err();
        assert!(err.to_string().contains("already has that status"));
    }

    #[test]
    fn status_and_urgency_parse_round_trip() {
        for st in TaskStatus::ALL {
            assert_eq!(st.as_str().parse::<TaskStatus>().unwrap(), st);
        }
        for u in Urgency::ALL {
            assert_eq!(u.as_str().parse::<Urgency>().unwrap(), u);
        }
        assert!("done"
            .parse::<TaskStatus>()
            .unwrap_err()
            .contains("unknown status `done`"));
        assert!(Urgency::Emergency > Urgency::High);
    }
}
