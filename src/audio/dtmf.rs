//! In-band DTMF detection for calls whose carrier does not send RFC 4733
//! events. Owns the per-frame Goertzel analysis and the key-down logic; what a
//! digit means belongs to the call core.
//!
//! Each 20 ms frame is tested at the eight DTMF frequencies. A frame holds a
//! digit when one row and one column tone stand well above the other tones of
//! their group, their level difference (twist) is within limits, and together
//! they carry most of the frame's energy (which rejects speech and music). A
//! digit is reported once, after two consecutive frames (40 ms) agree, and
//! again only after a frame without it.

use super::{Frame, FRAME_SAMPLES, SAMPLE_RATE};

const ROWS: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
const COLS: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const KEYS: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];
/// Smallest tone power accepted (a tone of about −50 dBFS).
const MIN_TONE_POWER: f32 = 5.0e3;
/// The strongest tone of a group must beat the others by this power ratio.
const GROUP_DOMINANCE: f32 = 6.3; // 8 dB
/// Allowed level difference between the row and column tone.
const MAX_TWIST: f32 = 6.3; // 8 dB either way
/// Share of the frame's energy that the two tones must carry.
const MIN_TONE_SHARE: f32 = 0.6;

/// Detects DTMF key presses in a stream of 16 kHz frames.
#[derive(Debug, Clone)]
pub struct DtmfDetector {
    row_coeffs: [f32; 4],
    col_coeffs: [f32; 4],
    /// Digit seen in the previous frame.
    previous: Option<char>,
    /// Digit already reported and still held.
    reported: Option<char>,
}

impl Default for DtmfDetector {
    fn default() -> Self {
        Self::new()
    }
}

fn goertzel_coeff(freq: f32) -> f32 {
    2.0 * (2.0 * std::f32::consts::PI * freq / SAMPLE_RATE as f32).cos()
}

/// Power at the frequency whose coefficient is `coeff`, scaled to the mean
/// square of a sinusoid of that amplitude (so it compares with frame energy).
fn goertzel_power(samples: &[f32], coeff: f32) -> f32 {
    let (mut s1, mut s2) = (0.0f32, 0.0f32);
    for &x in samples {
        let s0 = x + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let n = samples.len() as f32;
    2.0 * (s1 * s1 + s2 * s2 - coeff * s1 * s2) / (n * n)
}

/// Index of the strongest of four powers if it dominates the others.
fn dominant(powers: &[f32; 4]) -> Option<usize> {
    let (best, &p) = powers
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))?;
    let others_ok = powers
        .iter()
        .enumerate()
        .all(|(i, &q)| i == best || q * GROUP_DOMINANCE < p);
    (p >= MIN_TONE_POWER && others_ok).then_some(best)
}

impl DtmfDetector {
    pub fn new() -> Self {
        Self {
            row_coeffs: ROWS.map(goertzel_coeff),
            col_coeffs: COLS.map(goertzel_coeff),
            previous: None,
            reported: None,
        }
    }

    /// Feeds one frame; returns a digit on the frame its key-down is confirmed.
    pub fn push(&mut self, frame: &Frame) -> Option<char> {
        let now = self.classify(frame);
        let confirmed = now.is_some() && now == self.previous;
        self.previous = now;
        if now.is_none() {
            self.reported = None;
            return None;
        }
        if confirmed && self.reported != now {
            self.reported = now;
            return now;
        }
        None
    }

    /// Forgets any digit in progress.
    pub fn reset(&mut self) {
        self.previous = None;
        self.reported = None;
    }

