//! Sample-rate conversion. Owns the streaming 8 kHz ↔ 16 kHz converters used
//! at the telephone edge (stateful across 20 ms frames, allocation-free) and a
//! whole-buffer converter from any rate to 16 kHz for files and TTS output.
//!
//! The streaming pair shares one linear-phase low-pass FIR (Kaiser-windowed
//! sinc, cut-off 3.75 kHz at 16 kHz): ≈ 0 dB up to 3.5 kHz, ≥ 50 dB down from
//! 4 kHz. Both run it polyphase, so each output sample costs about 56 (up) or
//! 111 (down) multiply-adds. Delay: [`UPSAMPLER_DELAY`] output samples at
//! 16 kHz (3.44 ms) up, [`DOWNSAMPLER_DELAY`] output samples at 8 kHz
//! (3.38 ms) down.

use super::{Frame, FRAME_SAMPLES};

/// Samples in one 20 ms frame at 8 kHz.
pub const NARROW_FRAME_SAMPLES: usize = FRAME_SAMPLES / 2;
/// Length of the shared low-pass filter (odd, so it has an integer delay).
const TAPS: usize = 111;
/// Group delay of [`Upsampler`], in 16 kHz output samples.
pub const UPSAMPLER_DELAY: usize = (TAPS - 1) / 2;
/// Group delay of [`Downsampler`], in 8 kHz output samples: each output
/// sample is aligned on the odd input sample of its pair.
pub const DOWNSAMPLER_DELAY: usize = (TAPS - 1) / 4;
/// Coefficients per polyphase branch of the upsampler.
const PHASE_TAPS: usize = TAPS.div_ceil(2);
/// Low-pass cut-off (the −6 dB point) in Hz at 16 kHz.
const CUTOFF_HZ: f64 = 3750.0;
/// Kaiser β of the streaming filter: ≈ 54 dB stop-band.
const KAISER_BETA: f64 = 5.0;

/// Errors of the whole-buffer converter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResampleError {
    #[error("unsupported sample rate {0} Hz (expected 1000..=384000)")]
    UnsupportedRate(u32),
}

/// Streaming 8 kHz → 16 kHz converter for 20 ms frames.
#[derive(Clone)]
pub struct Upsampler {
    /// Branch producing even output samples, reversed for a forward dot product.
    even: [f32; PHASE_TAPS],
    /// Branch producing odd output samples, reversed likewise.
    odd: [f32; PHASE_TAPS],
    /// The last `PHASE_TAPS - 1` input samples, oldest first.
    history: [f32; PHASE_TAPS - 1],
}

impl Default for Upsampler {
    fn default() -> Self {
        Self::new()
    }
}

impl Upsampler {
    pub fn new() -> Self {
        let (even, odd) = polyphase_pair(&design_lowpass());
        Self {
            even,
            odd,
            history: [0.0; PHASE_TAPS - 1],
        }
    }

    /// Converts one 8 kHz frame (160 samples) into one 16 kHz frame.
    pub fn process(&mut self, input: &[i16; NARROW_FRAME_SAMPLES]) -> Frame {
        let mut out = Frame::SILENCE;
        self.process_into(input, &mut out.0);
        out
    }

    /// Converts one 8 kHz frame into the caller's 320-sample buffer.
    pub fn process_into(
        &mut self,
        input: &[i16; NARROW_FRAME_SAMPLES],
        out: &mut [i16; FRAME_SAMPLES],
    ) {
        const H: usize = PHASE_TAPS - 1;
        let mut work = [0f32; H + NARROW_FRAME_SAMPLES];
        work[..H].copy_from_slice(&self.history);
        for (w, s) in work[H..].iter_mut().zip(input) {
            *w = *s as f32;
        }
        for n in 0..NARROW_FRAME_SAMPLES {
            let window = &work[n..n + PHASE_TAPS];
            out[2 * n] = to_i16(dot(&self.even, window));
            out[2 * n + 1] = to_i16(dot(&self.odd, window));
        }
        self.history
            .copy_from_slice(&work[NARROW_FRAME_SAMPLES..NARROW_FRAME_SAMPLES + H]);
    }

    /// Forgets all past input, as at the start of a new stream.
    pub fn reset(&mut self) {
        self.history = [0.0; PHASE_TAPS - 1];
    }
}

