//! RIFF/WAVE reading and writing for fixtures, `simulate --wav` and tests.
//! Owns the container parsing and sample decoding (PCM 8/16/24/32-bit, IEEE
//! float 32, μ-law, A-law; any channel count, mixed down to mono) and hands
//! back 16 kHz mono PCM16 through `resample`. Writes PCM16 mono only.
//!
//! Not on the call path: it allocates freely but never panics on bad input;
//! every malformed file is a specific [`WavError`].

use std::path::Path;

use super::g711::{alaw_decode, ulaw_decode};
use super::resample::{
    check_rate, resample_to_16k, ResampleError, Upsampler, NARROW_FRAME_SAMPLES,
};
use super::FRAME_SAMPLES;

const FORMAT_PCM: u16 = 1;
const FORMAT_FLOAT: u16 = 3;
const FORMAT_ALAW: u16 = 6;
const FORMAT_ULAW: u16 = 7;
const FORMAT_EXTENSIBLE: u16 = 0xFFFE;

/// Why a WAV file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum WavError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("not a RIFF/WAVE file")]
    NotWave,
    #[error("WAV file has no `fmt ` chunk before its data")]
    MissingFormat,
    #[error("WAV file has no `data` chunk")]
    MissingData,
    #[error("WAV `fmt ` chunk is {0} bytes, too short")]
    ShortFormat(u32),
    #[error("unsupported WAV encoding: format tag {tag:#06x}, {bits} bits per sample")]
    Unsupported { tag: u16, bits: u16 },
    #[error("WAV header says {0} channels")]
    BadChannels(u16),
    #[error("WAV header block alignment {align} does not fit {channels} channels of {bits} bits")]
    BadBlockAlign {
        align: u16,
        channels: u16,
        bits: u16,
    },
    #[error("WAV sample rate: {0}")]
    Rate(#[from] ResampleError),
}

/// Sample encodings this reader understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Pcm8,
    Pcm16,
    Pcm24,
    Pcm32,
    Float32,
    Ulaw,
    Alaw,
}

/// A decoded WAV file, mixed down to mono at its own sample rate.
#[derive(Debug, Clone, PartialEq)]
pub struct WavAudio {
    pub sample_rate: u32,
    pub channels: u16,
    pub encoding: Encoding,
    /// Mono samples at `sample_rate`.
    pub samples: Vec<i16>,
}

impl WavAudio {
    /// The samples converted to 16 kHz (the internal rate). Telephone-rate
    /// audio goes through the same [`Upsampler`] as live calls.
    pub fn to_16k(&self) -> Result<Vec<i16>, WavError> {
        if self.sample_rate != 8000 {
            return Ok(resample_to_16k(&self.samples, self.sample_rate)?);
        }
        let mut up = Upsampler::new();
        let mut out = Vec::with_capacity(self.samples.len() * 2 + FRAME_SAMPLES);
        let mut frame = [0i16; NARROW_FRAME_SAMPLES];
        for chunk in self.samples.chunks(NARROW_FRAME_SAMPLES) {
            frame.fill(0);
            frame[..chunk.len()].copy_from_slice(chunk);
            let wide = up.process(&frame);
            out.extend_from_slice(&wide.0[..chunk.len() * 2]);
        }
        Ok(out)
    }
}

/// Reads a WAV file and returns mono PCM16 at 16 kHz.
pub fn read_wav_16k(path: &Path) -> Result<Vec<i16>, WavError> {
    read_wav(path)?.to_16k()
}

