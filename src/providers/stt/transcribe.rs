//! OpenAI-compatible batch transcription (OpenAI, Groq, or any server with
//! the same API), made streaming by [`super::segmented`]: each VAD-ended
//! utterance is one `POST {base_url}/audio/transcriptions` (the base URL ends
//! in `/v1`), `Authorization: Bearer <key>`, `multipart/form-data` with the
//! utterance as a 16 kHz mono PCM16 WAV file plus `model`, `response_format`,
//! `temperature=0` and `language` (ISO 639-1, from the configuration).
//!
//! The reply format follows what the model documents. Whisper models
//! (`whisper-1`, Groq's `whisper-large-v3*`) get `verbose_json`, whose
//! segments give a confidence (from `avg_logprob`) and let segments Whisper
//! itself judges silent be dropped (a hallucinated "Thank you." on line
//! noise). OpenAI's `gpt-4o*-transcribe` accept only `json`, and report token
//! log-probabilities when asked with `include[]=logprobs`. Anything else gets
//! plain `json`, which carries no score.

use std::sync::Arc;
use std::time::Duration;

use reqwest::multipart::{Form, Part};
use serde::Deserialize;
use url::Url;

use super::segmented::{BatchRecognizer, SegmentedStt, Transcript};
use crate::audio::wav::encode_wav;
use crate::audio::SAMPLE_RATE;
use crate::config::{Secret, TranscribeConfig};
use crate::providers::http;
use crate::providers::{BoxFuture, ProviderError};

const ENGINE: &str = "transcribe";
/// Callers speak English; naming it saves detection time and errors.
/// Largest reply read; a transcript of 15 s of speech is a few kB.
const REPLY_LIMIT: usize = 1 << 20;
/// The APIs refuse audio under 0.1 s; shorter utterances are padded to this.
const MIN_SAMPLES: usize = SAMPLE_RATE as usize / 5;
/// Confidence of text from a reply that carries no scores.
pub const UNSCORED_CONFIDENCE: f32 = 1.0;
/// Whisper's own silence rule: a segment this likely to be no speech…
const NO_SPEECH_PROB: f64 = 0.6;
/// …whose tokens are also this unlikely is dropped.
const SILENT_AVG_LOGPROB: f64 = -1.0;

/// The reply format asked for, chosen from the model name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyFormat {
    /// `verbose_json`: text plus segments with `avg_logprob`, `no_speech_prob`.
    VerboseJson,
    /// `json` with `include[]=logprobs`: text plus per-token log-probabilities.
    JsonWithLogprobs,
    /// `json`: text only.
    Json,
}

impl ReplyFormat {
    pub fn for_model(model: &str) -> Self {
        let m = model.to_ascii_lowercase();
        if m.contains("whisper") {
            ReplyFormat::VerboseJson
        } else if m.starts_with("gpt-4o") && m.contains("transcribe") && !m.contains("diarize") {
            ReplyFormat::JsonWithLogprobs
        } else {
            ReplyFormat::Json
        }
    }

    /// The `response_format` form field.
    pub fn wire_name(self) -> &'static str {
        match self {
            ReplyFormat::VerboseJson => "verbose_json",
            ReplyFormat::JsonWithLogprobs | ReplyFormat::Json => "json",
        }
    }
}

/// One OpenAI-compatible transcription endpoint.
pub struct TranscribeRecognizer {
    client: Result<reqwest::Client, ProviderError>,
    url: Result<Url, ProviderError>,
    api_key: Option<Secret>,
    model: String,
    language: String,
    format: ReplyFormat,
    timeout: Duration,
}

