//! The offline speech-to-text engine: Whisper (whisper.cpp through
//! `whisper-rs`) in process, run once per utterance.
//!
//! [`WhisperEngine`] owns the loaded model and a pool of decoder states; its
//! blocking [`WhisperEngine::transcribe`] decodes greedily in English with no
//! context and no timestamps. [`WhisperEngine::transcribe_async`] runs that on
//! tokio's blocking pool, never on the async runtime, behind a semaphore of
//! one permit per configured core: a lone utterance borrows every idle permit
//! as decoder threads, concurrent ones share the cores without
//! oversubscribing them.
//!
//! [`OfflineStt`] is the engine made streaming by [`super::segmented`]:
//! frames in, voice-activity segmentation, one Whisper run per ended
//! utterance, and `SpeechStarted` / `Final` / `UtteranceEnd` events out.

use std::path::Path;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use whisper_rs::{
    FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters, WhisperState,
};

use super::segmented::{BatchRecognizer, SegmentedStt};
use crate::audio::SAMPLE_RATE;
use crate::providers::{BoxFuture, ProviderError};

pub use super::segmented::Transcript;

const ENGINE: &str = "whisper";
/// Whisper refuses input under 100 ms; shorter utterances are padded.
const MIN_SAMPLES: usize = SAMPLE_RATE as usize / 5;
/// Whisper sees at most 30 s at once; longer input is cut.
const MAX_SAMPLES: usize = SAMPLE_RATE as usize * 30;

/// Tokens decoded per utterance at most (15 s of fast speech is ~80).
const MAX_TOKENS: i32 = 160;

/// A loaded Whisper model, shareable across calls (`Arc<WhisperEngine>`).
pub struct WhisperEngine {
    ctx: WhisperContext,
    /// Decoder states (KV caches, buffers) kept for reuse between calls.
    states: Mutex<Vec<WhisperState>>,
    cores: Arc<Semaphore>,
    threads: usize,
}

impl std::fmt::Debug for WhisperEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhisperEngine")
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

impl WhisperEngine {
    /// Loads a whisper.cpp ggml model. `threads` is the number of cores the
    /// engine may use at once (at least 1).
    pub fn load(path: &Path, threads: usize) -> Result<WhisperEngine, ProviderError> {
        whisper_rs::install_logging_hooks();
        if !path.is_file() {
            return Err(ProviderError::fatal(
                ENGINE,
                format!("no model file at {}", path.display()),
            ));
        }
        let mut params = WhisperContextParameters::default();
        params.use_gpu(false);
        let ctx = WhisperContext::new_with_params(path, params).map_err(|e| {
            ProviderError::fatal(ENGINE, format!("loading {}: {e}", path.display()))
        })?;
        let threads = threads.max(1);
        Ok(WhisperEngine {
            ctx,
            states: Mutex::new(Vec::new()),
            cores: Arc::new(Semaphore::new(threads)),
            threads,
        })
    }

    /// Transcribes 16 kHz mono PCM, blocking the calling thread and using
    /// all configured threads. Prefer [`Self::transcribe_async`] from async code.
    pub fn transcribe(&self, pcm16k: &[i16]) -> Result<Transcript, ProviderError> {
        self.run(pcm16k, self.threads)
    }

    /// Transcribes on the blocking pool, sharing the cores with other calls.
    pub async fn transcribe_async(
        self: &Arc<Self>,
        pcm16k: Vec<i16>,
    ) -> Result<Transcript, ProviderError> {
        let permits = self.acquire_cores().await?;
        let threads = permits.len();
        let engine = Arc::clone(self);
        let result = tokio::task::spawn_blocking(move || {
            let out = engine.run(&pcm16k, threads);
            drop(permits);
            out
        })
        .await;
        result.map_err(|e| ProviderError::retryable(ENGINE, format!("transcription task: {e}")))?
    }

    /// Waits for one core, then takes any others that are idle right now.
    async fn acquire_cores(&self) -> Result<Vec<OwnedSemaphorePermit>, ProviderError> {
        let first = Arc::clone(&self.cores)
            .acquire_owned()
            .await
            .map_err(|_| ProviderError::fatal(ENGINE, "engine shut down"))?;
        let mut permits = vec![first];
        while permits.len() < self.threads {
            match Arc::clone(&self.cores).try_acquire_owned() {
                Ok(p) => permits.push(p),
                Err(_) => break,
            }
        }
        Ok(permits)
    }

