//! The Twilio edge's audio conversion: μ-law 8 kHz bytes in any chunking →
//! internal 20 ms PCM16 16 kHz [`Frame`]s, and frames back → 160-byte μ-law
//! 8 kHz chunks (20 ms, no file header). Stateful across chunks so frame
//! joins are seamless. Allocation-free per frame. The DSP itself is
//! `audio::g711` and `audio::resample`; this module only does the chunking.

use crate::audio::g711::{ulaw_decode_into, ulaw_encode_into};
use crate::audio::resample::{Downsampler, Upsampler, NARROW_FRAME_SAMPLES};
use crate::audio::Frame;

/// Bytes of μ-law in 20 ms at 8 kHz.
pub const CHUNK_BYTES: usize = NARROW_FRAME_SAMPLES;

/// μ-law 8 kHz → 16 kHz frames.
pub struct Decoder {
    pending: [i16; CHUNK_BYTES],
    filled: usize,
    up: Upsampler,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new()
    }
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder {
            pending: [0; CHUNK_BYTES],
            filled: 0,
            up: Upsampler::new(),
        }
    }

    /// Decodes `mulaw` and calls `out` with every whole frame it completes.
    pub fn push(&mut self, mulaw: &[u8], mut out: impl FnMut(Frame)) {
        let mut rest = mulaw;
        while !rest.is_empty() {
            let take = (CHUNK_BYTES - self.filled).min(rest.len());
            ulaw_decode_into(
                &rest[..take],
                &mut self.pending[self.filled..self.filled + take],
            );
            self.filled += take;
            rest = &rest[take..];
            if self.filled == CHUNK_BYTES {
                self.filled = 0;
                out(self.up.process(&self.pending));
            }
        }
    }
}

/// 16 kHz frames → μ-law 8 kHz chunks.
#[derive(Default)]
pub struct Encoder {
    down: Downsampler,
}

impl Encoder {
    pub fn new() -> Encoder {
        Encoder::default()
    }

    pub fn encode(&mut self, frame: &Frame) -> [u8; CHUNK_BYTES] {
        let pcm = self.down.process(frame);
        let mut out = [0u8; CHUNK_BYTES];
        ulaw_encode_into(&pcm, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoder_emits_whole_frames_across_odd_chunks() {
        let mut d = Decoder::new();
        let mut frames = Vec::new();
        d.push(&[0xff; 100], |f| frames.push(f));
        assert!(frames.is_empty());
        d.push(&[0xff; 250], |f| frames.push(f));
        assert_eq!(frames.len(), 2);
        // 0xff is μ-law zero.
        assert_eq!(frames[0], Frame::SILENCE);
    }

    #[test]
    fn tone_survives_a_round_trip() {
        let mut frame = Frame::SILENCE;
        for (i, s) in frame.0.iter_mut().enumerate() {
            *s = (8000.0 * (2.0 * std::f64::consts::PI * 500.0 * i as f64 / 16000.0).sin()) as i16;
        }
        let mut enc = Encoder::new();
        let mut dec = Decoder::new();
        let mut back = Vec::new();
        for _ in 0..3 {
            let bytes = enc.encode(&frame);
            dec.push(&bytes, |f| back.push(f));
        }
        let last = &back[2];
        let peak = last.0.iter().map(|s| s.unsigned_abs()).max().unwrap();
        assert!((7000..9000).contains(&peak), "peak {peak}");
    }
}
