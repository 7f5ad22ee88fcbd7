//! A fake ElevenLabs text-to-speech API on 127.0.0.1, for tests. It serves
//! `POST /v1/text-to-speech/{voice_id}/stream` as documented and checks what
//! the client sends: the voice id in the path, `output_format=pcm_16000` and
//! `optimize_streaming_latency` (0-4) in the query, the `xi-api-key` header
//! (else the documented 401 `detail` body), `Content-Type: application/json`
//! and a body with `text` and `model_id` and no undocumented key. The reply
//! streams the configured 16 kHz PCM16LE in chunks of an odd size.
//!
//! A violated rule is recorded in [`FakeElevenLabs::problems`] and answered
//! with a 400 `detail`. Knobs: a status with an optional `Retry-After`, a
//! stall before the headers, a stall or a cut part-way through the body, or
//! holding the body after its first chunk until [`FakeElevenLabs::release`].
//! [`FakeElevenLabs::abandoned`] tells when a client hung up mid-body.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::sync::{mpsc, Notify};
use tokio_stream::wrappers::ReceiverStream;

pub const API_KEY: &str = "xi-test-fake-0123456789";
pub const VOICE_ID: &str = "21m00Tcm4TlvDq8ikWAM";

/// Body keys the stream endpoint documents.
const DOCUMENTED_KEYS: [&str; 11] = [
    "text",
    "model_id",
    "language_code",
    "voice_settings",
    "pronunciation_dictionary_locators",
    "seed",
    "previous_text",
    "next_text",
    "previous_request_ids",
    "next_request_ids",
    "apply_text_normalization",
];

#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    None,
    /// This status with a documented `detail` body and, if given, `Retry-After`.
    Status {
        code: u16,
        retry_after: Option<String>,
    },
    /// Accept the request and never answer.
    Stall,
    /// Send this many bytes of the body, then stop sending.
    StallAfter(usize),
    /// Send this many bytes of the body, then break the connection.
    CutAfter(usize),
    /// Send the first chunk, then wait for [`FakeElevenLabs::release`].
    HoldAfterFirstChunk,
}

/// One request as received.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamRequest {
    pub voice_id: String,
    pub output_format: String,
    pub optimize_streaming_latency: Option<u8>,
    pub text: String,
    pub model_id: String,
    pub body_keys: Vec<String>,
}

struct State {
    failure: Mutex<Failure>,
    pcm: Mutex<Vec<i16>>,
    chunk_bytes: Mutex<usize>,
    requests: Mutex<Vec<StreamRequest>>,
    problems: Mutex<Vec<String>>,
    hits: Mutex<usize>,
    release: Notify,
    /// Signalled when a body could not be sent on because the client left.
    abandoned: Notify,
}

