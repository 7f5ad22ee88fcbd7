//! The only `unsafe` in the TTS path: a minimal hand-written binding to
//! libflite (Debian `flite1-dev`, linked by `build.rs`) with the `cmu_us_slt`
//! voice compiled in. flite is initialised and the voice registered once;
//! flite keeps global state and is not known to be thread-safe, so every
//! call into it holds one process-wide mutex. Samples are copied out and the
//! C wave freed before the lock is released; no flite pointer escapes.

use std::ffi::{c_char, c_int, c_short, CString};
use std::sync::{Mutex, OnceLock};

/// flite's `cst_wave` (cst_wave.h): PCM16 samples, interleaved channels.
#[repr(C)]
struct CstWave {
    kind: *const c_char,
    sample_rate: c_int,
    num_samples: c_int,
    num_channels: c_int,
    samples: *mut c_short,
}

/// flite's opaque `cst_voice`.
#[repr(C)]
struct CstVoice {
    _opaque: [u8; 0],
}

extern "C" {
    fn flite_init() -> c_int;
    fn register_cmu_us_slt(voxdir: *const c_char) -> *mut CstVoice;
    fn flite_text_to_wave(text: *const c_char, voice: *mut CstVoice) -> *mut CstWave;
    fn delete_wave(wave: *mut CstWave);
}

/// The registered voice. Only touched while [`ENGINE`]'s mutex is held.
struct Voice(*mut CstVoice);

// SAFETY: the voice pointer is created once and only dereferenced by flite
// while the process-wide mutex around `Voice` is held, so moving the handle
// between threads never lets two threads use it at once.
unsafe impl Send for Voice {}

static ENGINE: OnceLock<Result<Mutex<Voice>, FliteError>> = OnceLock::new();

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FliteError {
    #[error("flite could not register the cmu_us_slt voice")]
    NoVoice,
    #[error("flite returned no audio")]
    NoAudio,
    #[error("flite returned a malformed wave ({0})")]
    BadWave(String),
    #[error("flite lock poisoned by an earlier panic")]
    Poisoned,
}

/// Synthesized speech: mono PCM16 at `sample_rate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wave {
    pub samples: Vec<i16>,
    pub sample_rate: u32,
}

fn engine() -> Result<&'static Mutex<Voice>, FliteError> {
    ENGINE
        .get_or_init(|| {
            // SAFETY: flite_init only sets up flite's global tables; OnceLock
            // runs this exactly once, before any other flite call.
            unsafe { flite_init() };
            // SAFETY: a null voxdir is the documented way to register a voice
            // compiled into the library; the returned pointer lives for the
            // rest of the process.
            let voice = unsafe { register_cmu_us_slt(std::ptr::null()) };
            if voice.is_null() {
                Err(FliteError::NoVoice)
            } else {
                Ok(Mutex::new(Voice(voice)))
            }
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Speaks `text` with the slt voice. Interior NUL bytes are dropped. Blocks
/// for the synthesis (tens of milliseconds per sentence); call it from a
/// blocking thread.
pub fn synthesize(text: &str) -> Result<Wave, FliteError> {
    let clean: Vec<u8> = text.bytes().filter(|b| *b != 0).collect();
    let c_text = CString::new(clean).map_err(|_| FliteError::BadWave("NUL in text".into()))?;
    let voice = engine()?.lock().map_err(|_| FliteError::Poisoned)?;
    // SAFETY: both pointers are valid for the call (c_text outlives it, the
    // voice is registered) and the mutex guard serialises all flite calls.
    let wave = unsafe { flite_text_to_wave(c_text.as_ptr(), voice.0) };
    if wave.is_null() {
        return Err(FliteError::NoAudio);
    }
    // SAFETY: flite returned a non-null wave it allocated; we read its header
    // and samples (num_samples × num_channels shorts) while still holding the
    // lock, copy them, and free the wave exactly once below.
    let copied = unsafe { copy_wave(&*wave) };
    // SAFETY: `wave` came from flite_text_to_wave and is not used afterwards.
    unsafe { delete_wave(wave) };
    drop(voice);
    copied
}

/// Copies the first channel out of a flite wave.
///
/// # Safety
/// `wave.samples` must point to `num_samples * num_channels` valid shorts.
unsafe fn copy_wave(wave: &CstWave) -> Result<Wave, FliteError> {
    let (n, ch, rate) = (wave.num_samples, wave.num_channels, wave.sample_rate);
    if n < 0 || ch < 1 || rate <= 0 || (n > 0 && wave.samples.is_null()) {
        return Err(FliteError::BadWave(format!(
            "{n} samples, {ch} channels, {rate} Hz"
        )));
    }
    let (n, ch) = (n as usize, ch as usize);
    let all: &[i16] = if n == 0 {
        &[]
    } else {
        // SAFETY: guaranteed by the caller's contract, checked non-null above.
        unsafe { std::slice::from_raw_parts(wave.samples, n * ch) }
    };
    Ok(Wave {
        samples: all.iter().step_by(ch).copied().collect(),
        sample_rate: rate as u32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speaks_a_sentence_at_16k() {
        let wave = synthesize("Hello, thank you for calling.").expect("flite works");
        assert_eq!(wave.sample_rate, 16_000);
        // A short sentence is one to three seconds of non-silent audio.
        let secs = wave.samples.len() as f32 / wave.sample_rate as f32;
        assert!((0.8..4.0).contains(&secs), "{secs} s");
        let peak = wave
            .samples
            .iter()
            .map(|s| s.unsigned_abs())
            .max()
            .unwrap_or(0);
        assert!(peak > 3000, "peak {peak}");
    }

    #[test]
    fn survives_concurrent_callers_and_odd_text() {
        let handles: Vec<_> = (0..4)
            .map(|i| std::thread::spawn(move || synthesize(&format!("Number {i}.\0 Done."))))
            .collect();
        for h in handles {
            let wave = h.join().expect("no panic").expect("audio");
            assert!(!wave.samples.is_empty());
        }
        // Empty text is not an error; it is (nearly) no audio.
        let empty = synthesize("").expect("empty ok");
        assert!(empty.samples.len() < 16_000);
    }
}
