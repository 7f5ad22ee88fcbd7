//! The session's per-frame speech decision for the call core
//! (`Input::CallerAudio { speech }`): an adaptive energy detector with a
//! short hangover, so single quiet frames inside a word do not split it.

use crate::audio::Frame;

/// Frames of hangover after the energy drops (60 ms).
const HANGOVER: u32 = 3;
/// Speech must be this many times louder than the noise floor…
const RATIO: f64 = 3.0;
/// …and above this absolute RMS (phone-line silence is not speech).
const MIN_RMS: f64 = 300.0;

pub(super) struct Detector {
    floor: f64,
    hang: u32,
}

impl Detector {
    pub(super) fn new() -> Detector {
        Detector {
            floor: 100.0,
            hang: 0,
        }
    }

    /// Whether this frame is caller speech.
    pub(super) fn push(&mut self, frame: &Frame) -> bool {
        let energy: f64 = frame.0.iter().map(|&s| (s as f64) * (s as f64)).sum();
        let rms = (energy / frame.0.len() as f64).sqrt();
        let loud = rms > MIN_RMS && rms > self.floor * RATIO;
        if loud {
            self.hang = HANGOVER;
            // The floor rises only slowly during speech.
            self.floor += (rms - self.floor) * 0.001;
            true
        } else {
            self.floor += (rms - self.floor) * 0.05;
            self.floor = self.floor.max(20.0);
            if self.hang > 0 {
                self.hang -= 1;
                true
            } else {
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(amp: f64) -> Frame {
        let mut f = Frame::SILENCE;
        for (i, s) in f.0.iter_mut().enumerate() {
            *s = (amp * (i as f64 * 0.3).sin()) as i16;
        }
        f
    }

    #[test]
    fn speech_is_detected_with_hangover_and_silence_is_not() {
        let mut d = Detector::new();
        for _ in 0..20 {
            assert!(!d.push(&Frame::SILENCE));
            assert!(!d.push(&tone(100.0)));
        }
        assert!(d.push(&tone(5000.0)));
        assert!(d.push(&Frame::SILENCE));
        assert!(d.push(&Frame::SILENCE));
        assert!(d.push(&Frame::SILENCE));
        assert!(!d.push(&Frame::SILENCE));
    }
}
