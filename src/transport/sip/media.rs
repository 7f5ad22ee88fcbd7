//! The RTP side of one SIP call: a task that owns the call's UDP port and
//! turns it into a [`CallLeg`]'s channels. Inbound: classify, jitter-buffer,
//! decode G.711 to 8 kHz, upsample to 16 kHz frames, decode RFC 4733 digits.
//! Outbound: every 20 ms the next queued frame (or silence) is downsampled,
//! encoded and sent with continuous numbering to where the caller's packets
//! come from (symmetric RTP). Marks fire when the frame before them is sent.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::{interval_at, Instant, MissedTickBehavior};

use super::dtmf::DtmfDecoder;
use super::jitter::{JitterBuffer, Playout};
use super::opus::{OpusCodec, MAX_PACKET};
use super::rtp::{self, Incoming, Sender};
use super::sdp::{Codec, Negotiated};
use crate::audio::g711;
use crate::audio::resample::{Downsampler, Upsampler, NARROW_FRAME_SAMPLES};
use crate::audio::Frame;
use crate::transport::{HangupReason, TransportCommand, TransportEvent};

/// What the SIP server tells a running media task.
#[derive(Debug)]
pub enum MediaControl {
    /// A re-INVITE changed the codec, the remote address or the hold state.
    Renegotiated(Negotiated),
    /// The dialog ended (BYE, no ACK, …).
    Ended(HangupReason),
    /// The outcome of a transfer (REFER) the session asked for.
    TransferResult { ok: bool },
}

/// What a media task asks of the SIP server.
#[derive(Debug)]
pub enum SignalRequest {
    Transfer { call: String, target: String },
    Hangup { call: String },
}

/// Counters for the closing log line and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MediaStats {
    pub packets_in: u64,
    pub packets_out: u64,
    pub rejected: u64,
    pub lost: u64,
    pub digits: u64,
}

#[allow(clippy::large_enum_variant)] // queued frames by value: boxing would allocate every 20 ms
enum Out {
    Frame(Frame),
    Mark(String),
}

pub struct MediaTask {
    pub call: String,
    pub socket: UdpSocket,
    pub negotiated: Negotiated,
    pub remote: Option<SocketAddr>,
    pub events: mpsc::Sender<TransportEvent>,
    pub commands: mpsc::Receiver<TransportCommand>,
    pub control: mpsc::Receiver<MediaControl>,
    pub signal: mpsc::Sender<SignalRequest>,
    pub seed: u64,
}

struct Codecs {
    up: Upsampler,
    down: Downsampler,
    opus: Option<OpusCodec>,
}

impl Codecs {
    fn new(codec: Codec) -> Codecs {
        let opus = match codec {
            Codec::Opus => OpusCodec::new()
                .map_err(|e| tracing::error!(error = %e, "Opus unavailable"))
                .ok(),
            _ => None,
        };
        Codecs {
            up: Upsampler::new(),
            down: Downsampler::new(),
            opus,
        }
    }

    fn decode(&mut self, codec: Codec, payload: &[u8]) -> Option<Frame> {
        let mut narrow = [0i16; NARROW_FRAME_SAMPLES];
        let n = payload.len().min(NARROW_FRAME_SAMPLES);
        match codec {
            Codec::Pcmu => g711::ulaw_decode_into(&payload[..n], &mut narrow[..n]),
            Codec::Pcma => g711::alaw_decode_into(&payload[..n], &mut narrow[..n]),
            Codec::Opus => return self.opus.as_mut()?.decode(payload),
        };
        Some(self.up.process(&narrow))
    }

    /// A frame for a packet that never came.
    fn conceal(&mut self, codec: Codec) -> Frame {
        match (codec, self.opus.as_mut()) {
            (Codec::Opus, Some(o)) => o.conceal(),
            _ => Frame::SILENCE,
        }
    }

    /// Encodes one frame; returns the payload length.
    fn encode(&mut self, codec: Codec, frame: &Frame, out: &mut [u8; MAX_PACKET]) -> usize {
        match codec {
            Codec::Opus => self
                .opus
                .as_mut()
                .map(|o| o.encode(frame, out))
                .unwrap_or(0),
            Codec::Pcma => {
                g711::alaw_encode_into(&self.down.process(frame), &mut out[..NARROW_FRAME_SAMPLES])
            }
            Codec::Pcmu => {
                g711::ulaw_encode_into(&self.down.process(frame), &mut out[..NARROW_FRAME_SAMPLES])
            }
        }
    }
}

