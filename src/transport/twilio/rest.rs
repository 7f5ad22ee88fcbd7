//! A small client for Twilio's REST API: updating a live call with new TwiML
//! (`POST /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json` with the
//! form field `Twiml`, HTTP Basic auth with the account SID and auth token).
//! The base URL comes from the configuration so tests can point it at a
//! local fake.

use std::time::Duration;

use crate::config::{Secret, TwilioConfig};

use super::twiml;

// Sending SMS through the Messages resource.
mod sms;
pub use sms::{classify_failure, SmsAccepted, SmsFailure, SmsSender};

#[derive(Debug, thiserror::Error)]
pub enum RestError {
    #[error("Twilio REST request failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("Twilio REST answered {status}: {message}")]
    Status { status: u16, message: String },
    #[error("bad Twilio REST URL: {0}")]
    Url(String),
}

/// Credentials and a connection pool; cheap to clone.
#[derive(Clone)]
pub struct RestClient {
    http: reqwest::Client,
    base: url::Url,
    account_sid: String,
    auth_token: Secret,
}

impl std::fmt::Debug for RestClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestClient")
            .field("base", &self.base.as_str())
            .field("account_sid", &self.account_sid)
            .finish()
    }
}

impl RestClient {
    /// A client when both the account SID and the auth token are configured.
    pub fn from_config(config: &TwilioConfig) -> Option<RestClient> {
        let account_sid = config.account_sid.clone()?;
        let auth_token = config.auth_token.clone()?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .ok()?;
        Some(RestClient {
            http,
            base: config.api_base.clone(),
            account_sid,
            auth_token,
        })
    }

    /// `{base}/2010-04-01/Accounts/{AccountSid}/{rest…}`; `None` when the
    /// base URL cannot take a path.
    fn account_url(&self, rest: &[&str]) -> Option<url::Url> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .ok()?
            .pop_if_empty()
            .extend(["2010-04-01", "Accounts", self.account_sid.as_str()])
            .extend(rest);
        Some(url)
    }

    fn call_url(&self, call_sid: &str) -> Result<url::Url, RestError> {
        self.account_url(&["Calls", &format!("{call_sid}.json")])
            .ok_or_else(|| RestError::Url(self.base.to_string()))
    }

    /// Replaces the live call's TwiML.
    pub async fn update_call_twiml(&self, call_sid: &str, twiml: &str) -> Result<(), RestError> {
        let resp = self
            .http
            .post(self.call_url(call_sid)?)
            .basic_auth(&self.account_sid, Some(self.auth_token.expose()))
            .form(&[("Twiml", twiml)])
            .send()
            .await?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let body = resp.text().await.unwrap_or_default();
        let message = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| {
                v.get("message")
                    .and_then(|m| m.as_str())
                    .map(str::to_string)
            })
            .unwrap_or_else(|| body.chars().take(200).collect());
        Err(RestError::Status {
            status: status.as_u16(),
            message,
        })
    }

    /// Places an outbound call (`POST /2010-04-01/Accounts/{AccountSid}/Calls.json`
    /// with the form fields `To`, `From`, `Url` and `Method`); returns the new call's
    /// SID from Twilio's `201 Created` answer.
    pub async fn create_call(
        &self,
        to: &str,
        from: &str,
        answer_url: &str,
    ) -> Result<String, RestError> {
        let url = self
            .account_url(&["Calls.json"])
            .ok_or_else(|| RestError::Url(self.base.to_string()))?;
        let resp = self
            .http
            .post(url)
            .basic_auth(&self.account_sid, Some(self.auth_token.expose()))
            // Twilio fetches the call's TwiML from our signed voice webhook
            // once the callee answers: only then is there a CallSid to bind
            // the media stream's token to.
            .form(&[
                ("To", to),
                ("From", from),
                ("Url", answer_url),
                ("Method", "POST"),
            ])
            .send()
            .await?;
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        let json = serde_json::from_str::<serde_json::Value>(&body).ok();
        let field = |name: &str| {
            json.as_ref()
                .and_then(|v| v.get(name))
                .and_then(|m| m.as_str())
                .map(str::to_string)
        };
        if !status.is_success() {
            return Err(RestError::Status {
                status: status.as_u16(),
                message: field("message").unwrap_or_else(|| body.chars().take(200).collect()),
            });
        }
        field("sid").ok_or_else(|| RestError::Status {
            status: status.as_u16(),
            message: "the answer carries no call sid".into(),
        })
    }

    /// Transfers the live call to `number` with `<Dial>`.
    pub async fn dial(&self, call_sid: &str, number: &str) -> Result<(), RestError> {
        self.update_call_twiml(call_sid, &twiml::dial(number)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::{Path, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::post;
    use axum::{Form, Router};
    use tokio::sync::mpsc;

    type Seen = (String, String, Option<String>, Vec<(String, String)>);

    async fn fake(
        State(tx): State<mpsc::UnboundedSender<Seen>>,
        Path((account, call)): Path<(String, String)>,
        headers: HeaderMap,
        Form(form): Form<Vec<(String, String)>>,
    ) -> (StatusCode, String) {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let _ = tx.send((account, call.clone(), auth, form));
        if call == "CAgone.json" {
            return (
                StatusCode::NOT_FOUND,
                r#"{"code":20404,"message":"The requested resource was not found","status":404}"#
                    .into(),
            );
        }
        (
            StatusCode::OK,
            r#"{"sid":"CA1","status":"in-progress"}"#.into(),
        )
    }

    async fn start_fake() -> (url::Url, mpsc::UnboundedReceiver<Seen>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let app = Router::new()
            .route("/2010-04-01/Accounts/{account}/Calls/{call}", post(fake))
            .with_state(tx);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url::Url::parse(&format!("http://{addr}")).unwrap(), rx)
    }

    fn client(base: url::Url) -> RestClient {
        RestClient::from_config(&TwilioConfig {
            account_sid: Some("AC123".into()),
            auth_token: Some(Secret::new("tok")),
            api_base: base,
            from_number: None,
        })
        .unwrap()
    }

    #[tokio::test]
    async fn dial_posts_twiml_with_basic_auth() {
        let (base, mut rx) = start_fake().await;
        client(base).dial("CA42", "+15550001111").await.unwrap();
        let (account, call, auth, form) = rx.recv().await.unwrap();
        assert_eq!(account, "AC123");
        assert_eq!(call, "CA42.json");
        // base64("AC123:tok")
        assert_eq!(auth.as_deref(), Some("Basic QUMxMjM6dG9r"));
        assert_eq!(
            form,
            vec![(
                "Twiml".to_string(),
                "<Response><Dial>+15550001111</Dial></Response>".to_string()
            )]
        );
    }

    #[tokio::test]
    async fn error_status_carries_twilio_message() {
        let (base, _rx) = start_fake().await;
        let err = client(base).dial("CAgone", "+1555").await.unwrap_err();
        match err {
            RestError::Status { status, message } => {
                assert_eq!(status, 404);
                assert_eq!(message, "The requested resource was not found");
            }
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn needs_both_credentials() {
        let base = url::Url::parse("https://api.twilio.com").unwrap();
        assert!(RestClient::from_config(&TwilioConfig {
            account_sid: Some("AC1".into()),
            auth_token: None,
            api_base: base.clone(),
            from_number: None,
        })
        .is_none());
        let c = client(base);
        assert_eq!(
            c.call_url("CA9").unwrap().as_str(),
            "https://api.twilio.com/2010-04-01/Accounts/AC123/Calls/CA9.json"
        );
        assert!(!format!("{c:?}").contains("tok"));
    }
}
