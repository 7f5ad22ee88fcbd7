//! The agent's side of the call: starting utterances one at a time, their
//! transcript lines, extraction results through the dialogue policy, task
//! reference, escalation and transfer, the goodbye and the hang-up.

use serde_json::json;

use crate::domain::{Extraction, Speaker, Utterance};
use crate::providers::ProviderError;

use super::dialogue::Action;
use super::machine::{Call, Pending, Phase};
use super::playout::Finished;
use super::prompts;
use super::{EndReason, EscalationReason, Output, Purpose, TurnId, UtteranceId};

impl Call {
    /// Queues `text`; it is emitted as `Say` when nothing else is playing.
    pub(super) fn say(&mut self, purpose: Purpose, text: &str) {
        let sentences = prompts::sentences(text);
        if self.play.enqueue(purpose, sentences, self.now).is_some() {
            self.emit_current_say();
        }
    }

    fn emit_current_say(&mut self) {
        if let Some(p) = self.play.current() {
            self.out.push_back(Output::Say {
                utterance: p.id,
                sentences: p.sentences.clone(),
                purpose: p.purpose,
            });
        }
    }

    /// An utterance played to its end (or failed, or timed out).
    pub(super) fn on_playback_finished(&mut self, id: UtteranceId) {
        let Some(f) = self.play.finish(id) else {
            return;
        };
        self.agent_line(&f);
        self.idle_since = self.now;
        match (self.phase, f.purpose) {
            (Phase::Closing(reason), Purpose::Goodbye) => return self.hangup(reason),
            (Phase::Announcing, Purpose::Escalation) => {
                self.phase = Phase::Transferring;
                self.out.push_back(Output::Transfer);
                return;
            }
            _ => {}
        }
        if self.play.start_next(self.now).is_some() {
            self.emit_current_say();
        }
    }

    /// An agent transcript line with what the caller heard; the heard part
    /// joins the conversation (fillers stay out of it).
    pub(super) fn agent_line(&mut self, f: &Finished) {
        self.out.push_back(Output::Transcript {
            speaker: Speaker::Agent,
            text: f.text.clone(),
            heard_chars: f.heard_chars,
            confidence: None,
            start_ms: self.ms(f.started),
            end_ms: self.ms(self.now),
        });
        if f.purpose != Purpose::Filler && !f.heard_text.is_empty() {
            self.conversation.turns.push(Utterance {
                speaker: Speaker::Agent,
                text: f.heard_text.clone(),
            });
        }
    }

    /// Stops whatever is playing, recording what was heard.
    fn stop_speaking(&mut self) {
        if let Some(f) = self.play.interrupt() {
            self.out.push_back(Output::StopSpeaking { utterance: f.id });
            self.agent_line(&f);
        }
    }

    pub(super) fn on_extracted(&mut self, turn: TurnId, result: Result<Extraction, ProviderError>) {
        let current = self.pending.as_ref().map(|p| p.turn);
        if current != Some(turn) {
            self.event(
                "stale_result",
                json!({ "turn": turn.0, "current": current.map(|t| t.0), "reason": "newer_turn" }),
            );
            return;
        }
        let Some(p) = self.pending.take() else {
            return;
        };
        if self.phase != Phase::Active {
            return;
        }
        if self.turn.has_text() {
            // The caller said more: their next turn re-extracts with
            // everything, so this answer would reply to half of it.
            self.event(
                "stale_result",
                json!({ "turn": turn.0, "reason": "caller_spoke_again" }),
            );
            return;
        }
        if self.turn.speaking() {
            // Words or a cough? Hold the answer until the speech run ends.
            self.event("result_held", json!({ "turn": turn.0 }));
            self.held = Some((p, result));
            return;
        }
        self.apply_result(p, result);
    }

    /// The caller's speech run ended: a held answer plays unless words came.
    pub(super) fn release_held(&mut self) {
        if let Some((p, result)) = self.held.take() {
            if self.phase == Phase::Active && !self.turn.has_text() {
                self.apply_result(p, result);
            }
        }
    }

