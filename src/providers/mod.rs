//! Speech-to-text, text-to-speech and intent-extraction engines behind three
//! small traits. A stream is a channel pair closed by dropping; errors say
//! whether they are worth retrying. Retry and fallback are adapters here, not
//! `if`s in the session.

pub mod chain;
pub mod http;
pub mod intent;
pub mod report;
pub mod stt;
pub mod tts;

use std::future::Future;
use std::pin::Pin;

use tokio::sync::mpsc;

use crate::audio::Frame;
use crate::domain::{Conversation, Extraction};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A provider failure.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{engine}: {message}")]
pub struct ProviderError {
    pub engine: &'static str,
    pub message: String,
    /// A later attempt may succeed (timeouts, 429, 5xx, dropped connections).
    pub retryable: bool,
    /// How long the provider asked us to wait (a 429's `Retry-After`).
    pub retry_after: Option<std::time::Duration>,
}

impl ProviderError {
    pub fn fatal(engine: &'static str, message: impl Into<String>) -> Self {
        ProviderError {
            engine,
            message: message.into(),
            retryable: false,
            retry_after: None,
        }
    }
    pub fn retryable(engine: &'static str, message: impl Into<String>) -> Self {
        ProviderError {
            engine,
            message: message.into(),
            retryable: true,
            retry_after: None,
        }
    }

    /// The provider asked for this pause before the next request.
    pub fn with_retry_after(mut self, wait: std::time::Duration) -> Self {
        self.retry_after = Some(wait);
        self
    }
}

/// What a speech-to-text stream reports.
#[derive(Debug, Clone, PartialEq)]
pub enum SttEvent {
    /// The engine heard speech begin.
    SpeechStarted,
    /// A partial hypothesis that may still change.
    Interim { text: String },
    /// A final transcript of a stretch of speech. `end_of_turn` is set when the
    /// engine also judged the caller's turn finished.
    Final {
        text: String,
        confidence: f32,
        end_of_turn: bool,
    },
    /// The engine judged the utterance over (after one or more finals).
    UtteranceEnd,
    /// The engine failed; the stream is over.
    Error(ProviderError),
}

/// An open recognition stream: send caller frames in, read events out.
/// Dropping `audio` ends the stream once pending audio is processed.
pub struct SttStream {
    pub audio: mpsc::Sender<Frame>,
    pub events: mpsc::Receiver<SttEvent>,
}

pub trait SttProvider: Send + Sync {
    fn name(&self) -> &'static str;
    fn open(&self) -> Result<SttStream, ProviderError>;
}

/// Synthesis of one piece of text into frames; dropping the receiver cancels.
pub trait TtsProvider: Send + Sync {
    fn name(&self) -> &'static str;
    fn synthesize(&self, text: &str) -> mpsc::Receiver<Result<Frame, ProviderError>>;
}

pub trait IntentExtractor: Send + Sync {
    fn name(&self) -> &'static str;
    fn extract<'a>(
        &'a self,
        conversation: &'a Conversation,
    ) -> BoxFuture<'a, Result<Extraction, ProviderError>>;

    /// As `extract`, and an engine that writes its reply as it goes (a chat
    /// model) also sends each finished sentence of `reply` to `sentences`
    /// before the answer is complete, so speech can be prepared early.
    fn extract_streaming<'a>(
        &'a self,
        conversation: &'a Conversation,
        sentences: mpsc::Sender<String>,
    ) -> BoxFuture<'a, Result<Extraction, ProviderError>> {
        drop(sentences);
        self.extract(conversation)
    }
}
