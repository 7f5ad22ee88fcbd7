//! ElevenLabs streaming text-to-speech over its documented HTTP API: `POST
//! {base_url}/v1/text-to-speech/{voice_id}/stream?output_format=pcm_16000
//! &optimize_streaming_latency=<0-4>` with the key in `xi-api-key` and a JSON
//! body `{"text", "model_id"}`. `pcm_16000` is signed 16-bit little-endian
//! mono at our own rate, so the body goes straight into frames as it
//! arrives. No `voice_settings` are sent: the voice's stored settings apply.
//! `optimize_streaming_latency` is marked deprecated in the current reference
//! but still accepted; it is sent because it is configured.
//!
//! ElevenLabs reports errors as JSON `detail` (an object with `status` and
//! `message`, or a validation list); its message reaches the
//! [`ProviderError`], the key never does.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use url::Url;

use super::pcm::{stream_speech, PcmRate};
use crate::audio::Frame;
use crate::config::{ElevenLabsConfig, Secret};
use crate::providers::http;
use crate::providers::{ProviderError, TtsProvider};

const ENGINE: &str = "elevenlabs";
/// The output format asked for: PCM at the internal rate.
pub const OUTPUT_FORMAT: &str = "pcm_16000";
/// Frames buffered ahead of the consumer (2 s).
const CHANNEL_FRAMES: usize = 100;

/// Streaming speech from ElevenLabs' `/v1/text-to-speech/{voice_id}/stream`.
pub struct ElevenLabsTts {
    shared: Arc<Shared>,
}

struct Shared {
    client: Result<reqwest::Client, ProviderError>,
    url: Result<Url, ProviderError>,
    api_key: Option<Secret>,
    model: String,
    timeout: Duration,
}

impl std::fmt::Debug for ElevenLabsTts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ElevenLabsTts")
            .field("model", &self.shared.model)
            .field("timeout", &self.shared.timeout)
            .finish_non_exhaustive()
    }
}

impl ElevenLabsTts {
    /// `timeout` bounds connecting plus the wait for the response headers,
    /// and any pause between two chunks of the body.
    pub fn new(config: ElevenLabsConfig, timeout: Duration) -> Self {
        let url = stream_url(&config);
        let shared = Shared {
            client: http::client(ENGINE, timeout),
            url,
            api_key: config.api_key,
            model: config.model,
            timeout,
        };
        ElevenLabsTts {
            shared: Arc::new(shared),
        }
    }
}

/// The streaming endpoint for the configured voice, with its query.
pub fn stream_url(config: &ElevenLabsConfig) -> Result<Url, ProviderError> {
    let voice = config.voice_id.trim();
    if voice.is_empty() {
        return Err(ProviderError::fatal(ENGINE, "no voice id configured"));
    }
    let segments = ["v1", "text-to-speech", voice, "stream"];
    let mut url = http::endpoint(ENGINE, &config.base_url, &segments)?;
    url.query_pairs_mut()
        .append_pair("output_format", OUTPUT_FORMAT)
        .append_pair(
            "optimize_streaming_latency",
            &config.optimize_streaming_latency.to_string(),
        );
    Ok(url)
}

impl Shared {
    async fn request(&self, text: String) -> Result<reqwest::Response, ProviderError> {
        let client = self.client.as_ref().map_err(Clone::clone)?;
        let url = self.url.as_ref().map_err(Clone::clone)?;
        let body = serde_json::json!({ "text": text, "model_id": self.model });
        let mut request = client.post(url.clone()).json(&body);
        if let Some(key) = &self.api_key {
            request = request.header("xi-api-key", key.expose());
        }
        let secret = self.api_key.as_ref().map(Secret::expose);
        http::send(ENGINE, request, self.timeout, secret).await
    }
}

impl TtsProvider for ElevenLabsTts {
    fn name(&self) -> &'static str {
        ENGINE
    }

    fn synthesize(&self, text: &str) -> mpsc::Receiver<Result<Frame, ProviderError>> {
        let (tx, rx) = mpsc::channel(CHANNEL_FRAMES);
        let text = text.trim();
        let pieces: Vec<String> = if text.is_empty() {
            Vec::new()
        } else {
            vec![text.to_string()]
        };
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
            stream_speech(ENGINE, PcmRate::Hz16000, timeout, pieces, tx, request).await;
        });
        rx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(voice: &str) -> ElevenLabsConfig {
        ElevenLabsConfig {
            api_key: Some(Secret::new("xi-secret")),
            base_url: Url::parse("https://api.elevenlabs.io").unwrap(),
            voice_id: voice.into(),
            model: "eleven_flash_v2_5".into(),
            optimize_streaming_latency: 3,
        }
    }

    #[test]
    fn url_names_the_voice_and_the_format() {
        let url = stream_url(&config("21m00Tcm4TlvDq8ikWAM")).unwrap();
        assert_eq!(
            url.as_str(),
            "https://api.elevenlabs.io/v1/text-to-speech/21m00Tcm4TlvDq8ikWAM/stream\
             ?output_format=pcm_16000&optimize_streaming_latency=3"
        );
        assert!(stream_url(&config("  ")).is_err());
    }

    #[test]
    fn debug_shows_no_key() {
        let shown = format!(
            "{:?}",
            ElevenLabsTts::new(config("v"), Duration::from_secs(1))
        );
        assert!(!shown.contains("xi-secret"), "{shown}");
    }
}
