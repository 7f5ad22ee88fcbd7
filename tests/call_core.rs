//! The call core in virtual time: a small driver plays the session's part
//! (playback marks at a speaking rate, scripted extraction with a delay, task
//! creation, transfer results) and walks a fake clock from deadline to
//! deadline. No sockets, no engines, no sleeping.

use std::time::{Duration, Instant};

use switchboard::call::{
    prompts, Call, CallConfig, EndReason, EscalationReason, Input, Output, Purpose, TurnId,
    UtteranceId,
};
use switchboard::domain::{Conversation, Extraction, Speaker, Urgency};
use switchboard::providers::{ProviderError, SttEvent};

type Extractor = Box<dyn FnMut(&Conversation) -> Result<Extraction, ProviderError>>;

/// Time from `Say` to the caller hearing its first sound (synthesis, buffering).
const PLAY_LATENCY: Duration = Duration::from_millis(100);
/// Playback time per character of text.
const PER_CHAR: Duration = Duration::from_millis(60);

struct Driver {
    call: Call,
    t0: Instant,
    now: Instant,
    /// Inputs the simulated session will deliver, with their time.
    scheduled: Vec<(Instant, Input)>,
    /// Every output with its offset in ms from the start.
    log: Vec<(u64, Output)>,
    auto_play: bool,
    extractor: Option<(Duration, Extractor)>,
    task_reference: Option<String>,
    task_created: bool,
    transfer_ok: Option<bool>,
}

impl Driver {
    fn new(config: CallConfig) -> Driver {
        let t0 = Instant::now();
        let mut d = Driver {
            call: Call::new(config, t0),
            t0,
            now: t0,
            scheduled: Vec::new(),
            log: Vec::new(),
            auto_play: true,
            extractor: None,
            task_reference: Some("T-1042".into()),
            task_created: false,
            transfer_ok: None,
        };
        d.drain();
        d
    }

    fn ms(&self) -> u64 {
        (self.now - self.t0).as_millis() as u64
    }

    /// Collects outputs until `Timeout`, reacting as a session would.
    fn drain(&mut self) -> Instant {
        loop {
            match self.call.poll_output() {
                Output::Timeout(at) => return at,
                out => {
                    self.react(&out);
                    self.log.push((self.ms(), out));
                }
            }
        }
    }

    fn react(&mut self, out: &Output) {
        match out {
            Output::Say {
                utterance,
                sentences,
                ..
            } if self.auto_play => {
                let mut at = self.now + PLAY_LATENCY;
                for (index, s) in sentences.iter().enumerate() {
                    at += PER_CHAR * s.chars().count() as u32;
                    let utterance = *utterance;
                    self.schedule(
                        at,
                        Input::SentencePlayed {
                            at,
                            utterance,
                            index,
                        },
                    );
                }
                let utterance = *utterance;
                self.schedule(at, Input::PlaybackFinished { at, utterance });
            }
            Output::StopSpeaking { utterance } => {
                let id = *utterance;
                self.scheduled.retain(|(_, i)| !playback_of(i, id));
            }
            Output::ExtractIntent { turn, conversation } => {
                if let Some((delay, f)) = self.extractor.as_mut() {
                    let result = f(conversation);
                    let at = self.now + *delay;
                    let turn = *turn;
                    self.schedule(at, Input::Extracted { at, turn, result });
                }
            }
            Output::SaveTask { .. } if !self.task_created => {
                self.task_created = true;
                if let Some(reference) = self.task_reference.clone() {
                    let at = self.now + Duration::from_millis(20);
                    self.schedule(at, Input::TaskSaved { at, reference });
                }
            }
            Output::Transfer => {
                if let Some(ok) = self.transfer_ok {
                    let at = self.now + Duration::from_millis(500);
                    self.schedule(at, Input::TransferResult { at, ok });
                }
            }
            _ => {}
        }
    }

    fn schedule(&mut self, at: Instant, input: Input) {
        let pos = self.scheduled.partition_point(|(t, _)| *t <= at);
        self.scheduled.insert(pos, (at, input));
    }

    /// Walks time to `target`, delivering scheduled inputs and waking the
    /// core at each of its deadlines on the way.
    fn run_until(&mut self, target: Instant) {
        loop {
            let deadline = self.drain();
            let next_input = self.scheduled.first().map(|(t, _)| *t);
            let next = next_input.map_or(deadline, |t| t.min(deadline));
            if next > target {
                break;
            }
            self.now = self.now.max(next);
            if next_input == Some(next) {
                let (_, input) = self.scheduled.remove(0);
                self.call.handle_input(input);
            } else {
                self.call.handle_input(Input::Timeout { at: self.now });
            }
        }
        self.now = target;
        self.call.handle_input(Input::Timeout { at: target });
        self.drain();
    }

    /// Walks to `ms` after the start of the call.
    fn until_ms(&mut self, ms: u64) {
        self.run_until(self.t0 + Duration::from_millis(ms));
    }