impl std::fmt::Debug for TranscribeRecognizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TranscribeRecognizer")
            .field("model", &self.model)
            .field("format", &self.format)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl TranscribeRecognizer {
    /// `timeout` bounds connecting, sending the utterance and waiting for
    /// the reply's headers, and any pause while the reply body arrives.
    pub fn new(config: TranscribeConfig, timeout: Duration) -> Self {
        TranscribeRecognizer {
            client: http::client(ENGINE, timeout),
            url: http::endpoint(ENGINE, &config.base_url, &["audio", "transcriptions"]),
            api_key: config.api_key,
            format: ReplyFormat::for_model(&config.model),
            model: config.model,
            language: config.language,
            timeout,
        }
    }

    /// Transcribes one utterance of 16 kHz mono PCM16.
    pub async fn transcribe_pcm(&self, mut pcm16k: Vec<i16>) -> Result<Transcript, ProviderError> {
        let client = self.client.as_ref().map_err(Clone::clone)?;
        let url = self.url.as_ref().map_err(Clone::clone)?;
        if pcm16k.len() < MIN_SAMPLES {
            pcm16k.resize(MIN_SAMPLES, 0);
        }
        let wav = encode_wav(&pcm16k, SAMPLE_RATE);
        let file = Part::bytes(wav)
            .file_name("utterance.wav")
            .mime_str("audio/wav")
            .map_err(|e| ProviderError::fatal(ENGINE, format!("file part: {e}")))?;
        let mut form = Form::new()
            .part("file", file)
            .text("model", self.model.clone())
            .text("response_format", self.format.wire_name())
            .text("temperature", "0")
            .text("language", self.language.clone());
        if self.format == ReplyFormat::JsonWithLogprobs {
            form = form.text("include[]", "logprobs");
        }
        let mut request = client.post(url.clone()).multipart(form);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key.expose());
        }
        let secret = self.api_key.as_ref().map(Secret::expose);
        let response = http::send(ENGINE, request, self.timeout, secret).await?;
        let body = http::read_limited(ENGINE, response, self.timeout, REPLY_LIMIT).await?;
        parse_reply(&body)
    }
}

impl BatchRecognizer for TranscribeRecognizer {
    fn name(&self) -> &'static str {
        ENGINE
    }

    fn transcribe(
        self: Arc<Self>,
        pcm16k: Vec<i16>,
    ) -> BoxFuture<'static, Result<Transcript, ProviderError>> {
        Box::pin(async move { self.transcribe_pcm(pcm16k).await })
    }
}

/// Streaming speech-to-text over an OpenAI-compatible transcription API.
pub type TranscribeStt = SegmentedStt<TranscribeRecognizer>;

impl SegmentedStt<TranscribeRecognizer> {
    pub fn new(config: TranscribeConfig, timeout: Duration) -> Self {
        SegmentedStt::with_recognizer(Arc::new(TranscribeRecognizer::new(config, timeout)))
    }
}

#[derive(Deserialize)]
struct Reply {
    text: String,
    #[serde(default)]
    segments: Option<Vec<Segment>>,
    #[serde(default)]
    logprobs: Option<Vec<TokenLogprob>>,
}

#[derive(Deserialize)]
struct Segment {
    text: String,
    #[serde(default)]
    start: Option<f64>,
    #[serde(default)]
    end: Option<f64>,
    #[serde(default)]
    avg_logprob: Option<f64>,
    #[serde(default)]
    no_speech_prob: Option<f64>,
}

#[derive(Deserialize)]
struct TokenLogprob {
    logprob: f64,
}

/// Reads a `json` or `verbose_json` reply. A body that is not the documented
/// shape is a fatal error: retrying the same audio would get the same body.
pub fn parse_reply(body: &[u8]) -> Result<Transcript, ProviderError> {
    let reply: Reply = serde_json::from_slice(body)
        .map_err(|e| ProviderError::fatal(ENGINE, format!("reply is not a transcription: {e}")))?;
    let (text, confidence) = match (&reply.segments, &reply.logprobs) {
        (Some(segments), _) if !segments.is_empty() => from_segments(segments),
        (_, Some(tokens)) if !tokens.is_empty() => {
            let sum: f64 = tokens.iter().map(|t| t.logprob.min(0.0).exp()).sum();
            (tidy(&reply.text), (sum / tokens.len() as f64) as f32)
        }
        _ => (tidy(&reply.text), UNSCORED_CONFIDENCE),
    };
    let confidence = if text.is_empty() || !confidence.is_finite() {
        0.0
    } else {
        confidence.clamp(0.0, 1.0)
    };
    Ok(Transcript { text, confidence })
}

