//! Per-frame voice activity detection with onset, hangover and a pre-roll of
//! recent frames. Owns the speech/non-speech state machine over 20 ms frames;
//! what to do with an utterance (segmenting, barge-in) belongs to the callers.
//!
//! Two measures decide each 20 ms frame. A score from the `earshot` crate's
//! small neural detector (pure Rust, 16 ms windows at 16 kHz; a frame
//! completes one or two windows and keeps the higher score) says whether the
//! sound is voice-like. The frame's level above an adaptive noise floor (the
//! quietest recent frame, plus 3 dB for the bias of a minimum) says whether it
//! stands out of the line noise: the detector alone decays slowly after speech
//! and scores some coloured noise near its threshold.
//!
//! Speech starts after `onset_ms` of frames that are both voice-like
//! (`threshold`) and `onset_snr_db` above the floor, and ends after
//! `hangover_ms` of frames that are either below `release_threshold` or less
//! than `hold_snr_db` above the floor; a single loud frame pauses that count
//! and two reset it. Frames the detector is very sure of (`strong_threshold`)
//! need less level, so speech in loud noise is still found. After construction nothing allocates.

use earshot::Detector;

use super::{Frame, FRAME_MS};

/// Samples per earshot analysis window (16 ms at 16 kHz).
const WINDOW: usize = 256;
/// Upper bound on the pre-roll, so the ring stays small.
pub const MAX_PRE_ROLL_MS: u32 = 2000;
/// Upper bound on the onset, for the same reason.
pub const MAX_ONSET_MS: u32 = 1000;
/// Frames over which the noise floor is the minimum level (3 s).
const NOISE_WINDOW: usize = 150;
/// Added to the windowed minimum: the minimum of a fluctuating level sits
/// below its mean.
const MIN_BIAS_DB: f32 = 3.0;
/// Ceiling of the noise floor, so speech at the very start of a stream (no
/// quiet frame seen yet) still stands above it.
const FLOOR_CEILING_DB: f32 = -30.0;
/// Level given to digital silence.
const SILENCE_DB: f32 = -96.0;

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
    /// Level above the noise floor a frame needs to count towards onset.
    pub onset_snr_db: f32,
    /// Level above the noise floor that keeps speech going.
    pub hold_snr_db: f32,
    /// Score at which the detector is trusted with less level: in loud noise
    /// speech stands only a few dB above the floor.
    pub strong_threshold: f32,
    /// Onset level for frames scoring at least `strong_threshold`.
    pub strong_onset_snr_db: f32,
    /// Hold level for frames scoring at least `strong_threshold`.
    pub strong_hold_snr_db: f32,
}

