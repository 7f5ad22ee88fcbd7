//! The sans-IO call core: one state machine per call that owns turn-taking,
//! barge-in, fillers, re-prompts, the call's time limits and the dialogue
//! policy. It does no I/O, spawns nothing and never reads the clock: every
//! [`Input`] carries its `Instant`, and the core answers with [`Output`]s and
//! the next deadline it needs waking at.
//!
//! # Run loop (the session's side)
//! ```text
//! let mut call = Call::new(config, Instant::now());
//! loop {
//!     let deadline = loop {
//!         match call.poll_output() {
//!             Output::Timeout(at) => break at,
//!             other => execute(other),        // may later feed results back as inputs
//!         }
//!     };
//!     if call.is_ended() { break; }
//!     select! { event from leg / STT / TTS / extractor => call.handle_input(..),
//!               sleep_until(deadline) => call.handle_input(Input::Timeout { at: now }) }
//! }
//! ```
//!
//! # Contracts
//! - At most one agent utterance is in flight: the core emits the next
//!   [`Output::Say`] only after the previous one was reported finished
//!   ([`Input::PlaybackFinished`] or [`Input::SpeechFailed`]) or stopped
//!   ([`Output::StopSpeaking`]). Sentence `index` of a `Say` should be followed
//!   by a playback mark that comes back as [`Input::SentencePlayed`] when the
//!   caller has heard it: that is what barge-in accounting trusts.
//! - An utterance whose finish is never reported is taken as played after a
//!   safety timeout proportional to its length.
//! - [`Output::ExtractIntent`] is answered by [`Input::Extracted`] with the
//!   same [`TurnId`]; results for an older turn are dropped.
//! - [`Output::SaveTask`] creates the call's task the first time and updates
//!   it after; the session answers the first one with [`Input::TaskSaved`].
//!   A `SaveTask` always precedes an [`Output::Escalate`].
//! - [`Output::Escalate`] marks the task escalated at once (with the summary for
//!   the person who takes over). When the call can be transferred, the core
//!   first announces it and then emits [`Output::Transfer`]; the carrier's
//!   answer comes back as [`Input::TransferResult`].
//! - [`Output::RecordMessage`] comes when every speech-to-text engine has
//!   failed: the session records the caller's audio from then on and attaches
//!   it to the call's task (a `SaveTask` precedes it) when the call ends.
//! - [`Output::Hangup`] is the last output of every call and carries the end
//!   reason to record. For [`EndReason::CallerHungUp`] and
//!   [`EndReason::Transferred`] the carrier call is already gone or in other
//!   hands: close the media leg, do not hang the carrier call up. After it,
//!   inputs are ignored.
//!
//! Submodules: `machine` (the state and dispatch), `caller` (audio, STT,
//! barge-in, turn ends), `agent` (speaking, results, escalation, closing),
//! `turn` (the caller-turn detector), `playout` (utterances and what was
//! heard), `dialogue` (the pure question policy), `prompts` (phrases).

use std::time::Instant;

use chrono::{DateTime, Utc};

use crate::config::{CallTuning, Config};
use crate::domain::{Conversation, Extraction, Speaker};
use crate::providers::{ProviderError, SttEvent};

mod agent;
mod caller;
pub mod dialogue;
mod machine;
mod playout;
pub mod prompts;
mod turn;

pub use machine::Call;

/// What the core needs to know about one call.
#[derive(Debug, Clone)]
pub struct CallConfig {
    pub tuning: CallTuning,
    pub business_name: String,
    /// The inbound greeting; `{business}` is replaced by the business name.
    pub greeting: String,
    /// The caller id, offered back as the default callback number.
    pub caller_number: Option<String>,
    /// Whether a transfer to a person is possible on this call.
    pub can_transfer: bool,
    /// Outbound callbacks: what the call is about ("your plumbing request
    /// T-1042"); replaces the greeting with an opening that names it.
    pub opening: Option<String>,
    /// Wall-clock time at `now` of [`Call::new`]; lets extractors resolve
    /// "tomorrow morning". `None` leaves `Conversation::now` unset.
    pub started_at_utc: Option<DateTime<Utc>>,
}

impl CallConfig {
    /// An inbound call under the server's configuration, started now (`at`).
    pub fn inbound(
        config: &Config,
        caller_number: Option<String>,
        can_transfer: bool,
        at: DateTime<Utc>,
    ) -> CallConfig {
        CallConfig {
            tuning: config.call.clone(),
            business_name: config.business.name.clone(),
            greeting: config.business.greeting.clone(),
            caller_number,
            can_transfer,
            opening: None,
            started_at_utc: Some(at),
        }
    }

    /// A configuration with default tuning, as tests and simulations use it.
    pub fn new(business_name: impl Into<String>, greeting: impl Into<String>) -> CallConfig {
        CallConfig {
            tuning: CallTuning::default(),
            business_name: business_name.into(),
            greeting: greeting.into(),
            caller_number: None,
            can_transfer: false,
            opening: None,
            started_at_utc: None,
        }
    }
}

