//! Streaming 24 kHz → 16 kHz conversion (ratio 3:2) for speech that arrives
//! at 24 kHz, such as OpenAI's raw `pcm` text-to-speech output. Owns one
//! filter and its state; no I/O, and no allocation beyond what the caller's
//! output `Vec` needs.
//!
//! Conceptually the input is zero-stuffed to 48 kHz, low-passed below the new
//! Nyquist frequency and every third sample kept. The low-pass is a
//! linear-phase Kaiser-windowed sinc of [`TAPS`] taps at 48 kHz (cut-off
//! 7.4 kHz, β = 7, ≈ 70 dB stop-band from about 8.1 kHz), run polyphase: only
//! the taps that meet a real input sample are computed, 73 multiply-adds per
//! output sample. Every 3 input samples give 2 output samples, in whatever
//! sizes the input arrives. Delay: [`DELAY`] output samples (1.5 ms).

use super::resample::{dot, lowpass, polyphase_pair, to_i16};

/// Filter length at the 48 kHz intermediate rate (odd: integer delay).
pub const TAPS: usize = 145;
/// Group delay in 16 kHz output samples: (TAPS - 1) / 2 at 48 kHz, over 3.
pub const DELAY: usize = (TAPS - 1) / 6;
/// Zero input samples [`Resampler24kTo16k::flush`] feeds: the filter's delay
/// in input samples plus one whole 3-sample group.
pub const FLUSH_INPUT: usize = (TAPS - 1) / 4 + 3;
/// Coefficients per polyphase branch.
const PHASE_TAPS: usize = TAPS.div_ceil(2);
/// Input samples converted per pass over the work buffer (20 ms at 24 kHz).
const BLOCK: usize = 480;
/// Low-pass cut-off (the −6 dB point) in Hz.
const CUTOFF_HZ: f64 = 7400.0;
/// Intermediate rate the filter is designed at.
const DESIGN_RATE: f64 = 48_000.0;
const KAISER_BETA: f64 = 7.0;

/// Streaming 24 kHz → 16 kHz converter.
#[derive(Clone)]
pub struct Resampler24kTo16k {
    /// Even taps h[0], h[2], …, reversed for a forward dot product: the branch
    /// for output samples that fall on an input sample.
    even: [f32; PHASE_TAPS],
    /// Odd taps h[1], h[3], …, reversed likewise (last slot zero): the branch
    /// for output samples halfway between input samples.
    odd: [f32; PHASE_TAPS],
    /// The last `PHASE_TAPS - 1` input samples, oldest first.
    history: [f32; PHASE_TAPS - 1],
    /// Index of the next input sample, modulo 3.
    phase: u8,
}

impl Default for Resampler24kTo16k {
    fn default() -> Self {
        Self::new()
    }
}

impl Resampler24kTo16k {
    pub fn new() -> Self {
        let (even, odd) = polyphase_pair(&design_lowpass());
        Self {
            even,
            odd,
            history: [0.0; PHASE_TAPS - 1],
            phase: 0,
        }
    }

    /// Output samples produced for `input_len` further input samples in the
    /// current state (for reserving capacity).
    pub fn output_len(&self, input_len: usize) -> usize {
        let p = self.phase as usize;
        // Inputs at phases 0 and 1 each yield one sample; phase 2 yields none.
        let total = |n: usize| 2 * (n / 3) + (n % 3).min(2);
        total(p + input_len) - total(p)
    }

    /// Converts any number of 24 kHz samples, appending 16 kHz samples to
    /// `out` (⌈2n/3⌉ over a stream of n samples, however it is split).
    pub fn process(&mut self, input: &[i16], out: &mut Vec<i16>) {
        out.reserve(self.output_len(input.len()));
        for block in input.chunks(BLOCK) {
            self.process_block(block, out);
        }
    }

    /// Ends the stream: pushes the audio still inside the filter out by
    /// feeding [`FLUSH_INPUT`] samples of silence.
    pub fn flush(&mut self, out: &mut Vec<i16>) {
        self.process(&[0; FLUSH_INPUT], out);
    }

    /// Forgets all past input, as at the start of a new stream.
    pub fn reset(&mut self) {
        self.history = [0.0; PHASE_TAPS - 1];
        self.phase = 0;
    }

    fn process_block(&mut self, block: &[i16], out: &mut Vec<i16>) {
        const H: usize = PHASE_TAPS - 1;
        let n = block.len().min(BLOCK);
        let mut work = [0f32; H + BLOCK];
        work[..H].copy_from_slice(&self.history);
        for (w, s) in work[H..H + n].iter_mut().zip(block) {
            *w = *s as f32;
        }
        for i in 0..n {
            // Input i's window is work[i..i + PHASE_TAPS], newest last.
            let branch = match self.phase {
                0 => Some(&self.even),
                1 => Some(&self.odd),
                _ => None,
            };
            if let Some(taps) = branch {
                out.push(to_i16(dot(taps, &work[i..i + PHASE_TAPS])));
            }
            self.phase = (self.phase + 1) % 3;
        }
        self.history.copy_from_slice(&work[n..n + H]);
    }
}

