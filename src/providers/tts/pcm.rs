//! Raw PCM response bodies into 20 ms frames, as the bytes arrive. Owns the
//! byte-to-sample decoding (16-bit little-endian, a sample may be split
//! across network chunks), the optional 24 kHz → 16 kHz conversion and the
//! cutting into [`Frame`]s; plus [`stream_speech`], the loop shared by the
//! HTTP speech clients that makes each request and forwards its body to the
//! synthesis channel. [`PcmFramer`] is pure; only the loops do I/O.

use tokio::sync::mpsc;

use crate::audio::rational::Resampler24kTo16k;
use crate::audio::{Frame, FRAME_SAMPLES};
use crate::providers::http::BodyReader;
use crate::providers::ProviderError;

/// The sample rates a body may arrive at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PcmRate {
    /// Already the internal rate (ElevenLabs `pcm_16000`).
    Hz16000,
    /// Converted on the fly (OpenAI `pcm`).
    Hz24000,
}

/// Decodes a PCM16LE mono byte stream into 16 kHz frames.
pub struct PcmFramer {
    /// The first byte of a sample whose second byte has not arrived yet.
    split_byte: Option<u8>,
    /// Decoded samples at the body's rate (scratch, reused).
    decoded: Vec<i16>,
    resampler: Option<Resampler24kTo16k>,
    /// Samples at 16 kHz (scratch for the resampler's output).
    converted: Vec<i16>,
    /// The frame being filled and how many samples it holds.
    frame: Frame,
    filled: usize,
}

impl PcmFramer {
    pub fn new(rate: PcmRate) -> Self {
        PcmFramer {
            split_byte: None,
            decoded: Vec::new(),
            resampler: (rate == PcmRate::Hz24000).then(Resampler24kTo16k::new),
            converted: Vec::new(),
            frame: Frame::SILENCE,
            filled: 0,
        }
    }

    /// Takes the next bytes of the body; every frame completed by them is
    /// appended to `out`.
    pub fn push(&mut self, mut bytes: &[u8], out: &mut Vec<Frame>) {
        self.decoded.clear();
        if let Some(first) = self.split_byte.take() {
            match bytes.split_first() {
                Some((second, rest)) => {
                    self.decoded.push(i16::from_le_bytes([first, *second]));
                    bytes = rest;
                }
                None => {
                    self.split_byte = Some(first);
                    return;
                }
            }
        }
        let pairs = bytes.chunks_exact(2);
        self.split_byte = pairs.remainder().first().copied();
        self.decoded
            .extend(pairs.map(|p| i16::from_le_bytes([p[0], p[1]])));
        self.emit_decoded(out);
    }

    /// Ends the body: lets the converter's tail out and pads the last frame
    /// with silence. Returns whether a dangling half sample was dropped.
    pub fn finish(&mut self, out: &mut Vec<Frame>) -> bool {
        let dangling = self.split_byte.take().is_some();
        if let Some(r) = self.resampler.as_mut() {
            self.converted.clear();
            r.flush(&mut self.converted);
            let tail = std::mem::take(&mut self.converted);
            self.cut(&tail, out);
            self.converted = tail;
        }
        if self.filled > 0 {
            self.frame.0[self.filled..].fill(0);
            out.push(self.frame.clone());
            self.filled = 0;
        }
        dangling
    }

    fn emit_decoded(&mut self, out: &mut Vec<Frame>) {
        let decoded = std::mem::take(&mut self.decoded);
        match self.resampler.as_mut() {
            Some(r) => {
                self.converted.clear();
                r.process(&decoded, &mut self.converted);
                let converted = std::mem::take(&mut self.converted);
                self.cut(&converted, out);
                self.converted = converted;
            }
            None => self.cut(&decoded, out),
        }
        self.decoded = decoded;
    }

    fn cut(&mut self, mut samples: &[i16], out: &mut Vec<Frame>) {
        while !samples.is_empty() {
            let take = (FRAME_SAMPLES - self.filled).min(samples.len());
            self.frame.0[self.filled..self.filled + take].copy_from_slice(&samples[..take]);
            self.filled += take;
            samples = &samples[take..];
            if self.filled == FRAME_SAMPLES {
                out.push(self.frame.clone());
                self.filled = 0;
            }
        }
    }
}

/// Forwards a streaming PCM body to `tx` frame by frame, each as soon as it
/// is complete. Returns `Ok(true)` at the end of the body, `Ok(false)` when
/// the receiver was dropped (synthesis cancelled), or the body's error after
/// the frames already delivered.
async fn forward_body(
    mut body: BodyReader,
    framer: &mut PcmFramer,
    tx: &mpsc::Sender<Result<Frame, ProviderError>>,
) -> Result<bool, ProviderError> {
    let mut frames = Vec::new();
    loop {
        let chunk = tokio::select! {
            _ = tx.closed() => return Ok(false),
            chunk = body.next() => chunk?,
        };
        let Some(chunk) = chunk else {
            return Ok(true);
        };
        framer.push(&chunk, &mut frames);
        for frame in frames.drain(..) {
            if tx.send(Ok(frame)).await.is_err() {
                return Ok(false);
            }
        }
    }
}

