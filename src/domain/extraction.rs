//! What intent extraction reads (the conversation) and what it produces (an
//! [`Extraction`]): the caller's need as structured fields.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::task::Urgency;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Speaker {
    Caller,
    Agent,
    Human,
    System,
}

impl Speaker {
    pub fn as_str(self) -> &'static str {
        match self {
            Speaker::Caller => "caller",
            Speaker::Agent => "agent",
            Speaker::Human => "human",
            Speaker::System => "system",
        }
    }

    pub fn parse(s: &str) -> Option<Speaker> {
        match s {
            "caller" => Some(Speaker::Caller),
            "agent" => Some(Speaker::Agent),
            "human" => Some(Speaker::Human),
            "system" => Some(Speaker::System),
            _ => None,
        }
    }
}

/// One turn of the conversation as the extractor sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Utterance {
    pub speaker: Speaker,
    pub text: String,
}

/// The conversation so far, plus what the extractor needs to resolve relative
/// expressions ("tomorrow morning") and the caller id.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Conversation {
    pub turns: Vec<Utterance>,
    /// The caller id (E.164 or SIP user), used as the default callback number.
    pub caller_number: Option<String>,
    /// When the conversation is happening; relative times resolve against it.
    pub now: Option<DateTime<Utc>>,
    /// What has been extracted on earlier turns; an extractor refines it.
    pub known: Extraction,
}

impl Conversation {
    pub fn caller_text(&self) -> impl Iterator<Item = &str> {
        self.turns
            .iter()
            .filter(|t| t.speaker == Speaker::Caller)
            .map(|t| t.text.as_str())
    }

    pub fn last_caller_text(&self) -> Option<&str> {
        self.caller_text().last()
    }
}

/// The structured result of one extraction. Every field is optional: an
/// extractor fills what it found. `merge` folds a newer result over an older one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Extraction {
    pub category: Option<String>,
    pub issue: Option<String>,
    pub location: Option<String>,
    /// The requested time as the caller said it.
    pub requested_time: Option<String>,
    /// The requested time parsed, when it could be.
    pub requested_at: Option<DateTime<Utc>>,
    pub urgency: Option<Urgency>,
    pub caller_name: Option<String>,
    pub callback_number: Option<String>,
    /// 0.0–1.0: how sure the extractor is of the category and issue.
    pub confidence: f32,
    /// The caller asked for a person.
    pub wants_human: bool,
    /// What the extractor suggests saying next, if it is a dialogue model.
    pub reply: Option<String>,
}

impl Extraction {
    /// Newer non-empty fields win; `wants_human` latches; confidence follows the newer result
    /// when it found a category, else keeps the higher of the two.
    pub fn merge(&mut self, newer: Extraction) {
        fn take<T>(slot: &mut Option<T>, v: Option<T>) {
            if v.is_some() {
                *slot = v;
            }
        }
        let found_category = newer.category.is_some();
        take(&mut self.category, newer.category);
        take(&mut self.issue, newer.issue);
        take(&mut self.location, newer.location);
        take(&mut self.requested_time, newer.requested_time);
        take(&mut self.requested_at, newer.requested_at);
        take(&mut self.caller_name, newer.caller_name);
        take(&mut self.callback_number, newer.callback_number);
        self.urgency = match (self.urgency, newer.urgency) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => b.or(a),
        };
        self.confidence = if found_category {
            newer.confidence
        } else {
            self.confidence.max(newer.confidence)
        };
        self.wants_human |= newer.wants_human;
        self.reply = newer.reply;
    }

    /// True when there is enough to open a task: a category or an issue.
    pub fn is_useful(&self) -> bool {
        self.category.is_some() || self.issue.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keeps_older_fields_and_raises_urgency() {
        let mut a = Extraction {
            category: Some("plumbing".into()),
            location: Some("42 Oak Street".into()),
            urgency: Some(Urgency::High),
            confidence: 0.8,
            ..Default::default()
        };
        a.merge(Extraction {
            caller_name: Some("Ann".into()),
            urgency: Some(Urgency::Normal),
            confidence: 0.3,
            ..Default::default()
        });
        assert_eq!(a.category.as_deref(), Some("plumbing"));
        assert_eq!(a.location.as_deref(), Some("42 Oak Street"));
        assert_eq!(a.caller_name.as_deref(), Some("Ann"));
        assert_eq!(a.urgency, Some(Urgency::High));
        assert_eq!(a.confidence, 0.8);
        assert!(!a.wants_human);
        a.merge(Extraction {
            wants_human: true,
            ..Default::default()
        });
        assert!(a.wants_human);
        assert!(a.is_useful());
    }
}
