//! Opus for SIP calls (RFC 7587) through audiopus: mono, 20 ms packets,
//! encoded from and decoded to our 16 kHz frames (Opus resamples internally;
//! its RTP clock is always 48 kHz). Loss is concealed by the decoder itself.

use audiopus::coder::{Decoder, Encoder};
use audiopus::{Application, Channels, SampleRate};

use crate::audio::{Frame, FRAME_SAMPLES};

pub struct OpusCodec {
    encoder: Encoder,
    decoder: Decoder,
}

impl std::fmt::Debug for OpusCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OpusCodec")
    }
}

/// Largest Opus packet we produce for 20 ms of voice.
pub const MAX_PACKET: usize = 400;

impl OpusCodec {
    pub fn new() -> Result<OpusCodec, String> {
        let encoder = Encoder::new(SampleRate::Hz16000, Channels::Mono, Application::Voip)
            .map_err(|e| format!("opus encoder: {e}"))?;
        let decoder = Decoder::new(SampleRate::Hz16000, Channels::Mono)
            .map_err(|e| format!("opus decoder: {e}"))?;
        Ok(OpusCodec { encoder, decoder })
    }

    /// Decodes one packet; a packet that does not hold 20 ms, or is corrupt, gives `None`.
    pub fn decode(&mut self, packet: &[u8]) -> Option<Frame> {
        let mut out = Frame::SILENCE;
        match self.decoder.decode(Some(packet), &mut out.0[..], false) {
            Ok(n) if n == FRAME_SAMPLES => Some(out),
            _ => None,
        }
    }

    /// Packet-loss concealment for one missing 20 ms packet.
    pub fn conceal(&mut self) -> Frame {
        let mut out = Frame::SILENCE;
        let none: Option<&[u8]> = None;
        if self.decoder.decode(none, &mut out.0[..], false).is_err() {
            return Frame::SILENCE;
        }
        out
    }

    /// Encodes one frame into `out`; returns the packet length (0 on failure).
    pub fn encode(&mut self, frame: &Frame, out: &mut [u8]) -> usize {
        self.encoder.encode(&frame.0, out).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tone_survives_a_round_trip() {
        let mut codec = OpusCodec::new().unwrap();
        let mut packet = [0u8; MAX_PACKET];
        let mut energy_in = 0.0f64;
        let mut energy_out = 0.0f64;
        for i in 0..50 {
            let mut f = Frame::SILENCE;
            for (n, s) in f.0.iter_mut().enumerate() {
                let t = (i * FRAME_SAMPLES + n) as f64 / 16_000.0;
                *s = (6000.0 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()) as i16;
            }
            let len = codec.encode(&f, &mut packet);
            assert!(len > 0 && len < MAX_PACKET);
            let back = codec.decode(&packet[..len]).expect("decodes to 20 ms");
            if i >= 10 {
                energy_in += f.0.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>();
                energy_out += back.0.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>();
            }
        }
        let ratio = energy_out / energy_in;
        assert!((0.5..2.0).contains(&ratio), "energy ratio {ratio}");
        assert!(
            codec.decode(&[0xff, 0xff, 0xff]).is_none(),
            "garbage is refused"
        );
        let _ = codec.conceal();
    }
}