/// One synthesis over HTTP: for each piece of text in order, `request` makes
/// the call and its PCM body is forwarded frame by frame into `tx`; the
/// pieces share one framer, so they join without a gap. The first error is
/// sent after the frames already delivered and ends the synthesis; a dropped
/// receiver stops everything, including a request still waiting for headers.
pub async fn stream_speech<F, Fut>(
    engine: &'static str,
    rate: PcmRate,
    timeout: std::time::Duration,
    pieces: Vec<String>,
    tx: mpsc::Sender<Result<Frame, ProviderError>>,
    request: F,
) where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<reqwest::Response, ProviderError>>,
{
    let mut framer = PcmFramer::new(rate);
    for piece in pieces {
        let response = tokio::select! {
            _ = tx.closed() => return,
            r = request(piece) => r,
        };
        let outcome = match response {
            Ok(r) => forward_body(BodyReader::new(engine, r, timeout), &mut framer, &tx).await,
            Err(e) => Err(e),
        };
        match outcome {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(engine, error = %e, "speech request failed");
                let _ = tx.send(Err(e)).await;
                return;
            }
        }
    }
    let mut frames = Vec::new();
    if framer.finish(&mut frames) {
        tracing::warn!(
            engine,
            "speech body ended inside a sample; dropped one byte"
        );
    }
    for frame in frames {
        if tx.send(Ok(frame)).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_of(samples: &[i16]) -> Vec<u8> {
        samples.iter().flat_map(|s| s.to_le_bytes()).collect()
    }

    fn samples_of(frames: &[Frame]) -> Vec<i16> {
        frames.iter().flat_map(|f| f.0).collect()
    }

    #[test]
    fn sixteen_k_bodies_split_anywhere_give_the_same_frames() {
        let samples: Vec<i16> = (0..1000).map(|i| (i * 37 - 18_000) as i16).collect();
        let body = bytes_of(&samples);
        for chunk in [1, 2, 3, 639, 640, 641, 2000] {
            let mut framer = PcmFramer::new(PcmRate::Hz16000);
            let mut frames = Vec::new();
            for piece in body.chunks(chunk) {
                framer.push(piece, &mut frames);
            }
            assert_eq!(frames.len(), 3, "complete frames only, chunk {chunk}");
            assert!(!framer.finish(&mut frames));
            let out = samples_of(&frames);
            assert_eq!(out.len(), 4 * FRAME_SAMPLES);
            assert_eq!(&out[..1000], &samples[..], "chunk {chunk}");
            assert!(out[1000..].iter().all(|s| *s == 0), "padded with silence");
        }
    }

    #[test]
    fn a_frame_is_out_as_soon_as_its_last_byte_arrives() {
        let mut framer = PcmFramer::new(PcmRate::Hz16000);
        let mut frames = Vec::new();
        framer.push(&[0u8; 639], &mut frames);
        assert!(frames.is_empty());
        framer.push(&[0u8; 1], &mut frames);
        assert_eq!(frames.len(), 1);
    }

    #[test]
    fn a_dangling_byte_is_reported_and_dropped() {
        let mut framer = PcmFramer::new(PcmRate::Hz16000);
        let mut frames = Vec::new();
        framer.push(&[1, 0, 7], &mut frames);
        assert!(framer.finish(&mut frames));
        assert_eq!(frames.len(), 1);
        assert_eq!(&frames[0].0[..2], &[1, 0]);
    }

    #[test]
    fn twenty_four_k_bodies_are_converted_whole() {
        let samples: Vec<i16> = (0..2400)
            .map(|i| ((i as f64 * 0.26).sin() * 8000.0) as i16)
            .collect();
        let mut reference = Vec::new();
        let mut r = Resampler24kTo16k::new();
        r.process(&samples, &mut reference);
        r.flush(&mut reference);
        let body = bytes_of(&samples);
        let mut framer = PcmFramer::new(PcmRate::Hz24000);
        let mut frames = Vec::new();
        for piece in body.chunks(333) {
            framer.push(piece, &mut frames);
        }
        framer.finish(&mut frames);
        let out = samples_of(&frames);
        assert_eq!(
            out.len(),
            reference.len().div_ceil(FRAME_SAMPLES) * FRAME_SAMPLES
        );
        assert_eq!(&out[..reference.len()], &reference[..]);
    }
}
