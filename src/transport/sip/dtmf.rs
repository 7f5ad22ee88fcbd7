//! RFC 4733 telephone-event decoding. A key press is one event spread over
//! several packets sharing an RTP timestamp, ending with (usually three) End
//! packets. We report each digit once, keyed by the event's timestamp and End
//! bit — never the marker bit, which some carriers omit.

/// One telephone-event payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventPayload {
    pub event: u8,
    pub end: bool,
    pub volume: u8,
    pub duration: u16,
}

impl EventPayload {
    pub fn parse(payload: &[u8]) -> Option<EventPayload> {
        if payload.len() < 4 {
            return None;
        }
        Some(EventPayload {
            event: payload[0],
            end: payload[1] & 0x80 != 0,
            volume: payload[1] & 0x3f,
            duration: u16::from_be_bytes([payload[2], payload[3]]),
        })
    }

    pub fn to_bytes(self) -> [u8; 4] {
        let d = self.duration.to_be_bytes();
        [
            self.event,
            (u8::from(self.end) << 7) | (self.volume & 0x3f),
            d[0],
            d[1],
        ]
    }
}

/// The character of a DTMF event code, if it is a key.
pub fn digit(event: u8) -> Option<char> {
    match event {
        0..=9 => Some((b'0' + event) as char),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some((b'A' + event - 12) as char),
        _ => None,
    }
}

/// The event code of a key.
pub fn event_code(key: char) -> Option<u8> {
    match key {
        '0'..='9' => Some(key as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        'A'..='D' => Some(key as u8 - b'A' + 12),
        _ => None,
    }
}

/// Turns a stream of telephone-event packets into key presses.
#[derive(Debug, Default)]
pub struct DtmfDecoder {
    /// Timestamp and code of the event in progress, not yet reported.
    pending: Option<(u32, u8)>,
    /// Timestamp of the last event reported, so its redundant End packets are ignored.
    reported: Option<u32>,
}

impl DtmfDecoder {
    pub fn new() -> DtmfDecoder {
        DtmfDecoder::default()
    }

    /// Feeds one packet; returns up to two digits (a previous event whose End
    /// packets were all lost, then this one if it ended).
    pub fn push(&mut self, rtp_timestamp: u32, payload: &[u8]) -> Vec<char> {
        let Some(ev) = EventPayload::parse(payload) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        if self.reported == Some(rtp_timestamp) {
            return out;
        }
        if let Some((ts, code)) = self.pending {
            if ts != rtp_timestamp {
                // A new event began before the old one ended: its End packets were lost.
                out.extend(digit(code));
                self.reported = Some(ts);
                self.pending = None;
            }
        }
        if ev.end {
            out.extend(digit(ev.event));
            self.reported = Some(rtp_timestamp);
            self.pending = None;
        } else {
            self.pending = Some((rtp_timestamp, ev.event));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(event: u8, end: bool, duration: u16) -> [u8; 4] {
        EventPayload {
            event,
            end,
            volume: 10,
            duration,
        }
        .to_bytes()
    }

    #[test]
    fn one_digit_despite_three_end_packets_and_no_marker() {
        let mut d = DtmfDecoder::new();
        let mut got = Vec::new();
        for dur in [160, 320, 480] {
            got.extend(d.push(1000, &pkt(5, false, dur)));
        }
        for _ in 0..3 {
            got.extend(d.push(1000, &pkt(5, true, 640)));
        }
        assert_eq!(got, vec!['5']);
    }

    #[test]
    fn same_digit_twice_is_two_presses_by_timestamp() {
        let mut d = DtmfDecoder::new();
        let mut got = Vec::new();
        got.extend(d.push(1000, &pkt(0, true, 800)));
        got.extend(d.push(1000, &pkt(0, true, 800)));
        got.extend(d.push(5000, &pkt(0, false, 160)));
        got.extend(d.push(5000, &pkt(0, true, 800)));
        assert_eq!(got, vec!['0', '0']);
    }

    #[test]
    fn lost_end_packets_still_report_the_digit_once() {
        let mut d = DtmfDecoder::new();
        assert!(d.push(100, &pkt(11, false, 160)).is_empty());
        assert_eq!(d.push(900, &pkt(10, false, 160)), vec!['#']);
        assert_eq!(d.push(900, &pkt(10, true, 480)), vec!['*']);
    }

    #[test]
    fn codes_and_bad_payloads() {
        assert_eq!(digit(12), Some('A'));
        assert_eq!(digit(16), None);
        for k in "0123456789*#ABCD".chars() {
            assert_eq!(digit(event_code(k).unwrap()), Some(k));
        }
        assert!(DtmfDecoder::new().push(1, &[1, 2]).is_empty());
        let p = EventPayload::parse(&pkt(3, true, 1234)).unwrap();
        assert_eq!((p.event, p.end, p.volume, p.duration), (3, true, 10, 1234));
    }
}
