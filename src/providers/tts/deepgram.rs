//! Deepgram Aura text-to-speech over its REST endpoint (`POST /v1/speak`),
//! streamed: we ask for raw μ-law at 8 kHz (`container=none`, what a phone
//! line carries), and turn the body into 16 kHz [`Frame`]s as it arrives,
//! forwarding each frame the moment its bytes are in. Text over Deepgram's
//! per-request limit is sent as several requests, split at sentence ends.
//!
//! Failures reach the receiver as one `Err` after the frames already sent:
//! a refused request (status mapped by [`api::status_error`]), no answer
//! within the time limit, or a body cut off or stalled mid-way.

use std::time::Duration;

use futures::StreamExt;
use reqwest::header::{AUTHORIZATION, RETRY_AFTER};
use tokio::sync::mpsc;
use url::Url;

use super::offline::split_sentences;
use crate::audio::g711::ulaw_decode;
use crate::audio::resample::{Upsampler, NARROW_FRAME_SAMPLES};
use crate::audio::Frame;
use crate::config::{DeepgramConfig, Secret};
use crate::providers::http;
use crate::providers::stt::deepgram::api::{self, ENGINE};
use crate::providers::{ProviderError, TtsProvider};

/// Deepgram's limit on the text of one request, in characters.
pub const MAX_REQUEST_CHARS: usize = 2000;
/// Frames buffered ahead of the consumer.
const CHANNEL_FRAMES: usize = 100;
/// Most of an error body read for its reason.
const MAX_ERROR_BODY: usize = 4096;

/// Aura speech. Cheap to share; every [`synthesize`] is its own request(s).
///
/// [`synthesize`]: TtsProvider::synthesize
#[derive(Debug, Clone)]
pub struct DeepgramTts {
    key: Option<Secret>,
    url: Url,
    timeout: Duration,
    client: Result<reqwest::Client, String>,
}

impl DeepgramTts {
    /// `timeout` limits connecting and waiting for the response headers, and
    /// any wait between two pieces of the audio body.
    pub fn new(config: DeepgramConfig, timeout: Duration) -> Self {
        let client = reqwest::Client::builder()
            .connect_timeout(timeout)
            .build()
            .map_err(|e| format!("HTTP client: {e}"));
        DeepgramTts {
            key: config.api_key.clone(),
            url: speak_url(&config),
            timeout,
            client,
        }
    }
}

/// `{base}/v1/speak` with the voice and the raw μ-law 8 kHz output format.
pub fn speak_url(config: &DeepgramConfig) -> Url {
    let mut url = config.base_url.clone();
    let path = format!("{}/v1/speak", url.path().trim_end_matches('/'));
    url.set_path(&path);
    url.query_pairs_mut()
        .clear()
        .append_pair("model", &config.tts_model)
        .append_pair("encoding", "mulaw")
        .append_pair("sample_rate", "8000")
        .append_pair("container", "none");
    url
}

impl TtsProvider for DeepgramTts {
    fn name(&self) -> &'static str {
        ENGINE
    }

    fn synthesize(&self, text: &str) -> mpsc::Receiver<Result<Frame, ProviderError>> {
        let (tx, rx) = mpsc::channel(CHANNEL_FRAMES);
        let request = self.request_parts();
        let pieces = request_texts(text, MAX_REQUEST_CHARS);
        match (request, tokio::runtime::Handle::try_current()) {
            (Ok(parts), Ok(rt)) => {
                rt.spawn(speak(parts, pieces, tx));
            }
            (Err(e), _) => {
                let _ = tx.try_send(Err(e));
            }
            (_, Err(_)) => {
                let e = ProviderError::fatal(ENGINE, "synthesize needs a tokio runtime");
                let _ = tx.try_send(Err(e));
            }
        }
        rx
    }
}

/// Everything one synthesis task needs, cloned out of the provider.
struct RequestParts {
    client: reqwest::Client,
    url: Url,
    key: Secret,
    timeout: Duration,
}

impl DeepgramTts {
    fn request_parts(&self) -> Result<RequestParts, ProviderError> {
        let key = self
            .key
            .clone()
            .ok_or_else(|| ProviderError::fatal(ENGINE, "no API key configured"))?;
        let client = self
            .client
            .clone()
            .map_err(|e| ProviderError::fatal(ENGINE, e))?;
        Ok(RequestParts {
            client,
            url: self.url.clone(),
            key,
            timeout: self.timeout,
        })
    }
}

