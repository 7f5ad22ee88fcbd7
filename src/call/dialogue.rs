//! The dialogue policy: after each caller turn's extraction, what to say next.
//! It gathers the need (category and issue), where, when, who and a callback
//! number, one question at a time and only for what is missing; confirms the
//! details in one sentence; reads the task reference back; and decides when a
//! person must take over. Pure: no time, no I/O — the call machine turns its
//! [`Action`]s into outputs.

use crate::domain::{Extraction, Urgency};
use crate::providers::ProviderError;

use super::prompts::{self, Answer};
use super::{EndReason, EscalationReason, Purpose};

/// Below this confidence a useful turn counts as not understood.
pub const LOW_CONFIDENCE: f32 = 0.4;
/// Consecutive low-confidence useful turns before a person takes over.
pub const LOW_CONFIDENCE_TURNS: u8 = 2;
/// Extra requests taken after the read-back before the call closes anyway.
const MAX_EXTRA_NOTES: u8 = 3;

/// Where the conversation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Asking for what is missing.
    Gathering,
    /// Asked whether the caller id is the best callback number.
    ConfirmNumber,
    /// Read every detail back and asked whether it is right.
    ConfirmDetails,
    /// Confirmed; waiting for the task reference to read back.
    AwaitReference,
    /// Asked whether there is anything else.
    AnythingElse,
    /// A transfer failed; taking a message for the callback.
    TakingMessage,
    /// Escalated or closing: nothing more to ask.
    Done,
}

/// What the policy wants done, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Say(Purpose, String),
    SaveTask(Extraction),
    Escalate {
        reason: EscalationReason,
        summary: String,
    },
    /// Say this goodbye, then hang up with the reason.
    Goodbye(EndReason, String),
}

#[derive(Debug)]
pub struct Dialogue {
    business: String,
    caller_number: Option<String>,
    stage: Stage,
    known: Extraction,
    saved: Option<Extraction>,
    reference: Option<String>,
    number_confirmed: bool,
    number_declined: bool,
    escalated: bool,
    low_confidence_streak: u8,
    extra_notes: u8,
    last_question: String,
}

impl Dialogue {
    pub fn new(business: &str, caller_number: Option<String>) -> Dialogue {
        Dialogue {
            business: business.to_string(),
            caller_number,
            stage: Stage::Gathering,
            known: Extraction::default(),
            saved: None,
            reference: None,
            number_confirmed: false,
            number_declined: false,
            escalated: false,
            low_confidence_streak: 0,
            extra_notes: 0,
            last_question: prompts::ASK_NEED.to_string(),
        }
    }

    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// Everything extracted so far, merged.
    pub fn known(&self) -> &Extraction {
        &self.known
    }

    pub fn reference(&self) -> Option<&str> {
        self.reference.as_deref()
    }

    /// One caller turn's extraction came back: decide the next step.
    pub fn on_turn(
        &mut self,
        text: &str,
        result: Result<Extraction, ProviderError>,
    ) -> Vec<Action> {
        let newer = match result {
            Ok(e) => e,
            Err(_) => return self.repeat(true),
        };
        let reply = newer.reply.clone().filter(|r| !r.trim().is_empty());
        let useful_turn = newer.is_useful();
        let confidence = newer.confidence;
        let before = self.known.clone();
        self.known.merge(newer);
        self.known.reply = None;
        if let Some(reason) = self.needs_person(useful_turn, confidence) {
            return self.escalate(reason);
        }
        let mut progressed = self.known != before;
        match self.stage {
            Stage::ConfirmNumber => progressed |= self.on_number_answer(text, &before),
            Stage::ConfirmDetails => return self.on_details_answer(text, progressed),
            Stage::AnythingElse => return self.on_anything_else(text, reply, progressed),
            Stage::TakingMessage => return self.on_message(),
            Stage::AwaitReference | Stage::Done => return self.saved_if_changed(),
            Stage::Gathering => {}
        }
        let mut actions = self.saved_if_changed();
        actions.push(self.next_step(reply, progressed));
        actions
    }