/// Streaming 16 kHz → 8 kHz converter for 20 ms frames.
#[derive(Clone)]
pub struct Downsampler {
    /// The low-pass, reversed for a forward dot product.
    taps: [f32; TAPS],
    /// The last `TAPS - 1` input samples, oldest first.
    history: [f32; TAPS - 1],
}

impl Default for Downsampler {
    fn default() -> Self {
        Self::new()
    }
}

impl Downsampler {
    pub fn new() -> Self {
        let h = design_lowpass();
        let mut taps = [0f32; TAPS];
        for (k, c) in h.iter().enumerate() {
            taps[TAPS - 1 - k] = *c as f32;
        }
        normalise(&mut taps);
        Self {
            taps,
            history: [0.0; TAPS - 1],
        }
    }

    /// Converts one 16 kHz frame into 160 samples at 8 kHz.
    pub fn process(&mut self, input: &Frame) -> [i16; NARROW_FRAME_SAMPLES] {
        let mut out = [0i16; NARROW_FRAME_SAMPLES];
        self.process_into(&input.0, &mut out);
        out
    }

    /// Converts one 16 kHz frame into the caller's 160-sample buffer.
    pub fn process_into(
        &mut self,
        input: &[i16; FRAME_SAMPLES],
        out: &mut [i16; NARROW_FRAME_SAMPLES],
    ) {
        const H: usize = TAPS - 1;
        let mut work = [0f32; H + FRAME_SAMPLES];
        work[..H].copy_from_slice(&self.history);
        for (w, s) in work[H..].iter_mut().zip(input) {
            *w = *s as f32;
        }
        for (n, o) in out.iter_mut().enumerate() {
            *o = to_i16(dot(&self.taps, &work[2 * n + 1..2 * n + 1 + TAPS]));
        }
        self.history.copy_from_slice(&work[FRAME_SAMPLES..]);
    }

    /// Forgets all past input, as at the start of a new stream.
    pub fn reset(&mut self) {
        self.history = [0.0; TAPS - 1];
    }
}

