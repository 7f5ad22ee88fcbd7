//! Sending one SMS through Twilio's Messages resource:
//! `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`, a form with `To`,
//! `Body` and either `From` (a Twilio number) or `MessagingServiceSid`
//! (`MG…`), HTTP Basic auth. Twilio answers 201 with the Message resource
//! (`sid`, `status`, `num_segments`…), or an error status with the JSON body
//! `{code, message, more_info, status}`.
//!
//! Failures are sorted by what a queue should do with them: try again later
//! (network, timeout, 429 with `Retry-After`, 5xx, Twilio's own queue full),
//! give this message up (a 400 about the message: invalid or unsubscribed
//! recipient…), or keep it and fix the configuration (credentials, account,
//! sender). Retrying and persistence belong to `crate::outbox`.

use std::time::Duration;

use crate::providers::http::parse_retry_after;

use serde::Deserialize;

use super::RestClient;
use crate::providers::ProviderError;

const ENGINE: &str = "twilio-sms";

/// Twilio codes on a 400 that a later attempt can get past.
const TRANSIENT_CODES: [u32; 2] = [
    21611, // the From number's queue is full
    20429, // too many requests
];

/// Twilio codes on a 400 that blame our sender or account, not the message.
const SENDER_CODES: [u32; 5] = [
    21212, // invalid From number
    21603, // From is required
    21606, // From is not an SMS-capable number of this account
    21659, // From is not a Twilio number
    21660, // From belongs to another account
];

/// Who the message comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmsSender {
    /// A Twilio phone number in E.164 (`From`).
    Number(String),
    /// A Messaging Service that picks the number (`MessagingServiceSid`).
    MessagingService(String),
}

impl SmsSender {
    /// Reads the configured sender: a Messaging Service SID (`MG` and 32 hex
    /// digits) or else a phone number.
    pub fn from_setting(value: &str) -> SmsSender {
        let value = value.trim();
        let is_service = value.len() == 34
            && value.starts_with("MG")
            && value[2..].chars().all(|c| c.is_ascii_hexdigit());
        if is_service {
            SmsSender::MessagingService(value.to_string())
        } else {
            SmsSender::Number(value.to_string())
        }
    }

    fn form_field(&self) -> (&'static str, &str) {
        match self {
            SmsSender::Number(n) => ("From", n),
            SmsSender::MessagingService(sid) => ("MessagingServiceSid", sid),
        }
    }
}

/// What Twilio said when it accepted a message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SmsAccepted {
    /// The Message SID (`SM…`); `None` if the 2xx body could not be read.
    pub sid: Option<String>,
    /// Twilio's status, usually `queued` or `accepted`.
    pub status: Option<String>,
    /// Segments Twilio counted (0 when a Messaging Service is used).
    pub segments: Option<u32>,
}

/// Why a message was not accepted, sorted by what to do next.
#[derive(Debug, Clone, PartialEq)]
pub enum SmsFailure {
    /// Try again later; `retry_after` on the error when Twilio named a pause.
    Transient(ProviderError),
    /// Twilio refused this message for good; retrying cannot help.
    Rejected {
        code: Option<u32>,
        error: ProviderError,
    },
    /// Our credentials, account or sender were refused: the message is fine
    /// and can go once the configuration is fixed.
    Misconfigured {
        code: Option<u32>,
        error: ProviderError,
    },
}

impl SmsFailure {
    pub fn error(&self) -> &ProviderError {
        match self {
            SmsFailure::Transient(e)
            | SmsFailure::Rejected { error: e, .. }
            | SmsFailure::Misconfigured { error: e, .. } => e,
        }
    }

    /// Twilio's error code, when its answer carried one.
    pub fn code(&self) -> Option<u32> {
        match self {
            SmsFailure::Transient(_) => None,
            SmsFailure::Rejected { code, .. } | SmsFailure::Misconfigured { code, .. } => *code,
        }
    }
}

impl std::fmt::Display for SmsFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error().fmt(f)
    }
}

impl From<SmsFailure> for ProviderError {
    fn from(failure: SmsFailure) -> ProviderError {
        match failure {
            SmsFailure::Transient(e)
            | SmsFailure::Rejected { error: e, .. }
            | SmsFailure::Misconfigured { error: e, .. } => e,
        }
    }
}

