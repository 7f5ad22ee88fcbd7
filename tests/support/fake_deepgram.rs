//! A fake Deepgram on loopback, strict about what clients send.
//!
//! - WebSocket `GET /v1/listen`: checks `Authorization: Token <key>` and every
//!   query parameter against the settings of [`FakeDeepgram::config`]
//!   (refusing the upgrade with Deepgram-style JSON errors otherwise), records
//!   binary audio and text control messages in order, and transcribes: each
//!   20 ms frame built by [`marked_frame`] is the word `w<marker>`. It answers
//!   with `SpeechStarted` on the first word after silence, an interim
//!   `Results` per word, a final `Results` every `final_every` frames, an
//!   endpoint (`speech_final`) plus `UtteranceEnd` on a silent frame after
//!   words, and on `CloseStream` the last final, `Metadata` and a normal
//!   close. Result times count from the connection's first sample, as
//!   Deepgram's do, so a client that resends audio sees them restart.
//! - HTTP `POST /v1/speak`: checks auth, query, content type and the JSON
//!   body, then streams the configured μ-law bytes in chunks.
//!
//! Knobs make it refuse handshakes (any status, `Retry-After`), stall, cut
//! the first WebSocket after N audio bytes, send malformed JSON, and hold or
//! cut the speech body mid-way.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::Notify;

use switchboard::audio::{Frame, FRAME_SAMPLES};
use switchboard::config::{DeepgramConfig, Secret};

#[path = "fake_deepgram_listen.rs"]
mod listen_session;

pub const API_KEY: &str = "fake-deepgram-key";
const MARKER_STEP: i16 = 16;
const FRAME_BYTES: usize = FRAME_SAMPLES * 2;
const CONFIDENCE: f64 = 0.98;

/// A frame whose every sample encodes `marker`; the fake hears it as the
/// word `w<marker>`.
pub fn marked_frame(marker: u16) -> Frame {
    Frame([(marker as i16 + 1) * MARKER_STEP; FRAME_SAMPLES])
}

pub fn word(marker: u16) -> String {
    format!("w{marker}")
}

/// The marker a frame's bytes carry; `None` for silence or anything else.
pub fn marker_of(frame_bytes: &[u8]) -> Option<u16> {
    let samples: Vec<i16> = frame_bytes
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    let first = *samples.first()?;
    let uniform = samples.iter().all(|s| *s == first);
    (uniform && first > 0 && first % MARKER_STEP == 0).then(|| (first / MARKER_STEP - 1) as u16)
}

/// How a refused request is answered.
#[derive(Debug, Clone)]
pub struct Reject {
    pub status: u16,
    pub retry_after: Option<String>,
    pub body: String,
    /// Handshakes before this index are accepted.
    pub from_handshake: usize,
}

impl Reject {
    pub fn status(status: u16) -> Self {
        Reject {
            status,
            retry_after: None,
            body: format!(
                r#"{{"err_code":"REFUSED","err_msg":"fake refusal {status}","request_id":"fake"}}"#
            ),
            from_handshake: 0,
        }
    }
}

/// How the first WebSocket is cut.
#[derive(Debug, Clone, Copy)]
pub enum Cut {
    /// The TCP connection goes away without a close frame.
    Drop,
    /// A close frame with this code and reason (Deepgram's NET/DATA errors).
    Close(u16, &'static str),
}

/// What the client sent on one `/v1/listen` connection, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientMessage {
    Audio(usize),
    Text(String),
}

/// One `/v1/listen` handshake and, if upgraded, its connection.
#[derive(Debug, Clone, Default)]
pub struct ListenRecord {
    pub authorization: Option<String>,
    pub query: Vec<(String, String)>,
    /// 101 when upgraded, else the refusal's status.
    pub status: u16,
    pub messages: Vec<ClientMessage>,
    pub audio: Vec<u8>,
}

impl ListenRecord {
    pub fn texts(&self) -> Vec<String> {
        self.messages
            .iter()
            .filter_map(|m| match m {
                ClientMessage::Text(t) => Some(t.clone()),
                ClientMessage::Audio(_) => None,
            })
            .collect()
    }

    /// The markers of the whole frames received, silence skipped.
    pub fn markers(&self) -> Vec<u16> {
        self.audio
            .chunks_exact(FRAME_BYTES)
            .filter_map(marker_of)
            .collect()
    }
}