    /// The digit present in this single frame, if any.
    fn classify(&self, frame: &Frame) -> Option<char> {
        let mut x = [0f32; FRAME_SAMPLES];
        for (d, s) in x.iter_mut().zip(frame.0.iter()) {
            *d = *s as f32;
        }
        let energy = x.iter().map(|v| v * v).sum::<f32>() / FRAME_SAMPLES as f32;
        let rows = self.row_coeffs.map(|c| goertzel_power(&x, c));
        let cols = self.col_coeffs.map(|c| goertzel_power(&x, c));
        let r = dominant(&rows)?;
        let c = dominant(&cols)?;
        let (pr, pc) = (rows[r], cols[c]);
        if pr > pc * MAX_TWIST || pc > pr * MAX_TWIST {
            return None;
        }
        if pr + pc < MIN_TONE_SHARE * energy {
            return None;
        }
        Some(KEYS[r][c])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::wav::read_wav_16k;
    use std::f32::consts::PI;

    fn frames(samples: &[i16]) -> Vec<Frame> {
        samples
            .chunks_exact(FRAME_SAMPLES)
            .map(|c| {
                let mut f = Frame::SILENCE;
                f.0.copy_from_slice(c);
                f
            })
            .collect()
    }

    fn tones(f1: f32, a1: f32, f2: f32, a2: f32, ms: usize) -> Vec<i16> {
        let n = ms * 16;
        (0..n)
            .map(|i| {
                let t = i as f32 / 16_000.0;
                (a1 * (2.0 * PI * f1 * t).sin() + a2 * (2.0 * PI * f2 * t).sin()) as i16
            })
            .collect()
    }

    fn key(digit: char) -> Vec<i16> {
        for (r, row) in KEYS.iter().enumerate() {
            if let Some(c) = row.iter().position(|&k| k == digit) {
                return tones(ROWS[r], 6000.0, COLS[c], 6000.0, 100);
            }
        }
        panic!("not a DTMF key: {digit}");
    }

    fn detect_all(samples: &[i16]) -> String {
        let mut det = DtmfDetector::new();
        frames(samples).iter().filter_map(|f| det.push(f)).collect()
    }

    #[test]
    fn detects_every_key_once_per_press() {
        let sequence = "123A456B789C*0#D00";
        let mut audio = Vec::new();
        for d in sequence.chars() {
            audio.extend(key(d));
            audio.extend(vec![0i16; 16 * 60]);
        }
        assert_eq!(detect_all(&audio), sequence);
    }

    #[test]
    fn a_20ms_burst_is_too_short() {
        let mut audio = vec![0i16; 320];
        audio.extend(tones(770.0, 6000.0, 1336.0, 6000.0, 20));
        audio.extend(vec![0i16; 640]);
        assert_eq!(detect_all(&audio), "");
    }

    #[test]
    fn single_tones_and_excess_twist_are_rejected() {
        assert_eq!(detect_all(&tones(770.0, 8000.0, 0.0, 0.0, 200)), "");
        assert_eq!(detect_all(&tones(770.0, 8000.0, 1336.0, 1000.0, 200)), "");
        // 6 dB of twist is fine.
        assert_eq!(detect_all(&tones(770.0, 8000.0, 1336.0, 4000.0, 200)), "5");
    }

    #[test]
    fn survives_the_telephone_chain() {
        use crate::audio::g711::{ulaw_decode, ulaw_encode};
        use crate::audio::resample::{Downsampler, Upsampler, NARROW_FRAME_SAMPLES};
        let mut down = Downsampler::new();
        let mut up = Upsampler::new();
        let mut det = DtmfDetector::new();
        let mut got = String::new();
        let mut audio = key('9');
        audio.extend(vec![0; 16 * 100]);
        audio.extend(key('#'));
        audio.extend(vec![0; 16 * 100]);
        for f in frames(&audio) {
            let narrow = down.process(&f);
            let mut back = [0i16; NARROW_FRAME_SAMPLES];
            for (b, s) in back.iter_mut().zip(narrow) {
                *b = ulaw_decode(ulaw_encode(s));
            }
            got.extend(det.push(&up.process(&back)));
        }
        assert_eq!(got, "9#");
    }

    #[test]
    fn speech_and_noise_fixtures_give_no_digits() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/audio");
        for name in [
            "speech_slt.wav",
            "speech_kal.wav",
            "speech_espeak.wav",
            "noise_pink.wav",
        ] {
            let samples = read_wav_16k(&dir.join(name)).unwrap();
            assert_eq!(detect_all(&samples), "", "{name}");
        }
    }
}