/// Twilio's error body.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    code: Option<u32>,
    message: Option<String>,
    more_info: Option<String>,
}

/// The fields of the 201 Message resource we keep.
#[derive(Debug, Deserialize)]
struct MessageBody {
    sid: Option<String>,
    status: Option<String>,
    // Twilio sends this as a string ("1").
    num_segments: Option<String>,
}

/// Sorts a non-2xx answer. Pure, so every branch is tested without a socket.
pub fn classify_failure(status: u16, retry_after: Option<Duration>, body: &str) -> SmsFailure {
    let parsed = serde_json::from_str::<ErrorBody>(body).ok();
    let code = parsed.as_ref().and_then(|b| b.code);
    let text = parsed
        .as_ref()
        .and_then(|b| b.message.clone())
        .unwrap_or_else(|| body.chars().take(200).collect());
    let more = parsed
        .and_then(|b| b.more_info)
        .map(|url| format!(" ({url})"))
        .unwrap_or_default();
    let message = match code {
        Some(code) => format!("HTTP {status}, Twilio error {code}: {text}{more}"),
        None => format!("HTTP {status}: {text}"),
    };
    let transient = |message: String| {
        let error = ProviderError::retryable(ENGINE, message);
        SmsFailure::Transient(match retry_after {
            Some(wait) => error.with_retry_after(wait),
            None => error,
        })
    };
    match status {
        429 | 408 | 425 | 500..=599 => transient(message),
        400 if code.is_some_and(|c| TRANSIENT_CODES.contains(&c)) => transient(message),
        400 if code.is_some_and(|c| SENDER_CODES.contains(&c)) => SmsFailure::Misconfigured {
            code,
            error: ProviderError::fatal(ENGINE, message),
        },
        // 404 on the Messages list means the account SID in the path is wrong.
        401 | 403 | 404 => SmsFailure::Misconfigured {
            code,
            error: ProviderError::fatal(ENGINE, message),
        },
        _ => SmsFailure::Rejected {
            code,
            error: ProviderError::fatal(ENGINE, message),
        },
    }
}

fn transport_failure(err: reqwest::Error) -> SmsFailure {
    // reqwest's text names the URL, which holds the account SID but no secret.
    let what = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    SmsFailure::Transient(ProviderError::retryable(ENGINE, format!("{what}: {err}")))
}

impl RestClient {
    fn messages_url(&self) -> Result<url::Url, SmsFailure> {
        self.account_url(&["Messages.json"])
            .ok_or_else(|| SmsFailure::Misconfigured {
                code: None,
                error: ProviderError::fatal(ENGINE, format!("bad Twilio REST URL {}", self.base)),
            })
    }

