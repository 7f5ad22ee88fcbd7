//! Intent extraction engines: turn the conversation so far into an
//! [`Extraction`](crate::domain::Extraction). `rules` is the offline default;
//! `chat` asks an OpenAI-compatible chat model. No engine here writes to the
//! store or talks to the call core directly.

pub mod chat;
pub mod rules;
