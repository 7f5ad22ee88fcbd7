//! The call state machine: its state, input dispatch, the output queue and the
//! timers (turn end by silence, fillers, re-prompts, the call's time limit and
//! playback safety). Caller-side handlers live in `caller.rs`, agent-side ones
//! in `agent.rs`; this file owns the clock bookkeeping.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::domain::{Conversation, Extraction};
use crate::providers::ProviderError;

use super::dialogue::{Dialogue, Stage};
use super::playout::Playout;
use super::prompts;
use super::turn::TurnTracker;
use super::{CallConfig, EndReason, Input, Output, Purpose, TurnId};

/// How long an idle call sleeps once it has ended; nothing is due then.
const ENDED_IDLE: Duration = Duration::from_secs(3600);
/// Extra patience before a re-prompt while the recogniser still owes us words.
const STT_GRACE: Duration = Duration::from_secs(10);
/// A voice message ends after this much silence once the prompt has played…
const MESSAGE_SILENCE: Duration = Duration::from_secs(6);
/// …or at this length.
const MESSAGE_MAX: Duration = Duration::from_secs(120);
/// The second filler comes at this multiple of `filler_after`.
const SECOND_FILLER_FACTOR: f64 = 2.5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Talking with the caller.
    Active,
    /// Playing the transfer announcement; `Transfer` follows it.
    Announcing,
    /// Waiting for the carrier's transfer result.
    Transferring,
    /// Speech recognition is down: the caller is leaving a voice message.
    /// `last_voice` is when they last made sound.
    Message {
        since: Instant,
        last_voice: Instant,
    },
    /// The goodbye is playing; `Hangup` follows it.
    Closing(EndReason),
    Ended,
}

/// A caller turn sent for extraction and not answered yet.
#[derive(Debug, Clone)]
pub(super) struct Pending {
    pub turn: TurnId,
    pub asked: Instant,
    pub fillers: usize,
    pub text: String,
}

/// The barge-in judgement of the current caller speech run.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct BargeRun {
    /// The run passed `barge_in_min` over agent speech.
    pub candidate: bool,
}

/// One call's state machine. See the module docs of `call` for the contract.
#[derive(Debug)]
pub struct Call {
    pub(super) config: CallConfig,
    pub(super) started: Instant,
    pub(super) now: Instant,
    pub(super) out: VecDeque<Output>,
    pub(super) phase: Phase,
    pub(super) turn: TurnTracker,
    pub(super) play: Playout,
    pub(super) dialogue: Dialogue,
    pub(super) conversation: Conversation,
    pub(super) pending: Option<Pending>,
    /// An answer that came while the caller was making sound; see `release_held`.
    pub(super) held: Option<(Pending, Result<Extraction, ProviderError>)>,
    pub(super) next_turn: u64,
    /// Since when nobody has said anything: re-prompts count from here.
    pub(super) idle_since: Instant,
    pub(super) silent_prompts: u32,
    pub(super) barge: BargeRun,
}

impl Call {
    /// Starts a call at `now`; the first output is the greeting.
    pub fn new(config: CallConfig, now: Instant) -> Call {
        let dialogue = Dialogue::new(&config.business_name, config.caller_number.clone());
        let conversation = Conversation {
            caller_number: config.caller_number.clone(),
            now: config.started_at_utc,
            ..Default::default()
        };
        let greeting = prompts::greeting(
            &config.business_name,
            &config.greeting,
            config.opening.as_deref(),
        );
        let mut call = Call {
            config,
            started: now,
            now,
            out: VecDeque::new(),
            phase: Phase::Active,
            turn: TurnTracker::default(),
            play: Playout::default(),
            dialogue,
            conversation,
            pending: None,
            held: None,
            next_turn: 0,
            idle_since: now,
            silent_prompts: 0,
            barge: BargeRun::default(),
        };
        let outbound = call.config.opening.is_some();
        call.event("call_started", json!({ "outbound": outbound }));
        call.say(Purpose::Greeting, &greeting);
        call
    }

