//! A fake of Twilio's Messages resource,
//! `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`. It checks what the
//! client sends the way Twilio does — the account SID in the path (404,
//! code 20404), HTTP Basic auth with SID and token (401, code 20003), a form
//! body, `To` in E.164 (21211), `Body` present (21602) and within 1600
//! characters (21617), exactly one of `From` / `MessagingServiceSid` (21603)
//! — and records every request with the problems it found. Valid requests
//! get the next scripted [`Reply`] (default: 201 with the Message JSON).
//! It can also go down (not listening, connections closed) and come back on
//! the same port.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde_json::json;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use switchboard::config::{Secret, TwilioConfig};

pub const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
pub const AUTH_TOKEN: &str = "fake-twilio-auth-token";

/// How the fake answers a valid request.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// 201 with the Message resource; the message is recorded as sent.
    Created,
    /// 400 with Twilio's error body and this code (21211, 21610…).
    Rejected { code: u32, message: String },
    /// 401, code 20003.
    Unauthorized,
    /// 429, code 20429, with this `Retry-After` value.
    TooManyRequests { retry_after: String },
    /// 500 with an HTML page, as a failing front end sends.
    ServerError,
    /// Never answers (until the fake stops).
    Stall,
    /// 201 whose body is not JSON.
    MalformedCreated,
    /// 201 whose chunked body breaks off mid-way.
    CutCreated,
    /// 500 whose body is cut the same way.
    CutServerError,
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct ReceivedRequest {
    pub at: Instant,
    pub account_sid: String,
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    pub form: Vec<(String, String)>,
    /// What the fake found wrong; empty for a request Twilio would take.
    pub problems: Vec<String>,
    /// The reply given (`None` when a problem decided it).
    pub reply: Option<Reply>,
}

/// A message the fake accepted (answered 201).
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedSms {
    pub sid: String,
    pub to: String,
    pub from: Option<String>,
    pub messaging_service_sid: Option<String>,
    pub body: String,
}

#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<ReceivedRequest>>,
    messages: Mutex<Vec<ReceivedSms>>,
    script: Mutex<VecDeque<Reply>>,
    default_reply: Mutex<Option<Reply>>,
    changed: Notify,
    next_sid: AtomicU64,
    stalls: Mutex<CancellationToken>,
}

struct Server {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

pub struct FakeTwilioSms {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: Option<Server>,
}

impl FakeTwilioSms {
    /// Starts listening on a free loopback port.
    pub async fn start() -> FakeTwilioSms {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake Twilio");
        let addr = listener.local_addr().expect("fake Twilio address");
        let shared = Arc::new(Shared::default());
        let server = serve(listener, shared.clone());
        FakeTwilioSms {
            addr,
            shared,
            server: Some(server),
        }
    }

    /// Started, then stopped at once: a provider that is down from the outset.
    pub async fn start_down() -> FakeTwilioSms {
        let mut fake = FakeTwilioSms::start().await;
        fake.stop().await;
        fake
    }

    pub fn base_url(&self) -> url::Url {
        url::Url::parse(&format!("http://{}", self.addr)).expect("fake Twilio URL")
    }

    /// Twilio settings pointing at this fake.
    pub fn twilio_config(&self, from_number: &str) -> TwilioConfig {
        TwilioConfig {
            account_sid: Some(ACCOUNT_SID.into()),
            auth_token: Some(Secret::new(AUTH_TOKEN)),
            api_base: self.base_url(),
            from_number: Some(from_number.into()),
        }
    }

    /// Replies for the next valid requests, in order.
    pub fn push_replies(&self, replies: impl IntoIterator<Item = Reply>) {
        self.shared.script.lock().expect("script").extend(replies);
    }

    /// The reply once the script is used up (initially [`Reply::Created`]).
    pub fn set_default_reply(&self, reply: Reply) {
        *self.shared.default_reply.lock().expect("default reply") = Some(reply);
    }

    pub fn requests(&self) -> Vec<ReceivedRequest> {
        self.shared.requests.lock().expect("requests").clone()
    }

    pub fn messages(&self) -> Vec<ReceivedSms> {
        self.shared.messages.lock().expect("messages").clone()
    }

    /// Waits until at least `n` requests arrived; bound it with a timeout.
    pub async fn wait_for_requests(&self, n: usize) -> Vec<ReceivedRequest> {
        loop {
            let changed = self.shared.changed.notified();
            let seen = self.requests();
            if seen.len() >= n {
                return seen;
            }
            changed.await;
        }
    }

