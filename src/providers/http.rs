//! The HTTP side shared by the cloud speech clients (OpenAI-compatible
//! transcription and speech, ElevenLabs): a client per engine, a send whose
//! connect and time to response headers are bounded, the mapping of a failed
//! status to a [`ProviderError`] that carries the provider's own message (with
//! the API key scrubbed out of it), and a body reader that fails when the
//! body stalls or is cut off. Speech clients use it from `tts`, transcription
//! from `stt::transcribe`.

use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{RequestBuilder, Response, StatusCode};
use url::Url;

use crate::providers::ProviderError;

/// Most of an error body we read and keep; providers' messages are short.
const ERROR_BODY_LIMIT: usize = 16 * 1024;
/// Longest provider message quoted in an error.
const MESSAGE_CHARS: usize = 300;
/// Longest pause a provider may ask for that we pass on as given.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// An HTTP client for one engine: connection pooling (a warm connection
/// saves a TLS handshake per sentence) and the connect limit.
pub fn client(engine: &'static str, timeout: Duration) -> Result<reqwest::Client, ProviderError> {
    reqwest::Client::builder()
        .connect_timeout(timeout)
        .pool_idle_timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| ProviderError::fatal(engine, format!("building the HTTP client: {e}")))
}

/// `base` with `segments` appended as path segments (each percent-encoded,
/// so a voice id cannot change the path).
pub fn endpoint(engine: &'static str, base: &Url, segments: &[&str]) -> Result<Url, ProviderError> {
    let mut url = base.clone();
    url.path_segments_mut()
        .map_err(|()| ProviderError::fatal(engine, format!("`{base}` cannot take a path")))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

/// Sends `request` and waits for the response headers at most `timeout`
/// (connection included). A status other than 2xx becomes an error built from
/// the provider's reply; `secret` is scrubbed from its message.
pub async fn send(
    engine: &'static str,
    request: RequestBuilder,
    timeout: Duration,
    secret: Option<&str>,
) -> Result<Response, ProviderError> {
    let response = match tokio::time::timeout(timeout, request.send()).await {
        Err(_) => {
            return Err(ProviderError::retryable(
                engine,
                format!("no response within {} ms", timeout.as_millis()),
            ))
        }
        Ok(Err(e)) => return Err(send_error(engine, &e)),
        Ok(Ok(r)) => r,
    };
    if response.status().is_success() {
        return Ok(response);
    }
    Err(status_error(engine, response, timeout, secret).await)
}

/// A transport failure before any response: all are worth retrying except a
/// request we could not even build.
fn send_error(engine: &'static str, e: &reqwest::Error) -> ProviderError {
    let detail = error_chain(e);
    if e.is_builder() {
        return ProviderError::fatal(engine, format!("bad request: {detail}"));
    }
    let what = if e.is_connect() {
        "cannot connect"
    } else if e.is_timeout() {
        "timed out"
    } else {
        "request failed"
    };
    ProviderError::retryable(engine, format!("{what}: {detail}"))
}

/// The error and its causes, without the URL (it may carry a voice id).
fn error_chain(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(&format!(" for url ({url})"), "");
    }
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

/// Maps a non-2xx response: 408, 425, 429 and 5xx are worth retrying (a
/// 429 with its `Retry-After`), everything else is fatal. OpenAI's 429
/// `insufficient_quota` is a billing state, not a rate limit: fatal.
async fn status_error(
    engine: &'static str,
    response: Response,
    timeout: Duration,
    secret: Option<&str>,
) -> ProviderError {
    let status = response.status();
    let wait = retry_after(response.headers());
    let body = match read_limited(engine, response, timeout, ERROR_BODY_LIMIT).await {
        Ok(b) => b,
        Err(e) => e.message.into_bytes(),
    };
    let said = provider_message(&body)
        .map(|m| redact(&m, secret))
        .unwrap_or_default();
    let mut message = format!("HTTP {}", status.as_u16());
    if let Some(reason) = status.canonical_reason() {
        message.push(' ');
        message.push_str(reason);
    }
    if !said.is_empty() {
        message.push_str(": ");
        message.push_str(&said);
    }
    let out_of_quota = String::from_utf8_lossy(&body).contains("insufficient_quota");
    let retryable = matches!(
        status,
        StatusCode::REQUEST_TIMEOUT | StatusCode::TOO_EARLY | StatusCode::TOO_MANY_REQUESTS
    ) || status.is_server_error();
    if !retryable || out_of_quota {
        return ProviderError::fatal(engine, message);
    }
    let err = ProviderError::retryable(engine, message);
    match wait {
        Some(w) if status == StatusCode::TOO_MANY_REQUESTS => err.with_retry_after(w),
        _ => err,
    }
}

/// The `Retry-After` header of a response; see [`parse_retry_after`].
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    parse_retry_after(headers.get(RETRY_AFTER)?.to_str().ok()?, chrono::Utc::now())
}

