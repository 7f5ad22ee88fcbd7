//! Fallback chains: each stage (speech-to-text, text-to-speech, intent) is an
//! ordered list of engines from the configuration. A chain tries them in
//! order, skips one that failed recently (see [`EngineStats`]), and moves on
//! mid-call when one fails — for speech-to-text it replays the caller's audio
//! since the last final transcript into the next engine, so words said while
//! the first engine died are not lost. Only when every engine has failed does
//! the caller of the chain see an error.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;

use super::report::{EngineStats, Reporter, Stage};
use super::{
    BoxFuture, IntentExtractor, ProviderError, SttEvent, SttProvider, SttStream, TtsProvider,
};
use crate::audio::Frame;
use crate::domain::{Conversation, Extraction};

/// Caller audio kept for replay into the next engine (15 s).
const REPLAY_FRAMES: usize = 750;
/// After a final transcript, this much audio (0.2 s) stays in the replay
/// buffer: a final can arrive a little after the words that follow it began,
/// while more would replay the end of words already transcribed.
const KEEP_AFTER_FINAL: usize = 10;
/// Frames queued from the session before the chain's relay (2 s).
const AUDIO_QUEUE: usize = 100;

/// Engines in rotation now, in order; when all are resting, all of them.
fn candidates<T: ?Sized>(
    engines: &[Arc<T>],
    stats: &EngineStats,
    stage: Stage,
    name: impl Fn(&T) -> &'static str,
) -> Vec<usize> {
    let now = Instant::now();
    let up: Vec<usize> = (0..engines.len())
        .filter(|&i| !stats.is_down(stage, name(&engines[i]), now))
        .collect();
    if up.is_empty() {
        (0..engines.len()).collect()
    } else {
        up
    }
}

/// Speech-to-text engines in fallback order.
pub struct SttChain {
    engines: Vec<Arc<dyn SttProvider>>,
    stats: Arc<EngineStats>,
}

impl SttChain {
    pub fn new(engines: Vec<Arc<dyn SttProvider>>, stats: Arc<EngineStats>) -> SttChain {
        assert!(!engines.is_empty(), "a chain needs an engine");
        SttChain { engines, stats }
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.engines.iter().map(|e| e.name()).collect()
    }

    /// Opens a stream on the first engine that opens, reporting to `reporter`.
    pub fn open_for(&self, reporter: Reporter) -> Result<SttStream, ProviderError> {
        let order = candidates(&self.engines, &self.stats, Stage::Stt, |e| e.name());
        let (first, stream) = open_next(&self.engines, &order, 0, &reporter, None)?;
        let (audio_tx, audio_rx) = mpsc::channel(AUDIO_QUEUE);
        let (events_tx, events_rx) = mpsc::channel(64);
        let relay = Relay {
            engines: self.engines.clone(),
            order,
            pos: first,
            reporter,
            replay: VecDeque::with_capacity(REPLAY_FRAMES),
            events: events_tx,
        };
        tokio::spawn(relay.run(stream, audio_rx));
        Ok(SttStream {
            audio: audio_tx,
            events: events_rx,
        })
    }
}