/// One `/v1/speak` request.
#[derive(Debug, Clone, Default)]
pub struct SpeakRecord {
    pub authorization: Option<String>,
    pub query: Vec<(String, String)>,
    pub content_type: Option<String>,
    pub body: String,
}

#[derive(Default)]
struct Knobs {
    reject: Option<Reject>,
    stall: bool,
    cut_first: Option<(usize, Cut)>,
    malformed_after_frames: Option<usize>,
    final_every: usize,
    speak_audio: Vec<u8>,
    speak_chunk: usize,
    /// Pause the speech body after this many bytes until notified.
    speak_hold: Option<(usize, Arc<Notify>)>,
    /// End the speech body with an error after this many bytes.
    speak_cut: Option<usize>,
    speak_reject: Option<Reject>,
    speak_stall: bool,
    /// Script mode: speech is found by energy, and each utterance is heard
    /// as the next line (for whole-call tests with real voices).
    script: Option<Arc<Mutex<std::collections::VecDeque<String>>>>,
    /// Drop every live connection at its next message.
    kill_live: bool,
}

#[derive(Default)]
struct Records {
    listen: Vec<ListenRecord>,
    speak: Vec<SpeakRecord>,
    speak_held: bool,
}

struct Shared {
    config: DeepgramConfig,
    knobs: Mutex<Knobs>,
    records: Mutex<Records>,
    changed: Notify,
}

impl Shared {
    fn record<T>(&self, edit: impl FnOnce(&mut Records) -> T) -> T {
        let out = edit(&mut self.records.lock().unwrap());
        self.changed.notify_waiters();
        out
    }

    fn knobs<T>(&self, read: impl FnOnce(&mut Knobs) -> T) -> T {
        read(&mut self.knobs.lock().unwrap())
    }
}

pub struct FakeDeepgram {
    base: url::Url,
    shared: Arc<Shared>,
}

/// Starts the fake on 127.0.0.1 at a free port.
pub async fn start() -> FakeDeepgram {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let base = url::Url::parse(&format!("http://{addr}")).unwrap();
    let config = DeepgramConfig {
        api_key: Some(Secret::new(API_KEY)),
        base_url: base.clone(),
        model: "nova-3".into(),
        language: "en".into(),
        endpointing_ms: 300,
        utterance_end_ms: 1000,
        keyterms: vec!["Acme Plumbing".into(), "Elm Street".into()],
        tts_model: "aura-2-thalia-en".into(),
    };
    let shared = Arc::new(Shared {
        config,
        knobs: Mutex::new(Knobs {
            final_every: 5,
            speak_chunk: 480,
            ..Knobs::default()
        }),
        records: Mutex::default(),
        changed: Notify::new(),
    });
    let app = Router::new()
        .route("/v1/listen", get(listen))
        .route("/v1/speak", post(speak))
        .with_state(Arc::clone(&shared));
    tokio::spawn(async move { axum::serve(listener, app).await });
    FakeDeepgram { base, shared }
}

impl FakeDeepgram {
    pub fn base_url(&self) -> url::Url {
        self.base.clone()
    }

    /// The settings this fake expects clients to send (and its key).
    pub fn config(&self) -> DeepgramConfig {
        self.shared.config.clone()
    }

    pub fn reject_handshakes(&self, reject: Option<Reject>) {
        self.shared.knobs(|k| k.reject = reject);
    }

    /// Accept TCP and read the request, but never answer it.
    pub fn stall(&self, on: bool) {
        self.shared.knobs(|k| k.stall = on);
    }

    pub fn cut_first_connection_after(&self, audio_bytes: usize, how: Cut) {
        self.shared
            .knobs(|k| k.cut_first = Some((audio_bytes, how)));
    }

    pub fn send_malformed_after_frames(&self, frames: usize) {
        self.shared
            .knobs(|k| k.malformed_after_frames = Some(frames));
    }

    /// Hears real speech: each stretch of loud audio followed by 300 ms of
    /// quiet becomes one final result (`speech_final`) carrying the next line.
    pub fn set_script(&self, lines: &[&str]) {
        let lines = lines.iter().map(|l| l.to_string()).collect();
        self.shared
            .knobs(|k| k.script = Some(Arc::new(Mutex::new(lines))));
    }

    /// Drops every open `/v1/listen` connection when its next audio arrives
    /// (as a crashed server would); new handshakes follow `reject_handshakes`.
    pub fn kill_live_connections(&self) {
        self.shared.knobs(|k| k.kill_live = true);
    }