pub struct FakeElevenLabs {
    addr: std::net::SocketAddr,
    state: Arc<State>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeElevenLabs {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Recognisable 16 kHz test audio: a ramp that wraps, so every sample differs
/// from its neighbours and a lost or swapped byte shows.
pub fn ramp_16k(samples: usize) -> Vec<i16> {
    (0..samples)
        .map(|i| ((i * 97) % 20_000) as i16 - 10_000)
        .collect()
}

/// A base URL nothing listens on (connection refused).
pub async fn refused_base_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

pub async fn start() -> FakeElevenLabs {
    let state = Arc::new(State {
        failure: Mutex::new(Failure::None),
        pcm: Mutex::new(ramp_16k(16_000)),
        chunk_bytes: Mutex::new(1001),
        requests: Mutex::new(Vec::new()),
        problems: Mutex::new(Vec::new()),
        hits: Mutex::new(0),
        release: Notify::new(),
        abandoned: Notify::new(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .fallback(handle)
        .with_state(Arc::clone(&state));
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    FakeElevenLabs {
        addr,
        state,
        server,
    }
}

impl FakeElevenLabs {
    /// `http://127.0.0.1:<port>`, as ElevenLabs' base URL is configured.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
    pub fn set_failure(&self, failure: Failure) {
        *self.state.failure.lock().unwrap() = failure;
    }
    /// The 16 kHz audio the endpoint streams.
    pub fn set_pcm(&self, pcm: Vec<i16>) {
        *self.state.pcm.lock().unwrap() = pcm;
    }
    pub fn pcm(&self) -> Vec<i16> {
        self.state.pcm.lock().unwrap().clone()
    }
    pub fn set_chunk_bytes(&self, n: usize) {
        *self.state.chunk_bytes.lock().unwrap() = n.max(1);
    }
    pub fn release(&self) {
        self.state.release.notify_one();
    }
    pub fn requests(&self) -> Vec<StreamRequest> {
        self.state.requests.lock().unwrap().clone()
    }
    pub fn problems(&self) -> Vec<String> {
        self.state.problems.lock().unwrap().clone()
    }
    pub fn hits(&self) -> usize {
        *self.state.hits.lock().unwrap()
    }
    /// Resolves once a body stops because the client went away.
    pub async fn abandoned(&self) {
        self.state.abandoned.notified().await
    }
}

fn detail(status: StatusCode, code: &str, message: &str, retry_after: Option<String>) -> Response {
    let body = serde_json::json!({ "detail": { "status": code, "message": message } });
    let mut response = (status, axum::Json(body)).into_response();
    if let Some(wait) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, wait.parse().unwrap());
    }
    response
}

fn problem(state: &State, what: String) -> Response {
    state.problems.lock().unwrap().push(what.clone());
    detail(StatusCode::BAD_REQUEST, "invalid_request", &what, None)
}

async fn handle(
    axum::extract::State(state): axum::extract::State<Arc<State>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    *state.hits.lock().unwrap() += 1;
    let segments: Vec<&str> = uri.path().trim_start_matches('/').split('/').collect();
    let voice_id = match segments.as_slice() {
        ["v1", "text-to-speech", voice, "stream"] if method == Method::POST => voice.to_string(),
        _ => {
            return problem(
                &state,
                format!("{method} {}: not the stream endpoint", uri.path()),
            )
        }
    };
    if headers.get("xi-api-key").and_then(|v| v.to_str().ok()) != Some(API_KEY) {
        return detail(
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
            "Invalid API key",
            None,
        );
    }
    let failure = state.failure.lock().unwrap().clone();
    match &failure {
        Failure::Status { code, retry_after } => {
            let status = StatusCode::from_u16(*code).unwrap();
            let (kind, message) = match code {
                429 => (
                    "too_many_concurrent_requests",
                    "Too many concurrent requests.",
                ),
                500..=599 => ("internal_error", "An internal error occurred."),
                _ => ("invalid_request", "The request was refused."),
            };
            return detail(status, kind, message, retry_after.clone());
        }
        Failure::Stall => std::future::pending::<()>().await,
        _ => {}
    }
    if voice_id != VOICE_ID {
        let message = format!("A voice with voice_id {voice_id} was not found.");
        return detail(StatusCode::NOT_FOUND, "voice_not_found", &message, None);
    }
    let request = match check_request(&uri, &headers, &body, voice_id) {
        Ok(r) => r,
        Err(e) => return problem(&state, e),
    };
    state.requests.lock().unwrap().push(request);
    let bytes: Vec<u8> = state
        .pcm
        .lock()
        .unwrap()
        .iter()
        .flat_map(|s| s.to_le_bytes())
        .collect();
    let chunk = *state.chunk_bytes.lock().unwrap();
    stream_body(bytes, chunk, failure, Arc::clone(&state))
}

fn check_request(
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    voice_id: String,
) -> Result<StreamRequest, String> {
    let query: HashMap<String, String> =
        serde_urlencoded::from_str(uri.query().unwrap_or("")).map_err(|e| format!("query: {e}"))?;
    let output_format = query.get("output_format").cloned().unwrap_or_default();
    if output_format != "pcm_16000" {
        return Err(format!("output_format `{output_format}`"));
    }
    let latency = match query.get("optimize_streaming_latency") {
        None => None,
        Some(v) => match v.parse::<u8>() {
            Ok(n) if n <= 4 => Some(n),
            _ => return Err(format!("optimize_streaming_latency `{v}`")),
        },
    };
    if let Some(unknown) = query.keys().find(|k| {
        ![
            "output_format",
            "optimize_streaming_latency",
            "enable_logging",
        ]
        .contains(&k.as_str())
    }) {
        return Err(format!("undocumented query parameter `{unknown}`"));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if content_type != Some("application/json") {
        return Err(format!("content type {content_type:?}"));
    }
    let json: serde_json::Value = serde_json::from_slice(body).map_err(|e| format!("body: {e}"))?;
    let object = json.as_object().ok_or("body is not an object")?;
    let body_keys: Vec<String> = object.keys().cloned().collect();
    if let Some(k) = body_keys
        .iter()
        .find(|k| !DOCUMENTED_KEYS.contains(&k.as_str()))
    {
        return Err(format!("undocumented body key `{k}`"));
    }
    let text = object
        .get("text")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string();
    let model_id = object
        .get("model_id")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string();
    if text.trim().is_empty() || model_id.is_empty() {
        return Err(format!("text `{text}` model_id `{model_id}`"));
    }
    Ok(StreamRequest {
        voice_id,
        output_format,
        optimize_streaming_latency: latency,
        text,
        model_id,
        body_keys,
    })
}

/// Streams `bytes` in chunks of `chunk`, applying a body failure.
fn stream_body(bytes: Vec<u8>, chunk: usize, failure: Failure, state: Arc<State>) -> Response {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(2);
    tokio::spawn(async move {
        let mut sent = 0usize;
        for (i, piece) in bytes.chunks(chunk).enumerate() {
            match failure {
                Failure::StallAfter(n) if sent >= n => std::future::pending::<()>().await,
                Failure::CutAfter(n) if sent >= n => {
                    let _ = tx.send(Err(std::io::Error::other("cut"))).await;
                    return;
                }
                Failure::HoldAfterFirstChunk if i == 1 => state.release.notified().await,
                _ => {}
            }
            if tx.send(Ok(Bytes::copy_from_slice(piece))).await.is_err() {
                state.abandoned.notify_one();
                return;
            }
            sent += piece.len();
        }
    });
    (
        [(header::CONTENT_TYPE, "audio/pcm")],
        Body::from_stream(ReceiverStream::new(rx)),
    )
        .into_response()
}
