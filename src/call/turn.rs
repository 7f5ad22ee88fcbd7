//! The caller-turn detector: follows the session's per-frame VAD decisions and
//! the STT finals of one caller turn, and says when the turn is over. It knows
//! nothing of the agent; barge-in decisions are made by the call on top of the
//! speech runs this tracks.

use std::time::{Duration, Instant};

/// A gap in speech frames shorter than this does not end a speech run, so a
/// VAD that flickers between syllables does not split one utterance.
pub const RUN_GAP: Duration = Duration::from_millis(120);
/// When speech followed the last final (words not yet transcribed), the turn
/// waits this much longer than the silence rule for their final.
pub const UNTRANSCRIBED_GRACE: Duration = Duration::from_millis(2000);

/// One finished caller turn.
#[derive(Debug, Clone, PartialEq)]
pub struct CallerTurn {
    pub text: String,
    /// The lowest confidence of the finals that make up the turn.
    pub confidence: Option<f32>,
    pub start: Instant,
    pub end: Instant,
}

/// A change in the caller's speech seen on one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpeechChange {
    None,
    Started,
    /// The run ended; how long it lasted.
    Ended(Duration),
}

#[derive(Debug, Default)]
pub struct TurnTracker {
    /// Start of the current speech run, while the caller is speaking.
    run_start: Option<Instant>,
    /// The last frame judged speech.
    last_speech: Option<Instant>,
    /// Start of the latest speech run, kept after it ends.
    last_run_start: Option<Instant>,
    /// When the current turn's first speech or final came.
    turn_start: Option<Instant>,
    finals: Vec<String>,
    confidence: Option<f32>,
    last_final_at: Option<Instant>,
    /// Speech was heard that the recogniser has not reported on yet.
    untranscribed: bool,
}

impl TurnTracker {
    /// Feeds one frame's VAD decision.
    pub fn on_audio(&mut self, at: Instant, speech: bool) -> SpeechChange {
        if speech {
            let new_run = self.run_start.is_none();
            if new_run {
                self.run_start = Some(at);
                self.last_run_start = Some(at);
                self.untranscribed = true;
                self.turn_start.get_or_insert(at);
            }
            self.last_speech = Some(at);
            return if new_run {
                SpeechChange::Started
            } else {
                SpeechChange::None
            };
        }
        match (self.run_start, self.last_speech) {
            (Some(start), Some(last)) if at.saturating_duration_since(last) > RUN_GAP => {
                self.run_start = None;
                SpeechChange::Ended(last.saturating_duration_since(start))
            }
            _ => SpeechChange::None,
        }
    }

    pub fn speaking(&self) -> bool {
        self.run_start.is_some()
    }

    /// How long the current speech run has lasted at `at`.
    pub fn run_length(&self, at: Instant) -> Option<Duration> {
        self.run_start.map(|s| at.saturating_duration_since(s))
    }

    /// Adds a final transcript to the turn; blank text is ignored.
    pub fn on_final(&mut self, at: Instant, text: &str, confidence: f32) {
        let text = text.trim();
        if text.is_empty() {
            return;
        }
        self.finals.push(text.to_string());
        self.confidence = Some(self.confidence.map_or(confidence, |c| c.min(confidence)));
        self.last_final_at = Some(at);
        self.turn_start.get_or_insert(at);
        self.untranscribed = false;
    }

    /// The recogniser finished an utterance (with or without words).
    pub fn on_utterance_end(&mut self) {
        self.untranscribed = false;
    }

    /// Speech was heard and its words (if any) are still on the way.
    pub fn awaiting_words(&self) -> bool {
        self.untranscribed && !self.speaking()
    }

    /// The turn holds transcribed words that have not been handed on yet.
    pub fn has_text(&self) -> bool {
        !self.finals.is_empty()
    }

    /// The caller is in the middle of a turn: speaking or with words pending.
    pub fn busy(&self) -> bool {
        self.speaking() || self.has_text()
    }

    /// When silence will end the turn, if it can: `silence` after the last
    /// speech (or after the final, when the VAD heard nothing), longer when a
    /// speech run began after the last final and its words are still on the way.
    pub fn end_deadline(&self, silence: Duration) -> Option<Instant> {
        // Every speech frame moves `last_speech`, so while the caller talks the
        // deadline stays ahead of the clock.
        let final_at = self.last_final_at?;
        let untranscribed = self.last_run_start.is_some_and(|r| r > final_at);
        match self.last_speech {
            Some(last) if untranscribed => Some(last + silence + UNTRANSCRIBED_GRACE),
            Some(last) if self.turn_start.is_some_and(|s| s <= last) => Some(last + silence),
            _ => Some(final_at + silence),
        }
    }

