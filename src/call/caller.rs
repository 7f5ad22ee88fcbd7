//! The caller's side of the call: VAD frames, STT events, DTMF and hang-up;
//! barge-in judgement (with backchannels kept from interrupting) and the end
//! of each caller turn, which sends the conversation for extraction.

use std::time::Duration;

use serde_json::json;

use crate::domain::{Speaker, Utterance};
use crate::providers::{ProviderError, SttEvent};

use super::machine::{BargeRun, Call, Pending, Phase};
use super::prompts;
use super::turn::SpeechChange;
use super::{EndReason, EscalationReason, Output, Purpose, TurnId};

/// Speech over the agent shorter than this may be a backchannel ("uh-huh"):
/// it interrupts only once words that are not one arrive.
pub const BACKCHANNEL_LIMIT: Duration = Duration::from_millis(600);

impl Call {
    fn backchannel_limit(&self) -> Duration {
        BACKCHANNEL_LIMIT.max(self.config.tuning.barge_in_min)
    }

    /// The agent is speaking something the caller may interrupt.
    fn interruptible(&self) -> bool {
        self.phase == Phase::Active && self.play.playing()
    }

    pub(super) fn on_caller_audio(&mut self, speech: bool) {
        let change = self.turn.on_audio(self.now, speech);
        if speech {
            self.idle_since = self.now;
            if let Phase::Message { last_voice, .. } = &mut self.phase {
                *last_voice = self.now;
            }
        }
        match change {
            SpeechChange::Started => self.barge = BargeRun::default(),
            SpeechChange::Ended(length) => {
                if self.barge.candidate && self.interruptible() {
                    self.event(
                        "backchannel_ignored",
                        json!({ "reason": "short_speech", "speech_ms": length.as_millis() as u64 }),
                    );
                }
                self.barge = BargeRun::default();
                self.release_held();
            }
            SpeechChange::None => {}
        }
        if !speech || !self.interruptible() {
            return;
        }
        let Some(run) = self.turn.run_length(self.now) else {
            return;
        };
        if run >= self.config.tuning.barge_in_min {
            self.barge.candidate = true;
        }
        if run >= self.backchannel_limit() {
            self.barge_in("speech_duration");
        }
    }

    pub(super) fn on_stt(&mut self, event: SttEvent) {
        match event {
            SttEvent::SpeechStarted => {}
            SttEvent::Interim { text } => {
                let long_enough = self
                    .turn
                    .run_length(self.now)
                    .is_some_and(|r| r >= self.config.tuning.barge_in_min);
                if self.interruptible() && long_enough && !prompts::is_backchannel(&text) {
                    self.barge_in("interim_text");
                }
            }
            SttEvent::Final {
                text,
                confidence,
                end_of_turn,
            } => self.on_final(&text, confidence, end_of_turn),
            SttEvent::UtteranceEnd => {
                self.turn.on_utterance_end();
                if self.phase == Phase::Active && self.turn.has_text() {
                    self.end_turn("utterance_end");
                }
            }
            SttEvent::Error(error) => self.on_stt_error(error),
        }
    }

    fn on_final(&mut self, text: &str, confidence: f32, end_of_turn: bool) {
        let text = text.trim();
        if text.is_empty() {
            return;
        }
        if self.phase != Phase::Active {
            // No dialogue any more (announcement, transfer, goodbye), but the
            // words still belong in the transcript.
            self.caller_line(text, Some(confidence), self.now, self.now);
            return;
        }
        if self.interruptible() {
            if prompts::is_backchannel(text) {
                self.event(
                    "backchannel_ignored",
                    json!({ "reason": "backchannel_text", "text": text }),
                );
                return;
            }
            self.barge_in("final_text");
        }
        self.drop_held();
        self.turn.on_final(self.now, text, confidence);
        if end_of_turn {
            self.end_turn("end_of_turn");
        }
    }

    /// Stops the agent because the caller is talking over it.
    fn barge_in(&mut self, reason: &'static str) {
        let speech_ms = self
            .turn
            .run_length(self.now)
            .map_or(0, |r| r.as_millis() as u64);
        if let Some(f) = self.play.interrupt() {
            self.out.push_back(Output::StopSpeaking { utterance: f.id });
            self.event(
                "barge_in",
                json!({
                    "reason": reason,
                    "speech_ms": speech_ms,
                    "utterance": f.id.0,
                    "heard_chars": f.heard_chars,
                }),
            );
            self.agent_line(&f);
        }
        self.barge = BargeRun::default();
        self.idle_since = self.now;
    }

