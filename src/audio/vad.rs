//! Per-frame voice activity detection with onset, hangover and a pre-roll of
//! recent frames. Owns the speech/non-speech state machine over 20 ms frames;
//! what to do with an utterance (segmenting, barge-in) belongs to the callers.
//!
//! Frame scores come from the `earshot` crate's small neural detector (pure
//! Rust, 16 ms windows at 16 kHz). A 20 ms frame completes one or two of those
//! windows; the frame's score is the highest of them. Speech starts after
//! `onset_ms` of scores at or above `threshold` and ends after `hangover_ms`
//! of scores below `release_threshold`. After construction nothing allocates.

use earshot::Detector;

use super::{Frame, FRAME_MS};

/// Samples per earshot analysis window (16 ms at 16 kHz).
const WINDOW: usize = 256;
/// Upper bound on the pre-roll, so the ring stays small.
pub const MAX_PRE_ROLL_MS: u32 = 2000;

/// Tuning of [`Vad`].
#[derive(Debug, Clone, PartialEq)]
pub struct VadConfig {
    /// Score (0..1) at or above which a frame counts towards speech onset.
    pub threshold: f32,
    /// Score below which a frame counts towards the end of speech.
    pub release_threshold: f32,
    /// Consecutive speech time before speech is declared started.
    pub onset_ms: u32,
    /// Consecutive non-speech time before speech is declared ended.
    pub hangover_ms: u32,
    /// Audio kept from before the onset, returned by [`Vad::pre_roll`].
    pub pre_roll_ms: u32,
}

impl Default for VadConfig {
    fn default() -> Self {
        Self {
            threshold: 0.5,
            release_threshold: 0.35,
            onset_ms: 60,
            hangover_ms: 300,
            pre_roll_ms: 400,
        }
    }
}

/// What one frame did to the speech state.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct VadDecision {
    /// Speech is in progress (onset passed, hangover not expired).
    pub speech: bool,
    /// This frame completed the onset: speech began `onset_ms` ago.
    pub started: bool,
    /// This frame completed the hangover: speech stopped `hangover_ms` ago.
    pub ended: bool,
    /// The detector's score for this frame (0..1).
    pub score: f32,
}

/// Voice activity detector for one audio stream.
pub struct Vad {
    config: VadConfig,
    detector: Box<Detector>,
    /// Samples waiting for a full analysis window.
    carry: [i16; WINDOW],
    carry_len: usize,
    /// Score of the last full window, reused if a frame completes none.
    last_score: f32,
    onset_frames: u32,
    hangover_frames: u32,
    /// Ring of the most recent frames (pre-roll plus onset).
    ring: Box<[Frame]>,
    ring_next: usize,
    ring_len: usize,
    in_speech: bool,
    /// Consecutive frames at or above `threshold` while not in speech.
    speech_run: u32,
    /// Consecutive frames below `release_threshold` while in speech.
    silence_run: u32,
}

fn frames_for(ms: u32) -> u32 {
    ms.div_ceil(FRAME_MS as u32)
}

impl Vad {
    pub fn new(config: VadConfig) -> Self {
        let onset_frames = frames_for(config.onset_ms).max(1);
        let hangover_frames = frames_for(config.hangover_ms).max(1);
        let pre_roll = frames_for(config.pre_roll_ms.min(MAX_PRE_ROLL_MS));
        let ring = vec![Frame::SILENCE; (pre_roll + onset_frames) as usize].into_boxed_slice();
        Self {
            config,
            detector: Detector::default_boxed(),
            carry: [0; WINDOW],
            carry_len: 0,
            last_score: 0.0,
            onset_frames,
            hangover_frames,
            ring,
            ring_next: 0,
            ring_len: 0,
            in_speech: false,
            speech_run: 0,
            silence_run: 0,
        }
    }

    pub fn config(&self) -> &VadConfig {
        &self.config
    }

    /// Whether speech is in progress.
    pub fn is_speech(&self) -> bool {
        self.in_speech
    }

    /// Feeds one frame and returns the state after it.
    pub fn push(&mut self, frame: &Frame) -> VadDecision {
        let score = self.score(frame);
        self.remember(frame);
        self.decide(score)
    }

    /// Advances the onset/hangover state machine by one frame's score.
    fn decide(&mut self, score: f32) -> VadDecision {
        let mut decision = VadDecision {
            score,
            ..VadDecision::default()
        };
        if self.in_speech {
            self.silence_run = if score < self.config.release_threshold {
                self.silence_run + 1
            } else {
                0
            };
            if self.silence_run >= self.hangover_frames {
                self.in_speech = false;
                self.silence_run = 0;
                decision.ended = true;
            }
        } else {
            self.speech_run = if score >= self.config.threshold {
                self.speech_run + 1
            } else {
                0
            };
            if self.speech_run >= self.onset_frames {
                self.in_speech = true;
                self.speech_run = 0;
                decision.started = true;
            }
        }
        decision.speech = self.in_speech;
        decision
    }

    /// Frames kept before now, oldest first, ending with the last pushed
    /// frame. Right after `started` this is the onset plus up to
    /// `pre_roll_ms` of audio before it.
    pub fn pre_roll(&self) -> impl Iterator<Item = &Frame> {
        let cap = self.ring.len();
        let first = (self.ring_next + cap - self.ring_len) % cap.max(1);
        (0..self.ring_len).map(move |i| &self.ring[(first + i) % cap])
    }

    /// Forgets all audio and state, as at the start of a new stream.
    pub fn reset(&mut self) {
        self.detector.reset();
        self.carry_len = 0;
        self.last_score = 0.0;
        self.ring_next = 0;
        self.ring_len = 0;
        self.in_speech = false;
        self.speech_run = 0;
        self.silence_run = 0;
    }

