//! The Whisper mel filter bank: 80 triangular filters over the 201 bins of a
//! 400-point FFT at 16 kHz, on the Slaney mel scale (linear below 1 kHz,
//! logarithmic above) with area normalisation, as Whisper's front end uses.
//! Pure arithmetic; the converter writes the result into the ggml file.

/// Mel bands Whisper tiny/base/small/medium use.
pub const N_MELS: usize = 80;
/// FFT length of Whisper's front end (25 ms at 16 kHz).
pub const N_FFT: usize = 400;
/// Bins of a real FFT of [`N_FFT`] points, DC to Nyquist.
pub const N_BINS: usize = N_FFT / 2 + 1;

const SAMPLE_RATE: f64 = 16_000.0;
/// The Slaney scale is linear up to 1 kHz, 200/3 Hz per mel.
const LINEAR_HZ_PER_MEL: f64 = 200.0 / 3.0;
const LOG_START_HZ: f64 = 1_000.0;
const LOG_START_MEL: f64 = LOG_START_HZ / LINEAR_HZ_PER_MEL;

fn log_step() -> f64 {
    6.4f64.ln() / 27.0
}

fn hz_to_mel(hz: f64) -> f64 {
    if hz < LOG_START_HZ {
        hz / LINEAR_HZ_PER_MEL
    } else {
        LOG_START_MEL + (hz / LOG_START_HZ).ln() / log_step()
    }
}

fn mel_to_hz(mel: f64) -> f64 {
    if mel < LOG_START_MEL {
        mel * LINEAR_HZ_PER_MEL
    } else {
        LOG_START_HZ * ((mel - LOG_START_MEL) * log_step()).exp()
    }
}

/// The filter bank, row-major: `N_MELS` rows of `N_BINS` weights.
pub fn filter_bank() -> Vec<f32> {
    let nyquist = SAMPLE_RATE / 2.0;
    let max_mel = hz_to_mel(nyquist);
    // Band edges: N_MELS + 2 points evenly spaced in mel from 0 to Nyquist.
    let edges: Vec<f64> = (0..N_MELS + 2)
        .map(|i| mel_to_hz(max_mel * i as f64 / (N_MELS + 1) as f64))
        .collect();
    let bin_hz = |k: usize| nyquist * k as f64 / (N_BINS - 1) as f64;
    let mut out = vec![0f32; N_MELS * N_BINS];
    for m in 0..N_MELS {
        let (lo, centre, hi) = (edges[m], edges[m + 1], edges[m + 2]);
        // Slaney normalisation: every filter has the same area.
        let norm = 2.0 / (hi - lo);
        for k in 0..N_BINS {
            let f = bin_hz(k);
            let rising = (f - lo) / (centre - lo);
            let falling = (hi - f) / (hi - centre);
            let w = rising.min(falling).max(0.0);
            out[m * N_BINS + k] = (w * norm) as f32;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_is_continuous_and_invertible_at_the_knee() {
        assert!((hz_to_mel(1000.0) - 15.0).abs() < 1e-9);
        for hz in [0.0, 250.0, 999.0, 1000.0, 3000.0, 8000.0] {
            assert!((mel_to_hz(hz_to_mel(hz)) - hz).abs() < 1e-6, "{hz}");
        }
    }

    #[test]
    fn filters_are_triangles_covering_the_band() {
        let fb = filter_bank();
        assert_eq!(fb.len(), N_MELS * N_BINS);
        for m in 0..N_MELS {
            let row = &fb[m * N_BINS..(m + 1) * N_BINS];
            let peak = row
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map(|(k, _)| k)
                .unwrap_or(0);
            assert!(row[peak] > 0.0, "filter {m} is empty");
            // Non-decreasing up to the peak, non-increasing after it.
            assert!(row[..=peak].windows(2).all(|w| w[0] <= w[1]), "{m}");
            assert!(row[peak..].windows(2).all(|w| w[0] >= w[1]), "{m}");
        }
        // The DC bin sits at the first edge and gets no weight; narrow low
        // filters peak higher than the wide top ones (equal-area rule).
        assert_eq!(fb[0], 0.0);
        let peak = |m: usize| {
            fb[m * N_BINS..(m + 1) * N_BINS]
                .iter()
                .fold(0f32, |a, b| a.max(*b))
        };
        assert!(peak(30) > peak(79));
    }

    #[test]
    fn matches_whisper_reference_filter_values() {
        // Values from the reference `mel_80` bank Whisper ships (row, bin).
        let reference = [
            (0, 1, 0.024_862_595),
            (10, 11, 0.004_954_375),
            (40, 42, 0.005_411_105),
            (40, 43, 0.014_735_566),
            (40, 44, 0.006_518_19),
            (40, 30, 0.0),
            (79, 187, 0.000_833_07),
            (79, 190, 0.002_232_055),
            (79, 200, 0.0),
        ];
        let fb = filter_bank();
        for (m, k, want) in reference {
            let got = fb[m * N_BINS + k];
            assert!((got - want).abs() < 1e-7, "[{m}][{k}] = {got}, want {want}");
        }
    }
}
