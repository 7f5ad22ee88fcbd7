//! One recognition stream's task: owns the caller's frames, the connection
//! and the backlog of audio no final result covers yet.
//!
//! The connection is `Up`, `Connecting` (the handshake in flight) or
//! `Waiting` (backoff before the next attempt). Caller frames are taken in
//! every state, so the caller side never blocks and a reconnect loses
//! nothing: each new connection is sent the whole backlog first. A failed
//! first connection ends the stream at once (the fallback chain is quicker
//! than our retries); a drop later on is retried a few times within a time
//! budget, then reported as a retryable error.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use rand::Rng;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use url::Url;

use super::backlog::Backlog;
use super::connect::{self, Ws};
use super::wire::{self, ServerMessage};
use super::{Stats, Tuning, ENGINE};
use crate::audio::{Frame, FRAME_MS};
use crate::config::Secret;
use crate::providers::{ProviderError, SttEvent};

pub(super) struct Settings {
    pub url: Url,
    pub key: Secret,
    pub timeout: Duration,
    pub tuning: Tuning,
    pub stats: std::sync::Arc<Stats>,
}

type Handshake = Pin<Box<dyn Future<Output = Result<Box<Ws>, ProviderError>> + Send>>;

enum Link {
    Up(Box<Ws>),
    Connecting(Handshake),
    Waiting(Instant),
}

enum LinkEvent {
    Received(Option<Result<Message, WsError>>),
    Connected(Result<Box<Ws>, ProviderError>),
    RetryDue,
}

#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Done,
}

pub(super) async fn run(
    settings: Settings,
    audio: mpsc::Receiver<Frame>,
    events: mpsc::Sender<SttEvent>,
) {
    let frames_kept = (settings.tuning.backlog_limit.as_millis() / u128::from(FRAME_MS)) as usize;
    let first = handshake(&settings);
    let mut session = Session {
        backlog: Backlog::new(frames_kept),
        link: Link::Connecting(first),
        settings,
        audio,
        events,
        audio_done: false,
        close_sent: false,
        closing_metadata: false,
        last_sent: Instant::now(),
        unanswered_since: None,
        connected_once: false,
        attempts: 0,
        outage_since: None,
    };
    session.run().await;
}

fn handshake(settings: &Settings) -> Handshake {
    let url = settings.url.clone();
    let key = settings.key.clone();
    let limit = settings.timeout;
    Box::pin(async move { connect::open(&url, &key, limit).await.map(Box::new) })
}

async fn link_event(link: &mut Link) -> LinkEvent {
    match link {
        Link::Up(ws) => LinkEvent::Received(ws.next().await),
        Link::Connecting(attempt) => LinkEvent::Connected(attempt.as_mut().await),
        Link::Waiting(at) => {
            sleep_until(*at).await;
            LinkEvent::RetryDue
        }
    }
}

async fn send(ws: &mut Ws, message: Message, limit: Duration) -> Result<(), ProviderError> {
    match tokio::time::timeout(limit, ws.send(message)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(ProviderError::retryable(ENGINE, format!("sending: {e}"))),
        Err(_) => Err(ProviderError::retryable(ENGINE, "sending stalled")),
    }
}

struct Session {
    settings: Settings,
    audio: mpsc::Receiver<Frame>,
    events: mpsc::Sender<SttEvent>,
    backlog: Backlog,
    link: Link,
    /// The caller side dropped its sender: no more audio will come.
    audio_done: bool,
    /// `CloseStream` went out on the current connection.
    close_sent: bool,
    /// The server sent its closing `Metadata` after our `CloseStream`.
    closing_metadata: bool,
    /// Last time anything was sent on the current connection.
    last_sent: Instant,
    /// Audio or `CloseStream` sent and no message received since then.
    unanswered_since: Option<Instant>,
    connected_once: bool,
    /// Reconnect attempts in the current outage.
    attempts: u32,
    outage_since: Option<Instant>,
}

impl Session {
    async fn run(&mut self) {
        loop {
            if self.nothing_left() || self.flush().await == Flow::Done {
                break;
            }
            let up = matches!(self.link, Link::Up(_));
            let keepalive_at = self.last_sent + self.settings.tuning.keepalive;
            let stall_at = self
                .unanswered_since
                .map(|t| t + self.settings.tuning.stall);
            let far = Instant::now() + Duration::from_secs(3600);
            let flow = tokio::select! {
                ev = link_event(&mut self.link) => self.on_link(ev).await,
                frame = self.audio.recv(), if !self.audio_done => self.on_audio(frame),
                _ = sleep_until(keepalive_at), if up && !self.close_sent => self.keep_alive().await,
                _ = sleep_until(stall_at.unwrap_or(far)), if up && stall_at.is_some() => {
                    let stall = self.settings.tuning.stall;
                    self.lost(ProviderError::retryable(
                        ENGINE,
                        format!("no reply for {} ms", stall.as_millis()),
                    ))
                    .await
                }
                _ = self.events.closed() => Flow::Done,
            };
            if flow == Flow::Done {
                break;
            }
        }
        if self.backlog.dropped() > 0 {
            tracing::warn!(
                frames = self.backlog.dropped(),
                "Deepgram backlog overflowed; oldest unfinalized audio dropped"
            );
        }
    }