/// Opens the engine at `order[from..]` that opens first; returns its
/// position in `order`. `failed` names the engine being left, for the report.
fn open_next(
    engines: &[Arc<dyn SttProvider>],
    order: &[usize],
    from: usize,
    reporter: &Reporter,
    mut failed: Option<(&'static str, ProviderError)>,
) -> Result<(usize, SttStream), ProviderError> {
    for (pos, &i) in order.iter().enumerate().skip(from) {
        let engine = &engines[i];
        if let Some((name, _)) = &failed {
            reporter.fallback(Stage::Stt, name, engine.name());
        }
        match engine.open() {
            Ok(stream) => return Ok((pos, stream)),
            Err(e) => {
                reporter.error(Stage::Stt, engine.name(), &e);
                failed = Some((engine.name(), e));
            }
        }
    }
    let (last, error) =
        failed.unwrap_or_else(|| ("stt", ProviderError::fatal("stt", "no engine to open")));
    reporter.exhausted(Stage::Stt, last);
    Err(error)
}

/// Carries one call's audio to the current engine and its events back,
/// switching engines on failure.
struct Relay {
    engines: Vec<Arc<dyn SttProvider>>,
    order: Vec<usize>,
    pos: usize,
    reporter: Reporter,
    replay: VecDeque<Frame>,
    events: mpsc::Sender<SttEvent>,
}

impl Relay {
    fn name(&self) -> &'static str {
        self.engines[self.order[self.pos]].name()
    }

    async fn run(mut self, first: SttStream, mut caller: mpsc::Receiver<Frame>) {
        let SttStream {
            audio,
            events: mut engine_events,
        } = first;
        let mut engine_audio = Some(audio);
        let mut caller_open = true;
        loop {
            tokio::select! {
                frame = caller.recv(), if caller_open => match frame {
                    Some(frame) => {
                        if self.replay.len() == REPLAY_FRAMES {
                            self.replay.pop_front();
                        }
                        self.replay.push_back(frame.clone());
                        if let Some(tx) = &engine_audio {
                            // A slow engine loses frames rather than stalling the call.
                            let _ = tx.try_send(frame);
                        }
                    }
                    None => {
                        caller_open = false;
                        // Dropping the engine's sender lets it flush and close.
                        engine_audio = None;
                    }
                },
                event = engine_events.recv() => {
                    let failure = match event {
                        Some(SttEvent::Error(e)) => e,
                        None if !caller_open => return,
                        None => ProviderError::retryable(self.name(), "the stream closed unexpectedly"),
                        Some(event) => {
                            if matches!(event, SttEvent::Final { .. }) {
                                // Latency is the session's to measure: it
                                // knows when the caller stopped speaking.
                                self.reporter.used(Stage::Stt, self.name());
                                while self.replay.len() > KEEP_AFTER_FINAL {
                                    self.replay.pop_front();
                                }
                            }
                            if self.events.send(event).await.is_err() {
                                return;
                            }
                            continue;
                        }
                    };
                    self.reporter.error(Stage::Stt, self.name(), &failure);
                    let from = self.name();
                    match open_next(&self.engines, &self.order, self.pos + 1, &self.reporter, Some((from, failure))) {
                        Ok((pos, stream)) => {
                            self.pos = pos;
                            engine_events = stream.events;
                            for frame in &self.replay {
                                if stream.audio.send(frame.clone()).await.is_err() {
                                    break;
                                }
                            }
                            engine_audio = caller_open.then_some(stream.audio);
                        }
                        Err(e) => {
                            let _ = self.events.send(SttEvent::Error(e)).await;
                            return;
                        }
                    }
                }
            }
        }
    }
}

impl SttProvider for SttChain {
    fn name(&self) -> &'static str {
        "chain"
    }
    fn open(&self) -> Result<SttStream, ProviderError> {
        self.open_for(Reporter::detached(self.stats.clone()))
    }
}

/// Text-to-speech engines in fallback order.
pub struct TtsChain {
    engines: Vec<Arc<dyn TtsProvider>>,
    stats: Arc<EngineStats>,
}

impl TtsChain {
    pub fn new(engines: Vec<Arc<dyn TtsProvider>>, stats: Arc<EngineStats>) -> TtsChain {
        assert!(!engines.is_empty(), "a chain needs an engine");
        TtsChain { engines, stats }
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.engines.iter().map(|e| e.name()).collect()
    }