async fn speak(
    parts: RequestParts,
    pieces: Vec<String>,
    tx: mpsc::Sender<Result<Frame, ProviderError>>,
) {
    for piece in pieces {
        match speak_one(&parts, &piece, &tx).await {
            Ok(Delivery::Complete) => {}
            Ok(Delivery::Cancelled) => return,
            Err(e) => {
                tracing::warn!(error = %e, "Deepgram speech failed");
                let _ = tx.send(Err(e)).await;
                return;
            }
        }
    }
}

enum Delivery {
    Complete,
    /// The receiver was dropped: stop quietly.
    Cancelled,
}

async fn speak_one(
    parts: &RequestParts,
    text: &str,
    tx: &mpsc::Sender<Result<Frame, ProviderError>>,
) -> Result<Delivery, ProviderError> {
    let request = parts
        .client
        .post(parts.url.clone())
        .header(AUTHORIZATION, api::authorization(&parts.key))
        .json(&serde_json::json!({ "text": text }))
        .send();
    let response = tokio::select! {
        _ = tx.closed() => return Ok(Delivery::Cancelled),
        r = tokio::time::timeout(parts.timeout, request) => r,
    };
    let response = response
        .map_err(|_| {
            ProviderError::retryable(
                ENGINE,
                format!("no response within {} ms", parts.timeout.as_millis()),
            )
        })?
        .map_err(|e| request_error(e, &parts.key))?;
    if !response.status().is_success() {
        return Err(refusal(response, parts).await);
    }
    let mut body = response.bytes_stream();
    let mut frames = MulawFrames::new();
    let mut ready = Vec::new();
    loop {
        let next = tokio::select! {
            _ = tx.closed() => return Ok(Delivery::Cancelled),
            n = tokio::time::timeout(parts.timeout, body.next()) => n,
        };
        let chunk = match next {
            Err(_) => {
                return Err(ProviderError::retryable(
                    ENGINE,
                    format!("audio stalled for {} ms", parts.timeout.as_millis()),
                ))
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                let e = http::redact(&e.without_url().to_string(), Some(parts.key.expose()));
                return Err(ProviderError::retryable(
                    ENGINE,
                    format!("audio cut off: {e}"),
                ));
            }
            Ok(Some(Ok(bytes))) => bytes,
        };
        frames.push(&chunk, &mut ready);
        for frame in ready.drain(..) {
            if tx.send(Ok(frame)).await.is_err() {
                return Ok(Delivery::Cancelled);
            }
        }
    }
    if let Some(last) = frames.finish() {
        if tx.send(Ok(last)).await.is_err() {
            return Ok(Delivery::Cancelled);
        }
    }
    Ok(Delivery::Complete)
}

async fn refusal(response: reqwest::Response, parts: &RequestParts) -> ProviderError {
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let retry_after = header(RETRY_AFTER.as_str());
    let dg_error = header("dg-error");
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    let read = tokio::time::timeout(parts.timeout, async {
        while let Some(Ok(chunk)) = stream.next().await {
            body.extend_from_slice(&chunk);
            if body.len() >= MAX_ERROR_BODY {
                break;
            }
        }
    });
    let _ = read.await;
    body.truncate(MAX_ERROR_BODY);
    api::status_error(
        status,
        retry_after.as_deref(),
        dg_error.as_deref(),
        &body,
        &parts.key,
    )
}

fn request_error(e: reqwest::Error, key: &Secret) -> ProviderError {
    let builder = e.is_builder();
    let text = http::redact(&e.without_url().to_string(), Some(key.expose()));
    if builder {
        ProviderError::fatal(ENGINE, format!("request: {text}"))
    } else {
        ProviderError::retryable(ENGINE, format!("request: {text}"))
    }
}