    /// Words arrived while an answer was held: it is for half a thought.
    pub(super) fn drop_held(&mut self) {
        if let Some((p, _)) = self.held.take() {
            self.event(
                "stale_result",
                json!({ "turn": p.turn.0, "reason": "caller_spoke_again" }),
            );
        }
    }

    fn apply_result(&mut self, p: Pending, result: Result<Extraction, ProviderError>) {
        self.play.drop_queued(Purpose::Filler);
        let wait_ms = self.now.saturating_duration_since(p.asked).as_millis() as u64;
        let turn = p.turn;
        let detail = match &result {
            Ok(e) => json!({
                "turn": turn.0, "ok": true, "wait_ms": wait_ms, "confidence": e.confidence,
                "category": e.category, "wants_human": e.wants_human, "urgency": e.urgency,
            }),
            Err(e) => {
                json!({ "turn": turn.0, "ok": false, "wait_ms": wait_ms, "error": e.to_string() })
            }
        };
        self.event("extracted", detail);
        let actions = self.dialogue.on_turn(&p.text, result);
        self.conversation.known = self.dialogue.known().clone();
        self.apply(actions);
    }

    fn apply(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Say(purpose, text) => self.say(purpose, &text),
                Action::SaveTask(extraction) => self.out.push_back(Output::SaveTask { extraction }),
                Action::Escalate { reason, summary } => self.on_escalate(reason, summary),
                Action::Goodbye(reason, text) => self.close(reason, &text),
            }
        }
    }

    /// Escalation decided outside the dialogue (DTMF 0).
    pub(super) fn escalate(&mut self, reason: EscalationReason) {
        let actions = self.dialogue.escalate(reason);
        self.conversation.known = self.dialogue.known().clone();
        self.apply(actions);
    }

    /// Marks the task escalated; then announces a transfer, or promises a
    /// callback and closes when no transfer is possible.
    fn on_escalate(&mut self, reason: EscalationReason, summary: String) {
        self.event(
            "escalate",
            json!({ "reason": reason.as_str(), "can_transfer": self.config.can_transfer }),
        );
        self.out.push_back(Output::Escalate { reason, summary });
        self.pending = None;
        self.held = None;
        if self.config.can_transfer {
            self.stop_speaking();
            self.phase = Phase::Announcing;
            self.say(Purpose::Escalation, prompts::ESCALATE_TRANSFER);
        } else {
            let text = format!(
                "{} {}",
                prompts::ESCALATE_CALLBACK,
                prompts::goodbye_completed(&self.config.business_name)
            );
            self.close(EndReason::EscalatedCallback, &text);
        }
    }

    pub(super) fn on_task_saved(&mut self, reference: &str) {
        self.event("task_saved", json!({ "reference": reference }));
        let actions = self.dialogue.on_task_saved(reference);
        if self.phase == Phase::Active {
            self.apply(actions);
        }
    }

    pub(super) fn on_transfer_result(&mut self, ok: bool) {
        if self.phase != Phase::Transferring {
            self.event("transfer_result_ignored", json!({ "ok": ok }));
            return;
        }
        self.event("transfer_result", json!({ "ok": ok }));
        if ok {
            self.hangup(EndReason::Transferred);
        } else {
            self.phase = Phase::Active;
            let text = self.dialogue.take_message();
            self.say(Purpose::Reply, &text);
        }
    }

    /// Says the goodbye (cutting anything else); `Hangup` follows when it has played.
    pub(super) fn close(&mut self, reason: EndReason, text: &str) {
        if matches!(self.phase, Phase::Closing(_) | Phase::Ended) {
            return;
        }
        self.stop_speaking();
        self.dialogue.close();
        self.pending = None;
        self.held = None;
        self.phase = Phase::Closing(reason);
        self.event("closing", json!({ "reason": reason.as_str() }));
        self.say(Purpose::Goodbye, text);
    }

    /// The last output of the call.
    pub(super) fn hangup(&mut self, reason: EndReason) {
        if let Some(f) = self.play.interrupt() {
            self.agent_line(&f);
        }
        self.event(
            "call_ended",
            json!({ "reason": reason.as_str(), "duration_ms": self.ms(self.now) }),
        );
        self.out.push_back(Output::Hangup { reason });
        self.phase = Phase::Ended;
    }
}