/// Reads and decodes a WAV file at its own rate.
pub fn read_wav(path: &Path) -> Result<WavAudio, WavError> {
    let bytes = std::fs::read(path).map_err(|source| WavError::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse_wav(&bytes)
}

struct Format {
    encoding: Encoding,
    channels: u16,
    sample_rate: u32,
    block_align: u16,
}

/// Decodes WAV bytes. A `data` chunk whose declared size runs past the end of
/// the buffer (a truncated or streamed file) is read up to the last whole
/// sample frame present.
pub fn parse_wav(bytes: &[u8]) -> Result<WavAudio, WavError> {
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(WavError::NotWave);
    }
    let mut pos = 12usize;
    let mut format: Option<Format> = None;
    while let Some(header) = pos.checked_add(8).and_then(|end| bytes.get(pos..end)) {
        let id = &header[0..4];
        let size = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let body_start = pos + 8;
        let body_end = body_start.saturating_add(size as usize).min(bytes.len());
        let body = &bytes[body_start..body_end];
        match id {
            b"fmt " => format = Some(parse_format(body, size)?),
            b"data" => {
                let fmt = format.ok_or(WavError::MissingFormat)?;
                return Ok(decode_data(&fmt, body));
            }
            _ => {}
        }
        // Chunks are padded to an even length.
        pos = body_start
            .saturating_add(size as usize)
            .saturating_add(size as usize & 1);
    }
    Err(WavError::MissingData)
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn parse_format(body: &[u8], size: u32) -> Result<Format, WavError> {
    if body.len() < 16 {
        return Err(WavError::ShortFormat(size));
    }
    let mut tag = le16(body, 0);
    let channels = le16(body, 2);
    let sample_rate = u32::from_le_bytes([body[4], body[5], body[6], body[7]]);
    let block_align = le16(body, 12);
    let bits = le16(body, 14);
    if tag == FORMAT_EXTENSIBLE {
        // The real format tag is the first two bytes of the sub-format GUID.
        if body.len() < 26 {
            return Err(WavError::ShortFormat(size));
        }
        tag = le16(body, 24);
    }
    let encoding = match (tag, bits) {
        (FORMAT_PCM, 8) => Encoding::Pcm8,
        (FORMAT_PCM, 16) => Encoding::Pcm16,
        (FORMAT_PCM, 24) => Encoding::Pcm24,
        (FORMAT_PCM, 32) => Encoding::Pcm32,
        (FORMAT_FLOAT, 32) => Encoding::Float32,
        (FORMAT_ULAW, 8) => Encoding::Ulaw,
        (FORMAT_ALAW, 8) => Encoding::Alaw,
        _ => return Err(WavError::Unsupported { tag, bits }),
    };
    if channels == 0 || channels > 32 {
        return Err(WavError::BadChannels(channels));
    }
    if block_align as u32 != channels as u32 * (bits as u32 / 8) {
        return Err(WavError::BadBlockAlign {
            align: block_align,
            channels,
            bits,
        });
    }
    check_rate(sample_rate)?;
    Ok(Format {
        encoding,
        channels,
        sample_rate,
        block_align,
    })
}

fn decode_data(fmt: &Format, data: &[u8]) -> WavAudio {
    let block = fmt.block_align as usize;
    let width = block / fmt.channels as usize;
    let samples = data
        .chunks_exact(block)
        .map(|frame| {
            let sum: i32 = frame
                .chunks_exact(width)
                .map(|s| decode_sample(fmt.encoding, s) as i32)
                .sum();
            (sum / fmt.channels as i32) as i16
        })
        .collect();
    WavAudio {
        sample_rate: fmt.sample_rate,
        channels: fmt.channels,
        encoding: fmt.encoding,
        samples,
    }
}

/// One sample of `enc` from exactly its byte width.
fn decode_sample(enc: Encoding, b: &[u8]) -> i16 {
    match enc {
        Encoding::Pcm8 => ((b[0] as i16) - 128) << 8,
        Encoding::Pcm16 => i16::from_le_bytes([b[0], b[1]]),
        Encoding::Pcm24 => i16::from_le_bytes([b[1], b[2]]),
        Encoding::Pcm32 => i16::from_le_bytes([b[2], b[3]]),
        Encoding::Float32 => {
            let f = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            // NaN becomes 0 and out-of-range values clip (`as` saturates).
            (f * 32768.0) as i16
        }
        Encoding::Ulaw => ulaw_decode(b[0]),
        Encoding::Alaw => alaw_decode(b[0]),
    }
}

/// Encodes PCM16 mono samples as a WAV file image.
pub fn encode_wav(samples: &[i16], sample_rate: u32) -> Vec<u8> {
    let data_len = samples.len() as u64 * 2;
    // RIFF sizes are 32-bit; longer audio is cut at the largest size that fits.
    let data_len = data_len.min(u32::MAX as u64 - 36) as u32 & !1;
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&FORMAT_PCM.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&sample_rate.to_le_bytes());
    out.extend_from_slice(&(sample_rate.saturating_mul(2)).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in &samples[..data_len as usize / 2] {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

/// Writes PCM16 mono samples to a WAV file.
pub fn write_wav(path: &Path, samples: &[i16], sample_rate: u32) -> std::io::Result<()> {
    std::fs::write(path, encode_wav(samples, sample_rate))
}

#[cfg(test)]
#[path = "wav_tests.rs"]
mod tests;
