//! A small adaptive jitter buffer for one RTP stream (RFC 3550): it reorders,
//! drops duplicates and late packets, follows sequence-number wrap, restarts on
//! an SSRC change, and sizes its playout delay from measured interarrival
//! jitter. Sans-IO: packets and the 20 ms playout tick carry their own times.

use std::collections::BTreeMap;
use std::time::Instant;

/// Smallest and largest playout depth, in 20 ms packets.
const MIN_DEPTH: usize = 1;
const MAX_DEPTH: usize = 8;
/// Packets further than this ahead of the playout point are treated as a stream restart.
const MAX_JUMP: i64 = 500;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Playout {
    /// The next packet's payload, in order.
    Packet {
        seq: u16,
        timestamp: u32,
        payload: Vec<u8>,
    },
    /// The packet due now is missing (lost or not yet arrived): conceal.
    Missing,
    /// Still filling up (start of stream): play silence.
    Buffering,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct JitterStats {
    pub received: u64,
    pub duplicates: u64,
    pub late: u64,
    pub lost: u64,
    pub ssrc_changes: u64,
}

#[derive(Debug)]
pub struct JitterBuffer {
    clock_rate: u32,
    ssrc: Option<u32>,
    /// Extended sequence number → (timestamp, payload).
    packets: BTreeMap<i64, (u32, Vec<u8>)>,
    /// Extended sequence of the last packet received, for unwrapping.
    highest: Option<i64>,
    /// Extended sequence of the next packet to play.
    next: Option<i64>,
    playing: bool,
    jitter: f64,
    last_transit: Option<f64>,
    epoch: Option<Instant>,
    stats: JitterStats,
}

impl JitterBuffer {
    pub fn new(clock_rate: u32) -> JitterBuffer {
        JitterBuffer {
            clock_rate,
            ssrc: None,
            packets: BTreeMap::new(),
            highest: None,
            next: None,
            playing: false,
            jitter: 0.0,
            last_transit: None,
            epoch: None,
            stats: JitterStats::default(),
        }
    }

    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    /// Interarrival jitter estimate in milliseconds.
    pub fn jitter_ms(&self) -> f64 {
        self.jitter * 1000.0 / f64::from(self.clock_rate)
    }

    /// The playout depth (packets) the current jitter calls for.
    pub fn target_depth(&self) -> usize {
        // Twice the jitter, rounded to whole packets, plus the packet being played.
        let packets = (2.0 * self.jitter_ms() / 20.0).round() as usize + 1;
        packets.clamp(MIN_DEPTH, MAX_DEPTH)
    }

    fn reset(&mut self) {
        self.packets.clear();
        self.highest = None;
        self.next = None;
        self.playing = false;
        self.last_transit = None;
    }

    fn extend(&self, seq: u16) -> i64 {
        match self.highest {
            None => i64::from(seq),
            Some(h) => {
                // Pick the candidate closest to the highest seen (handles wrap both ways).
                let base = h - (h & 0xffff);
                [base - 0x10000, base, base + 0x10000]
                    .into_iter()
                    .map(|b| b + i64::from(seq))
                    .min_by_key(|c| (c - h).abs())
                    .unwrap_or(i64::from(seq))
            }
        }
    }

    fn update_jitter(&mut self, timestamp: u32, arrival: Instant) {
        let epoch = *self.epoch.get_or_insert(arrival);
        let arrival_units =
            arrival.duration_since(epoch).as_secs_f64() * f64::from(self.clock_rate);
        let transit = arrival_units - f64::from(timestamp);
        if let Some(last) = self.last_transit {
            let d = (transit - last).abs();
            // RFC 3550 §6.4.1: J += (|D| - J) / 16; ignore absurd jumps (timestamp resets).
            if d < f64::from(self.clock_rate) {
                self.jitter += (d - self.jitter) / 16.0;
            }
        }
        self.last_transit = Some(transit);
    }

    /// Accepts one received packet.
    pub fn push(&mut self, ssrc: u32, seq: u16, timestamp: u32, payload: &[u8], arrival: Instant) {
        if self.ssrc != Some(ssrc) {
            if self.ssrc.is_some() {
                self.stats.ssrc_changes += 1;
            }
            self.ssrc = Some(ssrc);
            self.reset();
        }
        let mut ext = self.extend(seq);
        if let Some(next) = self.next {
            if (ext - next).abs() > MAX_JUMP {
                // The sender restarted its sequence: start over.
                self.reset();
                ext = i64::from(seq);
            } else if ext < next {
                self.stats.late += 1;
                return;
            }
        }
        self.stats.received += 1;
        if self.packets.contains_key(&ext) {
            self.stats.duplicates += 1;
            return;
        }
        self.update_jitter(timestamp, arrival);
        self.highest = Some(self.highest.map_or(ext, |h| h.max(ext)));
        self.packets.insert(ext, (timestamp, payload.to_vec()));
        if self.next.is_none() {
            self.next = Some(ext);
        } else if let Some(n) = self.next {
            if ext < n {
                self.next = Some(ext);
            }
        }
    }

    /// Called once per 20 ms playout tick.
    pub fn pop(&mut self) -> Playout {
        let Some(next) = self.next else {
            return Playout::Buffering;
        };
        if !self.playing {
            if self.packets.len() < self.target_depth() {
                return Playout::Buffering;
            }
            self.playing = true;
        }
        // Too far behind (a burst arrived): skip ahead so delay stays bounded.
        while self.packets.len() > MAX_DEPTH * 2 {
            if let Some((&first, _)) = self.packets.iter().next() {
                self.packets.remove(&first);
                self.stats.lost += 1;
                self.next = Some(first + 1);
            }
        }
        let next = self.next.unwrap_or(next);
        self.next = Some(next + 1);
        match self.packets.remove(&next) {
            Some((timestamp, payload)) => Playout::Packet {
                seq: (next & 0xffff) as u16,
                timestamp,
                payload,
            },
            None => {
                self.stats.lost += 1;
                if self.packets.is_empty() {
                    // Underrun: rebuffer to the target depth.
                    self.playing = false;
                    self.next = None;
                }
                Playout::Missing
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn seqs(jb: &mut JitterBuffer, n: usize) -> Vec<Option<u16>> {
        (0..n)
            .map(|_| match jb.pop() {
                Playout::Packet { seq, .. } => Some(seq),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn reorders_and_drops_duplicates() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(8000);
        for (i, s) in [1u16, 3, 2, 2, 4].into_iter().enumerate() {
            jb.push(
                7,
                s,
                u32::from(s) * 160,
                &[s as u8],
                t0 + Duration::from_millis(20 * i as u64),
            );
        }
        assert_eq!(seqs(&mut jb, 4), vec![Some(1), Some(2), Some(3), Some(4)]);
        assert_eq!(jb.stats().duplicates, 1);
    }

    #[test]
    fn late_packets_are_dropped_and_gaps_reported() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(8000);
        jb.push(7, 10, 0, &[0], t0);
        jb.push(7, 12, 320, &[2], t0);
        assert_eq!(
            jb.pop(),
            Playout::Packet {
                seq: 10,
                timestamp: 0,
                payload: vec![0]
            }
        );
        assert_eq!(jb.pop(), Playout::Missing);
        jb.push(7, 11, 160, &[1], t0);
        assert_eq!(jb.stats().late, 1);
        assert!(matches!(jb.pop(), Playout::Packet { seq: 12, .. }));
        assert_eq!(jb.stats().lost, 1);
    }

    #[test]
    fn follows_sequence_wrap() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(8000);
        for (i, s) in [65534u16, 65535, 0, 1].into_iter().enumerate() {
            jb.push(
                1,
                s,
                i as u32 * 160,
                &[],
                t0 + Duration::from_millis(20 * i as u64),
            );
        }
        assert_eq!(
            seqs(&mut jb, 4),
            vec![Some(65534), Some(65535), Some(0), Some(1)]
        );
        assert_eq!(jb.stats().lost, 0);
    }

    #[test]
    fn ssrc_change_restarts_the_stream() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(8000);
        jb.push(1, 100, 0, &[], t0);
        assert!(matches!(jb.pop(), Playout::Packet { seq: 100, .. }));
        jb.push(2, 5000, 0, &[], t0);
        assert!(matches!(jb.pop(), Playout::Packet { seq: 5000, .. }));
        assert_eq!(jb.stats().ssrc_changes, 1);
    }

    #[test]
    fn depth_grows_with_jitter() {
        let t0 = Instant::now();
        let mut steady = JitterBuffer::new(8000);
        let mut jumpy = JitterBuffer::new(8000);
        for i in 0..200u32 {
            let on_time = t0 + Duration::from_millis(20 * u64::from(i));
            steady.push(1, i as u16, i * 160, &[], on_time);
            let wobble = if i % 2 == 0 { 0 } else { 60 };
            jumpy.push(
                1,
                i as u16,
                i * 160,
                &[],
                on_time + Duration::from_millis(wobble),
            );
        }
        assert_eq!(steady.target_depth(), 1);
        assert!(
            jumpy.target_depth() >= 4,
            "depth {} for jitter {} ms",
            jumpy.target_depth(),
            jumpy.jitter_ms()
        );
    }
}