/// Dot product over the common length. Eight independent partial sums let
/// the compiler vectorise (a single running sum may not be reordered).
#[inline]
pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a8
        .remainder()
        .iter()
        .zip(b8.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (ca, cb) in a8.zip(b8) {
        for k in 0..8 {
            acc[k] += ca[k] * cb[k];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[inline]
pub(super) fn to_i16(v: f32) -> i16 {
    // `as` saturates at the i16 range, which is the clipping we want.
    v.round() as i16
}

pub(super) fn normalise(taps: &mut [f32]) {
    let sum: f32 = taps.iter().sum();
    if sum != 0.0 {
        taps.iter_mut().for_each(|t| *t /= sum);
    }
}

/// The shared streaming low-pass at 16 kHz.
fn design_lowpass() -> [f64; TAPS] {
    lowpass(CUTOFF_HZ / 16_000.0, KAISER_BETA)
}

/// A Kaiser-windowed sinc low-pass of `N` taps; `fc` is the cutoff as a
/// fraction of the sample rate it runs at.
pub(super) fn lowpass<const N: usize>(fc: f64, beta: f64) -> [f64; N] {
    let mid = (N - 1) as f64 / 2.0;
    let mut h = [0f64; N];
    for (n, c) in h.iter_mut().enumerate() {
        let x = n as f64 - mid;
        *c = 2.0 * fc * sinc(2.0 * fc * x) * kaiser(x / mid, beta);
    }
    h
}

/// Splits `h` into the two branches of a 2× polyphase filter (even and odd
/// taps), each reversed for a forward dot product and scaled to unit sum:
/// each branch sees the input at its own rate, so both keep DC gain 1 and
/// the zero-stuffing leaves no ripple.
pub(super) fn polyphase_pair<const P: usize>(h: &[f64]) -> ([f32; P], [f32; P]) {
    let mut even = [0f32; P];
    let mut odd = [0f32; P];
    for k in 0..P {
        even[P - 1 - k] = h.get(2 * k).copied().unwrap_or(0.0) as f32;
        odd[P - 1 - k] = h.get(2 * k + 1).copied().unwrap_or(0.0) as f32;
    }
    normalise(&mut even);
    normalise(&mut odd);
    (even, odd)
}

pub(super) fn sinc(x: f64) -> f64 {
    if x.abs() < 1e-12 {
        1.0
    } else {
        let px = std::f64::consts::PI * x;
        px.sin() / px
    }
}

/// Kaiser window at `x` in [-1, 1].
pub(super) fn kaiser(x: f64, beta: f64) -> f64 {
    if x.abs() > 1.0 {
        return 0.0;
    }
    bessel_i0(beta * (1.0 - x * x).sqrt()) / bessel_i0(beta)
}

/// Modified Bessel function of the first kind, order zero (power series).
fn bessel_i0(x: f64) -> f64 {
    let mut sum = 1.0;
    let mut term = 1.0;
    let half = x / 2.0;
    for k in 1..64 {
        term *= half / k as f64;
        let t2 = term * term;
        sum += t2;
        if t2 < sum * 1e-16 {
            break;
        }
    }
    sum
}

/// Zero crossings of the whole-buffer kernel on each side.
const ZERO_CROSSINGS: usize = 24;
/// Kernel table points per zero crossing (linearly interpolated between).
const KERNEL_RES: usize = 512;
/// Cut-off as a fraction of the lower rate's Nyquist frequency.
const ROLLOFF: f64 = 0.92;
/// Kaiser β of the whole-buffer kernel: ≈ 60 dB stop-band.
const FILE_KAISER_BETA: f64 = 5.65;

/// Converts a whole buffer from `from_rate` to 16 kHz. Not for the per-frame
/// path: it allocates the result and a kernel table.
pub fn resample_to_16k(input: &[i16], from_rate: u32) -> Result<Vec<i16>, ResampleError> {
    resample(input, from_rate, super::SAMPLE_RATE)
}

/// Converts a whole buffer between any two rates with a band-limited
/// (windowed-sinc) interpolator; the result is
/// `ceil(len * to_rate / from_rate)` samples long.
pub fn resample(input: &[i16], from_rate: u32, to_rate: u32) -> Result<Vec<i16>, ResampleError> {
    check_rate(from_rate)?;
    check_rate(to_rate)?;
    if from_rate == to_rate {
        return Ok(input.to_vec());
    }
    let (from, to) = (from_rate as u64, to_rate as u64);
    let out_len = (input.len() as u64 * to).div_ceil(from) as usize;
    let scale = (to as f64 / from as f64).min(1.0) * ROLLOFF;
    let table = kernel_table();
    // Half-width of the kernel in input samples.
    let reach = ZERO_CROSSINGS as f64 / scale;
    let mut out = Vec::with_capacity(out_len);
    for n in 0..out_len as u64 {
        // Exact position of output sample n on the input's time axis.
        let base = (n * from / to) as i64;
        let frac = (n * from % to) as f64 / to as f64;
        let first = (base - reach.floor() as i64).max(0);
        let last = (base + reach.ceil() as i64).min(input.len() as i64 - 1);
        let mut acc = 0.0f64;
        for j in first..=last {
            let dist = ((j - base) as f64 - frac).abs() * scale;
            acc += input[j as usize] as f64 * kernel_at(&table, dist);
        }
        out.push(to_i16((acc * scale) as f32));
    }
    Ok(out)
}

/// Accepts the rates [`resample`] handles: 1 kHz to 384 kHz.
pub fn check_rate(rate: u32) -> Result<(), ResampleError> {
    if (1000..=384_000).contains(&rate) {
        Ok(())
    } else {
        Err(ResampleError::UnsupportedRate(rate))
    }
}

/// Windowed sinc sampled at `KERNEL_RES` points per zero crossing.
fn kernel_table() -> Vec<f64> {
    let len = ZERO_CROSSINGS * KERNEL_RES + 2;
    (0..len)
        .map(|i| {
            let u = i as f64 / KERNEL_RES as f64;
            sinc(u) * kaiser(u / ZERO_CROSSINGS as f64, FILE_KAISER_BETA)
        })
        .collect()
}

/// Kernel value at `dist` zero crossings from the centre (0 beyond the reach).
#[inline]
fn kernel_at(table: &[f64], dist: f64) -> f64 {
    let pos = dist * KERNEL_RES as f64;
    let i = pos as usize;
    match (table.get(i), table.get(i + 1)) {
        (Some(a), Some(b)) if dist < ZERO_CROSSINGS as f64 => {
            let t = pos - i as f64;
            a + (b - a) * t
        }
        _ => 0.0,
    }
}

#[cfg(test)]
#[path = "resample_tests.rs"]
mod tests;