    /// Ends the caller's turn: transcript line, then extraction of the
    /// conversation so far under a new turn id (older results become stale).
    pub(super) fn end_turn(&mut self, reason: &'static str) {
        let Some(t) = self.turn.take(self.now) else {
            return;
        };
        let silence_ms = self.now.saturating_duration_since(t.end).as_millis() as u64;
        self.event(
            "turn_end",
            json!({ "reason": reason, "silence_ms": silence_ms, "chars": t.text.chars().count() }),
        );
        self.caller_line(&t.text, t.confidence, t.start, t.end);
        self.silent_prompts = 0;
        self.idle_since = self.now;
        self.next_turn += 1;
        let turn = TurnId(self.next_turn);
        self.pending = Some(Pending {
            turn,
            asked: self.now,
            fillers: 0,
            text: t.text,
        });
        self.conversation.known = self.dialogue.known().clone();
        if let Some(start) = self.config.started_at_utc {
            let elapsed = self.now.saturating_duration_since(self.started);
            self.conversation.now =
                Some(start + chrono::Duration::from_std(elapsed).unwrap_or_default());
        }
        self.out.push_back(Output::ExtractIntent {
            turn,
            conversation: self.conversation.clone(),
        });
    }

    /// A caller transcript line, also kept in the conversation.
    fn caller_line(
        &mut self,
        text: &str,
        confidence: Option<f32>,
        start: std::time::Instant,
        end: std::time::Instant,
    ) {
        self.out.push_back(Output::Transcript {
            speaker: Speaker::Caller,
            text: text.to_string(),
            heard_chars: None,
            confidence,
            start_ms: self.ms(start),
            end_ms: self.ms(end),
        });
        self.conversation.turns.push(Utterance {
            speaker: Speaker::Caller,
            text: text.to_string(),
        });
    }

    pub(super) fn on_dtmf(&mut self, digit: char) {
        self.event("dtmf", json!({ "digit": digit.to_string() }));
        if digit == '0' && self.phase == Phase::Active && !self.dialogue.escalated() {
            self.escalate(EscalationReason::DtmfZero);
        }
    }

    /// The STT stream failed: apologise once, flush what was heard, and carry
    /// on with DTMF and timers (the session may open another engine).
    fn on_stt_error(&mut self, error: ProviderError) {
        self.event(
            "stt_error",
            json!({ "engine": error.engine, "error": error.message, "retryable": error.retryable }),
        );
        if self.phase != Phase::Active {
            return;
        }
        if self.turn.has_text() {
            self.end_turn("stt_error");
        }
        self.take_voice_message();
    }

    /// Every recogniser has failed (the session's chain already tried them
    /// all): stop the conversation, keep the task, and record what the caller
    /// says so a person can listen to it.
    fn take_voice_message(&mut self) {
        // At the very start the greeting is cut: still say whom they reached.
        let greeting_cut = self
            .play
            .current()
            .is_some_and(|p| p.purpose == Purpose::Greeting);
        if let Some(f) = self.play.interrupt() {
            self.out.push_back(Output::StopSpeaking { utterance: f.id });
            self.agent_line(&f);
        }
        self.pending = None;
        self.held = None;
        self.phase = Phase::Message {
            since: self.now,
            last_voice: self.now,
        };
        self.event("voice_message", json!({}));
        self.out.push_back(Output::SaveTask {
            extraction: self.dialogue.known().clone(),
        });
        self.out.push_back(Output::RecordMessage);
        let text = if greeting_cut {
            format!(
                "Thanks for calling {}. {}",
                self.config.business_name,
                prompts::VOICE_MESSAGE
            )
        } else {
            prompts::VOICE_MESSAGE.to_string()
        };
        self.say(Purpose::Reply, &text);
    }

    /// The caller is gone: record what was heard and said, then end.
    pub(super) fn on_caller_hung_up(&mut self) {
        if let Some(f) = self.play.interrupt() {
            self.agent_line(&f);
        }
        if let Some(t) = self.turn.take(self.now) {
            self.caller_line(&t.text, t.confidence, t.start, t.end);
        }
        self.hangup(EndReason::CallerHungUp);
    }
}
