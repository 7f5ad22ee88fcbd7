//! Per-turn latency bookkeeping for one call: from the end of the caller's
//! speech to the STT final, the intent answer, the reply's first synthesized
//! audio and its first frame handed to the leg. Pure: the driver feeds it
//! what it sees with the instants it saw them.

use std::time::{Duration, Instant};

use crate::call::{Purpose, TurnId, UtteranceId};

/// One finished (or abandoned) turn's figures, durations from the end of speech.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct TurnFigures {
    pub turn: u64,
    pub speech_end: Instant,
    pub stt: Option<Duration>,
    pub intent: Option<Duration>,
    pub tts: Option<Duration>,
    pub first_frame: Option<Duration>,
}

#[derive(Debug, Clone)]
struct Open {
    turn: u64,
    speech_end: Instant,
    stt_final: Option<Instant>,
    intent: Option<Instant>,
    reply: Option<UtteranceId>,
    tts: Option<Instant>,
}

#[derive(Debug, Default)]
pub(super) struct LatencyTracker {
    /// The last frame the VAD called speech: where the caller stopped.
    last_voice: Option<Instant>,
    last_final: Option<Instant>,
    open: Option<Open>,
    done: Vec<TurnFigures>,
}

fn since(from: Instant, to: Option<Instant>) -> Option<Duration> {
    to.map(|t| t.saturating_duration_since(from))
}

impl LatencyTracker {
    /// The session's VAD decision for one caller frame.
    pub fn on_vad(&mut self, at: Instant, speech: bool) {
        if speech {
            self.last_voice = Some(at);
        }
    }

    pub fn on_stt_final(&mut self, at: Instant) {
        self.last_final = Some(at);
    }

    /// The core asked for extraction: a caller turn ended.
    pub fn on_turn_end(&mut self, turn: TurnId, at: Instant) {
        self.close_open();
        let speech_end = self.last_voice.filter(|t| *t <= at).unwrap_or(at);
        self.open = Some(Open {
            turn: turn.0,
            speech_end,
            stt_final: self.last_final,
            intent: None,
            reply: None,
            tts: None,
        });
    }

    pub fn on_extracted(&mut self, turn: TurnId, at: Instant) {
        if let Some(o) = self.open.as_mut().filter(|o| o.turn == turn.0) {
            o.intent.get_or_insert(at);
        }
    }

    /// The first utterance the core starts after the answer is the reply.
    pub fn on_say(&mut self, utterance: UtteranceId, purpose: Purpose) {
        if purpose == Purpose::Filler {
            return;
        }
        if let Some(o) = self.open.as_mut().filter(|o| o.intent.is_some()) {
            o.reply.get_or_insert(utterance);
        }
    }

    pub fn on_tts_frame(&mut self, utterance: UtteranceId, at: Instant) {
        if let Some(o) = self.open.as_mut().filter(|o| o.reply == Some(utterance)) {
            o.tts.get_or_insert(at);
        }
    }

    /// A frame of `utterance` was handed to the leg: the turn is complete.
    pub fn on_frame_sent(&mut self, utterance: UtteranceId, at: Instant) {
        let Some(o) = self.open.as_ref().filter(|o| o.reply == Some(utterance)) else {
            return;
        };
        let o = o.clone();
        self.open = None;
        self.done.push(TurnFigures {
            turn: o.turn,
            speech_end: o.speech_end,
            stt: since(o.speech_end, o.stt_final),
            intent: since(o.speech_end, o.intent),
            tts: since(o.speech_end, o.tts),
            first_frame: since(o.speech_end, Some(at)),
        });
    }

    /// Ends the open turn with what it has (a newer turn began, or the call ended).
    pub fn close_open(&mut self) {
        if let Some(o) = self.open.take() {
            self.done.push(TurnFigures {
                turn: o.turn,
                speech_end: o.speech_end,
                stt: since(o.speech_end, o.stt_final),
                intent: since(o.speech_end, o.intent),
                tts: since(o.speech_end, o.tts),
                first_frame: None,
            });
        }
    }

    /// Figures finished since the last call.
    pub fn take_done(&mut self) -> Vec<TurnFigures> {
        std::mem::take(&mut self.done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_turn_measures_each_stage_from_the_end_of_speech() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut l = LatencyTracker::default();
        l.on_vad(ms(0), true);
        l.on_vad(ms(1000), true);
        l.on_vad(ms(1020), false);
        l.on_stt_final(ms(1300));
        l.on_turn_end(TurnId(1), ms(1600));
        l.on_say(UtteranceId(4), Purpose::Filler);
        l.on_extracted(TurnId(1), ms(2100));
        l.on_say(UtteranceId(5), Purpose::Reply);
        l.on_tts_frame(UtteranceId(4), ms(2150));
        l.on_tts_frame(UtteranceId(5), ms(2400));
        l.on_frame_sent(UtteranceId(5), ms(2410));
        let done = l.take_done();
        assert_eq!(done.len(), 1);
        let f = &done[0];
        let d = |n| Some(Duration::from_millis(n));
        assert_eq!(
            (f.turn, f.stt, f.intent, f.tts, f.first_frame),
            (1, d(300), d(1100), d(1400), d(1410))
        );
        // A later frame of the same reply adds nothing.
        l.on_frame_sent(UtteranceId(5), ms(3000));
        assert!(l.take_done().is_empty());
    }

    #[test]
    fn an_unanswered_turn_is_kept_with_what_it_has() {
        let t0 = Instant::now();
        let mut l = LatencyTracker::default();
        l.on_turn_end(TurnId(1), t0);
        l.on_turn_end(TurnId(2), t0 + Duration::from_secs(1));
        l.close_open();
        let done = l.take_done();
        assert_eq!(done.iter().map(|f| f.turn).collect::<Vec<_>>(), [1, 2]);
        assert!(done.iter().all(|f| f.first_frame.is_none()));
    }
}