    pub fn set_final_every(&self, frames: usize) {
        self.shared.knobs(|k| k.final_every = frames.max(1));
    }

    pub fn set_speak_audio(&self, mulaw: Vec<u8>, chunk: usize) {
        self.shared.knobs(|k| {
            k.speak_audio = mulaw;
            k.speak_chunk = chunk.max(1);
        });
    }

    /// Pauses the speech body after `bytes` until the returned notify fires.
    pub fn hold_speak_at(&self, bytes: usize) -> Arc<Notify> {
        let release = Arc::new(Notify::new());
        self.shared
            .knobs(|k| k.speak_hold = Some((bytes, Arc::clone(&release))));
        release
    }

    pub fn cut_speak_after(&self, bytes: usize) {
        self.shared.knobs(|k| k.speak_cut = Some(bytes));
    }

    pub fn reject_speak(&self, reject: Option<Reject>) {
        self.shared.knobs(|k| k.speak_reject = reject);
    }

    pub fn stall_speak(&self, on: bool) {
        self.shared.knobs(|k| k.speak_stall = on);
    }

    pub fn listen_records(&self) -> Vec<ListenRecord> {
        self.shared.records.lock().unwrap().listen.clone()
    }

    /// The upgraded connections only.
    pub fn connections(&self) -> Vec<ListenRecord> {
        self.listen_records()
            .into_iter()
            .filter(|r| r.status == 101)
            .collect()
    }

    pub fn speak_records(&self) -> Vec<SpeakRecord> {
        self.shared.records.lock().unwrap().speak.clone()
    }

    /// Whether the speech body is paused at the hold point right now.
    pub fn speak_held(&self) -> bool {
        self.shared.records.lock().unwrap().speak_held
    }

