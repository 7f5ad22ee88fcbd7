//! Frequency response, frame-join continuity and whole-buffer conversion of
//! the resamplers.

use super::*;
use std::f64::consts::PI;

const AMP: f64 = 10_000.0;

fn tone(freq: f64, rate: f64, len: usize) -> Vec<i16> {
    (0..len)
        .map(|i| (AMP * (2.0 * PI * freq * i as f64 / rate).sin()).round() as i16)
        .collect()
}

fn rms(x: &[i16]) -> f64 {
    let sum: f64 = x.iter().map(|&s| (s as f64) * (s as f64)).sum();
    (sum / x.len() as f64).sqrt()
}

fn db(ratio: f64) -> f64 {
    20.0 * ratio.log10()
}

/// Amplitude of the component at `freq` (single-bin DFT).
fn amplitude_at(x: &[i16], freq: f64, rate: f64) -> f64 {
    let (mut re, mut im) = (0.0, 0.0);
    for (i, &s) in x.iter().enumerate() {
        let ph = 2.0 * PI * freq * i as f64 / rate;
        re += s as f64 * ph.cos();
        im += s as f64 * ph.sin();
    }
    2.0 * (re * re + im * im).sqrt() / x.len() as f64
}

fn upsample_all(input: &[i16]) -> Vec<i16> {
    let mut up = Upsampler::new();
    let mut out = Vec::new();
    for chunk in input.chunks_exact(NARROW_FRAME_SAMPLES) {
        let mut frame = [0i16; NARROW_FRAME_SAMPLES];
        frame.copy_from_slice(chunk);
        out.extend_from_slice(&up.process(&frame).0);
    }
    out
}

fn downsample_all(input: &[i16]) -> Vec<i16> {
    let mut down = Downsampler::new();
    let mut out = Vec::new();
    for chunk in input.chunks_exact(FRAME_SAMPLES) {
        let mut frame = Frame::SILENCE;
        frame.0.copy_from_slice(chunk);
        out.extend_from_slice(&down.process(&frame));
    }
    out
}

#[test]
fn upsampler_passes_telephone_band_and_rejects_images() {
    for freq in [300.0, 1000.0, 2000.0, 3000.0, 3400.0] {
        let out = upsample_all(&tone(freq, 8000.0, 160 * 50));
        let steady = &out[320 * 5..];
        let gain = db(amplitude_at(steady, freq, 16_000.0) / AMP);
        assert!(gain.abs() < 1.0, "{freq} Hz: gain {gain:.2} dB");
        // The zero-stuffing image sits at 8000 - f.
        let image = db(amplitude_at(steady, 8000.0 - freq, 16_000.0) / AMP);
        assert!(image < -30.0, "{freq} Hz: image at {image:.1} dB");
    }
}

#[test]
fn downsampler_passes_telephone_band() {
    for freq in [300.0, 1000.0, 2000.0, 3000.0, 3400.0] {
        let out = downsample_all(&tone(freq, 16_000.0, 320 * 50));
        let steady = &out[160 * 5..];
        let gain = db(rms(steady) * 2f64.sqrt() / AMP);
        assert!(gain.abs() < 1.0, "{freq} Hz: gain {gain:.2} dB");
    }
}

#[test]
fn downsampler_rejects_tones_above_4k() {
    for freq in [4100.0, 4500.0, 5000.0, 6000.0, 7500.0] {
        let input = tone(freq, 16_000.0, 320 * 50);
        let out = downsample_all(&input);
        // Whatever comes out is aliased energy, all of it unwanted.
        let rejection = db(rms(&out[160 * 5..]) / rms(&input));
        assert!(rejection < -30.0, "{freq} Hz: only {rejection:.1} dB down");
    }
}

