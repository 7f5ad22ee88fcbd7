//! Utterance segmentation for batch speech recognition. Owns turning a stream
//! of 20 ms frames into whole utterances (16 kHz PCM16, pre-roll included),
//! using [`Vad`] for the decisions. Recognition itself belongs to providers.
//!
//! An utterance starts at the VAD onset (with its pre-roll, so the first
//! syllable is kept) and ends after `end_silence_ms` without speech, or is cut
//! at `max_utterance_ms`, after which the next part starts at once.

use super::vad::{Vad, VadConfig, VadDecision};
use super::{Frame, FRAME_MS, FRAME_SAMPLES};

/// Upper bound on `max_utterance_ms` (the utterance buffer is reserved whole).
pub const MAX_UTTERANCE_MS: u32 = 120_000;

/// Tuning of [`Segmenter`].
#[derive(Debug, Clone, PartialEq)]
pub struct SegmenterConfig {
    /// Detector tuning; its `hangover_ms` is replaced by `end_silence_ms`.
    pub vad: VadConfig,
    /// Silence that ends an utterance.
    pub end_silence_ms: u32,
    /// Longest utterance returned; longer speech is cut into parts.
    pub max_utterance_ms: u32,
    /// Trailing silence kept at the end of an utterance.
    pub keep_tail_ms: u32,
}

impl Default for SegmenterConfig {
    fn default() -> Self {
        Self {
            vad: VadConfig::default(),
            end_silence_ms: 600,
            max_utterance_ms: 15_000,
            keep_tail_ms: 200,
        }
    }
}

/// Splits a frame stream into utterances.
pub struct Segmenter {
    vad: Vad,
    max_samples: usize,
    drop_tail_samples: usize,
    current: Vec<i16>,
    active: bool,
    last: VadDecision,
}

impl Segmenter {
    pub fn new(config: SegmenterConfig) -> Self {
        let vad = Vad::new(VadConfig {
            hangover_ms: config.end_silence_ms,
            ..config.vad
        });
        let per_ms = FRAME_SAMPLES / FRAME_MS as usize;
        let max_ms = config
            .max_utterance_ms
            .clamp(FRAME_MS as u32, MAX_UTTERANCE_MS) as usize;
        let tail = config.end_silence_ms.saturating_sub(config.keep_tail_ms) as usize;
        Self {
            vad,
            max_samples: max_ms * per_ms,
            drop_tail_samples: tail * per_ms,
            current: Vec::new(),
            active: false,
            last: VadDecision::default(),
        }
    }

    /// The detector's decision for the last frame pushed (for callers that
    /// also want live speech start/stop events).
    pub fn last_decision(&self) -> VadDecision {
        self.last
    }

    /// Whether an utterance is being collected.
    pub fn in_utterance(&self) -> bool {
        self.active
    }

    /// Feeds one frame; returns an utterance when one has just finished.
    pub fn push(&mut self, frame: &Frame) -> Option<Vec<i16>> {
        let d = self.vad.push(frame);
        self.last = d;
        if d.started {
            self.begin();
            // The ring ends with this frame, so it is already included.
            for f in self.vad.pre_roll() {
                self.current.extend_from_slice(&f.0);
            }
            self.active = true;
        } else if self.active {
            self.current.extend_from_slice(&frame.0);
        }
        if !self.active {
            return None;
        }
        if d.ended {
            self.active = false;
            let keep = self.current.len().saturating_sub(self.drop_tail_samples);
            self.current.truncate(keep);
            return Some(std::mem::take(&mut self.current));
        }
        if self.current.len() >= self.max_samples {
            // Too long: hand over what we have and keep collecting.
            let part = std::mem::take(&mut self.current);
            self.begin();
            return Some(part);
        }
        None
    }

    /// Ends the stream: returns the utterance in progress, if any.
    pub fn flush(&mut self) -> Option<Vec<i16>> {
        let was_active = self.active;
        self.active = false;
        self.vad.reset();
        let part = std::mem::take(&mut self.current);
        (was_active && !part.is_empty()).then_some(part)
    }