    /// Waits until at least `n` messages were accepted; bound it with a timeout.
    pub async fn wait_for_messages(&self, n: usize) -> Vec<ReceivedSms> {
        loop {
            let changed = self.shared.changed.notified();
            let seen = self.messages();
            if seen.len() >= n {
                return seen;
            }
            changed.await;
        }
    }

    /// Goes down: stops listening, ends stalled requests and closes every
    /// connection, so clients get "connection refused".
    pub async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            self.shared.stalls.lock().expect("stalls").cancel();
            server.stop.cancel();
            let _ = server.task.await;
        }
    }

    /// Comes back on the same port, keeping what it recorded.
    pub async fn restart(&mut self) {
        if self.server.is_some() {
            return;
        }
        *self.shared.stalls.lock().expect("stalls") = CancellationToken::new();
        let listener = tokio::net::TcpListener::bind(self.addr)
            .await
            .expect("rebind fake Twilio on its port");
        self.server = Some(serve(listener, self.shared.clone()));
    }
}

fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>) -> Server {
    let app = Router::new()
        .route("/2010-04-01/Accounts/{account}/{resource}", post(messages))
        .with_state(shared);
    let stop = CancellationToken::new();
    let signal = stop.clone();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { signal.cancelled().await })
            .await;
    });
    Server { stop, task }
}

fn twilio_error(status: StatusCode, code: u32, message: &str) -> Response {
    let body = json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status.as_u16(),
    });
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn is_e164(number: &str) -> bool {
    number.strip_prefix('+').is_some_and(|d| {
        (7..=15).contains(&d.len()) && d.chars().all(|c| c.is_ascii_digit()) && !d.starts_with('0')
    })
}

