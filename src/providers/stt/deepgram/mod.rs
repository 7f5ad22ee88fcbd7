//! Deepgram live speech-to-text over its streaming WebSocket (`/v1/listen`).
//!
//! [`DeepgramStt::open`] returns at once; a task per stream connects, sends
//! caller frames as 16 kHz linear16, keeps the connection alive through
//! pauses, maps server messages to [`SttEvent`]s, and on a dropped
//! connection reconnects with backoff and sends again the audio no final
//! result has covered yet, so no words are lost. When the caller's audio
//! ends it sends `CloseStream` and reads the last results until the server
//! closes.
//!
//! - [`wire`]: the message codec (pure).
//! - [`backlog`]: which audio is not finalized yet (pure).
//! - [`connect`]: the URL, the handshake, TLS.
//! - [`api`]: HTTP refusals mapped to errors; shared with the Aura TTS client.
//! - `session`: the per-stream task.

pub mod api;
pub mod backlog;
pub mod connect;
mod session;
pub mod wire;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

pub use wire::map_message;

use crate::config::DeepgramConfig;
use crate::providers::{ProviderError, SttProvider, SttStream};
use api::ENGINE;

/// Frames the caller side may queue before the stream task takes them (1 s).
const AUDIO_QUEUE: usize = 50;
/// Events queued for the consumer.
const EVENT_QUEUE: usize = 256;

/// Timings of a stream beyond the connect limit. The defaults follow
/// Deepgram's guidance (KeepAlive every 3–5 s; the server gives up after
/// 10 s without data).
#[derive(Debug, Clone)]
pub struct Tuning {
    /// Send `KeepAlive` after this long without sending anything.
    pub keepalive: Duration,
    /// Reconnect attempts after a drop before the stream fails.
    pub reconnect_attempts: u32,
    /// First backoff; doubled per attempt up to `backoff_max`, plus jitter.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// A drop is given up on once recovering would take longer than this.
    pub reconnect_budget: Duration,
    /// Audio sent and no message back for this long: the connection is dead.
    pub stall: Duration,
    /// Most unfinalized audio kept for resending.
    pub backlog_limit: Duration,
    /// Most audio per binary message (Deepgram suggests 20–100 ms chunks).
    pub max_batch_frames: usize,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            keepalive: Duration::from_secs(4),
            reconnect_attempts: 4,
            backoff_base: Duration::from_millis(200),
            backoff_max: Duration::from_secs(2),
            reconnect_budget: Duration::from_secs(8),
            stall: Duration::from_secs(10),
            backlog_limit: Duration::from_secs(60),
            max_batch_frames: 5,
        }
    }
}

/// Counts across every stream of one [`DeepgramStt`], for metrics.
#[derive(Debug, Default)]
pub struct Stats {
    malformed_messages: AtomicU64,
    reconnects: AtomicU64,
}

impl Stats {
    /// Server messages skipped because they could not be parsed.
    pub fn malformed_messages(&self) -> u64 {
        self.malformed_messages.load(Ordering::Relaxed)
    }

    /// Connections re-established after a drop.
    pub fn reconnects(&self) -> u64 {
        self.reconnects.load(Ordering::Relaxed)
    }

    fn count_malformed(&self) {
        self.malformed_messages.fetch_add(1, Ordering::Relaxed);
    }

    fn count_reconnect(&self) {
        self.reconnects.fetch_add(1, Ordering::Relaxed);
    }
}

/// Deepgram streaming recognition. Cheap to share; each [`open`] is one
/// WebSocket session (reconnected as needed).
///
/// [`open`]: SttProvider::open
#[derive(Debug)]
pub struct DeepgramStt {
    config: DeepgramConfig,
    timeout: Duration,
    tuning: Tuning,
    stats: Arc<Stats>,
}

impl DeepgramStt {
    /// `timeout` limits each connection's TCP connect, TLS and upgrade.
    pub fn new(config: DeepgramConfig, timeout: Duration) -> Self {
        DeepgramStt {
            config,
            timeout,
            tuning: Tuning::default(),
            stats: Arc::default(),
        }
    }

    pub fn with_tuning(mut self, tuning: Tuning) -> Self {
        self.tuning = tuning;
        self
    }

    pub fn stats(&self) -> Arc<Stats> {
        Arc::clone(&self.stats)
    }
}

impl SttProvider for DeepgramStt {
    fn name(&self) -> &'static str {
        ENGINE
    }

    fn open(&self) -> Result<SttStream, ProviderError> {
        let key = self
            .config
            .api_key
            .clone()
            .ok_or_else(|| ProviderError::fatal(ENGINE, "no API key configured"))?;
        let url = connect::listen_url(&self.config)?;
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| ProviderError::fatal(ENGINE, "open needs a tokio runtime"))?;
        let (audio_tx, audio_rx) = mpsc::channel(AUDIO_QUEUE);
        let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
        let settings = session::Settings {
            url,
            key,
            timeout: self.timeout,
            tuning: self.tuning.clone(),
            stats: Arc::clone(&self.stats),
        };
        runtime.spawn(session::run(settings, audio_rx, events_tx));
        Ok(SttStream {
            audio: audio_tx,
            events: events_rx,
        })
    }
}