/// Text of the segments Whisper did not judge silent, and their mean token
/// probability weighted by duration.
fn from_segments(segments: &[Segment]) -> (String, f32) {
    let mut text = String::new();
    let (mut weighted, mut total) = (0f64, 0f64);
    for s in segments {
        let logprob = s.avg_logprob.unwrap_or(0.0).min(0.0);
        let silent =
            s.no_speech_prob.unwrap_or(0.0) > NO_SPEECH_PROB && logprob < SILENT_AVG_LOGPROB;
        let piece = tidy(&s.text);
        if silent || piece.is_empty() {
            continue;
        }
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(&piece);
        let span = match (s.start, s.end) {
            (Some(a), Some(b)) if b > a => b - a,
            _ => 1.0,
        };
        weighted += logprob.exp() * span;
        total += span;
    }
    let confidence = if total > 0.0 { weighted / total } else { 0.0 };
    (text, confidence as f32)
}

fn tidy(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_format_follows_the_model() {
        assert_eq!(
            ReplyFormat::for_model("whisper-1"),
            ReplyFormat::VerboseJson
        );
        assert_eq!(
            ReplyFormat::for_model("whisper-large-v3"),
            ReplyFormat::VerboseJson
        );
        assert_eq!(
            ReplyFormat::for_model("distil-whisper-large-v3-en"),
            ReplyFormat::VerboseJson
        );
        assert_eq!(
            ReplyFormat::for_model("gpt-4o-mini-transcribe"),
            ReplyFormat::JsonWithLogprobs
        );
        assert_eq!(
            ReplyFormat::for_model("gpt-4o-transcribe-diarize"),
            ReplyFormat::Json
        );
        assert_eq!(ReplyFormat::for_model("parakeet-tdt"), ReplyFormat::Json);
        assert_eq!(ReplyFormat::VerboseJson.wire_name(), "verbose_json");
        assert_eq!(ReplyFormat::JsonWithLogprobs.wire_name(), "json");
    }

    #[test]
    fn json_replies_give_text() {
        let t = parse_reply(br#"{"text":"  Hello,   world. ","x_groq":{"id":"req_1"}}"#).unwrap();
        assert_eq!(t.text, "Hello, world.");
        assert_eq!(t.confidence, UNSCORED_CONFIDENCE);
        let t = parse_reply(br#"{"text":""}"#).unwrap();
        assert_eq!((t.text.as_str(), t.confidence), ("", 0.0));
    }

    #[test]
    fn logprobs_give_the_mean_token_probability() {
        let body = br#"{"text":"Hi there","logprobs":[{"token":"Hi","logprob":0.0,"bytes":[72,105]},{"token":" there","logprob":-0.6931}]}"#;
        let t = parse_reply(body).unwrap();
        assert!((t.confidence - 0.75).abs() < 1e-3, "{}", t.confidence);
    }

    #[test]
    fn verbose_segments_score_and_drop_silence() {
        let body = br#"{"task":"transcribe","language":"english","duration":4.0,"text":" My sink leaks. Thank you.",
            "segments":[
              {"id":0,"seek":0,"start":0.0,"end":3.0,"text":" My sink leaks.","tokens":[1],"temperature":0.0,
               "avg_logprob":-0.105,"compression_ratio":1.1,"no_speech_prob":0.01},
              {"id":1,"seek":0,"start":3.0,"end":4.0,"text":" Thank you.","tokens":[2],"temperature":0.0,
               "avg_logprob":-1.4,"compression_ratio":0.8,"no_speech_prob":0.9}]}"#;
        let t = parse_reply(body).unwrap();
        assert_eq!(t.text, "My sink leaks.");
        assert!(
            (t.confidence - (-0.105f32).exp()).abs() < 1e-3,
            "{}",
            t.confidence
        );
        let silent = br#"{"text":" you","segments":[{"text":" you","start":0,"end":1,"avg_logprob":-2.0,"no_speech_prob":0.95}]}"#;
        let t = parse_reply(silent).unwrap();
        assert_eq!((t.text.as_str(), t.confidence), ("", 0.0));
    }

    #[test]
    fn other_bodies_are_fatal_errors() {
        for body in [
            &b"{not json"[..],
            br#"{"texts":"x"}"#,
            br#"{"text":5}"#,
            b"",
        ] {
            let err = parse_reply(body).unwrap_err();
            assert!(!err.retryable && err.engine == ENGINE, "{err:?}");
        }
    }
}