    /// Drops any utterance in progress and all detector state.
    pub fn reset(&mut self) {
        self.vad.reset();
        self.current.clear();
        self.active = false;
        self.last = VadDecision::default();
    }

    fn begin(&mut self) {
        // One allocation per utterance, sized so pushing never reallocates.
        self.current = Vec::with_capacity(self.max_samples + FRAME_SAMPLES);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::wav::read_wav_16k;
    use std::path::PathBuf;

    fn fixture_frames(name: &str) -> Vec<Frame> {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/audio")
            .join(name);
        let samples = read_wav_16k(&path).unwrap();
        samples
            .chunks_exact(FRAME_SAMPLES)
            .map(|c| {
                let mut f = Frame::SILENCE;
                f.0.copy_from_slice(c);
                f
            })
            .collect()
    }

    fn segment(frames: &[Frame], config: SegmenterConfig) -> Vec<(usize, Vec<i16>)> {
        let mut seg = Segmenter::new(config);
        let mut out = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            if let Some(u) = seg.push(f) {
                out.push((i, u));
            }
        }
        if let Some(u) = seg.flush() {
            out.push((frames.len(), u));
        }
        out
    }

    #[test]
    fn four_sentences_give_four_utterances_with_pre_roll() {
        let frames = fixture_frames("speech_slt.wav");
        let utterances = segment(&frames, SegmenterConfig::default());
        assert_eq!(utterances.len(), 4, "one per sentence");
        for (_, u) in &utterances {
            // Pre-roll (≥ 300 ms) starts every utterance with near-silence.
            let head = &u[..300 * 16];
            let peak = head.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
            assert!(peak < 3000, "utterance starts mid-speech (peak {peak})");
            assert!(u.len() > 16_000 * 2, "sentences are over 2 s");
        }
    }

    #[test]
    fn max_length_cuts_long_speech_into_parts() {
        let frames = fixture_frames("speech_slt.wav");
        let config = SegmenterConfig {
            max_utterance_ms: 1000,
            ..SegmenterConfig::default()
        };
        let parts = segment(&frames, config);
        assert!(parts.len() >= 12, "only {} parts", parts.len());
        assert!(parts.iter().all(|(_, u)| u.len() <= 16_000 + FRAME_SAMPLES));
    }

    #[test]
    fn silence_and_noise_give_no_utterance() {
        for name in ["silence.wav", "noise_white.wav", "noise_pink.wav"] {
            let utterances = segment(&fixture_frames(name), SegmenterConfig::default());
            assert!(
                utterances.is_empty(),
                "{name}: {} utterances",
                utterances.len()
            );
        }
    }

    #[test]
    fn extreme_configs_are_bounded() {
        let config = SegmenterConfig {
            vad: VadConfig {
                onset_ms: u32::MAX,
                pre_roll_ms: u32::MAX,
                ..VadConfig::default()
            },
            end_silence_ms: u32::MAX,
            max_utterance_ms: u32::MAX,
            keep_tail_ms: u32::MAX,
        };
        let mut seg = Segmenter::new(config);
        assert_eq!(seg.push(&Frame::SILENCE), None);
        let tiny = SegmenterConfig {
            max_utterance_ms: 0,
            ..SegmenterConfig::default()
        };
        assert_eq!(Segmenter::new(tiny).max_samples, FRAME_SAMPLES);
    }

    #[test]
    fn flush_returns_speech_cut_off_by_end_of_stream() {
        let frames = fixture_frames("speech_slt.wav");
        // Stop half-way into the first sentence (it runs 1.0 s to 4.4 s).
        let utterances = segment(&frames[..125], SegmenterConfig::default());
        assert_eq!(utterances.len(), 1);
        assert_eq!(utterances[0].0, 125);
        let mut seg = Segmenter::new(SegmenterConfig::default());
        assert_eq!(seg.flush(), None);
    }
}