    /// The session created the task: read the reference back when waiting for it.
    pub fn on_task_saved(&mut self, reference: &str) -> Vec<Action> {
        self.reference = Some(reference.to_string());
        if self.stage != Stage::AwaitReference {
            return Vec::new();
        }
        self.stage = Stage::AnythingElse;
        self.last_question = prompts::ANYTHING_ELSE.to_string();
        vec![Action::Say(
            Purpose::Reply,
            format!(
                "{} {}",
                prompts::readback(reference),
                prompts::ANYTHING_ELSE
            ),
        )]
    }

    /// Hands the call to a person: saves the task first, then escalates.
    pub fn escalate(&mut self, reason: EscalationReason) -> Vec<Action> {
        self.escalated = true;
        self.stage = Stage::Done;
        let mut actions = self.save(true);
        actions.push(Action::Escalate {
            reason,
            summary: prompts::summary(&self.known, reason),
        });
        actions
    }

    pub fn escalated(&self) -> bool {
        self.escalated
    }

    /// A transfer failed: the next caller turn is a message for the callback.
    pub fn take_message(&mut self) -> String {
        self.stage = Stage::TakingMessage;
        self.last_question = "Is there anything you'd like me to pass on?".to_string();
        prompts::TRANSFER_FAILED.to_string()
    }

    /// What to say when the caller has been silent: the open question again.
    pub fn reprompt(&mut self) -> String {
        if self.stage == Stage::AwaitReference {
            self.stage = Stage::AnythingElse;
            self.last_question = prompts::ANYTHING_ELSE.to_string();
            return format!("{} {}", prompts::SAVED_NO_REFERENCE, prompts::ANYTHING_ELSE);
        }
        format!("{} {}", prompts::STILL_THERE, self.last_question)
    }

    /// The call is closing; nothing more will be asked.
    pub fn close(&mut self) {
        self.stage = Stage::Done;
    }

    fn needs_person(&mut self, useful_turn: bool, confidence: f32) -> Option<EscalationReason> {
        if self.escalated {
            return None;
        }
        if self.known.wants_human {
            return Some(EscalationReason::CallerAsked);
        }
        if self.known.urgency == Some(Urgency::Emergency) {
            return Some(EscalationReason::Emergency);
        }
        if useful_turn {
            if confidence < LOW_CONFIDENCE {
                self.low_confidence_streak += 1;
            } else {
                self.low_confidence_streak = 0;
            }
        }
        (self.low_confidence_streak >= LOW_CONFIDENCE_TURNS)
            .then_some(EscalationReason::LowConfidence)
    }

    /// The caller gave a number of their own, or the caller id was confirmed.
    fn number_ok(&self) -> bool {
        match (&self.known.callback_number, &self.caller_number) {
            (None, _) => false,
            (Some(n), Some(id)) if n == id => self.number_confirmed,
            (Some(_), _) => true,
        }
    }

    /// Reads the answer to the callback-number question; true when it was one.
    fn on_number_answer(&mut self, text: &str, before: &Extraction) -> bool {
        let gave_number = self.known.callback_number.is_some()
            && self.known.callback_number != before.callback_number;
        self.stage = Stage::Gathering;
        if gave_number && self.known.callback_number != self.caller_number {
            self.number_confirmed = true;
            return true;
        }
        match prompts::yes_no(text) {
            Answer::Yes => {
                self.known.callback_number = self.caller_number.clone();
                self.number_confirmed = true;
                true
            }
            Answer::No => {
                self.number_declined = true;
                if self.known.callback_number == self.caller_number {
                    self.known.callback_number = None;
                }
                true
            }
            Answer::Unclear => false,
        }
    }

    fn on_details_answer(&mut self, text: &str, progressed: bool) -> Vec<Action> {
        let mut actions = self.saved_if_changed();
        match prompts::yes_no(text) {
            Answer::Yes if !progressed => {
                if let Some(reference) = self.reference.clone() {
                    self.stage = Stage::AnythingElse;
                    self.last_question = prompts::ANYTHING_ELSE.to_string();
                    let text = format!(
                        "Thank you. {} {}",
                        prompts::readback(&reference),
                        prompts::ANYTHING_ELSE
                    );
                    actions.push(Action::Say(Purpose::Reply, text));
                } else {
                    self.stage = Stage::AwaitReference;
                    actions.push(Action::Say(Purpose::Reply, prompts::SAVING.to_string()));
                }
            }
            Answer::No if !progressed => {
                self.stage = Stage::Gathering;
                self.last_question = prompts::ASK_CHANGE.to_string();
                actions.push(Action::Say(Purpose::Reply, prompts::ASK_CHANGE.to_string()));
            }
            // A correction in the same breath, or no clear answer: confirm again.
            _ => {
                self.stage = Stage::Gathering;
                actions.push(self.next_step(None, progressed));
            }
        }
        actions
    }

