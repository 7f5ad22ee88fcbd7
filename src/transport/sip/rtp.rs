//! RTP packets (RFC 3550) in and out, through rtp-rs: the receive side
//! classifies a datagram (audio, telephone-event, or rejected with a reason);
//! the send side keeps one continuous sequence/timestamp space per call, marks
//! the first packet of each talk-spurt, and keeps ticking with silence.

use rtp_rs::{RtpPacketBuilder, RtpReader, Seq};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming<'a> {
    Audio {
        ssrc: u32,
        seq: u16,
        timestamp: u32,
        payload: &'a [u8],
    },
    Event {
        ssrc: u32,
        timestamp: u32,
        payload: &'a [u8],
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtpError {
    #[error("not an RTP packet: {0}")]
    Malformed(String),
    #[error("unexpected payload type {0}")]
    PayloadType(u8),
}

/// Reads one datagram; `audio_pt` and `event_pt` are the negotiated payload types.
pub fn classify(data: &[u8], audio_pt: u8, event_pt: Option<u8>) -> Result<Incoming<'_>, RtpError> {
    let r = RtpReader::new(data).map_err(|e| RtpError::Malformed(format!("{e:?}")))?;
    if r.version() != 2 {
        return Err(RtpError::Malformed(format!("version {}", r.version())));
    }
    let pt = r.payload_type();
    if pt == audio_pt {
        Ok(Incoming::Audio {
            ssrc: r.ssrc(),
            seq: u16::from(r.sequence_number()),
            timestamp: r.timestamp(),
            payload: r.payload(),
        })
    } else if Some(pt) == event_pt {
        Ok(Incoming::Event {
            ssrc: r.ssrc(),
            timestamp: r.timestamp(),
            payload: r.payload(),
        })
    } else {
        Err(RtpError::PayloadType(pt))
    }
}

/// Outgoing stream state for one call.
#[derive(Debug)]
pub struct Sender {
    ssrc: u32,
    payload_type: u8,
    seq: u16,
    timestamp: u32,
    samples_per_packet: u32,
    talking: bool,
}

impl Sender {
    /// `seed` picks the random SSRC, first sequence number and timestamp (RFC 3550 §5.1).
    pub fn new(payload_type: u8, samples_per_packet: u32, seed: u64) -> Sender {
        Sender {
            ssrc: (seed >> 32) as u32,
            payload_type,
            seq: (seed >> 16) as u16,
            timestamp: seed as u32,
            samples_per_packet,
            talking: false,
        }
    }

    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Builds the next packet into `out` (cleared first). `speech` says whether
    /// the payload is agent speech; the marker bit goes on the first packet of each spurt.
    pub fn next_packet(&mut self, payload: &[u8], speech: bool, out: &mut Vec<u8>) {
        let marker = speech && !self.talking;
        self.talking = speech;
        out.clear();
        out.resize(12 + payload.len(), 0);
        let built = RtpPacketBuilder::new()
            .payload_type(self.payload_type)
            .marked(marker)
            .sequence(Seq::from(self.seq))
            .timestamp(self.timestamp)
            .ssrc(self.ssrc)
            .payload(payload)
            .build_into(out);
        match built {
            Ok(n) => out.truncate(n),
            Err(_) => out.clear(),
        }
        self.seq = self.seq.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(self.samples_per_packet);
    }

    /// An RFC 4733 event packet at the current timestamp (for sending DTMF).
    pub fn event_packet(
        &mut self,
        event_pt: u8,
        payload: &[u8; 4],
        first: bool,
        out: &mut Vec<u8>,
    ) {
        out.clear();
        out.resize(16, 0);
        let built = RtpPacketBuilder::new()
            .payload_type(event_pt)
            .marked(first)
            .sequence(Seq::from(self.seq))
            .timestamp(self.timestamp)
            .ssrc(self.ssrc)
            .payload(payload)
            .build_into(out);
        if built.is_err() {
            out.clear();
        }
        self.seq = self.seq.wrapping_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuous_numbering_and_marker_at_spurt_start() {
        let mut s = Sender::new(0, 160, 0x1234_5678_fffe_0010);
        let mut pkts = Vec::new();
        for speech in [false, true, true, false, true] {
            let mut out = Vec::new();
            s.next_packet(&[0xff; 160], speech, &mut out);
            pkts.push(out);
        }
        let read: Vec<_> = pkts.iter().map(|p| RtpReader::new(p).unwrap()).collect();
        let seqs: Vec<u16> = read
            .iter()
            .map(|r| u16::from(r.sequence_number()))
            .collect();
        assert_eq!(
            seqs,
            [0xfffe, 0xffff, 0, 1, 2],
            "sequence wraps without a gap"
        );
        let ts: Vec<u32> = read.iter().map(|r| r.timestamp()).collect();
        assert!(ts.windows(2).all(|w| w[1].wrapping_sub(w[0]) == 160));
        let marks: Vec<bool> = read.iter().map(|r| r.mark()).collect();
        assert_eq!(marks, [false, true, false, false, true]);
        assert!(read
            .iter()
            .all(|r| r.ssrc() == 0x1234_5678 && r.payload().len() == 160));
    }

    #[test]
    fn classify_by_payload_type_and_reject_garbage() {
        let mut s = Sender::new(8, 160, 7);
        let mut out = Vec::new();
        s.next_packet(&[1, 2, 3], true, &mut out);
        assert!(matches!(
            classify(&out, 8, Some(101)),
            Ok(Incoming::Audio {
                payload: [1, 2, 3],
                ..
            })
        ));
        assert_eq!(classify(&out, 0, Some(101)), Err(RtpError::PayloadType(8)));
        s.event_packet(101, &[5, 0x80, 0, 160], true, &mut out);
        assert!(matches!(
            classify(&out, 8, Some(101)),
            Ok(Incoming::Event { .. })
        ));
        assert!(matches!(
            classify(&[0x80, 0], 8, None),
            Err(RtpError::Malformed(_))
        ));
        assert!(
            classify(&[0u8; 20], 8, None).is_err(),
            "version 0 is refused"
        );
    }
}
