//! Pure business rules: tasks, their statuses and legal moves, and the shape of
//! what intent extraction produces. No I/O, no clock: callers pass times in.

pub mod extraction;
pub mod task;

pub use extraction::{Conversation, Extraction, Speaker, Utterance};
pub use task::{Category, IllegalTransition, TaskStatus, Urgency, DEFAULT_CATEGORIES};