    /// Applies one input. Inputs after the call ended are ignored; times
    /// earlier than one already seen are taken as that time.
    pub fn handle_input(&mut self, input: Input) {
        if self.phase == Phase::Ended {
            return;
        }
        self.now = self.now.max(input.at());
        match input {
            Input::Timeout { .. } => {}
            Input::CallerAudio { speech, .. } => self.on_caller_audio(speech),
            Input::Stt { event, .. } => self.on_stt(event),
            Input::Dtmf { digit, .. } => self.on_dtmf(digit),
            Input::Extracted { turn, result, .. } => self.on_extracted(turn, result),
            Input::SentencePlayed {
                utterance, index, ..
            } => {
                self.play.on_mark(utterance, index);
            }
            Input::PlaybackFinished { utterance, .. } => self.on_playback_finished(utterance),
            Input::SpeechFailed {
                utterance, error, ..
            } => {
                self.event(
                    "speech_failed",
                    json!({ "utterance": utterance.0, "engine": error.engine, "error": error.message }),
                );
                self.on_playback_finished(utterance);
            }
            Input::TaskSaved { reference, .. } => self.on_task_saved(&reference),
            Input::TransferResult { ok, .. } => self.on_transfer_result(ok),
            Input::CallerHungUp { .. } => self.on_caller_hung_up(),
        }
        self.run_timers();
    }

    /// The next thing to do, or `Timeout` with the next deadline when idle.
    pub fn poll_output(&mut self) -> Output {
        self.out
            .pop_front()
            .unwrap_or_else(|| Output::Timeout(self.next_deadline()))
    }

    /// Everything extracted so far, merged.
    pub fn extraction(&self) -> &Extraction {
        self.dialogue.known()
    }

    /// The conversation as the extractor sees it (what the caller heard of
    /// agent lines, the caller's turns, what is known).
    pub fn conversation(&self) -> &Conversation {
        &self.conversation
    }

    /// The reference of the call's task, once the session reported it.
    pub fn task_reference(&self) -> Option<&str> {
        self.dialogue.reference()
    }

    /// True once `Hangup` has been emitted.
    pub fn is_ended(&self) -> bool {
        self.phase == Phase::Ended
    }

