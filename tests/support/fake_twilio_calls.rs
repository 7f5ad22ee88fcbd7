//! A fake of Twilio's Calls create endpoint
//! (`POST /2010-04-01/Accounts/{AccountSid}/Calls.json`, form-encoded, HTTP
//! Basic auth): it records what it received and answers `201 Created` with
//! the documented call resource, or an error in Twilio's shape
//! (`{"code", "message", "more_info", "status"}`) when told to fail.

#![allow(dead_code)] // each test file uses part of the fake

use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path_account: String,
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    pub form: Vec<(String, String)>,
}

impl Seen {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Shared {
    seen: Vec<Seen>,
    fail: Option<(u16, u32, String)>,
}

pub struct FakeTwilioCalls {
    base: url::Url,
    shared: Arc<Mutex<Shared>>,
}

pub const CALL_SID: &str = "CA5f0c1e0d2b3a4c5d6e7f8091a2b3c4d5";

pub async fn start() -> FakeTwilioCalls {
    let shared = Arc::new(Mutex::new(Shared::default()));
    let app = Router::new()
        .route("/2010-04-01/Accounts/{account}/Calls.json", post(create))
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    FakeTwilioCalls {
        base: url::Url::parse(&format!("http://{addr}")).unwrap(),
        shared,
    }
}

impl FakeTwilioCalls {
    pub fn base_url(&self) -> url::Url {
        self.base.clone()
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.shared.lock().unwrap().seen.clone()
    }

    /// Answer from now on with this HTTP status, Twilio error code and message.
    pub fn fail_with(&self, status: u16, code: u32, message: &str) {
        self.shared.lock().unwrap().fail = Some((status, code, message.into()));
    }
}

async fn create(
    State(shared): State<Arc<Mutex<Shared>>>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, String) {
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let form: Vec<(String, String)> = serde_urlencoded::from_str(&body).unwrap_or_default();
    let seen = Seen {
        path_account: account,
        authorization: header("authorization"),
        content_type: header("content-type"),
        form,
    };
    let mut s = shared.lock().unwrap();
    s.seen.push(seen.clone());
    if let Some((status, code, message)) = s.fail.clone() {
        let body = serde_json::json!({
            "code": code,
            "message": message,
            "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
            "status": status,
        });
        return (StatusCode::from_u16(status).unwrap(), body.to_string());
    }
    let body = serde_json::json!({
        "sid": CALL_SID,
        "account_sid": seen.path_account,
        "to": seen.field("To"),
        "from": seen.field("From"),
        "status": "queued",
        "direction": "outbound-api",
        "api_version": "2010-04-01",
        "uri": format!("/2010-04-01/Accounts/{}/Calls/{CALL_SID}.json", seen.path_account),
    });
    (StatusCode::CREATED, body.to_string())
}