    /// The caller is gone, every frame is finalized and no connection is
    /// left to drain.
    fn nothing_left(&self) -> bool {
        self.audio_done && self.backlog.is_empty() && !matches!(self.link, Link::Up(_))
    }

    fn on_audio(&mut self, frame: Option<Frame>) -> Flow {
        let Some(frame) = frame else {
            self.audio_done = true;
            return Flow::Continue;
        };
        self.backlog.push(frame);
        // Take what is already queued, so a backlog goes out in few messages.
        for _ in 1..self.settings.tuning.max_batch_frames {
            match self.audio.try_recv() {
                Ok(f) => self.backlog.push(f),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    self.audio_done = true;
                    break;
                }
            }
        }
        Flow::Continue
    }

    /// Sends unsent audio, then `CloseStream` once the caller is done.
    async fn flush(&mut self) -> Flow {
        match self.send_pending().await {
            Ok(()) => Flow::Continue,
            Err(e) => self.lost(e).await,
        }
    }

    async fn send_pending(&mut self) -> Result<(), ProviderError> {
        let Link::Up(ws) = &mut self.link else {
            return Ok(());
        };
        let limit = self.settings.timeout;
        let batch = self.settings.tuning.max_batch_frames.max(1);
        while self.backlog.has_unsent() {
            let mut bytes = Vec::new();
            self.backlog.take_unsent(batch, &mut bytes);
            send(ws, Message::binary(bytes), limit).await?;
            self.last_sent = Instant::now();
            self.unanswered_since.get_or_insert(self.last_sent);
        }
        if self.audio_done && !self.close_sent {
            send(ws, Message::text(wire::CLOSE_STREAM), limit).await?;
            self.close_sent = true;
            self.last_sent = Instant::now();
            self.unanswered_since.get_or_insert(self.last_sent);
        }
        Ok(())
    }

    async fn keep_alive(&mut self) -> Flow {
        let Link::Up(ws) = &mut self.link else {
            return Flow::Continue;
        };
        match send(ws, Message::text(wire::KEEP_ALIVE), self.settings.timeout).await {
            Ok(()) => {
                self.last_sent = Instant::now();
                Flow::Continue
            }
            Err(e) => self.lost(e).await,
        }
    }

    async fn on_link(&mut self, ev: LinkEvent) -> Flow {
        match ev {
            LinkEvent::RetryDue => {
                self.link = Link::Connecting(handshake(&self.settings));
                Flow::Continue
            }
            LinkEvent::Connected(Ok(ws)) => {
                self.on_connected(ws);
                Flow::Continue
            }
            // The first connection is not retried here: the fallback chain
            // moves on faster than a backoff would.
            LinkEvent::Connected(Err(e)) if !self.connected_once => self.fail(e).await,
            LinkEvent::Connected(Err(e)) => self.lost(e).await,
            LinkEvent::Received(Some(Ok(message))) => self.on_message(message).await,
            LinkEvent::Received(Some(Err(e))) => {
                self.lost(ProviderError::retryable(
                    ENGINE,
                    format!("connection lost: {e}"),
                ))
                .await
            }
            LinkEvent::Received(None) => self.on_closed(None).await,
        }
    }

    fn on_connected(&mut self, ws: Box<Ws>) {
        if self.connected_once {
            self.settings.stats.count_reconnect();
            tracing::info!(
                resent_frames = self.backlog.len(),
                "Deepgram reconnected; resending unfinalized audio"
            );
        }
        self.connected_once = true;
        self.backlog.restart();
        self.link = Link::Up(ws);
        self.close_sent = false;
        self.closing_metadata = false;
        self.last_sent = Instant::now();
        self.unanswered_since = None;
    }

    async fn on_message(&mut self, message: Message) -> Flow {
        match message {
            Message::Text(text) => self.on_text(text.as_str()).await,
            Message::Close(frame) => self.on_closed(frame).await,
            Message::Binary(_) => {
                tracing::debug!("ignoring a binary message from Deepgram");
                Flow::Continue
            }
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => Flow::Continue,
        }
    }

    async fn on_text(&mut self, text: &str) -> Flow {
        self.unanswered_since = None;
        let message = match wire::parse(text) {
            Ok(m) => m,
            Err(e) => {
                self.settings.stats.count_malformed();
                tracing::warn!(error = %e, "skipping a malformed Deepgram message");
                return Flow::Continue;
            }
        };
        match &message {
            ServerMessage::Results(t) if t.is_final => {
                self.backlog.finalize_through(t.end());
                // Audio is being finalized again: the outage is over.
                self.attempts = 0;
                self.outage_since = None;
            }
            ServerMessage::Metadata { request_id } => {
                self.closing_metadata |= self.close_sent;
                tracing::debug!(request_id = request_id.as_deref(), "Deepgram metadata");
            }
            ServerMessage::Error { description } => {
                tracing::warn!(description = %description, "Deepgram reported an error");
            }
            ServerMessage::Other { kind } => {
                tracing::debug!(kind = %kind, "ignoring a Deepgram message type");
            }
            _ => {}
        }
        for event in message.events() {
            if self.events.send(event).await.is_err() {
                return Flow::Done;
            }
        }
        Flow::Continue
    }

    async fn on_closed(&mut self, frame: Option<CloseFrame>) -> Flow {
        if self.close_sent && (self.closing_metadata || self.backlog.is_empty()) {
            return Flow::Done;
        }
        let Some(frame) = frame else {
            return self
                .lost(ProviderError::retryable(
                    ENGINE,
                    "connection closed without a close frame",
                ))
                .await;
        };
        let reason = format!(
            "closed by the server (code {}: {})",
            u16::from(frame.code),
            frame.reason.as_str()
        );
        // DATA errors: the audio itself was refused; sending it again would
        // fail the same way.
        let error = match frame.code {
            CloseCode::Policy | CloseCode::Protocol | CloseCode::Unsupported => {
                ProviderError::fatal(ENGINE, reason)
            }
            _ => ProviderError::retryable(ENGINE, reason),
        };
        self.lost(error).await
    }

    /// The connection is gone: reconnect after a backoff, or give up.
    async fn lost(&mut self, error: ProviderError) -> Flow {
        if !error.retryable {
            return self.fail(error).await;
        }
        let finished = self.close_sent && self.closing_metadata;
        if finished || (self.audio_done && self.backlog.is_empty()) {
            return Flow::Done;
        }
        let now = Instant::now();
        let since = *self.outage_since.get_or_insert(now);
        let tuning = &self.settings.tuning;
        let delay = backoff(tuning, self.attempts).max(error.retry_after.unwrap_or_default());
        if self.attempts >= tuning.reconnect_attempts
            || now + delay > since + tuning.reconnect_budget
        {
            let message = format!(
                "connection lost and not recovered after {} reconnect attempts: {}",
                self.attempts, error.message
            );
            return self.fail(ProviderError { message, ..error }).await;
        }
        self.attempts += 1;
        tracing::warn!(
            attempt = self.attempts,
            delay_ms = delay.as_millis() as u64,
            unfinalized_frames = self.backlog.len(),
            error = %error,
            "Deepgram connection lost; reconnecting"
        );
        self.link = Link::Waiting(now + delay);
        self.close_sent = false;
        self.closing_metadata = false;
        self.unanswered_since = None;
        Flow::Continue
    }

    async fn fail(&mut self, error: ProviderError) -> Flow {
        tracing::warn!(error = %error, "Deepgram stream failed");
        let _ = self.events.send(SttEvent::Error(error)).await;
        Flow::Done
    }
}

/// `base · 2^attempt`, capped, plus up to half of that again as jitter so
/// many calls dropped together do not reconnect in step.
fn backoff(tuning: &Tuning, attempt: u32) -> Duration {
    let exp = tuning
        .backoff_base
        .saturating_mul(1u32 << attempt.min(16))
        .min(tuning.backoff_max);
    let jitter_ms = exp.as_millis() as u64 / 2;
    let jitter = rand::thread_rng().gen_range(0..=jitter_ms);
    exp + Duration::from_millis(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let tuning = Tuning {
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_millis(1000),
            ..Tuning::default()
        };
        for attempt in 0..6 {
            let expected = (100u64 << attempt).min(1000);
            for _ in 0..20 {
                let d = backoff(&tuning, attempt).as_millis() as u64;
                assert!((expected..=expected * 3 / 2).contains(&d), "{attempt}: {d}");
            }
        }
        assert!(backoff(&tuning, 40) <= Duration::from_millis(1500));
    }
}
