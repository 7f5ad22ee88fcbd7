//! The session's per-frame speech decision for the call core
//! (`Input::CallerAudio { speech }`), from the shared `audio::vad` detector
//! tuned for turn-taking: a short hangover, because the core applies its own
//! end-of-turn silence on top, and a small onset so barge-in starts counting
//! at once.

use crate::audio::vad::{Vad, VadConfig};
use crate::audio::Frame;

pub(super) struct Detector {
    vad: Vad,
}

impl Detector {
    pub(super) fn new() -> Detector {
        Detector {
            vad: Vad::new(VadConfig {
                hangover_ms: 120,
                ..VadConfig::default()
            }),
        }
    }

    /// Whether this frame is caller speech.
    pub(super) fn push(&mut self, frame: &Frame) -> bool {
        self.vad.push(frame).speech
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::FRAME_SAMPLES;

    fn frames(path: &str) -> Vec<Frame> {
        let pcm = crate::audio::wav::read_wav_16k(std::path::Path::new(path)).expect("fixture");
        pcm.chunks(FRAME_SAMPLES)
            .map(|c| {
                let mut f = Frame::SILENCE;
                f.0[..c.len()].copy_from_slice(c);
                f
            })
            .collect()
    }

    #[test]
    fn speech_is_detected_and_silence_and_hiss_are_not() {
        let mut d = Detector::new();
        let quiet = frames("fixtures/audio/noise_white.wav");
        assert!(quiet.iter().all(|f| !d.push(f)), "line hiss is not speech");
        let speech = frames("fixtures/audio/speech_slt.wav");
        let voiced = speech.iter().filter(|f| d.push(f)).count();
        assert!(
            voiced * 2 > speech.len(),
            "{voiced} of {} frames",
            speech.len()
        );
        let after: Vec<bool> = frames("fixtures/audio/silence.wav")
            .iter()
            .map(|f| d.push(f))
            .collect();
        assert!(
            after.iter().skip(10).all(|s| !s),
            "speech ends within 200 ms of silence"
        );
    }
}