    /// Milliseconds since the call started.
    pub(super) fn ms(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.started).as_millis()).unwrap_or(u64::MAX)
    }

    /// Queues an `Event`, stamping `at_ms`.
    pub(super) fn event(&mut self, kind: &'static str, mut detail: serde_json::Value) {
        if let Some(map) = detail.as_object_mut() {
            map.insert("at_ms".into(), json!(self.ms(self.now)));
        }
        self.out.push_back(Output::Event { kind, detail });
    }

    pub(super) fn tuning_filler_deadline(&self, p: &Pending) -> Option<Instant> {
        let after = self.config.tuning.filler_after;
        match p.fillers {
            0 => Some(p.asked + after),
            1 => Some(p.asked + after.mul_f64(SECOND_FILLER_FACTOR)),
            // A slow engine (or one timing out before the next takes over):
            // never leave more than `filler_after` of dead air.
            n if n < prompts::FILLERS.len() => Some(self.idle_since.max(p.asked) + after),
            _ => None,
        }
    }

    fn max_duration_deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Closing(_) | Phase::Ended => None,
            _ => Some(self.started + self.config.tuning.max_duration),
        }
    }

    fn turn_end_deadline(&self) -> Option<Instant> {
        (self.phase == Phase::Active)
            .then(|| {
                self.turn
                    .end_deadline(self.config.tuning.end_of_turn_silence)
            })
            .flatten()
    }

    fn filler_deadline(&self) -> Option<Instant> {
        let quiet = self.phase == Phase::Active && !self.play.playing() && !self.turn.busy();
        let p = self.pending.as_ref().filter(|_| quiet)?;
        self.tuning_filler_deadline(p)
    }

    fn reprompt_deadline(&self) -> Option<Instant> {
        let waiting = self.phase == Phase::Active
            && self.pending.is_none()
            && !self.play.playing()
            && !self.turn.busy()
            && self.dialogue.stage() != Stage::Done;
        // A slow recogniser must not make the agent ask "are you still there?"
        // over words the caller already said: wait longer while they are on the way.
        let grace = if self.turn.awaiting_words() {
            STT_GRACE
        } else {
            Duration::ZERO
        };
        waiting.then(|| self.idle_since + self.config.tuning.reprompt_after + grace)
    }

    /// When the voice message is over: silence after the prompt, or its cap.
    fn message_deadline(&self) -> Option<Instant> {
        let Phase::Message { since, last_voice } = self.phase else {
            return None;
        };
        let cap = since + MESSAGE_MAX;
        if self.play.playing() {
            return Some(cap);
        }
        Some(cap.min(last_voice.max(self.idle_since) + MESSAGE_SILENCE))
    }

    fn next_deadline(&self) -> Instant {
        if self.phase == Phase::Ended {
            return self.now + ENDED_IDLE;
        }
        [
            self.max_duration_deadline(),
            self.play.safety_deadline(),
            self.turn_end_deadline(),
            self.filler_deadline(),
            self.reprompt_deadline(),
            self.message_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(self.now + ENDED_IDLE)
    }

    /// Fires every timer that is due at `now`, one at a time, since each one
    /// changes what the others see.
    fn run_timers(&mut self) {
        // Each firing moves the state on; the bound only guards against a bug
        // turning into a busy loop.
        for _ in 0..16 {
            if self.phase == Phase::Ended || !self.fire_one_timer() {
                return;
            }
        }
    }

    fn fire_one_timer(&mut self) -> bool {
        let now = self.now;
        let due = |d: Option<Instant>| d.is_some_and(|d| d <= now);
        if due(self.max_duration_deadline()) {
            self.event("max_duration", json!({}));
            self.close(EndReason::MaxDuration, prompts::GOODBYE_MAX_DURATION);
        } else if due(self.play.safety_deadline()) {
            self.on_playback_timeout();
        } else if due(self.turn_end_deadline()) {
            self.end_turn("silence");
        } else if due(self.filler_deadline()) {
            self.say_filler();
        } else if due(self.reprompt_deadline()) {
            self.on_silence();
        } else if due(self.message_deadline()) {
            self.event("voice_message_end", json!({}));
            self.close(EndReason::MessageTaken, prompts::MESSAGE_THANKS);
        } else {
            return false;
        }
        true
    }

    fn on_playback_timeout(&mut self) {
        if let Some(id) = self.play.current().map(|p| p.id) {
            self.event("playback_timeout", json!({ "utterance": id.0 }));
            self.on_playback_finished(id);
        }
    }

    fn say_filler(&mut self) {
        let Some(p) = self.pending.as_mut() else {
            return;
        };
        let n = p.fillers;
        p.fillers += 1;
        let wait_ms = u64::try_from(self.now.saturating_duration_since(p.asked).as_millis())
            .unwrap_or(u64::MAX);
        let text = prompts::FILLERS[n.min(prompts::FILLERS.len() - 1)];
        self.event("filler", json!({ "n": n + 1, "wait_ms": wait_ms }));
        self.say(Purpose::Filler, text);
    }

    /// The caller said nothing for `reprompt_after` while the agent waited.
    fn on_silence(&mut self) {
        self.idle_since = self.now;
        if self.silent_prompts < self.config.tuning.max_silent_prompts {
            self.silent_prompts += 1;
            self.event("reprompt", json!({ "n": self.silent_prompts }));
            let text = self.dialogue.reprompt();
            self.say(Purpose::Reprompt, &text);
        } else {
            self.event("silence_hangup", json!({ "prompts": self.silent_prompts }));
            self.close(EndReason::Silence, prompts::GOODBYE_SILENCE);
        }
    }
}