    fn on_anything_else(
        &mut self,
        text: &str,
        reply: Option<String>,
        progressed: bool,
    ) -> Vec<Action> {
        let mut actions = self.saved_if_changed();
        let answer = prompts::yes_no(text);
        if answer == Answer::No || self.extra_notes >= MAX_EXTRA_NOTES {
            self.stage = Stage::Done;
            actions.push(Action::Goodbye(
                EndReason::Completed,
                prompts::goodbye_completed(&self.business),
            ));
            return actions;
        }
        let say = if answer == Answer::Yes && !progressed {
            "Of course. What else can I help with?".to_string()
        } else {
            self.extra_notes += 1;
            let lead = reply.unwrap_or_else(|| prompts::NOTED.to_string());
            format!("{lead} {}", prompts::ANYTHING_ELSE)
        };
        actions.push(Action::Say(Purpose::Reply, say));
        actions
    }

    fn on_message(&mut self) -> Vec<Action> {
        let mut actions = self.saved_if_changed();
        self.stage = Stage::Done;
        let bye = format!(
            "{} {}",
            prompts::MESSAGE_TAKEN,
            prompts::goodbye_completed(&self.business)
        );
        actions.push(Action::Goodbye(EndReason::EscalatedCallback, bye));
        actions
    }

    /// The next question for what is missing, or the confirmation.
    fn next_step(&mut self, reply: Option<String>, progressed: bool) -> Action {
        let k = &self.known;
        let question = if !k.is_useful() {
            prompts::ASK_NEED.to_string()
        } else if k.issue.is_none() {
            prompts::ASK_ISSUE.to_string()
        } else if k.location.is_none() {
            prompts::ASK_LOCATION.to_string()
        } else if k.requested_time.is_none() {
            prompts::ASK_TIME.to_string()
        } else if k.caller_name.is_none() {
            prompts::ASK_NAME.to_string()
        } else if !self.number_ok() {
            match (&self.caller_number, self.number_declined) {
                (Some(id), false) => {
                    self.stage = Stage::ConfirmNumber;
                    prompts::confirm_number(id)
                }
                _ => prompts::ASK_NUMBER.to_string(),
            }
        } else {
            self.stage = Stage::ConfirmDetails;
            prompts::confirm_details(k)
        };
        self.last_question = question.clone();
        let text = match reply {
            Some(r) if self.stage != Stage::ConfirmDetails => r,
            _ if !progressed => format!("{} {question}", prompts::DIDNT_CATCH),
            _ if self.stage == Stage::ConfirmDetails => question,
            _ => format!("Got it. {question}"),
        };
        Action::Say(Purpose::Reply, text)
    }

    /// The open question again, after an engine error or an empty turn.
    fn repeat(&mut self, sorry: bool) -> Vec<Action> {
        let text = if sorry {
            format!("{} {}", prompts::DIDNT_CATCH, self.last_question)
        } else {
            self.last_question.clone()
        };
        vec![Action::Say(Purpose::Reply, text)]
    }

    fn saved_if_changed(&mut self) -> Vec<Action> {
        self.save(false)
    }