    fn run(&self, pcm16k: &[i16], threads: usize) -> Result<Transcript, ProviderError> {
        let mut audio: Vec<f32> = pcm16k
            .iter()
            .take(MAX_SAMPLES)
            .map(|s| f32::from(*s) / 32768.0)
            .collect();
        if audio.len() < MIN_SAMPLES {
            audio.resize(MIN_SAMPLES, 0.0);
        }
        let mut state = self.take_state()?;
        let out = self.decode(&mut state, &audio, threads);
        if let Ok(mut pool) = self.states.lock() {
            pool.push(state);
        }
        out
    }

    fn take_state(&self) -> Result<WhisperState, ProviderError> {
        let reused = self.states.lock().ok().and_then(|mut pool| pool.pop());
        match reused {
            Some(state) => Ok(state),
            None => self.ctx.create_state().map_err(|e| {
                ProviderError::retryable(ENGINE, format!("creating a decoder state: {e}"))
            }),
        }
    }

    fn decode(
        &self,
        state: &mut WhisperState,
        audio: &[f32],
        threads: usize,
    ) -> Result<Transcript, ProviderError> {
        let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
        params.set_n_threads(i32::try_from(threads).unwrap_or(1));
        params.set_language(Some("en"));
        params.set_translate(false);
        params.set_no_context(true);
        params.set_no_timestamps(true);
        params.set_single_segment(true);
        params.set_suppress_blank(true);
        params.set_suppress_nst(true);
        // One greedy pass: predictable latency matters more on a phone line
        // than the occasional rescue a temperature fallback gives.
        params.set_temperature(0.0);
        params.set_temperature_inc(0.0);
        // Bounds a runaway repetition loop; a phone utterance is far shorter.
        params.set_max_tokens(MAX_TOKENS);
        params.set_print_progress(false);
        params.set_print_realtime(false);
        params.set_print_special(false);
        params.set_print_timestamps(false);
        state
            .full(params, audio)
            .map_err(|e| ProviderError::retryable(ENGINE, format!("decoding: {e}")))?;
        Ok(self.collect(state))
    }

    /// Joins the segments' text and averages the text tokens' probabilities.
    fn collect(&self, state: &WhisperState) -> Transcript {
        let eot = self.ctx.token_eot();
        let mut text = String::new();
        let (mut sum, mut count) = (0f32, 0usize);
        for segment in state.as_iter() {
            if let Ok(t) = segment.to_str_lossy() {
                text.push_str(&t);
            }
            for i in 0..segment.n_tokens() {
                if let Some(token) = segment.get_token(i) {
                    if token.token_id() < eot {
                        sum += token.token_probability();
                        count += 1;
                    }
                }
            }
        }
        let text = clean_text(&text);
        let confidence = if count == 0 || text.is_empty() {
            0.0
        } else {
            sum / count as f32
        };
        Transcript { text, confidence }
    }
}

/// Trims and drops non-speech annotations such as `[BLANK_AUDIO]` or
/// `(music)` that Whisper emits for noise.
fn clean_text(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut depth = 0usize;
    for c in raw.chars() {
        match c {
            '[' | '(' => depth += 1,
            ']' | ')' => depth = depth.saturating_sub(1),
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl BatchRecognizer for WhisperEngine {
    fn name(&self) -> &'static str {
        ENGINE
    }

    fn transcribe(
        self: Arc<Self>,
        pcm16k: Vec<i16>,
    ) -> BoxFuture<'static, Result<Transcript, ProviderError>> {
        Box::pin(async move { self.transcribe_async(pcm16k).await })
    }
}

/// Streaming speech-to-text over [`WhisperEngine`]: VAD-ended utterances are
/// transcribed one at a time, in order, while audio keeps flowing.
pub type OfflineStt = SegmentedStt<WhisperEngine>;

impl SegmentedStt<WhisperEngine> {
    pub fn new(engine: Arc<WhisperEngine>) -> Self {
        SegmentedStt::with_recognizer(engine)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_text_drops_annotations_and_extra_spaces() {
        assert_eq!(clean_text(" [BLANK_AUDIO] "), "");
        assert_eq!(clean_text(" Hello (coughs) there.  "), "Hello there.");
        assert_eq!(
            clean_text("I live at 42 Oak Street."),
            "I live at 42 Oak Street."
        );
    }

    #[test]
    fn load_reports_a_missing_or_bad_model() {
        let err = WhisperEngine::load(Path::new("/nonexistent/model.bin"), 2).expect_err("missing");
        assert!(err.message.contains("no model file"), "{err}");
        let dir = tempfile::tempdir().expect("tempdir");
        let bad = dir.path().join("bad.bin");
        std::fs::write(&bad, b"not a model").expect("write");
        assert!(WhisperEngine::load(&bad, 2).is_err());
    }
}