    /// Asks Twilio to send `body` to `to`. `timeout` bounds the whole request;
    /// after a timeout Twilio may still have accepted the message, so a retry
    /// can send it twice (the Messages API has no idempotency key).
    pub async fn send_sms(
        &self,
        to: &str,
        sender: &SmsSender,
        body: &str,
        timeout: Duration,
    ) -> Result<SmsAccepted, SmsFailure> {
        let resp = self
            .http
            .post(self.messages_url()?)
            .basic_auth(&self.account_sid, Some(self.auth_token.expose()))
            .form(&[("To", to), sender.form_field(), ("Body", body)])
            .timeout(timeout)
            .send()
            .await
            .map_err(transport_failure)?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, chrono::Utc::now()));
        let text = resp.text().await;
        if !status.is_success() {
            let text = text.map_err(transport_failure)?;
            return Err(classify_failure(status.as_u16(), retry_after, &text));
        }
        // A 2xx means Twilio took the message: an unreadable or cut body must
        // not make us send it again.
        let accepted = match text
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str::<MessageBody>(&t).map_err(|e| e.to_string()))
        {
            Ok(m) => SmsAccepted {
                sid: m.sid,
                status: m.status,
                segments: m.num_segments.and_then(|n| n.parse().ok()),
            },
            Err(error) => {
                tracing::warn!(%error, "Twilio accepted an SMS but its answer could not be read");
                SmsAccepted::default()
            }
        };
        Ok(accepted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sender_setting_tells_service_from_number() {
        assert_eq!(
            SmsSender::from_setting("+15550001111"),
            SmsSender::Number("+15550001111".into())
        );
        let sid = format!("MG{}", "a1".repeat(16));
        assert_eq!(
            SmsSender::from_setting(&sid),
            SmsSender::MessagingService(sid.clone())
        );
        assert_eq!(
            SmsSender::MessagingService(sid.clone()).form_field(),
            ("MessagingServiceSid", sid.as_str())
        );
        // Too short for a SID: taken as a number and left for Twilio to judge.
        assert_eq!(
            SmsSender::from_setting("MG12"),
            SmsSender::Number("MG12".into())
        );
    }

    const INVALID_TO: &str = r#"{"code": 21211, "message": "The 'To' number 12345 is not a valid phone number.", "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400}"#;

    #[test]
    fn invalid_recipient_is_rejected_for_good() {
        let f = classify_failure(400, None, INVALID_TO);
        assert!(matches!(
            f,
            SmsFailure::Rejected {
                code: Some(21211),
                ..
            }
        ));
        assert!(!f.error().retryable);
        assert!(f.error().message.contains("21211"));
        assert!(f.error().message.contains("not a valid phone number"));
        assert!(f.error().message.contains("docs/errors/21211"));
    }

    #[test]
    fn unsubscribed_recipient_is_rejected_for_good() {
        let body = r#"{"code": 21610, "message": "Attempt to send to unsubscribed recipient", "more_info": "https://www.twilio.com/docs/errors/21610", "status": 400}"#;
        assert!(matches!(
            classify_failure(400, None, body),
            SmsFailure::Rejected {
                code: Some(21610),
                ..
            }
        ));
    }

    #[test]
    fn full_sender_queue_is_transient() {
        let body = r#"{"code": 21611, "message": "This 'From' number has exceeded the maximum number of queued messages", "status": 400}"#;
        let f = classify_failure(400, None, body);
        assert!(matches!(f, SmsFailure::Transient(_)));
        assert!(f.error().retryable);
    }

    #[test]
    fn bad_sender_or_credentials_keep_the_message() {
        let bad_from = r#"{"code": 21606, "message": "The From phone number is not a valid, SMS-capable inbound phone number or short code for your account.", "status": 400}"#;
        assert!(matches!(
            classify_failure(400, None, bad_from),
            SmsFailure::Misconfigured {
                code: Some(21606),
                ..
            }
        ));
        let auth = r#"{"code": 20003, "message": "Authenticate", "more_info": "https://www.twilio.com/docs/errors/20003", "status": 401}"#;
        let f = classify_failure(401, None, auth);
        assert!(matches!(
            f,
            SmsFailure::Misconfigured {
                code: Some(20003),
                ..
            }
        ));
        assert!(!f.error().retryable, "a 401 is fatal for the request");
        assert!(matches!(
            classify_failure(
                404,
                None,
                r#"{"code": 20404, "message": "The requested resource was not found", "status": 404}"#
            ),
            SmsFailure::Misconfigured { .. }
        ));
    }

    #[test]
    fn rate_limit_and_server_errors_are_transient() {
        let body = r#"{"code": 20429, "message": "Too Many Requests", "status": 429}"#;
        let f = classify_failure(429, Some(Duration::from_secs(3)), body);
        assert!(matches!(f, SmsFailure::Transient(_)));
        assert_eq!(f.error().retry_after, Some(Duration::from_secs(3)));
        for status in [500, 502, 503] {
            let f = classify_failure(status, None, "<html>bad gateway</html>");
            assert!(f.error().retryable);
            assert_eq!(f.error().retry_after, None);
            assert!(f.error().message.contains("bad gateway"));
        }
    }

    #[test]
    fn a_400_without_json_is_still_a_rejection() {
        let f = classify_failure(400, None, "not json");
        assert!(matches!(f, SmsFailure::Rejected { code: None, .. }));
        assert_eq!(f.error().message, "HTTP 400: not json");
    }
}