    /// Hands the finished turn on and starts a new one.
    pub fn take(&mut self, at: Instant) -> Option<CallerTurn> {
        if self.finals.is_empty() {
            return None;
        }
        let turn = CallerTurn {
            text: self.finals.join(" "),
            confidence: self.confidence,
            start: self.turn_start.unwrap_or(at),
            end: self
                .last_speech
                .filter(|l| *l > self.turn_start.unwrap_or(at))
                .unwrap_or(at),
        };
        self.finals.clear();
        self.confidence = None;
        self.last_final_at = None;
        self.turn_start = self.run_start;
        Some(turn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SILENCE: Duration = Duration::from_millis(600);

    fn feed(t: &mut TurnTracker, from: Instant, ms: u64, speech: bool) -> Vec<SpeechChange> {
        (0..ms / 20)
            .map(|i| t.on_audio(from + Duration::from_millis(i * 20), speech))
            .filter(|c| *c != SpeechChange::None)
            .collect()
    }

    #[test]
    fn a_run_survives_short_gaps_and_ends_after_a_long_one() {
        let t0 = Instant::now();
        let mut t = TurnTracker::default();
        assert_eq!(feed(&mut t, t0, 400, true), vec![SpeechChange::Started]);
        assert!(feed(&mut t, t0 + Duration::from_millis(400), 100, false).is_empty());
        assert!(feed(&mut t, t0 + Duration::from_millis(500), 200, true).is_empty());
        let ended = feed(&mut t, t0 + Duration::from_millis(700), 300, false);
        assert_eq!(ended, vec![SpeechChange::Ended(Duration::from_millis(680))]);
        assert!(!t.speaking());
    }

    #[test]
    fn silence_after_speech_with_a_final_sets_the_deadline() {
        let t0 = Instant::now();
        let mut t = TurnTracker::default();
        feed(&mut t, t0, 1000, true);
        assert_eq!(t.end_deadline(SILENCE), None, "no final yet");
        t.on_final(t0 + Duration::from_millis(900), "my sink leaks", 0.9);
        let last = t0 + Duration::from_millis(980);
        assert_eq!(
            t.end_deadline(SILENCE),
            Some(last + SILENCE),
            "moves with speech"
        );
        feed(&mut t, t0 + Duration::from_millis(1000), 200, false);
        assert_eq!(t.end_deadline(SILENCE), Some(last + SILENCE));
        let turn = t.take(last + SILENCE).expect("a turn");
        assert_eq!(turn.text, "my sink leaks");
        assert_eq!(turn.start, t0);
        assert_eq!(turn.end, last);
        assert!(!t.has_text());
        assert_eq!(t.end_deadline(SILENCE), None);
    }

    #[test]
    fn speech_after_the_final_waits_for_its_words() {
        let t0 = Instant::now();
        let mut t = TurnTracker::default();
        t.on_final(t0, "hello", 0.8);
        feed(&mut t, t0 + Duration::from_millis(100), 500, true);
        feed(&mut t, t0 + Duration::from_millis(600), 200, false);
        let last = t0 + Duration::from_millis(580);
        assert_eq!(
            t.end_deadline(SILENCE),
            Some(last + SILENCE + UNTRANSCRIBED_GRACE)
        );
        t.on_final(t0 + Duration::from_millis(900), "there", 0.5);
        // Its words are in: silence counts from the end of the speech again.
        assert_eq!(t.end_deadline(SILENCE), Some(last + SILENCE));
        let turn = t.take(last + SILENCE).expect("a turn");
        assert_eq!(turn.text, "hello there");
        assert_eq!(turn.confidence, Some(0.5));
    }

    #[test]
    fn a_final_without_vad_speech_counts_from_its_arrival() {
        let t0 = Instant::now();
        let mut t = TurnTracker::default();
        t.on_final(t0, "  ", 0.9);
        assert!(!t.has_text());
        t.on_final(t0, "yes", 0.9);
        assert_eq!(t.end_deadline(SILENCE), Some(t0 + SILENCE));
    }
}