/// Splits text into request-sized pieces at sentence ends; a single
/// sentence over the limit is cut at a space (or anywhere, failing that).
fn request_texts(text: &str, limit: usize) -> Vec<String> {
    let mut pieces: Vec<String> = Vec::new();
    let mut current = String::new();
    for sentence in split_sentences(text) {
        for part in cut_long(&sentence, limit) {
            let joined = current.chars().count() + 1 + part.chars().count();
            if !current.is_empty() && joined > limit {
                pieces.push(std::mem::take(&mut current));
            }
            if !current.is_empty() {
                current.push(' ');
            }
            current.push_str(&part);
        }
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    pieces
}

fn cut_long(sentence: &str, limit: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = sentence.trim();
    while rest.chars().count() > limit {
        let hard = rest
            .char_indices()
            .nth(limit)
            .map_or(rest.len(), |(i, _)| i);
        let cut = if rest[hard..].starts_with(' ') {
            hard
        } else {
            rest[..hard].rfind(' ').filter(|&i| i > 0).unwrap_or(hard)
        };
        out.push(rest[..cut].trim().to_string());
        rest = rest[cut..].trim_start();
    }
    if !rest.is_empty() {
        out.push(rest.to_string());
    }
    out
}

/// μ-law 8 kHz bytes in, 16 kHz frames out, across arbitrary chunk sizes.
struct MulawFrames {
    narrow: [i16; NARROW_FRAME_SAMPLES],
    filled: usize,
    upsampler: Upsampler,
}

impl MulawFrames {
    fn new() -> Self {
        MulawFrames {
            narrow: [0; NARROW_FRAME_SAMPLES],
            filled: 0,
            upsampler: Upsampler::new(),
        }
    }

    /// Decodes `bytes`, appending every frame completed to `out`.
    fn push(&mut self, bytes: &[u8], out: &mut Vec<Frame>) {
        for &code in bytes {
            self.narrow[self.filled] = ulaw_decode(code);
            self.filled += 1;
            if self.filled == NARROW_FRAME_SAMPLES {
                out.push(self.upsampler.process(&self.narrow));
                self.filled = 0;
            }
        }
    }

    /// The last partial frame, padded with silence.
    fn finish(&mut self) -> Option<Frame> {
        if self.filled == 0 {
            return None;
        }
        self.narrow[self.filled..].fill(0);
        self.filled = 0;
        Some(self.upsampler.process(&self.narrow))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::g711::ulaw_encode;

    fn config() -> DeepgramConfig {
        DeepgramConfig {
            api_key: Some(Secret::new("k")),
            base_url: Url::parse("https://api.deepgram.com").unwrap(),
            model: "nova-3".into(),
            language: "en".into(),
            endpointing_ms: 300,
            utterance_end_ms: 1000,
            keyterms: Vec::new(),
            tts_model: "aura-2-thalia-en".into(),
        }
    }

    #[test]
    fn the_url_asks_for_raw_mulaw_at_8k() {
        let url = speak_url(&config());
        assert_eq!(
            url.as_str(),
            "https://api.deepgram.com/v1/speak?model=aura-2-thalia-en&encoding=mulaw&sample_rate=8000&container=none"
        );
    }

    #[test]
    fn frames_do_not_depend_on_chunking() {
        let bytes: Vec<u8> = (0..1000)
            .map(|i| ulaw_encode(((i as f32 * 0.3).sin() * 8000.0) as i16))
            .collect();
        let mut whole = MulawFrames::new();
        let mut a = Vec::new();
        whole.push(&bytes, &mut a);
        a.extend(whole.finish());
        let mut pieces = MulawFrames::new();
        let mut b = Vec::new();
        for chunk in bytes.chunks(37) {
            pieces.push(chunk, &mut b);
        }
        b.extend(pieces.finish());
        // 1000 samples at 8 kHz: six whole frames and a padded seventh.
        assert_eq!(a.len(), 7);
        assert_eq!(a, b);
    }

    #[test]
    fn the_last_partial_frame_is_padded_with_silence() {
        let mut frames = MulawFrames::new();
        let mut out = Vec::new();
        frames.push(&[ulaw_encode(0); 10], &mut out);
        assert!(out.is_empty());
        assert_eq!(frames.finish(), Some(Frame::SILENCE));
        assert_eq!(frames.finish(), None);
    }

    #[test]
    fn long_text_is_split_at_sentences_under_the_limit() {
        let text = "One two three. Four five six. Seven eight nine.";
        assert_eq!(request_texts(text, 2000), [text]);
        assert_eq!(
            request_texts(text, 30),
            ["One two three. Four five six.", "Seven eight nine."]
        );
        let pieces = request_texts("aaaa bbbb cccc dddd", 9);
        assert_eq!(pieces, ["aaaa bbbb", "cccc dddd"]);
        assert!(request_texts("   ", 10).is_empty());
        for p in request_texts(&"x".repeat(25), 10) {
            assert!(p.chars().count() <= 10);
        }
    }
}