    /// Waits (at most `limit`) until the upgraded connections satisfy `cond`.
    pub async fn wait_for(&self, limit: Duration, cond: impl Fn(&[ListenRecord]) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let changed = self.shared.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if cond(&self.connections()) {
                return true;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return false;
            }
        }
    }
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn pairs(query: &Option<String>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

fn error_response(status: u16, retry_after: Option<&str>, body: String) -> Response {
    let mut response = (
        StatusCode::from_u16(status).unwrap(),
        [
            ("content-type", "application/json"),
            ("dg-request-id", "fake"),
        ],
        body,
    )
        .into_response();
    if let Some(wait) = retry_after {
        response
            .headers_mut()
            .insert("retry-after", wait.parse().unwrap());
    }
    response
}

fn bad_request(message: String) -> Response {
    let body = serde_json::json!({
        "err_code": "Bad Request",
        "err_msg": message,
        "request_id": "fake",
    });
    error_response(400, None, body.to_string())
}

fn invalid_auth() -> Response {
    let body =
        r#"{"err_code":"INVALID_AUTH","err_msg":"Invalid credentials.","request_id":"fake"}"#;
    error_response(401, None, body.to_string())
}

/// What the client must send for the fake's settings, in order.
fn expected_listen_query(c: &DeepgramConfig) -> Vec<(String, String)> {
    let mut want: Vec<(String, String)> = [
        ("model", c.model.clone()),
        ("language", c.language.clone()),
        ("encoding", "linear16".into()),
        ("sample_rate", "16000".into()),
        ("channels", "1".into()),
        ("interim_results", "true".into()),
        ("endpointing", c.endpointing_ms.to_string()),
        ("utterance_end_ms", c.utterance_end_ms.to_string()),
        ("vad_events", "true".into()),
        ("smart_format", "true".into()),
        ("punctuate", "true".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    want.extend(
        c.keyterms
            .iter()
            .map(|k| ("keyterm".to_string(), k.clone())),
    );
    want
}

fn same_params(mut got: Vec<(String, String)>, mut want: Vec<(String, String)>) -> bool {
    got.sort();
    want.sort();
    got == want
}

async fn listen(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    upgrade: WebSocketUpgrade,
) -> Response {
    let authorization = header(&headers, "authorization");
    let query = pairs(&query);
    let index = shared.record(|r| {
        r.listen.push(ListenRecord {
            authorization: authorization.clone(),
            query: query.clone(),
            status: 0,
            ..ListenRecord::default()
        });
        r.listen.len() - 1
    });
    let (reject, stall) = shared.knobs(|k| (k.reject.clone(), k.stall));
    if stall {
        std::future::pending::<()>().await;
    }
    let refusal = if let Some(r) = reject.filter(|r| index >= r.from_handshake) {
        Some(error_response(r.status, r.retry_after.as_deref(), r.body))
    } else if authorization.as_deref() != Some(&format!("Token {API_KEY}")) {
        Some(invalid_auth())
    } else if !same_params(query.clone(), expected_listen_query(&shared.config)) {
        Some(bad_request(format!(
            "unexpected query parameters: {query:?}"
        )))
    } else {
        None
    };
    if let Some(response) = refusal {
        shared.record(|r| r.listen[index].status = response.status().as_u16());
        return response;
    }
    shared.record(|r| r.listen[index].status = 101);
    let connection = shared.connections_before(index);
    upgrade.on_upgrade(move |socket| listen_session::serve(socket, shared, index, connection))
}

impl Shared {
    /// How many upgraded connections came before handshake `index`.
    fn connections_before(&self, index: usize) -> usize {
        self.records.lock().unwrap().listen[..index]
            .iter()
            .filter(|r| r.status == 101)
            .count()
    }
}

async fn speak(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let record = SpeakRecord {
        authorization: header(&headers, "authorization"),
        query: pairs(&query),
        content_type: header(&headers, "content-type"),
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    shared.record(|r| r.speak.push(record.clone()));
    let (reject, stall) = shared.knobs(|k| (k.speak_reject.clone(), k.speak_stall));
    if stall {
        std::future::pending::<()>().await;
    }
    if let Some(r) = reject {
        return error_response(r.status, r.retry_after.as_deref(), r.body);
    }
    if record.authorization.as_deref() != Some(&format!("Token {API_KEY}")) {
        return invalid_auth();
    }
    let want: Vec<(String, String)> = [
        ("model", shared.config.tts_model.as_str()),
        ("encoding", "mulaw"),
        ("sample_rate", "8000"),
        ("container", "none"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    if !same_params(record.query.clone(), want) {
        return bad_request(format!("unexpected query parameters: {:?}", record.query));
    }
    if !record
        .content_type
        .as_deref()
        .is_some_and(|c| c.starts_with("application/json"))
    {
        return error_response(
            415,
            None,
            r#"{"err_code":"UNSUPPORTED_MEDIA_TYPE","err_msg":"Content-Type must be application/json"}"#.into(),
        );
    }
    let text_ok = serde_json::from_str::<serde_json::Value>(&record.body)
        .ok()
        .and_then(|v| {
            let obj = v.as_object()?;
            let text = obj.get("text")?.as_str()?;
            (obj.len() == 1 && !text.trim().is_empty()).then_some(())
        })
        .is_some();
    if !text_ok {
        let body = serde_json::json!({
            "category": "INVALID_JSON",
            "message": "Invalid JSON submitted.",
            "details": "expected an object with one non-empty `text` field",
            "request_id": "fake",
        });
        return error_response(400, None, body.to_string());
    }
    speech_body(shared)
}

fn speech_body(shared: Arc<Shared>) -> Response {
    let (audio, chunk, hold, cut) = shared.knobs(|k| {
        (
            k.speak_audio.clone(),
            k.speak_chunk,
            k.speak_hold.clone(),
            k.speak_cut,
        )
    });
    let end = cut.unwrap_or(audio.len()).min(audio.len());
    let state = (0usize, hold, false);
    let stream = futures::stream::unfold(state, move |(sent, hold, failed)| {
        let audio = audio.clone();
        let shared = Arc::clone(&shared);
        async move {
            if failed {
                return None;
            }
            let hold = match hold {
                Some((at, release)) if sent >= at => {
                    shared.record(|r| r.speak_held = true);
                    release.notified().await;
                    shared.record(|r| r.speak_held = false);
                    None
                }
                other => other,
            };
            if sent >= end {
                return cut.map(|_| {
                    let err = std::io::Error::other("fake cut the speech body");
                    (Err(err), (sent, hold, true))
                });
            }
            let stop = match &hold {
                Some((at, _)) if *at > sent => (sent + chunk).min(end).min(*at),
                _ => (sent + chunk).min(end),
            };
            let bytes = Bytes::copy_from_slice(&audio[sent..stop]);
            Some((Ok::<_, std::io::Error>(bytes), (stop, hold, false)))
        }
    });
    (
        StatusCode::OK,
        [("content-type", "audio/basic"), ("dg-request-id", "fake")],
        Body::from_stream(stream),
    )
        .into_response()
}