    /// A `SaveTask` when the details changed since the last one (and are worth a
    /// task), or when `force` and no task exists yet.
    fn save(&mut self, force: bool) -> Vec<Action> {
        let changed = self.saved.as_ref() != Some(&self.known);
        let wanted = self.known.is_useful() || (force && self.saved.is_none());
        if changed && wanted {
            self.saved = Some(self.known.clone());
            vec![Action::SaveTask(self.known.clone())]
        } else {
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn said(actions: &[Action]) -> Vec<&str> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Say(_, t) | Action::Goodbye(_, t) => Some(t.as_str()),
                _ => None,
            })
            .collect()
    }

    fn complete() -> Extraction {
        Extraction {
            category: Some("plumbing".into()),
            issue: Some("leak".into()),
            location: Some("42 Oak Street".into()),
            requested_time: Some("today".into()),
            caller_name: Some("Ann".into()),
            confidence: 0.9,
            ..Default::default()
        }
    }

    #[test]
    fn a_number_of_their_own_replaces_the_caller_id() {
        let mut d = Dialogue::new("Acme", Some("+15551234567".into()));
        let a = d.on_turn("leak at 42 Oak Street today, I'm Ann", Ok(complete()));
        assert_eq!(d.stage(), Stage::ConfirmNumber);
        assert!(said(&a)[0].ends_with("Is 5 5 5, 1 2 3, 4 5 6 7 the best number to reach you?"));
        let a = d.on_turn(
            "no, use 555 987 6543",
            Ok(Extraction {
                callback_number: Some("+15559876543".into()),
                ..Default::default()
            }),
        );
        assert_eq!(d.stage(), Stage::ConfirmDetails);
        assert!(said(&a)[0].contains("reachable at 5 5 5, 9 8 7, 6 5 4 3"));
        assert!(
            matches!(&a[0], Action::SaveTask(e) if e.callback_number.as_deref() == Some("+15559876543"))
        );
    }

    #[test]
    fn declining_the_caller_id_without_a_number_asks_for_one() {
        let mut d = Dialogue::new("Acme", Some("+15551234567".into()));
        d.on_turn("…", Ok(complete()));
        let a = d.on_turn("no", Ok(Extraction::default()));
        assert_eq!(
            said(&a),
            vec!["Got it. What is the best number to reach you?"]
        );
        assert_eq!(d.stage(), Stage::Gathering);
    }

    #[test]
    fn a_no_at_confirmation_asks_what_to_change_and_confirms_again() {
        let mut d = Dialogue::new("Acme", None);
        let mut e = complete();
        e.callback_number = Some("+15550001111".into());
        d.on_turn("…", Ok(e));
        assert_eq!(d.stage(), Stage::ConfirmDetails);
        let a = d.on_turn("no", Ok(Extraction::default()));
        assert_eq!(said(&a), vec![prompts::ASK_CHANGE]);
        let a = d.on_turn(
            "it's 44 Oak Street",
            Ok(Extraction {
                location: Some("44 Oak Street".into()),
                ..Default::default()
            }),
        );
        assert_eq!(d.stage(), Stage::ConfirmDetails);
        assert!(said(&a)[0].contains("at 44 Oak Street"));
        // A yes before the reference is known waits for it, then reads it back.
        let a = d.on_turn("yes", Ok(Extraction::default()));
        assert_eq!(said(&a), vec![prompts::SAVING]);
        assert_eq!(d.stage(), Stage::AwaitReference);
        let a = d.on_task_saved("T-77");
        assert_eq!(
            said(&a),
            vec!["Your reference is T 7 7. Is there anything else I can help with?"]
        );
        let a = d.on_turn("no that's all", Ok(Extraction::default()));
        assert!(matches!(
            a.last(),
            Some(Action::Goodbye(EndReason::Completed, _))
        ));
    }

    #[test]
    fn an_engine_error_repeats_the_question_and_changes_nothing() {
        let mut d = Dialogue::new("Acme", None);
        d.on_turn("leak", Ok(extraction_need()));
        let a = d.on_turn("…", Err(ProviderError::retryable("llm", "timeout")));
        assert_eq!(
            said(&a),
            vec!["I'm sorry, I didn't catch that. What is the address where you need the service?"]
        );
        assert_eq!(d.known().category.as_deref(), Some("plumbing"));
    }

    #[test]
    fn escalation_saves_a_task_first_even_with_nothing_known() {
        let mut d = Dialogue::new("Acme", None);
        let a = d.escalate(EscalationReason::DtmfZero);
        assert!(matches!(a[0], Action::SaveTask(_)));
        assert!(matches!(
            a[1],
            Action::Escalate {
                reason: EscalationReason::DtmfZero,
                ..
            }
        ));
        assert!(d.escalated());
        // A later emergency does not escalate twice.
        let a = d.on_turn(
            "gas smell",
            Ok(Extraction {
                urgency: Some(Urgency::Emergency),
                ..Default::default()
            }),
        );
        assert!(!a.iter().any(|x| matches!(x, Action::Escalate { .. })));
    }

    fn extraction_need() -> Extraction {
        Extraction {
            category: Some("plumbing".into()),
            issue: Some("leak".into()),
            confidence: 0.9,
            ..Default::default()
        }
    }
}