/// Identifies one caller turn sent for extraction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TurnId(pub u64);

/// Identifies one agent utterance (one [`Output::Say`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UtteranceId(pub u64);

/// Everything that can happen to a call, each stamped with when it happened.
#[derive(Debug, Clone)]
pub enum Input {
    /// A deadline passed (or the session simply wants the core to catch up).
    Timeout {
        at: Instant,
    },
    /// One 20 ms caller frame with the session's VAD decision.
    CallerAudio {
        at: Instant,
        speech: bool,
    },
    Stt {
        at: Instant,
        event: SttEvent,
    },
    Dtmf {
        at: Instant,
        digit: char,
    },
    Extracted {
        at: Instant,
        turn: TurnId,
        result: Result<Extraction, ProviderError>,
    },
    /// A playback mark came back: the caller heard sentence `index`.
    SentencePlayed {
        at: Instant,
        utterance: UtteranceId,
        index: usize,
    },
    /// The last mark of that utterance came back.
    PlaybackFinished {
        at: Instant,
        utterance: UtteranceId,
    },
    /// Synthesis or playback failed; the core moves on as if it had played.
    SpeechFailed {
        at: Instant,
        utterance: UtteranceId,
        error: ProviderError,
    },
    /// The session created the call's task; `reference` is like "T-1042".
    TaskSaved {
        at: Instant,
        reference: String,
    },
    TransferResult {
        at: Instant,
        ok: bool,
    },
    CallerHungUp {
        at: Instant,
    },
}

impl Input {
    pub fn at(&self) -> Instant {
        match self {
            Input::Timeout { at }
            | Input::CallerAudio { at, .. }
            | Input::Stt { at, .. }
            | Input::Dtmf { at, .. }
            | Input::Extracted { at, .. }
            | Input::SentencePlayed { at, .. }
            | Input::PlaybackFinished { at, .. }
            | Input::SpeechFailed { at, .. }
            | Input::TaskSaved { at, .. }
            | Input::TransferResult { at, .. }
            | Input::CallerHungUp { at } => *at,
        }
    }
}

/// Why the agent is saying something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    Greeting,
    Reply,
    Filler,
    Reprompt,
    Goodbye,
    Escalation,
}

/// Why the call is handed to a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EscalationReason {
    CallerAsked,
    Emergency,
    LowConfidence,
    DtmfZero,
}

impl EscalationReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EscalationReason::CallerAsked => "caller_asked",
            EscalationReason::Emergency => "emergency",
            EscalationReason::LowConfidence => "low_confidence",
            EscalationReason::DtmfZero => "dtmf_zero",
        }
    }
}

/// Why the call ended, as recorded on the call row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndReason {
    /// The conversation reached its goodbye.
    Completed,
    CallerHungUp,
    /// The caller stayed silent through every re-prompt.
    Silence,
    MaxDuration,
    Transferred,
    /// Escalated without a transfer: a person will call back.
    EscalatedCallback,
    /// Speech recognition was down; the caller left a voice message.
    MessageTaken,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Completed => "completed",
            EndReason::CallerHungUp => "caller_hung_up",
            EndReason::Silence => "silence",
            EndReason::MaxDuration => "max_duration",
            EndReason::Transferred => "transferred",
            EndReason::EscalatedCallback => "escalated_callback",
            EndReason::MessageTaken => "message_taken",
        }
    }
}

/// What the core asks the session to do.
#[derive(Debug, Clone)]
pub enum Output {
    /// Synthesize and play these sentences in order, with a mark after each.
    Say {
        utterance: UtteranceId,
        sentences: Vec<String>,
        purpose: Purpose,
    },
    /// Barge-in or shutdown: clear the carrier's playback and cancel synthesis.
    StopSpeaking { utterance: UtteranceId },
    ExtractIntent {
        turn: TurnId,
        conversation: Conversation,
    },
    /// A transcript line to store. For caller lines: one per caller turn with
    /// the STT confidence. For agent lines: the full text, and `heard_chars`
    /// set when a barge-in (or hang-up) cut it: how many characters of `text`
    /// the caller heard. Offsets are milliseconds from the start of the call.
    Transcript {
        speaker: Speaker,
        text: String,
        heard_chars: Option<usize>,
        confidence: Option<f32>,
        start_ms: u64,
        end_ms: u64,
    },
    /// Create the call's task (first time) or update it with these details.
    SaveTask { extraction: Extraction },
    /// Mark the task escalated; `summary` is one paragraph for the person.
    Escalate {
        reason: EscalationReason,
        summary: String,
    },
    /// Transfer the call to a person now (the announcement has played).
    Transfer,
    /// End the call; the last output. See the module docs for the reasons.
    Hangup { reason: EndReason },
    /// A decision worth recording (turn ends, barge-ins, fillers, …);
    /// `detail` always has `at_ms`, the offset from the start of the call.
    /// Record the caller's audio from now on as a voice message for the task.
    RecordMessage,
    Event {
        kind: &'static str,
        detail: serde_json::Value,
    },
    /// Nothing more to do until this instant (or the next input).
    Timeout(Instant),
}
