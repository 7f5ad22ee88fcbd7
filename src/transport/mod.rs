//! Carrier adapters: Twilio Media Streams (and SIP/RTP), each turning a
//! carrier connection into a [`CallLeg`]: a channel of [`TransportEvent`]s in
//! (16 kHz PCM frames, DTMF, playback marks, hang-up) and a channel of
//! [`TransportCommand`]s out (play, mark, clear, transfer, hang up).
//!
//! Codec conversion (μ-law/A-law ↔ PCM16, 8 ↔ 16 kHz) and real-time pacing of
//! outbound audio happen only inside an adapter, once. The session above sees
//! nothing but internal frames and never touches a socket.

pub mod sip;
pub mod twilio;

use std::collections::BTreeMap;

use tokio::sync::mpsc;

use crate::audio::Frame;
use crate::store::Transport;

/// What the adapter learned about the call when it connected.
#[derive(Debug, Clone, PartialEq)]
pub struct LegInfo {
    pub transport: Transport,
    /// The carrier's id of the call (Twilio CallSid, SIP Call-ID).
    pub external_id: String,
    pub from: String,
    pub to: String,
    /// Carrier-specific extras (Twilio `<Parameter>`s, the stream SID, …).
    pub params: BTreeMap<String, String>,
    /// The adapter can hand the call to a person (`TransportCommand::Transfer`).
    pub can_transfer: bool,
}

/// Why the carrier side of a leg ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HangupReason {
    /// The carrier said the call or stream is over (Twilio `stop`, SIP BYE).
    Remote,
    /// The connection went away without a goodbye.
    Lost,
    /// The adapter failed.
    Error(String),
}

impl HangupReason {
    /// The end reason written on the call row.
    pub fn as_end_reason(&self) -> &'static str {
        match self {
            HangupReason::Remote => "caller_hung_up",
            HangupReason::Lost => "socket_lost",
            HangupReason::Error(_) => "error",
        }
    }
}

/// Carrier → session.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // frames travel by value: boxing would allocate every 20 ms
pub enum TransportEvent {
    /// 20 ms of caller audio, PCM16 mono 16 kHz.
    Audio(Frame),
    Dtmf(char),
    /// The caller's playback reached a mark sent earlier with this name.
    Mark(String),
    /// The outcome of a `TransportCommand::Transfer`.
    TransferResult {
        ok: bool,
    },
    Hangup(HangupReason),
}

/// Session → carrier.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // frames travel by value: boxing would allocate every 20 ms
pub enum TransportCommand {
    /// Queue 20 ms of agent audio (PCM16 mono 16 kHz) for paced playback.
    Play(Frame),
    /// Ask to be told (`TransportEvent::Mark`) when playback reaches this point.
    Mark(String),
    /// Drop everything queued or buffered for playback (barge-in).
    Clear,
    /// Hand the call to this target (a phone number or SIP URI).
    Transfer(String),
    /// End the call.
    Hangup,
}

/// One call as the session sees it. Dropping `commands` ends the leg.
#[derive(Debug)]
pub struct CallLeg {
    pub events: mpsc::Receiver<TransportEvent>,
    pub commands: mpsc::Sender<TransportCommand>,
    pub info: LegInfo,
}

/// Channel sizes: events carry 50 frames a second; a few seconds of slack
/// absorbs a slow consumer without unbounded memory.
pub const EVENT_CHANNEL: usize = 256;
/// Commands carry whole synthesized sentences ahead of paced playback.
pub const COMMAND_CHANNEL: usize = 4096;

impl CallLeg {
    /// A leg plus the adapter's ends of its two channels.
    pub fn channel(
        info: LegInfo,
    ) -> (
        CallLeg,
        mpsc::Sender<TransportEvent>,
        mpsc::Receiver<TransportCommand>,
    ) {
        let (ev_tx, ev_rx) = mpsc::channel(EVENT_CHANNEL);
        let (cmd_tx, cmd_rx) = mpsc::channel(COMMAND_CHANNEL);
        (
            CallLeg {
                events: ev_rx,
                commands: cmd_tx,
                info,
            },
            ev_tx,
            cmd_rx,
        )
    }
}
