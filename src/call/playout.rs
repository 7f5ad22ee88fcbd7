//! Agent utterances: the one in flight, the ones waiting behind it, and what
//! the caller has heard of each, from the playback marks that came back.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::{Purpose, UtteranceId};

/// Base of the safety timeout after which an unreported utterance counts as played.
const SAFETY_BASE: Duration = Duration::from_secs(3);
/// Added per character: well above a slow speaking rate (~75 ms a character).
const SAFETY_PER_CHAR: Duration = Duration::from_millis(120);

#[derive(Debug, Clone)]
pub struct Playing {
    pub id: UtteranceId,
    pub purpose: Purpose,
    pub sentences: Vec<String>,
    /// Sentences acknowledged by marks, from the start.
    pub heard: usize,
    pub started: Instant,
    pub safety: Instant,
}

/// An utterance that is over, with what the caller heard of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    pub id: UtteranceId,
    pub purpose: Purpose,
    pub text: String,
    pub heard_text: String,
    /// Set when the utterance was cut before its end: characters heard.
    pub heard_chars: Option<usize>,
    pub started: Instant,
}

#[derive(Debug, Default)]
pub struct Playout {
    next_id: u64,
    current: Option<Playing>,
    queue: VecDeque<(Purpose, Vec<String>)>,
}

impl Playout {
    pub fn current(&self) -> Option<&Playing> {
        self.current.as_ref()
    }

    pub fn playing(&self) -> bool {
        self.current.is_some()
    }

    /// Queues an utterance; returns it when it starts at once (nothing playing).
    pub fn enqueue(
        &mut self,
        purpose: Purpose,
        sentences: Vec<String>,
        now: Instant,
    ) -> Option<&Playing> {
        if sentences.is_empty() {
            return None;
        }
        self.queue.push_back((purpose, sentences));
        if self.current.is_some() {
            return None;
        }
        self.start_next(now)
    }

    /// Starts the next queued utterance, if any.
    pub fn start_next(&mut self, now: Instant) -> Option<&Playing> {
        if self.current.is_some() {
            return None;
        }
        let (purpose, sentences) = self.queue.pop_front()?;
        self.next_id += 1;
        let chars: usize = sentences.iter().map(|s| s.chars().count()).sum();
        let safety = now + SAFETY_BASE + SAFETY_PER_CHAR * u32::try_from(chars).unwrap_or(u32::MAX);
        self.current = Some(Playing {
            id: UtteranceId(self.next_id),
            purpose,
            sentences,
            heard: 0,
            started: now,
            safety,
        });
        self.current.as_ref()
    }

    /// Records a mark; marks for other utterances are ignored.
    pub fn on_mark(&mut self, id: UtteranceId, index: usize) -> bool {
        match self.current.as_mut() {
            Some(p) if p.id == id && index < p.sentences.len() => {
                p.heard = p.heard.max(index + 1);
                true
            }
            _ => false,
        }
    }

    /// The utterance `id` played to its end; `None` if it is not the current one.
    pub fn finish(&mut self, id: UtteranceId) -> Option<Finished> {
        if self.current.as_ref().is_some_and(|p| p.id == id) {
            let p = self.current.take()?;
            Some(finished(p, true))
        } else {
            None
        }
    }

    /// Stops the current utterance where the marks say the caller was and
    /// drops everything queued behind it.
    pub fn interrupt(&mut self) -> Option<Finished> {
        self.queue.clear();
        self.current.take().map(|p| finished(p, false))
    }

    /// Drops queued utterances of one purpose (a filler not yet started).
    pub fn drop_queued(&mut self, purpose: Purpose) {
        self.queue.retain(|(p, _)| *p != purpose);
    }

    pub fn safety_deadline(&self) -> Option<Instant> {
        self.current.as_ref().map(|p| p.safety)
    }
}

fn finished(p: Playing, complete: bool) -> Finished {
    let text = p.sentences.join(" ");
    let heard_text = if complete {
        text.clone()
    } else {
        p.sentences[..p.heard].join(" ")
    };
    let heard_chars = (!complete).then(|| heard_text.chars().count());
    Finished {
        id: p.id,
        purpose: p.purpose,
        text,
        heard_text,
        heard_chars,
        started: p.started,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn one_in_flight_and_the_next_starts_when_it_finishes() {
        let t0 = Instant::now();
        let mut p = Playout::default();
        let first = p
            .enqueue(Purpose::Filler, s(&["One moment."]), t0)
            .map(|x| x.id);
        let first = first.expect("starts at once");
        assert!(p.enqueue(Purpose::Reply, s(&["Where?"]), t0).is_none());
        assert!(p.finish(UtteranceId(99)).is_none(), "unknown id");
        let done = p.finish(first).expect("finished");
        assert_eq!(done.heard_chars, None);
        assert_eq!(done.heard_text, "One moment.");
        let next = p.start_next(t0).expect("reply starts");
        assert_eq!(next.purpose, Purpose::Reply);
        assert_ne!(next.id, first);
    }

    #[test]
    fn interrupt_reports_what_the_marks_acknowledged() {
        let t0 = Instant::now();
        let mut p = Playout::default();
        let id = p
            .enqueue(
                Purpose::Reply,
                s(&["Thanks.", "Where is it?", "And when?"]),
                t0,
            )
            .expect("starts")
            .id;
        p.enqueue(Purpose::Reply, s(&["queued"]), t0);
        assert!(p.on_mark(id, 0));
        assert!(!p.on_mark(id, 7), "out of range");
        assert!(!p.on_mark(UtteranceId(id.0 + 1), 1), "other utterance");
        let cut = p.interrupt().expect("was playing");
        assert_eq!(cut.text, "Thanks. Where is it? And when?");
        assert_eq!(cut.heard_text, "Thanks.");
        assert_eq!(cut.heard_chars, Some(7));
        assert!(p.start_next(t0).is_none(), "queue dropped");
    }

    #[test]
    fn safety_deadline_grows_with_length() {
        let t0 = Instant::now();
        let mut p = Playout::default();
        p.enqueue(Purpose::Goodbye, s(&["Bye."]), t0);
        let short = p.safety_deadline().expect("playing") - t0;
        p.interrupt();
        p.enqueue(
            Purpose::Goodbye,
            s(&["A much longer goodbye sentence than that."]),
            t0,
        );
        let long = p.safety_deadline().expect("playing") - t0;
        assert!(short >= SAFETY_BASE && long > short + Duration::from_secs(3));
    }
}