    /// Synthesizes `text` with the first engine that works. An engine that
    /// fails part-way is replaced and the sentence starts again on the next
    /// one: a repeated half-sentence is better than a missing one.
    pub fn synthesize_for(
        &self,
        text: &str,
        reporter: Reporter,
    ) -> mpsc::Receiver<Result<Frame, ProviderError>> {
        let (tx, rx) = mpsc::channel(64);
        let order = candidates(&self.engines, &self.stats, Stage::Tts, |e| e.name());
        let engines: Vec<Arc<dyn TtsProvider>> =
            order.iter().map(|&i| self.engines[i].clone()).collect();
        let text = text.to_string();
        tokio::spawn(async move {
            let mut last: Option<(&'static str, ProviderError)> = None;
            for engine in engines {
                if let Some((from, _)) = &last {
                    reporter.fallback(Stage::Tts, from, engine.name());
                }
                let started = Instant::now();
                let mut frames = engine.synthesize(&text);
                let mut first = true;
                loop {
                    match frames.recv().await {
                        Some(Ok(frame)) => {
                            if first {
                                first = false;
                                reporter.first_result(Stage::Tts, engine.name(), started.elapsed());
                            }
                            if tx.send(Ok(frame)).await.is_err() {
                                return;
                            }
                        }
                        Some(Err(e)) => {
                            reporter.error(Stage::Tts, engine.name(), &e);
                            last = Some((engine.name(), e));
                            break;
                        }
                        None => return,
                    }
                }
            }
            if let Some((name, e)) = last {
                reporter.exhausted(Stage::Tts, name);
                let _ = tx.send(Err(e)).await;
            }
        });
        rx
    }
}

impl TtsProvider for TtsChain {
    fn name(&self) -> &'static str {
        "chain"
    }
    fn synthesize(&self, text: &str) -> mpsc::Receiver<Result<Frame, ProviderError>> {
        self.synthesize_for(text, Reporter::detached(self.stats.clone()))
    }
}

/// Intent extractors in fallback order.
pub struct IntentChain {
    engines: Vec<Arc<dyn IntentExtractor>>,
    stats: Arc<EngineStats>,
}

impl IntentChain {
    pub fn new(engines: Vec<Arc<dyn IntentExtractor>>, stats: Arc<EngineStats>) -> IntentChain {
        assert!(!engines.is_empty(), "a chain needs an engine");
        IntentChain { engines, stats }
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.engines.iter().map(|e| e.name()).collect()
    }

    pub async fn extract_for(
        &self,
        conversation: &Conversation,
        reporter: &Reporter,
    ) -> Result<Extraction, ProviderError> {
        self.extract_streaming_for(conversation, reporter, None)
            .await
    }

    /// As [`extract_for`](Self::extract_for), passing early reply sentences
    /// of an engine that streams them to `sentences`.
    pub async fn extract_streaming_for(
        &self,
        conversation: &Conversation,
        reporter: &Reporter,
        sentences: Option<mpsc::Sender<String>>,
    ) -> Result<Extraction, ProviderError> {
        let order = candidates(&self.engines, &self.stats, Stage::Intent, |e| e.name());
        let mut last: Option<(&'static str, ProviderError)> = None;
        for i in order {
            let engine = &self.engines[i];
            if let Some((from, _)) = &last {
                reporter.fallback(Stage::Intent, from, engine.name());
            }
            let started = Instant::now();
            let answer = match &sentences {
                Some(tx) => engine.extract_streaming(conversation, tx.clone()).await,
                None => engine.extract(conversation).await,
            };
            match answer {
                Ok(x) => {
                    reporter.first_result(Stage::Intent, engine.name(), started.elapsed());
                    return Ok(x);
                }
                Err(e) => {
                    reporter.error(Stage::Intent, engine.name(), &e);
                    last = Some((engine.name(), e));
                }
            }
        }
        let (name, e) =
            last.unwrap_or_else(|| ("intent", ProviderError::fatal("intent", "no engine")));
        reporter.exhausted(Stage::Intent, name);
        Err(e)
    }
}

impl IntentExtractor for IntentChain {
    fn name(&self) -> &'static str {
        "chain"
    }
    fn extract<'a>(
        &'a self,
        conversation: &'a Conversation,
    ) -> BoxFuture<'a, Result<Extraction, ProviderError>> {
        Box::pin(async move {
            let reporter = Reporter::detached(self.stats.clone());
            self.extract_for(conversation, &reporter).await
        })
    }
}

#[cfg(test)]
#[path = "chain_tests.rs"]
mod tests;
