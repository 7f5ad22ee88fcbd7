//! The in-process event bus: what changed, for the dashboard's live updates
//! (server-sent events) and, with PostgreSQL, for other nodes.

use serde::Serialize;
use tokio::sync::broadcast;

use crate::domain::TaskStatus;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    TaskCreated {
        reference: String,
        status: TaskStatus,
    },
    TaskUpdated {
        reference: String,
        status: TaskStatus,
    },
    CallStarted {
        call_id: i64,
    },
    CallEnded {
        call_id: i64,
        reason: String,
    },
    TranscriptAppended {
        call_id: i64,
        seq: i64,
    },
}

impl Event {
    /// The SSE event name.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::TaskCreated { .. } => "task_created",
            Event::TaskUpdated { .. } => "task_updated",
            Event::CallStarted { .. } => "call_started",
            Event::CallEnded { .. } => "call_ended",
            Event::TranscriptAppended { .. } => "transcript_appended",
        }
    }
}

/// A cheap-to-clone publisher; subscribers that fall behind lose old events, never block writers.
#[derive(Debug, Clone)]
pub struct Bus {
    tx: broadcast::Sender<Event>,
}

impl Default for Bus {
    fn default() -> Self {
        Bus::new()
    }
}

impl Bus {
    pub fn new() -> Bus {
        let (tx, _) = broadcast::channel(1024);
        Bus { tx }
    }

    pub fn publish(&self, event: Event) {
        // No subscriber is not an error.
        let _ = self.tx.send(event);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}
