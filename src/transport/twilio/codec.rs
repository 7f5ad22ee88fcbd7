//! The Twilio edge's audio conversion: μ-law 8 kHz bytes in any chunking →
//! internal 20 ms PCM16 16 kHz [`Frame`]s, and frames back → 160-byte μ-law
//! 8 kHz chunks (20 ms, no file header). Stateful across chunks so frame
//! joins are seamless. Allocation-free per frame.

use crate::audio::{Frame, FRAME_SAMPLES};

/// Bytes of μ-law in 20 ms at 8 kHz.
pub const CHUNK_BYTES: usize = 160;

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
            up: Upsampler::default(),
        }
    }

    /// Decodes `mulaw` and calls `out` with every whole frame it completes.
    pub fn push(&mut self, mulaw: &[u8], mut out: impl FnMut(Frame)) {
        for &b in mulaw {
            self.pending[self.filled] = ulaw_decode(b);
            self.filled += 1;
            if self.filled == CHUNK_BYTES {
                self.filled = 0;
                let mut frame = Frame::SILENCE;
                self.up.process(&self.pending, &mut frame.0);
                out(frame);
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
        let mut pcm = [0i16; CHUNK_BYTES];
        self.down.process(&frame.0, &mut pcm);
        let mut out = [0u8; CHUNK_BYTES];
        for (o, s) in out.iter_mut().zip(pcm.iter()) {
            *o = ulaw_encode(*s);
        }
        out
    }
}

// --- Stand-ins until the shared `audio::g711` / `audio::resample` land. ---

const BIAS: i32 = 0x84;
const CLIP: i32 = 32635;

fn ulaw_encode(sample: i16) -> u8 {
    let mut s = sample as i32;
    let sign = if s < 0 { 0x80 } else { 0 };
    if s < 0 {
        s = -s;
    }
    s = s.min(CLIP) + BIAS;
    let mut exponent = 7;
    let mut mask = 0x4000;
    while exponent > 0 && s & mask == 0 {
        exponent -= 1;
        mask >>= 1;
    }
    let mantissa = (s >> (exponent + 3)) & 0x0f;
    !(sign | (exponent << 4) as i32 | mantissa) as u8
}

fn ulaw_decode(byte: u8) -> i16 {
    let b = !byte;
    let sign = b & 0x80;
    let exponent = ((b >> 4) & 0x07) as i32;
    let mantissa = (b & 0x0f) as i32;
    let magnitude = (((mantissa << 3) + BIAS) << exponent) - BIAS;
    if sign != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

/// 2× upsampling by linear interpolation, carrying the last input sample.
#[derive(Default)]
struct Upsampler {
    last: i16,
}

impl Upsampler {
    fn process(&mut self, input: &[i16; CHUNK_BYTES], out: &mut [i16; FRAME_SAMPLES]) {
        for (i, &s) in input.iter().enumerate() {
            out[2 * i] = ((self.last as i32 + s as i32) / 2) as i16;
            out[2 * i + 1] = s;
            self.last = s;
        }
    }
}

/// 2× decimation with a short [1 2 1]/4 low-pass carried across frames.
#[derive(Default)]
struct Downsampler {
    prev: i16,
}

impl Downsampler {
    fn process(&mut self, input: &[i16; FRAME_SAMPLES], out: &mut [i16; CHUNK_BYTES]) {
        for (i, o) in out.iter_mut().enumerate() {
            let a = self.prev as i32;
            let b = input[2 * i] as i32;
            let c = input[2 * i + 1] as i32;
            *o = ((a + 2 * b + c) / 4) as i16;
            self.prev = input[2 * i + 1];
        }
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