impl MediaTask {
    /// Runs until the call ends; returns the counters.
    pub async fn run(mut self) -> MediaStats {
        let mut stats = MediaStats::default();
        let mut codecs = Codecs::new(self.negotiated.codec);
        let mut jitter = JitterBuffer::new(self.negotiated.codec.clock_rate());
        let mut dtmf = DtmfDecoder::new();
        let mut sender = Sender::new(
            self.negotiated.payload_type,
            self.negotiated.codec.samples_per_packet(),
            self.seed,
        );
        let mut queue: VecDeque<Out> = VecDeque::new();
        let mut buf = vec![0u8; 2048];
        let mut packet = Vec::with_capacity(256);
        let mut payload = [0u8; MAX_PACKET];
        let mut tick = interval_at(
            Instant::now() + Duration::from_millis(20),
            Duration::from_millis(20),
        );
        tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let end = loop {
            tokio::select! {
                received = self.socket.recv_from(&mut buf) => {
                    let Ok((n, from)) = received else { continue };
                    self.on_packet(&buf[..n], from, &mut jitter, &mut dtmf, &mut stats).await;
                }
                cmd = self.commands.recv() => match cmd {
                    Some(TransportCommand::Play(frame)) => queue.push_back(Out::Frame(frame)),
                    Some(TransportCommand::Mark(name)) => queue.push_back(Out::Mark(name)),
                    Some(TransportCommand::Clear) => queue.clear(),
                    Some(TransportCommand::Transfer(target)) => {
                        let _ = self.signal.send(SignalRequest::Transfer { call: self.call.clone(), target }).await;
                    }
                    Some(TransportCommand::Hangup) | None => {
                        let _ = self.signal.send(SignalRequest::Hangup { call: self.call.clone() }).await;
                        break None;
                    }
                },
                ctl = self.control.recv() => match ctl {
                    Some(MediaControl::Renegotiated(n)) => {
                        if n.codec != self.negotiated.codec || n.payload_type != self.negotiated.payload_type {
                            sender = Sender::new(n.payload_type, n.codec.samples_per_packet(), self.seed.rotate_left(17));
                            jitter = JitterBuffer::new(n.codec.clock_rate());
                            codecs = Codecs::new(n.codec);
                        }
                        if let (Some(ip), false) = (n.remote_addr, n.on_hold) {
                            self.remote = Some(SocketAddr::new(ip, n.remote_port));
                        }
                        self.negotiated = n;
                    }
                    Some(MediaControl::TransferResult { ok }) => {
                        let _ = self.events.send(TransportEvent::TransferResult { ok }).await;
                    }
                    Some(MediaControl::Ended(reason)) => break Some(reason),
                    None => break Some(HangupReason::Error("signalling stopped".into())),
                },
                _ = tick.tick() => {
                    self.on_tick(&mut jitter, &mut codecs, &mut sender, &mut queue, &mut packet, &mut payload, &mut stats).await;
                }
            }
        };
        if let Some(reason) = end {
            let _ = self.events.send(TransportEvent::Hangup(reason)).await;
        }
        stats.lost = jitter.stats().lost;
        tracing::info!(call = %self.call, packets_in = stats.packets_in, packets_out = stats.packets_out, lost = stats.lost, rejected = stats.rejected, digits = stats.digits, "rtp stream closed");
        stats
    }

    async fn on_packet(
        &mut self,
        data: &[u8],
        from: SocketAddr,
        jitter: &mut JitterBuffer,
        dtmf: &mut DtmfDecoder,
        stats: &mut MediaStats,
    ) {
        match rtp::classify(
            data,
            self.negotiated.payload_type,
            self.negotiated.dtmf_payload_type,
        ) {
            Ok(Incoming::Audio {
                ssrc,
                seq,
                timestamp,
                payload,
            }) => {
                stats.packets_in += 1;
                // Symmetric RTP: answer where the caller's packets come from (NAT-safe).
                self.remote = Some(from);
                jitter.push(ssrc, seq, timestamp, payload, std::time::Instant::now());
            }
            Ok(Incoming::Event {
                timestamp, payload, ..
            }) => {
                stats.packets_in += 1;
                self.remote = Some(from);
                for digit in dtmf.push(timestamp, payload) {
                    stats.digits += 1;
                    let _ = self.events.send(TransportEvent::Dtmf(digit)).await;
                }
            }
            Err(e) => {
                stats.rejected += 1;
                tracing::debug!(call = %self.call, %from, error = %e, "rtp packet dropped");
            }
        }
    }

    #[allow(clippy::too_many_arguments)] // the per-tick state lives in `run`'s locals on purpose: no allocation per tick
    async fn on_tick(
        &mut self,
        jitter: &mut JitterBuffer,
        codecs: &mut Codecs,
        sender: &mut Sender,
        queue: &mut VecDeque<Out>,
        packet: &mut Vec<u8>,
        payload: &mut [u8; MAX_PACKET],
        stats: &mut MediaStats,
    ) {
        // Inbound: one frame per tick keeps the session's clock steady.
        let frame = match jitter.pop() {
            Playout::Packet { payload, .. } => codecs
                .decode(self.negotiated.codec, &payload)
                .unwrap_or(Frame::SILENCE),
            Playout::Missing => codecs.conceal(self.negotiated.codec),
            Playout::Buffering => Frame::SILENCE,
        };
        if self.events.try_send(TransportEvent::Audio(frame)).is_err() {
            tracing::warn!(call = %self.call, "session is not keeping up; caller audio frame dropped");
        }
        // Outbound: marks at the head fire now (the audio before them has been sent).
        while let Some(Out::Mark(_)) = queue.front() {
            if let Some(Out::Mark(name)) = queue.pop_front() {
                let _ = self.events.send(TransportEvent::Mark(name)).await;
            }
        }
        let (frame, speech) = match queue.pop_front() {
            Some(Out::Frame(f)) => (f, true),
            _ => (Frame::SILENCE, false),
        };
        if self.negotiated.on_hold {
            return;
        }
        let Some(remote) = self.remote else { return };
        let len = codecs.encode(self.negotiated.codec, &frame, payload);
        if len == 0 {
            return;
        }
        sender.next_packet(&payload[..len], speech, packet);
        if !packet.is_empty() && self.socket.send_to(packet, remote).await.is_ok() {
            stats.packets_out += 1;
        }
    }
}