    /// Runs the detector over every full window this frame completes.
    fn score(&mut self, frame: &Frame) -> f32 {
        let mut best: Option<f32> = None;
        let mut rest: &[i16] = &frame.0;
        while !rest.is_empty() {
            let take = (WINDOW - self.carry_len).min(rest.len());
            self.carry[self.carry_len..self.carry_len + take].copy_from_slice(&rest[..take]);
            self.carry_len += take;
            rest = &rest[take..];
            if self.carry_len == WINDOW {
                let s = self.detector.predict_i16(&self.carry);
                best = Some(best.map_or(s, |b: f32| b.max(s)));
                self.carry_len = 0;
            }
        }
        if let Some(s) = best {
            self.last_score = s;
        }
        self.last_score
    }

    fn remember(&mut self, frame: &Frame) {
        let cap = self.ring.len();
        self.ring[self.ring_next].0.copy_from_slice(&frame.0);
        self.ring_next = (self.ring_next + 1) % cap;
        self.ring_len = (self.ring_len + 1).min(cap);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::PI;

    fn frames_of(samples: &[i16]) -> Vec<Frame> {
        samples
            .chunks_exact(super::super::FRAME_SAMPLES)
            .map(|c| {
                let mut f = Frame::SILENCE;
                f.0.copy_from_slice(c);
                f
            })
            .collect()
    }

    /// A crude voiced sound: a 140 Hz pulse-like harmonic series with
    /// formant-ish emphasis, syllable-modulated at 4 Hz.
    fn synthetic_vowel(seconds: f64) -> Vec<i16> {
        let n = (seconds * 16_000.0) as usize;
        (0..n)
            .map(|i| {
                let t = i as f64 / 16_000.0;
                let env = 0.6 + 0.4 * (2.0 * PI * 4.0 * t).sin();
                let mut v = 0.0;
                for h in 1..25 {
                    let f = 140.0 * h as f64;
                    let formant = (-((f - 700.0) / 300.0).powi(2)).exp()
                        + 0.6 * (-((f - 1200.0) / 300.0).powi(2)).exp()
                        + 0.3 * (-((f - 2500.0) / 400.0).powi(2)).exp();
                    v += (0.05 + formant) * (2.0 * PI * f * t).sin() / h as f64;
                }
                (6000.0 * env * v) as i16
            })
            .collect()
    }

    #[test]
    fn digital_silence_is_never_speech() {
        let mut vad = Vad::new(VadConfig::default());
        for _ in 0..100 {
            let d = vad.push(&Frame::SILENCE);
            assert!(!d.speech && !d.started && !d.ended);
        }
    }

    #[test]
    fn decisions_follow_onset_and_hangover_counts() {
        let config = VadConfig {
            onset_ms: 60,
            hangover_ms: 200,
            ..VadConfig::default()
        };
        let mut vad = Vad::new(config);
        // Drive the state machine directly with scores, bypassing the detector.
        let mut decisions = Vec::new();
        for score in [0.9, 0.9, 0.1, 0.9, 0.9, 0.9, 0.2, 0.2, 0.5, 0.2] {
            decisions.push(vad.step_for_test(score));
        }
        for _ in 0..10 {
            decisions.push(vad.step_for_test(0.1));
        }
        let started: Vec<usize> = (0..decisions.len())
            .filter(|&i| decisions[i].started)
            .collect();
        let ended: Vec<usize> = (0..decisions.len())
            .filter(|&i| decisions[i].ended)
            .collect();
        // Interrupted run at index 2; three in a row complete at index 5.
        assert_eq!(started, vec![5]);
        // 0.5 at index 8 resets the hangover; ten 20 ms frames from 9 on.
        assert_eq!(ended, vec![9 + 9]);
        assert!(decisions[6..18].iter().all(|d| d.speech));
        assert!(!decisions[18].speech);
    }

    #[test]
    fn voiced_sound_starts_and_ends_speech_with_pre_roll() {
        let mut audio = vec![0i16; 16_000];
        audio.extend(synthetic_vowel(1.5));
        audio.extend(vec![0i16; 16_000]);
        let mut vad = Vad::new(VadConfig::default());
        let mut start = None;
        let mut end = None;
        for (i, f) in frames_of(&audio).iter().enumerate() {
            let d = vad.push(f);
            if d.started && start.is_none() {
                start = Some(i);
                // Pre-roll: onset frames plus 400 ms of silence before them.
                let kept: Vec<&Frame> = vad.pre_roll().collect();
                assert_eq!(kept.len(), 3 + 20);
                assert_eq!(kept.last().map(|f| f.0), Some(f.0));
                assert!(kept.iter().take(10).all(|f| **f == Frame::SILENCE));
            }
            if d.ended {
                end = Some(i);
            }
        }
        let start = start.expect("speech never started");
        let end = end.expect("speech never ended");
        // Speech is frames 50..125; onset within 200 ms, end within hangover + 200 ms.
        assert!((50..60).contains(&start), "start frame {start}");
        assert!((125..150).contains(&end), "end frame {end}");
    }

    #[test]
    fn reset_clears_state_and_pre_roll() {
        let mut vad = Vad::new(VadConfig::default());
        for f in frames_of(&synthetic_vowel(1.0)) {
            vad.push(&f);
        }
        assert!(vad.is_speech());
        vad.reset();
        assert!(!vad.is_speech());
        assert_eq!(vad.pre_roll().count(), 0);
        let d = vad.push(&Frame::SILENCE);
        assert!(!d.speech && !d.ended);
    }

    impl Vad {
        /// Runs the state machine on a given score, bypassing the detector.
        fn step_for_test(&mut self, score: f32) -> VadDecision {
            self.remember(&Frame::SILENCE);
            self.decide(score)
        }
    }
}