/// Twilio's checks, in the order it applies them; the first failing one decides the answer.
fn check(
    account: &str,
    resource: &str,
    headers: &HeaderMap,
    form: &Option<Vec<(String, String)>>,
) -> Vec<(String, Response)> {
    let mut problems = Vec::new();
    if account != ACCOUNT_SID || resource != "Messages.json" {
        problems.push((
            format!("path names account {account}, resource {resource}"),
            twilio_error(
                StatusCode::NOT_FOUND,
                20404,
                "The requested resource was not found",
            ),
        ));
    }
    let expected = format!(
        "Basic {}",
        B64.encode(format!("{ACCOUNT_SID}:{AUTH_TOKEN}"))
    );
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if auth != Some(expected.as_str()) {
        problems.push((
            format!("authorization {auth:?}"),
            twilio_error(StatusCode::UNAUTHORIZED, 20003, "Authenticate"),
        ));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if content_type != Some("application/x-www-form-urlencoded") {
        problems.push((
            format!("content type {content_type:?}"),
            twilio_error(StatusCode::BAD_REQUEST, 20001, "Invalid content type"),
        ));
    }
    let Some(form) = form else {
        problems.push((
            "body is not a form".into(),
            twilio_error(StatusCode::BAD_REQUEST, 20001, "Malformed form body"),
        ));
        return problems;
    };
    for (name, _) in form {
        let known = ["To", "From", "MessagingServiceSid", "Body"].contains(&name.as_str());
        let repeated = form.iter().filter(|(k, _)| k == name).count() > 1;
        if !known || repeated {
            problems.push((
                format!("unexpected or repeated field {name}"),
                twilio_error(StatusCode::BAD_REQUEST, 20001, "Invalid parameter"),
            ));
        }
    }
    match field(form, "To") {
        None => problems.push((
            "no To".into(),
            twilio_error(
                StatusCode::BAD_REQUEST,
                21604,
                "A 'To' phone number is required.",
            ),
        )),
        Some(to) if !is_e164(to) => problems.push((
            format!("To {to} is not E.164"),
            twilio_error(
                StatusCode::BAD_REQUEST,
                21211,
                &format!("The 'To' number {to} is not a valid phone number."),
            ),
        )),
        Some(_) => {}
    }
    let senders = [field(form, "From"), field(form, "MessagingServiceSid")];
    if senders.iter().flatten().count() != 1 {
        problems.push((
            format!("senders {senders:?}"),
            twilio_error(
                StatusCode::BAD_REQUEST,
                21603,
                "A 'From' phone number is required.",
            ),
        ));
    }
    match field(form, "Body") {
        None | Some("") => problems.push((
            "no Body".into(),
            twilio_error(StatusCode::BAD_REQUEST, 21602, "Message body is required."),
        )),
        Some(body) if body.chars().count() > 1600 => problems.push((
            "Body over 1600 characters".into(),
            twilio_error(
                StatusCode::BAD_REQUEST,
                21617,
                "The concatenated message body exceeds the 1600 character limit.",
            ),
        )),
        Some(_) => {}
    }
    problems
}

async fn messages(
    State(shared): State<Arc<Shared>>,
    Path((account, resource)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body).ok();
    let mut problems = Vec::new();
    let mut refusal = None;
    for (problem, response) in check(&account, &resource, &headers, &form) {
        problems.push(problem);
        refusal.get_or_insert(response);
    }
    let form = form.unwrap_or_default();
    let reply = if refusal.is_none() {
        let scripted = shared.script.lock().expect("script").pop_front();
        let default = shared.default_reply.lock().expect("default reply").clone();
        Some(scripted.or(default).unwrap_or(Reply::Created))
    } else {
        None
    };
    shared
        .requests
        .lock()
        .expect("requests")
        .push(ReceivedRequest {
            at: Instant::now(),
            account_sid: account,
            authorization: headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            content_type: headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            form: form.clone(),
            problems,
            reply: reply.clone(),
        });
    shared.changed.notify_waiters();
    match (refusal, reply) {
        (Some(response), _) => response,
        (None, Some(reply)) => answer(&shared, &reply, &form).await,
        (None, None) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn answer(shared: &Shared, reply: &Reply, form: &[(String, String)]) -> Response {
    match reply {
        Reply::Created => created(shared, form),
        Reply::Rejected { code, message } => twilio_error(StatusCode::BAD_REQUEST, *code, message),
        Reply::Unauthorized => twilio_error(StatusCode::UNAUTHORIZED, 20003, "Authenticate"),
        Reply::TooManyRequests { retry_after } => {
            let mut response =
                twilio_error(StatusCode::TOO_MANY_REQUESTS, 20429, "Too Many Requests");
            if let Ok(value) = HeaderValue::from_str(retry_after) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
        Reply::ServerError => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/html")],
            "<html><body>Internal Server Error</body></html>",
        )
            .into_response(),
        Reply::Stall => {
            let stalls = shared.stalls.lock().expect("stalls").clone();
            stalls.cancelled().await;
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
        Reply::MalformedCreated => (
            StatusCode::CREATED,
            [(header::CONTENT_TYPE, "application/json")],
            "{\"sid\": \"SM",
        )
            .into_response(),
        Reply::CutCreated => cut(StatusCode::CREATED),
        Reply::CutServerError => cut(StatusCode::INTERNAL_SERVER_ERROR),
    }
}

/// Sends the status and the start of a chunked body, then breaks the
/// connection, so the client sees the stream end mid-way.
fn cut(status: StatusCode) -> Response {
    use futures::StreamExt as _;
    let start = futures::stream::once(async {
        Ok::<_, std::io::Error>(Bytes::from_static(b"{\"sid\": \"SM0000"))
    });
    // Yielding once lets the server flush the status and the first chunk
    // before the body fails and the connection is dropped.
    let failure = futures::stream::once(async {
        tokio::task::yield_now().await;
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "fake Twilio cut the answer",
        ))
    });
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        axum::body::Body::from_stream(start.chain(failure)),
    )
        .into_response()
}

/// 201 with the Message resource as Twilio documents it.
fn created(shared: &Shared, form: &[(String, String)]) -> Response {
    let n = shared.next_sid.fetch_add(1, Ordering::Relaxed) + 1;
    let sid = format!("SM{n:032x}");
    let to = field(form, "To").unwrap_or_default().to_string();
    let from = field(form, "From").map(str::to_string);
    let service = field(form, "MessagingServiceSid").map(str::to_string);
    let body = field(form, "Body").unwrap_or_default().to_string();
    let now = chrono::Utc::now().to_rfc2822();
    let uri = format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}");
    let resource = json!({
        "account_sid": ACCOUNT_SID,
        "api_version": "2010-04-01",
        "body": body,
        "date_created": now,
        "date_sent": null,
        "date_updated": now,
        "direction": "outbound-api",
        "error_code": null,
        "error_message": null,
        "from": from,
        "messaging_service_sid": service,
        "num_media": "0",
        // With a Messaging Service Twilio reports 0 segments at creation.
        "num_segments": if service.is_some() { "0".to_string() } else { switchboard::outbox::gsm7::segments(&body).to_string() },
        "price": null,
        "price_unit": "USD",
        "sid": sid,
        "status": if service.is_some() { "accepted" } else { "queued" },
        "subresource_uris": { "media": format!("{uri}/Media.json") },
        "to": to,
        "uri": format!("{uri}.json"),
    });
    shared.messages.lock().expect("messages").push(ReceivedSms {
        sid,
        to,
        from,
        messaging_service_sid: service,
        body,
    });
    shared.changed.notify_waiters();
    (
        StatusCode::CREATED,
        [(header::CONTENT_TYPE, "application/json")],
        resource.to_string(),
    )
        .into_response()
}
