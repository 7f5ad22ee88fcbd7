//! The Twilio Media Streams leg: the I/O shell between one WebSocket and a
//! [`CallLeg`]. [`accept`] reads `connected`/`start`, checks the per-call
//! token before any audio is processed, and returns the leg plus a
//! [`MediaPump`] that moves messages until either side ends.
//!
//! Inbound: base64 μ-law 8 kHz `media` → 16 kHz [`Frame`]s; `dtmf`, `mark`,
//! `stop` → events; a malformed frame is logged and skipped. Outbound: frames
//! → 160-byte μ-law `media` messages with the stream's SID, paced in real time
//! so no more than `max_lead` (~100 ms) is ever queued at Twilio and a
//! `clear` silences the caller's line at once; marks go out in order with the
//! audio; `clear` drops everything not yet sent. Generic over any
//! `Stream` of text frames and `Sink` of text frames, so tests drive it with
//! channels.

use std::collections::VecDeque;
use std::fmt::Display;
use std::time::Duration;

use futures::{Sink, SinkExt, Stream, StreamExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::codec::{Decoder, Encoder, CHUNK_BYTES};
use super::rest::RestClient;
use super::token::{self, TokenError, TokenKey};
use super::wire::{self, Inbound, Outbound, Start};
use crate::store::Transport;
use crate::transport::{CallLeg, HangupReason, LegInfo, TransportCommand, TransportEvent};

/// Duration of one outbound chunk.
const CHUNK: Duration = Duration::from_millis(20);

/// Settings of the Twilio leg.
#[derive(Clone, Debug)]
pub struct MediaOptions {
    pub token_key: TokenKey,
    /// Present when transfers are possible (REST credentials configured).
    pub rest: Option<RestClient>,
    /// Most audio queued at Twilio ahead of the caller's ear.
    pub max_lead: Duration,
    /// How long to wait for `start` after the socket opens.
    pub start_timeout: Duration,
}

impl MediaOptions {
    pub fn new(token_key: TokenKey, rest: Option<RestClient>) -> MediaOptions {
        MediaOptions {
            token_key,
            rest,
            max_lead: Duration::from_millis(100),
            start_timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("the socket closed before the stream started")]
    Closed,
    #[error("no start message in time")]
    Timeout,
    #[error("stream refused: {0}")]
    Token(#[from] TokenError),
    #[error("unsupported media format {0}")]
    Format(String),
}

/// Reads up to and including `start`; checks the token; builds the leg.
pub async fn accept<R, W, E>(
    mut rx: R,
    tx: W,
    opts: &MediaOptions,
    now_unix: u64,
) -> Result<(CallLeg, MediaPump<R, W>), MediaError>
where
    R: Stream<Item = Result<String, E>> + Unpin,
    W: Sink<String> + Unpin,
    E: Display,
{
    let start = tokio::time::timeout(opts.start_timeout, read_start(&mut rx))
        .await
        .map_err(|_| MediaError::Timeout)??;
    let token = start
        .custom_parameters
        .get(token::PARAM)
        .map(String::as_str);
    opts.token_key.check(token, &start.call_sid, now_unix)?;
    if let Some(f) = &start.media_format {
        if !f.is_mulaw_8k_mono() {
            return Err(MediaError::Format(format!(
                "{} {} Hz × {}",
                f.encoding, f.sample_rate, f.channels
            )));
        }
    }
    let mut params = start.custom_parameters.clone();
    params.remove(token::PARAM);
    let from = params.remove("From").unwrap_or_default();
    let to = params.remove("To").unwrap_or_default();
    params.insert("StreamSid".into(), start.stream_sid.clone());
    let info = LegInfo {
        transport: Transport::Twilio,
        external_id: start.call_sid.clone(),
        from,
        to,
        params,
        can_transfer: opts.rest.is_some(),
    };
    let (leg, events, commands) = CallLeg::channel(info);
    let (transfer_tx, transfer_rx) = mpsc::channel(1);
    let pump = MediaPump {
        rx,
        tx,
        stream_sid: start.stream_sid,
        call_sid: start.call_sid,
        events,
        commands,
        rest: opts.rest.clone(),
        max_lead: opts.max_lead,
        queue: VecDeque::new(),
        sent_until: Instant::now(),
        decoder: Decoder::new(),
        encoder: Encoder::new(),
        transfer_tx,
        transfer_rx,
    };
    Ok((leg, pump))
}

async fn read_start<R, E>(rx: &mut R) -> Result<Start, MediaError>
where
    R: Stream<Item = Result<String, E>> + Unpin,
    E: Display,
{
    loop {
        let text = match rx.next().await {
            Some(Ok(text)) => text,
            Some(Err(e)) => {
                tracing::debug!(error = %e, "media socket failed before start");
                return Err(MediaError::Closed);
            }
            None => return Err(MediaError::Closed),
        };
        match wire::parse(&text) {
            Ok(Inbound::Start(start)) => return Ok(start),
            Ok(Inbound::Stop { .. }) => return Err(MediaError::Closed),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "malformed Twilio message before start"),
        }
    }
}

enum Queued {
    Audio([u8; CHUNK_BYTES]),
    Mark(String),
}

/// How the pump ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PumpEnd {
    /// The carrier side ended (reported to the session as `Hangup`).
    Carrier(HangupReason),
    /// The session hung up or dropped the leg.
    Session,
}

/// Moves messages between the socket and the leg until one side ends.
pub struct MediaPump<R, W> {
    rx: R,
    tx: W,
    stream_sid: String,
    call_sid: String,
    events: mpsc::Sender<TransportEvent>,
    commands: mpsc::Receiver<TransportCommand>,
    rest: Option<RestClient>,
    max_lead: Duration,
    queue: VecDeque<Queued>,
    /// When the audio already sent to Twilio will have finished playing.
    sent_until: Instant,
    decoder: Decoder,
    encoder: Encoder,
    transfer_tx: mpsc::Sender<bool>,
    transfer_rx: mpsc::Receiver<bool>,
}

/// One step's outcome inside the pump.
enum Step {
    Go,
    End(PumpEnd),
}

impl<R, W, E> MediaPump<R, W>
where
    R: Stream<Item = Result<String, E>> + Unpin,
    W: Sink<String> + Unpin,
    E: Display,
{
    pub fn stream_sid(&self) -> &str {
        &self.stream_sid
    }

    /// Runs until the call ends; reports a carrier-side end to the session.
    pub async fn run(mut self) -> PumpEnd {
        let end = self.run_inner().await;
        if let PumpEnd::Carrier(reason) = &end {
            let _ = self
                .events
                .send(TransportEvent::Hangup(reason.clone()))
                .await;
        }
        let _ = self.tx.close().await;
        end
    }

    async fn run_inner(&mut self) -> PumpEnd {
        loop {
            let wake = self.next_send_at();
            let step = tokio::select! {
                msg = self.rx.next() => self.on_socket(msg).await,
                cmd = self.commands.recv() => self.on_command(cmd).await,
                Some(ok) = self.transfer_rx.recv() => {
                    self.emit(TransportEvent::TransferResult { ok }).await
                }
                _ = sleep_until_opt(wake) => self.flush().await,
            };
            if let Step::End(end) = step {
                return end;
            }
        }
    }

    async fn emit(&mut self, event: TransportEvent) -> Step {
        match self.events.send(event).await {
            Ok(()) => Step::Go,
            Err(_) => Step::End(PumpEnd::Session),
        }
    }

    async fn on_socket(&mut self, msg: Option<Result<String, E>>) -> Step {
        let text = match msg {
            Some(Ok(text)) => text,
            Some(Err(e)) => {
                tracing::info!(call_sid = %self.call_sid, error = %e, "media socket failed");
                return Step::End(PumpEnd::Carrier(HangupReason::Lost));
            }
            None => return Step::End(PumpEnd::Carrier(HangupReason::Lost)),
        };
        match wire::parse(&text) {
            Ok(Inbound::Media(m)) => {
                if m.track.as_deref().is_some_and(|t| t != "inbound") {
                    return Step::Go;
                }
                let mut frames = Vec::with_capacity(2);
                self.decoder.push(&m.payload, |f| frames.push(f));
                for f in frames {
                    if let Step::End(e) = self.emit(TransportEvent::Audio(f)).await {
                        return Step::End(e);
                    }
                }
                Step::Go
            }
            Ok(Inbound::Dtmf { digit }) => self.emit(TransportEvent::Dtmf(digit)).await,
            Ok(Inbound::Mark { name }) => self.emit(TransportEvent::Mark(name)).await,
            Ok(Inbound::Stop { .. }) => Step::End(PumpEnd::Carrier(HangupReason::Remote)),
            Ok(Inbound::Connected { .. } | Inbound::Start(_) | Inbound::Other { .. }) => Step::Go,
            Err(e) => {
                tracing::warn!(call_sid = %self.call_sid, error = %e, "malformed Twilio message skipped");
                Step::Go
            }
        }
    }

    async fn on_command(&mut self, cmd: Option<TransportCommand>) -> Step {
        match cmd {
            None | Some(TransportCommand::Hangup) => Step::End(PumpEnd::Session),
            Some(TransportCommand::Play(frame)) => {
                let bytes = self.encoder.encode(&frame);
                self.queue.push_back(Queued::Audio(bytes));
                self.flush().await
            }
            Some(TransportCommand::Mark(name)) => {
                self.queue.push_back(Queued::Mark(name));
                self.flush().await
            }
            Some(TransportCommand::Clear) => {
                self.queue.clear();
                self.sent_until = Instant::now();
                let text = wire::print(&Outbound::Clear {
                    stream_sid: &self.stream_sid,
                });
                self.send(text).await
            }
            Some(TransportCommand::Transfer(target)) => self.transfer(target),
        }
    }

    fn transfer(&mut self, target: String) -> Step {
        let done = self.transfer_tx.clone();
        let Some(rest) = self.rest.clone() else {
            // No credentials: answer at once so the core can tell the caller.
            let _ = done.try_send(false);
            return Step::Go;
        };
        let call_sid = self.call_sid.clone();
        tokio::spawn(async move {
            let ok = match rest.dial(&call_sid, &target).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(%call_sid, error = %e, "transfer failed");
                    false
                }
            };
            let _ = done.send(ok).await;
        });
        Step::Go
    }

    /// The earliest time the next queued audio may go out, if any is queued.
    fn next_send_at(&self) -> Option<Instant> {
        match self.queue.front() {
            Some(Queued::Audio(_)) => Some(self.sent_until + CHUNK - self.max_lead),
            // A mark at the head goes out as soon as `flush` runs.
            Some(Queued::Mark(_)) => Some(Instant::now()),
            None => None,
        }
    }

    /// Sends everything at the head of the queue that pacing allows.
    async fn flush(&mut self) -> Step {
        loop {
            let now = Instant::now();
            let text = match self.queue.front() {
                None => return Step::Go,
                Some(Queued::Mark(name)) => wire::print(&Outbound::Mark {
                    stream_sid: &self.stream_sid,
                    name,
                }),
                Some(Queued::Audio(bytes)) => {
                    let begin = self.sent_until.max(now);
                    if begin + CHUNK > now + self.max_lead {
                        return Step::Go;
                    }
                    self.sent_until = begin + CHUNK;
                    wire::print(&Outbound::Media {
                        stream_sid: &self.stream_sid,
                        payload: bytes,
                    })
                }
            };
            self.queue.pop_front();
            if let Step::End(e) = self.send(text).await {
                return Step::End(e);
            }
        }
    }

    async fn send(&mut self, text: String) -> Step {
        match self.tx.send(text).await {
            Ok(()) => Step::Go,
            Err(_) => Step::End(PumpEnd::Carrier(HangupReason::Lost)),
        }
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