/// A `Retry-After` value, seconds (whole or decimal) or an HTTP date (taken
/// against `now`), capped at an hour. Every provider client reads it here.
pub fn parse_retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    let wait = if let Ok(secs) = value.parse::<f64>() {
        if !secs.is_finite() || secs < 0.0 {
            return None;
        }
        Duration::from_secs_f64(secs.min(MAX_RETRY_AFTER.as_secs_f64()))
    } else {
        let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
        (at.with_timezone(&chrono::Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO)
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// The human-readable message in a provider's error body: OpenAI's
/// `{"error": {"message"}}`, ElevenLabs' `{"detail": {"message"}}`, a
/// validation list `{"detail": [{"msg"}]}`, a bare `message` or `error`
/// string, or else the body itself when it is short text.
pub fn provider_message(body: &[u8]) -> Option<String> {
    let text = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(json) => json_message(&json)?,
        Err(_) => {
            let raw = std::str::from_utf8(body).ok()?.trim();
            if raw.is_empty() || raw.starts_with('<') {
                return None;
            }
            raw.to_string()
        }
    };
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MESSAGE_CHARS)
        .collect();
    let clean = clean.trim().to_string();
    (!clean.is_empty()).then_some(clean)
}

fn json_message(json: &serde_json::Value) -> Option<String> {
    let str_at = |v: &serde_json::Value, key: &str| v.get(key)?.as_str().map(str::to_string);
    if let Some(error) = json.get("error") {
        return str_at(error, "message").or_else(|| error.as_str().map(str::to_string));
    }
    if let Some(detail) = json.get("detail") {
        if let Some(s) = detail.as_str() {
            return Some(s.to_string());
        }
        if let Some(list) = detail.as_array() {
            let msgs: Vec<String> = list.iter().filter_map(|d| str_at(d, "msg")).collect();
            return (!msgs.is_empty()).then(|| msgs.join("; "));
        }
        let status = str_at(detail, "status");
        return match (str_at(detail, "message"), status) {
            (Some(m), Some(s)) => Some(format!("{m} ({s})")),
            (m, s) => m.or(s),
        };
    }
    str_at(json, "message")
}

