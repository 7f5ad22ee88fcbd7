//! Pure audio DSP: the internal frame type, G.711, resampling, voice activity
//! detection and DTMF. No network and no clock; only `wav` touches files, and
//! it is not on the call path. The per-frame paths allocate nothing.
//!
//! Internal audio is PCM16 mono at 16 kHz in 20 ms frames; transports convert
//! once at their edge.
//!
//! - [`g711`]: μ-law / A-law per sample and per slice.
//! - [`resample`]: streaming 8 kHz ↔ 16 kHz per frame; any rate → 16 kHz for files.
//! - [`rational`]: streaming 24 kHz → 16 kHz for cloud speech.
//! - [`vad`]: per-frame voice activity with onset, hangover and pre-roll.
//! - [`segment`]: frames → whole utterances for batch speech recognition.
//! - [`dtmf`]: in-band DTMF key detection.
//! - [`wav`]: WAV files in (any common encoding) and out (PCM16 mono).

pub mod dtmf;
pub mod g711;
pub mod rational;
pub mod resample;
pub mod segment;
pub mod vad;
pub mod wav;

/// Internal sample rate (Hz).
pub const SAMPLE_RATE: u32 = 16_000;
/// Samples in one 20 ms internal frame.
pub const FRAME_SAMPLES: usize = 320;
/// Duration of one frame.
pub const FRAME_MS: u64 = 20;

/// One 20 ms frame of PCM16 mono 16 kHz audio.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame(pub [i16; FRAME_SAMPLES]);

impl Frame {
    pub const SILENCE: Frame = Frame([0; FRAME_SAMPLES]);

    pub fn samples(&self) -> &[i16; FRAME_SAMPLES] {
        &self.0
    }
}

impl Default for Frame {
    fn default() -> Self {
        Frame::SILENCE
    }
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let peak = self.0.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
        write!(f, "Frame(peak={peak})")
    }
}