/// Frame-by-frame output must equal a delayed copy of the ideal signal at
/// every sample, including across frame joins (no clicks, no lost samples).
#[test]
fn upsampler_is_continuous_across_frames_and_has_stated_delay() {
    let freq = 700.0;
    let out = upsample_all(&tone(freq, 8000.0, 160 * 20));
    let mut worst = 0.0f64;
    for (m, &y) in out.iter().enumerate().skip(320) {
        let t = (m as f64 - UPSAMPLER_DELAY as f64) / 16_000.0;
        let ideal = AMP * (2.0 * PI * freq * t).sin();
        worst = worst.max((y as f64 - ideal).abs());
    }
    assert!(worst < 0.01 * AMP, "worst deviation {worst:.0}");
}

#[test]
fn downsampler_is_continuous_across_frames_and_has_stated_delay() {
    let freq = 700.0;
    let out = downsample_all(&tone(freq, 16_000.0, 320 * 20));
    let mut worst = 0.0f64;
    for (n, &y) in out.iter().enumerate().skip(160) {
        let t = (n as f64 - DOWNSAMPLER_DELAY as f64) / 8000.0;
        let ideal = AMP * (2.0 * PI * freq * t).sin();
        worst = worst.max((y as f64 - ideal).abs());
    }
    assert!(worst < 0.01 * AMP, "worst deviation {worst:.0}");
}

#[test]
fn reset_forgets_history() {
    let mut up = Upsampler::new();
    let loud = [20_000i16; NARROW_FRAME_SAMPLES];
    up.process(&loud);
    up.reset();
    let out = up.process(&[0; NARROW_FRAME_SAMPLES]);
    assert_eq!(out, Frame::SILENCE);
    let mut down = Downsampler::new();
    down.process(&Frame([20_000; FRAME_SAMPLES]));
    down.reset();
    assert_eq!(down.process(&Frame::SILENCE), [0; NARROW_FRAME_SAMPLES]);
}

#[test]
fn full_scale_input_saturates_instead_of_wrapping() {
    // A square wave at full scale overshoots (Gibbs); output must clip.
    let input: Vec<i16> = (0..160 * 10)
        .map(|i| if (i / 8) % 2 == 0 { i16::MAX } else { i16::MIN })
        .collect();
    let out = upsample_all(&input);
    assert!(out.contains(&i16::MAX));
    assert!(out.contains(&i16::MIN));
}

#[test]
fn whole_buffer_conversion_keeps_pitch_level_and_length() {
    for rate in [8000u32, 11_025, 22_050, 24_000, 44_100, 48_000] {
        let len = rate as usize / 2;
        let out = resample_to_16k(&tone(1000.0, rate as f64, len), rate).unwrap();
        assert_eq!(out.len(), (len * 16_000).div_ceil(rate as usize), "{rate}");
        let mid = &out[1600..out.len() - 1600];
        let gain = db(amplitude_at(mid, 1000.0, 16_000.0) / AMP);
        assert!(gain.abs() < 0.5, "{rate} Hz: gain {gain:.2} dB");
    }
}

#[test]
fn whole_buffer_conversion_rejects_content_above_8k() {
    // 10 kHz at 48 kHz cannot be represented at 16 kHz; it must not alias.
    let input = tone(10_000.0, 48_000.0, 24_000);
    let out = resample_to_16k(&input, 48_000).unwrap();
    let rejection = db(rms(&out[1600..out.len() - 1600]) / rms(&input));
    assert!(rejection < -40.0, "only {rejection:.1} dB down");
}

#[test]
fn whole_buffer_conversion_edge_cases() {
    assert_eq!(resample_to_16k(&[], 8000), Ok(vec![]));
    assert_eq!(resample_to_16k(&[1, 2, 3], 16_000), Ok(vec![1, 2, 3]));
    assert_eq!(
        resample_to_16k(&[1, 2, 3], 0),
        Err(ResampleError::UnsupportedRate(0))
    );
    assert_eq!(
        resample(&[1], 8000, 10_000_000),
        Err(ResampleError::UnsupportedRate(10_000_000))
    );
    assert_eq!(resample_to_16k(&[5000], 8000).unwrap().len(), 2);
}