/// Removes the key, and anything that looks like a masked copy of it (some
/// providers echo `sk-abc…***…xyz`), from a message.
pub fn redact(message: &str, secret: Option<&str>) -> String {
    let secret = secret.map(str::trim).filter(|s| s.len() >= 4);
    let mut out = message.to_string();
    if let Some(key) = secret {
        out = out.replace(key, "[redacted]");
    }
    let prefix: Option<String> = secret.map(|k| k.chars().take(6).collect());
    out.split(' ')
        .map(|word| {
            let masked = word.contains("***") || word.contains("…");
            let keyish = prefix
                .as_deref()
                .is_some_and(|p| p.len() >= 4 && word.contains(p));
            if masked || keyish {
                "[redacted]"
            } else {
                word
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A response body read chunk by chunk, failing when no chunk arrives within
/// `timeout` or the connection breaks before the body ends.
pub struct BodyReader {
    engine: &'static str,
    chunks: BoxStream<'static, reqwest::Result<Bytes>>,
    timeout: Duration,
}

impl BodyReader {
    pub fn new(engine: &'static str, response: Response, timeout: Duration) -> Self {
        BodyReader {
            engine,
            chunks: response.bytes_stream().boxed(),
            timeout,
        }
    }

    /// The next chunk, `None` at the clean end of the body.
    pub async fn next(&mut self) -> Result<Option<Bytes>, ProviderError> {
        match tokio::time::timeout(self.timeout, self.chunks.next()).await {
            Err(_) => Err(ProviderError::retryable(
                self.engine,
                format!("response body stalled for {} ms", self.timeout.as_millis()),
            )),
            Ok(Some(Err(e))) => Err(ProviderError::retryable(
                self.engine,
                format!("response body cut off: {}", error_chain(&e)),
            )),
            Ok(Some(Ok(chunk))) => Ok(Some(chunk)),
            Ok(None) => Ok(None),
        }
    }
}

/// Reads a whole (small) body; more than `limit` bytes is an error.
pub async fn read_limited(
    engine: &'static str,
    response: Response,
    timeout: Duration,
    limit: usize,
) -> Result<Vec<u8>, ProviderError> {
    let mut reader = BodyReader::new(engine, response, timeout);
    let mut body = Vec::new();
    while let Some(chunk) = reader.next().await? {
        if body.len() + chunk.len() > limit {
            return Err(ProviderError::fatal(
                engine,
                format!("response body larger than {limit} bytes"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn messages_come_from_each_documented_error_shape() {
        let openai = br#"{"error":{"message":"Invalid file format.","type":"invalid_request_error","param":null,"code":null}}"#;
        assert_eq!(
            provider_message(openai).as_deref(),
            Some("Invalid file format.")
        );
        let eleven = br#"{"detail":{"status":"invalid_api_key","message":"Invalid API key"}}"#;
        assert_eq!(
            provider_message(eleven).as_deref(),
            Some("Invalid API key (invalid_api_key)")
        );
        let validation = br#"{"detail":[{"loc":["body","text"],"msg":"field required","type":"value_error.missing"}]}"#;
        assert_eq!(
            provider_message(validation).as_deref(),
            Some("field required")
        );
        assert_eq!(
            provider_message(br#"{"detail":"Not Found"}"#).as_deref(),
            Some("Not Found")
        );
        assert_eq!(
            provider_message(b"upstream\nconnect error").as_deref(),
            Some("upstream connect error")
        );
        assert_eq!(provider_message(b"<html>502</html>"), None);
        assert_eq!(provider_message(b"{}"), None);
        let long = format!("{{\"message\":\"{}\"}}", "x".repeat(1000));
        assert_eq!(
            provider_message(long.as_bytes()).map(|m| m.len()),
            Some(MESSAGE_CHARS)
        );
    }

    #[test]
    fn keys_and_masked_keys_are_scrubbed() {
        let key = "sk-proj-abcdef123456";
        let msg =
            "Incorrect API key provided: sk-proj-********3456. Also sk-proj-abcdef123456 here.";
        let clean = redact(msg, Some(key));
        assert!(
            !clean.contains("3456") && !clean.contains("abcdef"),
            "{clean}"
        );
        assert!(
            clean.starts_with("Incorrect API key provided: [redacted]"),
            "{clean}"
        );
        assert_eq!(redact("quota exceeded", Some(key)), "quota exceeded");
        assert_eq!(redact("quota exceeded", None), "quota exceeded");
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        // Against a fixed now (the cases the Deepgram, chat and SMS clients
        // each tested before they shared this parser).
        use chrono::TimeZone;
        let now = chrono::Utc
            .with_ymd_and_hms(2015, 10, 21, 7, 27, 0)
            .unwrap();
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("1.5", now),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:26:00 GMT", now),
            Some(Duration::ZERO),
            "a date in the past means now"
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-4", now), None);
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(RETRY_AFTER, HeaderValue::from_static("0.5"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(500)));
        h.insert(RETRY_AFTER, HeaderValue::from_static("-3"));
        assert_eq!(retry_after(&h), None);
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(
            retry_after(&h),
            Some(Duration::ZERO),
            "a past date means now"
        );
        let soon = (chrono::Utc::now() + chrono::Duration::seconds(120)).to_rfc2822();
        h.insert(RETRY_AFTER, HeaderValue::from_str(&soon).unwrap());
        let wait = retry_after(&h).unwrap();
        assert!(
            wait > Duration::from_secs(100) && wait <= Duration::from_secs(120),
            "{wait:?}"
        );
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn endpoints_append_encoded_segments() {
        let base = Url::parse("https://api.groq.com/openai/v1").unwrap();
        let u = endpoint("t", &base, &["audio", "transcriptions"]).unwrap();
        assert_eq!(
            u.as_str(),
            "https://api.groq.com/openai/v1/audio/transcriptions"
        );
        let slash = Url::parse("https://api.elevenlabs.io/").unwrap();
        let u = endpoint("t", &slash, &["v1", "text-to-speech", "a/b?c", "stream"]).unwrap();
        assert_eq!(
            u.as_str(),
            "https://api.elevenlabs.io/v1/text-to-speech/a%2Fb%3Fc/stream"
        );
        let odd = Url::parse("mailto:x@y").unwrap();
        assert!(endpoint("t", &odd, &["a"]).is_err());
    }
}