    fn wait(&mut self, ms: u64) {
        self.run_until(self.now + Duration::from_millis(ms));
    }

    /// `ms` of caller frames, every one speech or every one silence.
    fn frames(&mut self, ms: u64, speech: bool) {
        for _ in 0..ms / 20 {
            let at = self.now + Duration::from_millis(20);
            self.run_until(at);
            self.call.handle_input(Input::CallerAudio { at, speech });
            self.drain();
        }
    }

    fn input(&mut self, make: impl FnOnce(Instant) -> Input) {
        self.call.handle_input(make(self.now));
        self.drain();
    }

    fn stt(&mut self, event: SttEvent) {
        self.input(|at| Input::Stt { at, event });
    }

    fn final_text(&mut self, text: &str, end_of_turn: bool) {
        self.stt(SttEvent::Final {
            text: text.into(),
            confidence: 0.9,
            end_of_turn,
        });
    }

    /// A whole caller turn: speech, its final, then silence until the turn ends.
    fn caller_turn(&mut self, text: &str) {
        self.frames(40 * text.len() as u64 + 200, true);
        self.final_text(text, false);
        self.frames(700, false);
    }

    /// Waits until the agent has nothing left to play (bounded).
    fn until_quiet(&mut self) {
        for _ in 0..200 {
            if !self
                .scheduled
                .iter()
                .any(|(_, i)| matches!(i, Input::PlaybackFinished { .. }))
            {
                return;
            }
            self.wait(100);
        }
        panic!("playback never finished");
    }

    fn says(&self) -> Vec<(u64, Purpose, String)> {
        self.log
            .iter()
            .filter_map(|(ms, o)| match o {
                Output::Say {
                    sentences, purpose, ..
                } => Some((*ms, *purpose, sentences.join(" "))),
                _ => None,
            })
            .collect()
    }

    fn events(&self, kind: &str) -> Vec<(u64, serde_json::Value)> {
        self.log
            .iter()
            .filter_map(|(ms, o)| match o {
                Output::Event { kind: k, detail } if *k == kind => Some((*ms, detail.clone())),
                _ => None,
            })
            .collect()
    }

    fn find<T>(&self, f: impl Fn(&Output) -> Option<T>) -> Vec<(u64, T)> {
        self.log
            .iter()
            .filter_map(|(ms, o)| f(o).map(|t| (*ms, t)))
            .collect()
    }

    fn extract_requests(&self) -> Vec<(u64, TurnId, Conversation)> {
        self.log
            .iter()
            .filter_map(|(ms, o)| match o {
                Output::ExtractIntent { turn, conversation } => {
                    Some((*ms, *turn, conversation.clone()))
                }
                _ => None,
            })
            .collect()
    }

    fn hangups(&self) -> Vec<(u64, EndReason)> {
        self.find(|o| match o {
            Output::Hangup { reason } => Some(*reason),
            _ => None,
        })
    }

    fn current_say(&self) -> Option<UtteranceId> {
        self.log.iter().rev().find_map(|(_, o)| match o {
            Output::Say { utterance, .. } => Some(*utterance),
            _ => None,
        })
    }
}

/// How long the driver takes to play `text` once it has started.
fn play_ms(text: &str) -> u64 {
    let chars: usize = prompts::sentences(text)
        .iter()
        .map(|s| s.chars().count())
        .sum();
    PLAY_LATENCY.as_millis() as u64 + PER_CHAR.as_millis() as u64 * chars as u64
}

/// When the last agent line ended (its transcript's end offset).
fn last_agent_end(d: &Driver) -> u64 {
    d.find(|o| match o {
        Output::Transcript {
            speaker: Speaker::Agent,
            end_ms,
            ..
        } => Some(*end_ms),
        _ => None,
    })
    .last()
    .map_or(0, |x| x.1)
}

fn playback_of(input: &Input, id: UtteranceId) -> bool {
    matches!(input,
        Input::SentencePlayed { utterance, .. } | Input::PlaybackFinished { utterance, .. }
        if *utterance == id)
}

fn config() -> CallConfig {
    let mut c = CallConfig::new(
        "Acme Plumbing",
        "Thanks for calling {business}. How can I help you today?",
    );
    c.caller_number = Some("+15551234567".into());
    c
}

fn extraction(category: &str, issue: &str, confidence: f32) -> Extraction {
    Extraction {
        category: Some(category.into()),
        issue: Some(issue.into()),
        confidence,
        ..Default::default()
    }
}

fn fixed(delay_ms: u64, e: Extraction) -> Option<(Duration, Extractor)> {
    let f: Extractor = Box::new(move |_: &Conversation| Ok(e.clone()));
    Some((Duration::from_millis(delay_ms), f))
}

/// A driver whose greeting has finished playing.
fn after_greeting(config: CallConfig) -> Driver {
    let mut d = Driver::new(config);
    d.until_quiet();
    d
}

#[path = "call_core/timing.rs"]
mod timing;

#[path = "call_core/policy.rs"]
mod policy;
