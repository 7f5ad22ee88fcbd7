//! OpenAI text-to-speech over its documented HTTP API: `POST
//! {base_url}/audio/speech` with a Bearer key and a JSON body `{model, input,
//! voice, response_format: "pcm"}`. The reply is raw PCM, 24 kHz 16-bit
//! signed little-endian mono, streamed; it is brought to 16 kHz and cut into
//! frames as the bytes arrive, so the first frame leaves once ~20 ms of audio
//! has. Any OpenAI-compatible server that speaks `pcm` works the same.
//!
//! Text over the API's 4096-character limit is sent as several requests,
//! split at sentence ends, one after the other into the same frame stream.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use url::Url;

use super::offline::split_sentences;
use super::pcm::{stream_speech, PcmRate};
use crate::audio::Frame;
use crate::config::{OpenAiTtsConfig, Secret};
use crate::providers::http;
use crate::providers::{ProviderError, TtsProvider};

const ENGINE: &str = "openai";
/// The API's limit on `input`, in characters.
pub const MAX_INPUT_CHARS: usize = 4096;
/// Frames buffered ahead of the consumer (2 s).
const CHANNEL_FRAMES: usize = 100;

/// Streaming speech from OpenAI's `/audio/speech`.
pub struct OpenAiTts {
    shared: Arc<Shared>,
}

struct Shared {
    client: Result<reqwest::Client, ProviderError>,
    url: Result<Url, ProviderError>,
    api_key: Option<Secret>,
    model: String,
    voice: String,
    timeout: Duration,
}

impl std::fmt::Debug for OpenAiTts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiTts")
            .field("model", &self.shared.model)
            .field("voice", &self.shared.voice)
            .field("timeout", &self.shared.timeout)
            .finish_non_exhaustive()
    }
}

impl OpenAiTts {
    /// `timeout` bounds connecting plus the wait for the response headers,
    /// and any pause between two chunks of the body.
    pub fn new(config: OpenAiTtsConfig, timeout: Duration) -> Self {
        let shared = Shared {
            client: http::client(ENGINE, timeout),
            url: http::endpoint(ENGINE, &config.base_url, &["audio", "speech"]),
            api_key: config.api_key,
            model: config.model,
            voice: config.voice,
            timeout,
        };
        OpenAiTts {
            shared: Arc::new(shared),
        }
    }
}

impl Shared {
    async fn request(&self, input: String) -> Result<reqwest::Response, ProviderError> {
        let client = self.client.as_ref().map_err(Clone::clone)?;
        let url = self.url.as_ref().map_err(Clone::clone)?;
        let body = serde_json::json!({
            "model": self.model,
            "input": input,
            "voice": self.voice,
            "response_format": "pcm",
        });
        let mut request = client.post(url.clone()).json(&body);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key.expose());
        }
        let secret = self.api_key.as_ref().map(Secret::expose);
        http::send(ENGINE, request, self.timeout, secret).await
    }
}

impl TtsProvider for OpenAiTts {
    fn name(&self) -> &'static str {
        ENGINE
    }

    fn synthesize(&self, text: &str) -> mpsc::Receiver<Result<Frame, ProviderError>> {
        let (tx, rx) = mpsc::channel(CHANNEL_FRAMES);
        let pieces = input_pieces(text, MAX_INPUT_CHARS);
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            let err = ProviderError::fatal(ENGINE, "synthesize needs a tokio runtime");
            let _ = tx.try_send(Err(err));
            return rx;
        };
        let shared = Arc::clone(&self.shared);
        rt.spawn(async move {
            let timeout = shared.timeout;
            let request = |piece: String| {
                let shared = Arc::clone(&shared);
                async move { shared.request(piece).await }
            };
            stream_speech(ENGINE, PcmRate::Hz24000, timeout, pieces, tx, request).await;
        });
        rx
    }
}

/// Splits `text` into pieces of at most `max_chars` characters, at sentence
/// ends where possible, at spaces inside an over-long sentence, and hard only
/// inside an over-long word. Blank text gives no piece at all.
pub fn input_pieces(text: &str, max_chars: usize) -> Vec<String> {
    let max_chars = max_chars.max(1);
    let text = text.trim();
    if text.is_empty() {
        return Vec::new();
    }
    if text.chars().count() <= max_chars {
        return vec![text.to_string()];
    }
    let mut pieces = Vec::new();
    let mut current = String::new();
    let words = split_sentences(text)
        .into_iter()
        .flat_map(|s| fit_sentence(&s, max_chars));
    for unit in words {
        let joined = current.chars().count() + 1 + unit.chars().count();
        if !current.is_empty() && joined > max_chars {
            pieces.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(&unit);
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    pieces
}

/// A sentence as units no longer than `max_chars`: itself when it fits, else
/// runs of words, else slices of a single giant word.
fn fit_sentence(sentence: &str, max_chars: usize) -> Vec<String> {
    if sentence.chars().count() <= max_chars {
        return vec![sentence.to_string()];
    }
    let mut units = Vec::new();
    for word in sentence.split_whitespace() {
        let chars: Vec<char> = word.chars().collect();
        units.extend(
            chars
                .chunks(max_chars)
                .map(|c| c.iter().collect::<String>()),
        );
    }
    units
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_one_piece_and_blank_text_none() {
        assert_eq!(input_pieces("  Hello there.  ", 4096), vec!["Hello there."]);
        assert!(input_pieces(" \n ", 4096).is_empty());
    }

    #[test]
    fn long_text_splits_at_sentences_within_the_limit() {
        let text = "One two three. Four five six. Seven eight nine.";
        let pieces = input_pieces(text, 30);
        assert_eq!(
            pieces,
            vec!["One two three. Four five six.", "Seven eight nine."]
        );
        let giant = format!("{} end.", "x".repeat(25));
        let pieces = input_pieces(&giant, 10);
        assert!(pieces.iter().all(|p| p.chars().count() <= 10), "{pieces:?}");
        assert_eq!(pieces.concat().replace(' ', ""), giant.replace(' ', ""));
        let words = "alpha beta gamma delta epsilon zeta eta theta.";
        let pieces = input_pieces(words, 12);
        assert!(pieces.iter().all(|p| p.chars().count() <= 12), "{pieces:?}");
        assert_eq!(pieces.join(" "), words);
    }

    #[test]
    fn debug_shows_no_key() {
        let config = OpenAiTtsConfig {
            api_key: Some(Secret::new("sk-secret-value")),
            base_url: Url::parse("https://api.openai.com/v1").unwrap(),
            model: "gpt-4o-mini-tts".into(),
            voice: "alloy".into(),
        };
        let tts = OpenAiTts::new(config, Duration::from_secs(5));
        let shown = format!("{tts:?}");
        assert!(
            shown.contains("alloy") && !shown.contains("sk-secret"),
            "{shown}"
        );
    }
}
