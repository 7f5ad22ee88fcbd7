//! Caller audio not yet covered by a final result, so a dropped connection
//! loses no words: the frames are sent again on the next one. Pure
//! bookkeeping over frame indices; no socket and no clock.
//!
//! Frames are numbered from the start of the stream. The server times its
//! results from the first sample of *its* connection, so the backlog keeps
//! the index where the current connection's audio began (`origin`) and turns
//! a result's end time into a stream-wide frame index.

use std::collections::VecDeque;

use crate::audio::{Frame, FRAME_SAMPLES, SAMPLE_RATE};

#[derive(Debug)]
pub struct Backlog {
    frames: VecDeque<Frame>,
    /// Stream index of `frames[0]`.
    first: u64,
    /// Stream index of the next frame to send on the current connection.
    next_to_send: u64,
    /// Stream index of the current connection's first frame.
    origin: u64,
    /// Most frames kept; older ones are dropped (and counted) past this.
    limit: usize,
    dropped: u64,
}

impl Backlog {
    pub fn new(limit: usize) -> Self {
        Backlog {
            frames: VecDeque::new(),
            first: 0,
            next_to_send: 0,
            origin: 0,
            limit: limit.max(1),
            dropped: 0,
        }
    }

    pub fn push(&mut self, frame: Frame) {
        if self.frames.len() == self.limit {
            self.frames.pop_front();
            self.first += 1;
            self.dropped += 1;
            self.next_to_send = self.next_to_send.max(self.first);
        }
        self.frames.push_back(frame);
    }

    /// Frames held (sent or not) that no final result covers yet.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Frames dropped because the backlog was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    pub fn has_unsent(&self) -> bool {
        self.next_to_send < self.end()
    }

    /// Appends up to `max_frames` unsent frames to `out` as linear16
    /// little-endian and marks them sent; returns how many.
    pub fn take_unsent(&mut self, max_frames: usize, out: &mut Vec<u8>) -> usize {
        let from = (self.next_to_send - self.first) as usize;
        let count = (self.frames.len() - from).min(max_frames);
        out.reserve(count * FRAME_SAMPLES * 2);
        for frame in self.frames.range(from..from + count) {
            for s in frame.samples() {
                out.extend_from_slice(&s.to_le_bytes());
            }
        }
        self.next_to_send += count as u64;
        count
    }

    /// A final result covers the current connection's audio up to `seconds`:
    /// forget every frame that ends by then. A frame only partly covered is
    /// kept, so a resend may repeat a fraction of a frame but never skips one.
    pub fn finalize_through(&mut self, seconds: f64) {
        if !(seconds.is_finite() && seconds > 0.0) {
            return;
        }
        let samples = (seconds * f64::from(SAMPLE_RATE)).round() as u64;
        let covered = (self.origin + samples / FRAME_SAMPLES as u64).min(self.next_to_send);
        while self.first < covered && self.frames.pop_front().is_some() {
            self.first += 1;
        }
    }

    /// A new connection starts: everything held is unsent again, and the new
    /// connection's time zero is the oldest frame held.
    pub fn restart(&mut self) {
        self.origin = self.first;
        self.next_to_send = self.first;
    }

    fn end(&self) -> u64 {
        self.first + self.frames.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(v: i16) -> Frame {
        Frame([v; FRAME_SAMPLES])
    }

    /// The first sample of each frame in a linear16 batch.
    fn markers(bytes: &[u8]) -> Vec<i16> {
        bytes
            .chunks(FRAME_SAMPLES * 2)
            .map(|f| i16::from_le_bytes([f[0], f[1]]))
            .collect()
    }

    fn backlog_of(n: i16) -> Backlog {
        let mut b = Backlog::new(100);
        for v in 0..n {
            b.push(frame(v));
        }
        b
    }

    #[test]
    fn sends_in_batches_as_little_endian() {
        let mut b = backlog_of(5);
        let mut out = Vec::new();
        assert_eq!(b.take_unsent(3, &mut out), 3);
        assert_eq!(out.len(), 3 * FRAME_SAMPLES * 2);
        assert_eq!(markers(&out), [0, 1, 2]);
        out.clear();
        assert_eq!(b.take_unsent(3, &mut out), 2);
        assert_eq!(markers(&out), [3, 4]);
        assert!(!b.has_unsent());
        assert_eq!(b.take_unsent(3, &mut out), 0);
        let mut le = Backlog::new(4);
        le.push(frame(-2));
        let mut out = Vec::new();
        le.take_unsent(1, &mut out);
        assert_eq!(&out[..2], &[0xFE, 0xFF]);
    }

    #[test]
    fn finals_forget_covered_frames_only() {
        let mut b = backlog_of(10);
        let mut out = Vec::new();
        b.take_unsent(10, &mut out);
        // 0.1 s = 5 frames; 0.11 s covers half of the sixth, which stays.
        b.finalize_through(0.11);
        assert_eq!(b.len(), 5);
        // Float noise just under a frame boundary still counts as the boundary.
        b.finalize_through(0.139_999_999);
        assert_eq!(b.len(), 3);
        b.restart();
        out.clear();
        b.take_unsent(10, &mut out);
        assert_eq!(markers(&out), [7, 8, 9]);
    }

    #[test]
    fn finals_never_cover_unsent_audio() {
        let mut b = backlog_of(10);
        let mut out = Vec::new();
        b.take_unsent(4, &mut out);
        b.finalize_through(10.0);
        assert_eq!(b.len(), 6);
        assert!(b.has_unsent());
    }

    #[test]
    fn times_after_a_reconnect_count_from_the_resent_audio() {
        let mut b = backlog_of(10);
        let mut out = Vec::new();
        b.take_unsent(10, &mut out);
        b.finalize_through(0.06); // frames 0..3 final on the first connection
        b.restart(); // the second connection's t=0 is frame 3
        out.clear();
        b.take_unsent(10, &mut out);
        assert_eq!(markers(&out)[0], 3);
        b.finalize_through(0.04); // frames 3..5
        b.restart();
        out.clear();
        b.take_unsent(10, &mut out);
        assert_eq!(markers(&out), [5, 6, 7, 8, 9]);
    }

    #[test]
    fn ignores_nonsense_times() {
        let mut b = backlog_of(3);
        let mut out = Vec::new();
        b.take_unsent(3, &mut out);
        for t in [f64::NAN, -1.0, 0.0, f64::INFINITY] {
            b.finalize_through(t);
        }
        assert_eq!(b.len(), 3);
    }

    #[test]
    fn a_full_backlog_drops_the_oldest() {
        let mut b = Backlog::new(3);
        for v in 0..5 {
            b.push(frame(v));
        }
        assert_eq!(b.len(), 3);
        assert_eq!(b.dropped(), 2);
        let mut out = Vec::new();
        b.take_unsent(10, &mut out);
        assert_eq!(markers(&out), [2, 3, 4]);
    }
}
