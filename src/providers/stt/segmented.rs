//! A batch recognizer made streaming. Owns the pipeline every
//! utterance-at-a-time engine shares: frames in, voice-activity segmentation
//! ([`Segmenter`]), each ended utterance handed to the recognizer in order
//! while audio keeps flowing, and `SpeechStarted` / `Final` / `UtteranceEnd`
//! events out. The recognizer only turns one utterance's PCM into text.
//!
//! A recognizer error is reported as [`SttEvent::Error`] and ends the stream;
//! a fallback chain replays the call's audio into the next engine.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::audio::segment::{Segmenter, SegmenterConfig};
use crate::audio::Frame;
use crate::providers::{BoxFuture, ProviderError, SttEvent, SttProvider, SttStream};

/// One recognised utterance.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcript {
    pub text: String,
    /// How sure the engine is of `text`, 0 to 1; 0 when there is no text.
    pub confidence: f32,
}

/// Speech recognition of one whole utterance at a time.
pub trait BatchRecognizer: Send + Sync + 'static {
    /// The engine's name in errors, logs and metrics.
    fn name(&self) -> &'static str;

    /// Transcribes one utterance of 16 kHz mono PCM16. An empty `text`
    /// means nothing was said.
    fn transcribe(
        self: Arc<Self>,
        pcm16k: Vec<i16>,
    ) -> BoxFuture<'static, Result<Transcript, ProviderError>>;
}

/// Frames buffered between the caller's leg and the segmenter (2 s).
const AUDIO_FRAMES: usize = 100;
/// Ended utterances waiting for the recognizer.
const QUEUED_UTTERANCES: usize = 8;

/// Streaming speech-to-text over any [`BatchRecognizer`].
pub struct SegmentedStt<R> {
    recognizer: Arc<R>,
    segmenter: SegmenterConfig,
}

impl<R> Clone for SegmentedStt<R> {
    fn clone(&self) -> Self {
        SegmentedStt {
            recognizer: Arc::clone(&self.recognizer),
            segmenter: self.segmenter.clone(),
        }
    }
}

impl<R: std::fmt::Debug> std::fmt::Debug for SegmentedStt<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentedStt")
            .field("recognizer", &self.recognizer)
            .finish_non_exhaustive()
    }
}

impl<R: BatchRecognizer> SegmentedStt<R> {
    /// Wraps `recognizer` with the default segmentation.
    pub fn with_recognizer(recognizer: Arc<R>) -> Self {
        Self::with_segmenter(recognizer, SegmenterConfig::default())
    }

    pub fn with_segmenter(recognizer: Arc<R>, segmenter: SegmenterConfig) -> Self {
        SegmentedStt {
            recognizer,
            segmenter,
        }
    }

    pub fn recognizer(&self) -> &Arc<R> {
        &self.recognizer
    }
}

impl<R: BatchRecognizer> SttProvider for SegmentedStt<R> {
    fn name(&self) -> &'static str {
        self.recognizer.name()
    }

    fn open(&self) -> Result<SttStream, ProviderError> {
        let rt = tokio::runtime::Handle::try_current()
            .map_err(|_| ProviderError::fatal(self.name(), "open needs a tokio runtime"))?;
        let (audio_tx, audio_rx) = mpsc::channel(AUDIO_FRAMES);
        let (events_tx, events_rx) = mpsc::channel(32);
        let (starts_tx, starts_rx) = mpsc::channel(QUEUED_UTTERANCES);
        let (utter_tx, utter_rx) = mpsc::channel(QUEUED_UTTERANCES);
        let seg = Segmenter::new(self.segmenter.clone());
        rt.spawn(segment_audio(seg, audio_rx, starts_tx, utter_tx));
        let recognizer = Arc::clone(&self.recognizer);
        rt.spawn(report(recognizer, starts_rx, utter_rx, events_tx));
        Ok(SttStream {
            audio: audio_tx,
            events: events_rx,
        })
    }
}

/// Feeds frames to the segmenter; signals speech starts at once and hands
/// ended utterances on. Flushes a pending utterance when the audio sender is
/// dropped; stops early once the reporter has gone (an error, or the events
/// receiver dropped).
async fn segment_audio(
    mut seg: Segmenter,
    mut audio: mpsc::Receiver<Frame>,
    starts: mpsc::Sender<()>,
    utterances: mpsc::Sender<Vec<i16>>,
) {
    loop {
        let frame = tokio::select! {
            _ = utterances.closed() => return,
            frame = audio.recv() => frame,
        };
        let Some(frame) = frame else { break };
        let utterance = seg.push(&frame);
        if seg.last_decision().started && starts.send(()).await.is_err() {
            return;
        }
        if let Some(pcm) = utterance {
            if utterances.send(pcm).await.is_err() {
                return;
            }
        }
    }
    if let Some(pcm) = seg.flush() {
        let _ = utterances.send(pcm).await;
    }
}

