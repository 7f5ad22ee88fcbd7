//! A small energy-based utterance segmenter for the offline STT adapter:
//! 20 ms frames in, "speech started" and "utterance ended (with its audio)"
//! out. It keeps a 300 ms pre-roll so the first syllable is not clipped and
//! ends an utterance after 500 ms below the threshold. It stands in until the
//! audio module's VAD segmenter is available, and has the same shape.

use std::collections::VecDeque;

use crate::audio::{Frame, FRAME_SAMPLES};

/// Frame RMS (PCM16 units) above which a frame counts as voiced (≈ −40 dBFS).
const VOICED_RMS: f64 = 330.0;
/// Consecutive voiced frames that start speech (60 ms).
const START_FRAMES: usize = 3;
/// Consecutive quiet frames that end an utterance (500 ms).
const END_FRAMES: usize = 25;
/// Frames kept before the start (300 ms).
const PRE_ROLL_FRAMES: usize = 15;
/// An utterance is cut after this many frames (25 s) to bound latency.
const MAX_FRAMES: usize = 1250;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegmentEvent {
    SpeechStarted,
    /// The utterance's PCM, pre-roll included, trailing silence trimmed to
    /// what the end detector waited for.
    Utterance(Vec<i16>),
}

#[derive(Debug)]
pub struct Segmenter {
    pre_roll: VecDeque<Frame>,
    utterance: Vec<i16>,
    in_speech: bool,
    voiced_run: usize,
    quiet_run: usize,
    frames: usize,
}

impl Default for Segmenter {
    fn default() -> Self {
        Self::new()
    }
}

impl Segmenter {
    pub fn new() -> Self {
        Segmenter {
            pre_roll: VecDeque::with_capacity(PRE_ROLL_FRAMES + 1),
            utterance: Vec::new(),
            in_speech: false,
            voiced_run: 0,
            quiet_run: 0,
            frames: 0,
        }
    }

    pub fn push(&mut self, frame: &Frame) -> Option<SegmentEvent> {
        let voiced = rms(frame) >= VOICED_RMS;
        if !self.in_speech {
            self.voiced_run = if voiced { self.voiced_run + 1 } else { 0 };
            self.pre_roll.push_back(frame.clone());
            if self.pre_roll.len() > PRE_ROLL_FRAMES + START_FRAMES {
                self.pre_roll.pop_front();
            }
            if self.voiced_run >= START_FRAMES {
                self.in_speech = true;
                self.quiet_run = 0;
                self.frames = self.pre_roll.len();
                for f in self.pre_roll.drain(..) {
                    self.utterance.extend_from_slice(&f.0);
                }
                return Some(SegmentEvent::SpeechStarted);
            }
            return None;
        }
        self.utterance.extend_from_slice(&frame.0);
        self.frames += 1;
        self.quiet_run = if voiced { 0 } else { self.quiet_run + 1 };
        if self.quiet_run >= END_FRAMES || self.frames >= MAX_FRAMES {
            return self.finish();
        }
        None
    }

    /// Ends any utterance in progress (the stream is closing).
    pub fn finish(&mut self) -> Option<SegmentEvent> {
        if !self.in_speech {
            return None;
        }
        self.in_speech = false;
        self.voiced_run = 0;
        // Keep 200 ms of the trailing silence; drop the rest of the wait.
        let keep_quiet = self.quiet_run.saturating_sub(10);
        let cut = self
            .utterance
            .len()
            .saturating_sub(keep_quiet * FRAME_SAMPLES);
        self.utterance.truncate(cut);
        Some(SegmentEvent::Utterance(std::mem::take(&mut self.utterance)))
    }
}

fn rms(frame: &Frame) -> f64 {
    let sum: f64 = frame.0.iter().map(|s| f64::from(*s) * f64::from(*s)).sum();
    (sum / FRAME_SAMPLES as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(amp: f64) -> Frame {
        let mut f = Frame::SILENCE;
        for (i, s) in f.0.iter_mut().enumerate() {
            *s = (amp * (i as f64 * 0.2).sin()) as i16;
        }
        f
    }

    #[test]
    fn speech_between_silences_is_one_utterance_with_pre_roll() {
        let mut seg = Segmenter::new();
        let mut events = Vec::new();
        let script = [(20, 0.0), (50, 3000.0), (40, 0.0)];
        for (n, amp) in script {
            for _ in 0..n {
                events.extend(seg.push(&tone(amp)));
            }
        }
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!(events[0], SegmentEvent::SpeechStarted);
        let SegmentEvent::Utterance(pcm) = &events[1] else {
            panic!("expected an utterance, got {:?}", events[1]);
        };
        // 15 pre-roll + 50 speech + 10 trailing frames kept (the 3 start frames are inside the 50).
        assert_eq!(pcm.len(), (15 + 50 + 10) * FRAME_SAMPLES);
        assert!(seg.finish().is_none());
    }

    #[test]
    fn clicks_and_quiet_noise_are_not_speech() {
        let mut seg = Segmenter::new();
        for i in 0..200 {
            let f = if i % 10 == 0 {
                tone(5000.0)
            } else {
                tone(100.0)
            };
            assert!(seg.push(&f).is_none(), "frame {i}");
        }
    }

    #[test]
    fn closing_mid_speech_flushes_the_utterance() {
        let mut seg = Segmenter::new();
        for _ in 0..10 {
            seg.push(&tone(3000.0));
        }
        assert!(
            matches!(seg.finish(), Some(SegmentEvent::Utterance(p)) if p.len() == 10 * FRAME_SAMPLES)
        );
    }
}