/// The anti-alias low-pass at the 48 kHz intermediate rate.
fn design_lowpass() -> [f64; TAPS] {
    lowpass(CUTOFF_HZ / DESIGN_RATE, KAISER_BETA)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::PI;

    const AMP: f64 = 10_000.0;

    fn tone(freq: f64, len: usize) -> Vec<i16> {
        (0..len)
            .map(|i| (AMP * (2.0 * PI * freq * i as f64 / 24_000.0).sin()).round() as i16)
            .collect()
    }

    fn convert(input: &[i16]) -> Vec<i16> {
        let mut r = Resampler24kTo16k::new();
        let mut out = Vec::new();
        r.process(input, &mut out);
        out
    }

    /// Amplitude of the component at `freq` in 16 kHz audio (one DFT bin).
    fn amplitude_at(x: &[i16], freq: f64) -> f64 {
        let (mut re, mut im) = (0.0, 0.0);
        for (i, &s) in x.iter().enumerate() {
            let ph = 2.0 * PI * freq * i as f64 / 16_000.0;
            re += s as f64 * ph.cos();
            im += s as f64 * ph.sin();
        }
        2.0 * (re * re + im * im).sqrt() / x.len() as f64
    }

    fn rms(x: &[i16]) -> f64 {
        let sum: f64 = x.iter().map(|&s| (s as f64) * (s as f64)).sum();
        (sum / x.len() as f64).sqrt()
    }

    fn db(ratio: f64) -> f64 {
        20.0 * ratio.log10()
    }

    #[test]
    fn pass_band_keeps_its_amplitude() {
        for freq in [300.0, 1000.0, 3000.0, 6000.0] {
            let out = convert(&tone(freq, 24_000));
            // Skip the filter's start-up; 16 000 - 1 000 samples stay.
            let steady = &out[1000..];
            let gain = db(amplitude_at(steady, freq) / AMP);
            eprintln!("{freq} Hz: {gain:+.4} dB");
            assert!(gain.abs() < 0.1, "{freq} Hz: gain {gain:.3} dB");
        }
    }

    #[test]
    fn tones_above_8k_are_attenuated_over_40_db() {
        for freq in [8500.0, 10_000.0, 11_000.0] {
            let out = convert(&tone(freq, 24_000));
            let level = db(rms(&out[1000..]) * 2f64.sqrt() / AMP);
            eprintln!("{freq} Hz: {level:.1} dB");
            assert!(level < -40.0, "{freq} Hz: {level:.1} dB");
        }
        // The 10 kHz tone would fold to 6 kHz: that bin must stay empty.
        let out = convert(&tone(10_000.0, 24_000));
        let alias = db(amplitude_at(&out[1000..], 6000.0) / AMP);
        assert!(alias < -60.0, "alias at {alias:.1} dB");
    }

    #[test]
    fn output_is_two_thirds_of_the_input() {
        for n in [0, 1, 2, 3, 4, 5, 479, 480, 481, 24_000, 24_001] {
            let out = convert(&vec![100; n]);
            assert_eq!(out.len(), (2 * n).div_ceil(3), "{n} samples in");
        }
        let mut r = Resampler24kTo16k::new();
        let mut out = Vec::new();
        r.process(&[1], &mut out);
        assert_eq!(r.output_len(2), 1);
        assert_eq!(r.output_len(3), 2);
        assert_eq!(r.output_len(0), 0);
    }

    #[test]
    fn pushes_of_any_size_give_the_same_output() {
        let input: Vec<i16> = tone(1234.0, 5000)
            .iter()
            .zip(tone(7000.0, 5000))
            .map(|(a, b)| a / 2 + b / 2)
            .collect();
        let whole = convert(&input);
        for sizes in [&[1usize][..], &[7, 13], &[479, 1, 481], &[2, 1000, 3]] {
            let mut r = Resampler24kTo16k::new();
            let mut out = Vec::new();
            let mut rest = &input[..];
            for size in sizes.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let take = (*size).min(rest.len());
                r.process(&rest[..take], &mut out);
                rest = &rest[take..];
            }
            assert_eq!(out, whole, "push sizes {sizes:?}");
        }
    }

    #[test]
    fn flush_lets_the_tail_out_and_reset_forgets() {
        let mut r = Resampler24kTo16k::new();
        let mut out = Vec::new();
        r.process(&[10_000; 300], &mut out);
        assert_eq!(out.len(), 200);
        // The output lags by DELAY samples, so the step's end is still inside
        // the filter until the flush pushes it out.
        assert!(out[199] > 9_900, "{}", out[199]);
        r.flush(&mut out);
        assert_eq!(out.len(), (2 * (300 + FLUSH_INPUT)).div_ceil(3));
        // The step ends at output DELAY + 200 once the delay is accounted for.
        let edge = 200 + DELAY;
        assert!(out.len() > edge + 1);
        assert!(
            out[edge - 8] > 9_900 && out[edge + 1] < 5_000,
            "{:?}",
            &out[edge - 8..]
        );
        let held = &out[DELAY + 20..edge - 20];
        assert!(held.iter().all(|s| (*s - 10_000).abs() < 100), "{held:?}");
        r.reset();
        let mut again = Vec::new();
        r.process(&[0; 30], &mut again);
        assert!(again.iter().all(|s| *s == 0), "history survived reset");
    }
}
