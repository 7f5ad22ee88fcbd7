//! What Deepgram's HTTP layer says when it refuses a request, shared by the
//! live-transcription handshake and the Aura speech client: the status mapped
//! to a [`ProviderError`] (retryable or not, with a 429's `Retry-After`), and
//! the reason taken from the `dg-error` header or the JSON error body. The
//! API key never appears in what this returns.

use crate::providers::http::{parse_retry_after, redact};

use serde_json::Value;

use crate::config::Secret;
use crate::providers::ProviderError;

pub const ENGINE: &str = "deepgram";

/// Longest reason kept from an error body.
const MAX_REASON: usize = 300;

/// The `Authorization` header value Deepgram expects.
pub fn authorization(key: &Secret) -> String {
    format!("Token {}", key.expose())
}

/// A refused request: `status`, its `Retry-After` and `dg-error` headers if
/// any, and the start of its body.
pub fn status_error(
    status: u16,
    retry_after: Option<&str>,
    dg_error: Option<&str>,
    body: &[u8],
    key: &Secret,
) -> ProviderError {
    let reason = dg_error
        .map(str::to_string)
        .filter(|s| !s.trim().is_empty())
        .or_else(|| body_reason(body))
        .unwrap_or_else(|| "no reason given".into());
    let message = redact(
        &format!("HTTP {status}: {}", clip(&reason)),
        Some(key.expose()),
    );
    match status {
        401 | 403 => ProviderError::fatal(ENGINE, message),
        429 => {
            let err = ProviderError::retryable(ENGINE, message);
            match retry_after.and_then(|v| parse_retry_after(v, chrono::Utc::now())) {
                Some(wait) => err.with_retry_after(wait),
                None => err,
            }
        }
        408 | 500..=599 => ProviderError::retryable(ENGINE, message),
        _ => ProviderError::fatal(ENGINE, message),
    }
}

/// The reason in a Deepgram error body: `err_msg` (older endpoints) or
/// `message` with `details` (newer ones); plain text is taken as it is.
fn body_reason(body: &[u8]) -> Option<String> {
    if body.is_empty() {
        return None;
    }
    let text = String::from_utf8_lossy(body);
    let Ok(json) = serde_json::from_str::<Value>(&text) else {
        let t = text.trim();
        return (!t.is_empty()).then(|| t.to_string());
    };
    let field = |k: &str| {
        json.get(k)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let main = field("err_msg").or_else(|| field("message"))?;
    Some(match field("details") {
        Some(details) => format!("{main} ({details})"),
        None => main.to_string(),
    })
}

fn clip(s: &str) -> String {
    let one_line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(MAX_REASON) {
        Some((at, _)) => format!("{}…", &one_line[..at]),
        None => one_line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Secret {
        Secret::new("dg-secret-key")
    }

    #[test]
    fn auth_failures_are_fatal_with_the_reason() {
        let body =
            br#"{"err_code":"INVALID_AUTH","err_msg":"Invalid credentials.","request_id":"r1"}"#;
        let e = status_error(401, None, None, body, &key());
        assert!(!e.retryable);
        assert_eq!(e.message, "HTTP 401: Invalid credentials.");
        assert!(!status_error(403, None, None, b"", &key()).retryable);
        assert!(!status_error(400, None, None, b"", &key()).retryable);
    }

    #[test]
    fn rate_limits_and_server_errors_are_retryable() {
        let e = status_error(429, Some("7"), None, b"", &key());
        assert!(e.retryable);
        assert_eq!(e.retry_after, Some(std::time::Duration::from_secs(7)));
        assert_eq!(e.message, "HTTP 429: no reason given");
        let e = status_error(503, None, Some("service overloaded"), b"x", &key());
        assert!(e.retryable);
        assert_eq!(e.message, "HTTP 503: service overloaded");
        assert_eq!(e.retry_after, None);
    }

    #[test]
    fn newer_error_bodies_and_plain_text() {
        let body = br#"{"category":"INVALID_JSON","message":"Invalid JSON submitted.","details":"missing field `text`","request_id":"r"}"#;
        let e = status_error(400, None, None, body, &key());
        assert_eq!(
            e.message,
            "HTTP 400: Invalid JSON submitted. (missing field `text`)"
        );
        let e = status_error(502, None, None, b"  bad\n gateway ", &key());
        assert_eq!(e.message, "HTTP 502: bad gateway");
    }

    #[test]
    fn the_key_is_never_echoed() {
        let body = br#"{"err_msg":"key dg-secret-key is not valid"}"#;
        let e = status_error(401, None, None, body, &key());
        assert!(!e.message.contains("dg-secret-key"), "{}", e.message);
        assert!(e.message.contains("[redacted]"));
    }

    #[test]
    fn long_reasons_are_clipped() {
        let long = "x".repeat(1000);
        let e = status_error(500, None, Some(&long), b"", &key());
        assert!(e.message.chars().count() < MAX_REASON + 20);
    }
}