impl Default for VadConfig {
    fn default() -> Self {
        Self {
            threshold: 0.5,
            release_threshold: 0.35,
            onset_ms: 60,
            hangover_ms: 300,
            pre_roll_ms: 500,
            onset_snr_db: 9.0,
            hold_snr_db: 7.0,
            strong_threshold: 0.8,
            strong_onset_snr_db: 5.0,
            strong_hold_snr_db: 4.0,
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
    /// The frame's level above the noise floor, in dB.
    pub snr_db: f32,
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
    /// Quiet frames since speech was last confirmed, while in speech.
    silence_run: u32,
    /// Consecutive non-quiet frames while in speech.
    active_run: u32,
    /// Recent frame levels (dBFS), a ring for the noise floor.
    levels: [f32; NOISE_WINDOW],
    levels_next: usize,
    levels_len: usize,
}

fn frames_for(ms: u32) -> u32 {
    ms.div_ceil(FRAME_MS as u32)
}

impl Vad {
    pub fn new(config: VadConfig) -> Self {
        let onset_frames = frames_for(config.onset_ms.min(MAX_ONSET_MS)).max(1);
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
            active_run: 0,
            levels: [0.0; NOISE_WINDOW],
            levels_next: 0,
            levels_len: 0,
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
        let snr_db = self.snr_db(frame);
        self.remember(frame);
        self.decide(score, snr_db)
    }

    /// Advances the onset/hangover state machine by one frame's measures.
    fn decide(&mut self, score: f32, snr_db: f32) -> VadDecision {
        let mut decision = VadDecision {
            score,
            snr_db,
            ..VadDecision::default()
        };
        let c = &self.config;
        if self.in_speech {
            let strong = score >= c.strong_threshold && snr_db >= c.strong_hold_snr_db;
            let held = score >= c.release_threshold && snr_db >= c.hold_snr_db;
            let quiet = !(strong || held);
            if quiet {
                self.active_run = 0;
                self.silence_run += 1;
            } else {
                // A lone loud frame (a noise burst) only pauses the count; two
                // in a row are speech again.
                self.active_run += 1;
                if self.active_run >= 2 {
                    self.silence_run = 0;
                }
            }
            if self.silence_run >= self.hangover_frames {
                self.in_speech = false;
                self.silence_run = 0;
                decision.ended = true;
            }
        } else {
            let voiced = (score >= c.threshold && snr_db >= c.onset_snr_db)
                || (score >= c.strong_threshold && snr_db >= c.strong_onset_snr_db);
            self.speech_run = if voiced { self.speech_run + 1 } else { 0 };
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
        self.active_run = 0;
        self.levels_next = 0;
        self.levels_len = 0;
    }

    /// The frame's level above the noise floor; updates the floor's window.
    fn snr_db(&mut self, frame: &Frame) -> f32 {
        let power = frame
            .0
            .iter()
            .map(|&s| (s as f32) * (s as f32))
            .sum::<f32>()
            / frame.0.len() as f32;
        let level = if power > 0.0 {
            (10.0 * (power / (32768.0 * 32768.0)).log10()).max(SILENCE_DB)
        } else {
            SILENCE_DB
        };
        self.levels[self.levels_next] = level;
        self.levels_next = (self.levels_next + 1) % NOISE_WINDOW;
        self.levels_len = (self.levels_len + 1).min(NOISE_WINDOW);
        let quietest = self.levels[..self.levels_len]
            .iter()
            .fold(f32::INFINITY, |m, &l| m.min(l));
        let floor = (quietest + MIN_BIAS_DB).min(FLOOR_CEILING_DB);
        level - floor
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
    use crate::audio::FRAME_SAMPLES;
    use std::f64::consts::PI;

    fn frames_of(samples: &[i16]) -> Vec<Frame> {
        samples
            .chunks_exact(FRAME_SAMPLES)
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
        let scores = [
            0.9, 0.9, 0.1, 0.9, 0.9, 0.9, 0.2, 0.2, 0.5, 0.5, 0.2, 0.5, 0.2,
        ];
        for score in scores {
            decisions.push(vad.step_for_test(score, 20.0));
        }
        for _ in 0..10 {
            decisions.push(vad.step_for_test(0.1, 20.0));
        }
        let started: Vec<usize> = (0..decisions.len())
            .filter(|&i| decisions[i].started)
            .collect();
        let ended: Vec<usize> = (0..decisions.len())
            .filter(|&i| decisions[i].ended)
            .collect();
        // Interrupted run at index 2; three in a row complete at index 5.
        assert_eq!(started, vec![5]);
        // Two 0.5s (8, 9) reset the hangover; quiet from 10 except the lone
        // 0.5 at 11, which is not counted: the tenth quiet frame is at 20.
        assert_eq!(ended, vec![20]);
        assert!(decisions[6..20].iter().all(|d| d.speech));
        assert!(!decisions[20].speech);
    }

    #[test]
    fn level_above_the_noise_floor_gates_onset_and_holds_speech() {
        let mut vad = Vad::new(VadConfig::default());
        // Voice-like but within 9 dB of the floor: no onset.
        for _ in 0..10 {
            assert!(!vad.step_for_test(0.7, 8.0).speech);
        }
        // Very voice-like frames need only 5 dB.
        for _ in 0..3 {
            assert!(!vad.step_for_test(0.9, 4.5).speech);
        }
        for _ in 0..3 {
            vad.step_for_test(0.9, 5.5);
        }
        assert!(vad.is_speech());
        // Still voice-like by score but sunk into the noise: ends after 300 ms.
        let ends: Vec<bool> = (0..15).map(|_| vad.step_for_test(0.9, 3.0).ended).collect();
        assert_eq!(ends.iter().position(|&e| e), Some(14));
    }

    #[test]
    fn noise_floor_follows_the_quietest_recent_frames() {
        let mut vad = Vad::new(VadConfig::default());
        let quiet = Frame([100; FRAME_SAMPLES]); // -50.3 dBFS
        let loud = Frame([3000; FRAME_SAMPLES]); // -20.8 dBFS
        for _ in 0..50 {
            vad.snr_db(&quiet);
        }
        let snr = vad.snr_db(&loud);
        assert!((snr - (29.5 - MIN_BIAS_DB)).abs() < 0.1, "snr {snr}");
        // After 3 s of loud frames only, the quiet ones have left the window
        // and the floor is capped.
        for _ in 0..NOISE_WINDOW {
            vad.snr_db(&loud);
        }
        let snr = vad.snr_db(&loud);
        assert!((snr - (-20.8 - FLOOR_CEILING_DB)).abs() < 0.1, "snr {snr}");
        // Digital silence lies below any floor it enters.
        assert!(vad.snr_db(&Frame::SILENCE) < 0.0);
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
                // Pre-roll: onset frames plus 500 ms of silence before them.
                let kept: Vec<&Frame> = vad.pre_roll().collect();
                assert_eq!(kept.len(), 3 + 25);
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
        fn step_for_test(&mut self, score: f32, snr_db: f32) -> VadDecision {
            self.remember(&Frame::SILENCE);
            self.decide(score, snr_db)
        }
    }
}