/// The stream's only writer of events: forwards speech starts as they come
/// and transcribes utterances one at a time, in the order they ended. After
/// an error nothing else is sent.
async fn report<R: BatchRecognizer>(
    recognizer: Arc<R>,
    mut starts: mpsc::Receiver<()>,
    mut utterances: mpsc::Receiver<Vec<i16>>,
    events: mpsc::Sender<SttEvent>,
) {
    let mut running: Option<BoxFuture<'static, Result<Transcript, ProviderError>>> = None;
    let (mut starts_open, mut utterances_open) = (true, true);
    loop {
        if !starts_open && !utterances_open && running.is_none() {
            return;
        }
        let ev = tokio::select! {
            biased;
            _ = events.closed() => return,
            start = starts.recv(), if starts_open => match start {
                Some(()) => vec![SttEvent::SpeechStarted],
                None => {
                    starts_open = false;
                    continue;
                }
            },
            result = async {
                match running.as_mut() {
                    Some(transcription) => transcription.await,
                    None => std::future::pending().await,
                }
            }, if running.is_some() => {
                running = None;
                match result {
                    Ok(t) if t.text.is_empty() => vec![SttEvent::UtteranceEnd],
                    Ok(t) => vec![
                        SttEvent::Final { text: t.text, confidence: t.confidence, end_of_turn: true },
                        SttEvent::UtteranceEnd,
                    ],
                    Err(e) => {
                        tracing::warn!(engine = recognizer.name(), error = %e, "transcription failed");
                        let _ = events.send(SttEvent::Error(e)).await;
                        return;
                    }
                }
            },
            pcm = utterances.recv(), if running.is_none() && utterances_open => {
                match pcm {
                    Some(pcm) => running = Some(Arc::clone(&recognizer).transcribe(pcm)),
                    None => utterances_open = false,
                }
                continue;
            }
        };
        for e in ev {
            if events.send(e).await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::FRAME_SAMPLES;
    use std::sync::Mutex;

    /// Reports each utterance's length, or fails on the `fail_on`-th one.
    struct Lengths {
        seen: Mutex<Vec<usize>>,
        fail_on: Option<usize>,
    }

    impl BatchRecognizer for Lengths {
        fn name(&self) -> &'static str {
            "lengths"
        }
        fn transcribe(
            self: Arc<Self>,
            pcm16k: Vec<i16>,
        ) -> BoxFuture<'static, Result<Transcript, ProviderError>> {
            Box::pin(async move {
                let n = {
                    let mut seen = self.seen.lock().unwrap();
                    seen.push(pcm16k.len());
                    seen.len()
                };
                if self.fail_on == Some(n) {
                    return Err(ProviderError::retryable("lengths", "down"));
                }
                Ok(Transcript {
                    text: format!("#{n} {} samples", pcm16k.len()),
                    confidence: 0.5,
                })
            })
        }
    }

    /// Tone bursts of `burst` frames separated by a second of silence.
    fn speech(bursts: usize, burst: usize) -> Vec<Frame> {
        let mut frames = vec![Frame::SILENCE; 25];
        for _ in 0..bursts {
            for f in 0..burst {
                let mut frame = Frame::SILENCE;
                for (i, s) in frame.0.iter_mut().enumerate() {
                    let t = (f * FRAME_SAMPLES + i) as f32 / 16_000.0;
                    let v = (t * 2.0 * std::f32::consts::PI * 220.0).sin()
                        + 0.5 * (t * 2.0 * std::f32::consts::PI * 1400.0).sin();
                    *s = (v * 6000.0) as i16;
                }
                frames.push(frame);
            }
            frames.extend(std::iter::repeat_n(Frame::SILENCE, 50));
        }
        frames
    }

    async fn run(fail_on: Option<usize>, frames: Vec<Frame>) -> (Vec<SttEvent>, Vec<usize>) {
        let rec = Arc::new(Lengths {
            seen: Mutex::new(Vec::new()),
            fail_on,
        });
        let stt = SegmentedStt::with_recognizer(Arc::clone(&rec));
        assert_eq!(stt.name(), "lengths");
        let SttStream { audio, mut events } = stt.open().unwrap();
        tokio::spawn(async move {
            for f in frames {
                if audio.send(f).await.is_err() {
                    break;
                }
            }
        });
        let mut out = Vec::new();
        while let Ok(Some(ev)) =
            tokio::time::timeout(std::time::Duration::from_secs(10), events.recv()).await
        {
            out.push(ev);
        }
        let seen = rec.seen.lock().unwrap().clone();
        (out, seen)
    }

    #[tokio::test]
    async fn each_utterance_is_transcribed_once_in_order() {
        let (events, seen) = run(None, speech(3, 40)).await;
        assert_eq!(seen.len(), 3, "{events:?}");
        let finals: Vec<String> = events
            .iter()
            .filter_map(|e| match e {
                SttEvent::Final {
                    text, end_of_turn, ..
                } if *end_of_turn => Some(text.clone()),
                _ => None,
            })
            .collect();
        let expected: Vec<String> = seen
            .iter()
            .enumerate()
            .map(|(i, n)| format!("#{} {n} samples", i + 1))
            .collect();
        assert_eq!(finals, expected);
        let starts = events
            .iter()
            .filter(|e| **e == SttEvent::SpeechStarted)
            .count();
        let ends = events
            .iter()
            .filter(|e| **e == SttEvent::UtteranceEnd)
            .count();
        assert_eq!((starts, ends), (3, 3), "{events:?}");
        assert_eq!(events.first(), Some(&SttEvent::SpeechStarted));
        assert_eq!(events.last(), Some(&SttEvent::UtteranceEnd));
    }

    #[tokio::test]
    async fn an_error_is_reported_once_and_ends_the_stream() {
        let (events, seen) = run(Some(2), speech(4, 40)).await;
        let errors: Vec<&SttEvent> = events
            .iter()
            .filter(|e| matches!(e, SttEvent::Error(_)))
            .collect();
        assert_eq!(errors.len(), 1, "{events:?}");
        assert!(matches!(events.last(), Some(SttEvent::Error(e)) if e.retryable));
        assert_eq!(seen.len(), 2, "nothing is sent after the failure");
    }
}
