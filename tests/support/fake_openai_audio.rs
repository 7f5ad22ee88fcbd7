//! A fake OpenAI-compatible audio API on 127.0.0.1, for tests. It serves
//! `POST /v1/audio/transcriptions` and `POST /v1/audio/speech` the way the
//! documentation describes them and checks what the client sends:
//!
//! - transcriptions: `Authorization: Bearer <API_KEY>` (else a documented 401
//!   body), a well-formed `multipart/form-data` body whose `file` part is named
//!   `utterance.wav`, typed `audio/wav` and is a valid PCM16 mono 16 kHz WAV,
//!   and the fields `model`, `response_format` (json / verbose_json),
//!   `temperature=0`, `language=en` and `include[]=logprobs` only with json.
//!   The reply is in the asked format, its text derived from what arrived:
//!   `utterance <n>: <samples> samples` (n counts requests from 1).
//! - speech: Bearer auth, `Content-Type: application/json`, a body of exactly
//!   `{model, input, voice, response_format: "pcm"}`; the reply streams the
//!   configured 24 kHz PCM16LE in chunks of an odd size (samples split).
//!
//! A violated rule is recorded in [`FakeOpenAiAudio::problems`] and answered
//! with a documented-style 400. Knobs make it fail: a status with an
//! optional `Retry-After`, a stall before the headers, a malformed body, a
//! stall or a cut part-way through the body, or holding the body after its
//! first chunk until the test calls [`FakeOpenAiAudio::release`].
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::sync::{mpsc, Notify};
use tokio_stream::wrappers::ReceiverStream;

pub const API_KEY: &str = "sk-test-fake0123456789abcdef";

/// How the next requests fail (or not).
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    None,
    /// Answer with this status, a documented error body and, if given, a
    /// `Retry-After` header.
    Status {
        code: u16,
        retry_after: Option<String>,
    },
    /// Accept the request and never answer.
    Stall,
    /// 200 with a body that is not the documented JSON.
    Malformed,
    /// Speech: send this many bytes of the body, then stop sending.
    StallAfter(usize),
    /// Speech: send this many bytes of the body, then break the connection.
    CutAfter(usize),
    /// Speech: send the first chunk, then wait for [`FakeOpenAiAudio::release`].
    HoldAfterFirstChunk,
}

/// One transcription request as received.
#[derive(Debug, Clone, Default)]
pub struct TranscriptionRequest {
    /// Form field names in the order they came.
    pub fields: Vec<String>,
    pub model: String,
    pub response_format: String,
    pub temperature: String,
    pub language: String,
    pub include: Vec<String>,
    pub file_name: String,
    pub file_type: String,
    /// The WAV file's samples.
    pub pcm: Vec<i16>,
}

/// One speech request as received.
#[derive(Debug, Clone, PartialEq)]
pub struct SpeechRequest {
    pub model: String,
    pub input: String,
    pub voice: String,
    pub response_format: String,
}

struct State {
    failure: Mutex<Failure>,
    speech_pcm: Mutex<Vec<i16>>,
    chunk_bytes: Mutex<usize>,
    transcriptions: Mutex<Vec<TranscriptionRequest>>,
    speeches: Mutex<Vec<SpeechRequest>>,
    problems: Mutex<Vec<String>>,
    hits: Mutex<usize>,
    release: Notify,
}

pub struct FakeOpenAiAudio {
    addr: std::net::SocketAddr,
    state: Arc<State>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeOpenAiAudio {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A tone at 24 kHz (the default speech is 1 kHz, 1 s, amplitude 8000).
pub fn tone_24k(freq: f64, seconds: f64, amplitude: f64) -> Vec<i16> {
    let n = (24_000.0 * seconds) as usize;
    (0..n)
        .map(|i| {
            let t = i as f64 / 24_000.0;
            (amplitude * (2.0 * std::f64::consts::PI * freq * t).sin()).round() as i16
        })
        .collect()
}

/// A base URL nothing listens on (connection refused).
pub async fn refused_base_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/v1")
}

pub async fn start() -> FakeOpenAiAudio {
    let state = Arc::new(State {
        failure: Mutex::new(Failure::None),
        speech_pcm: Mutex::new(tone_24k(1000.0, 1.0, 8000.0)),
        chunk_bytes: Mutex::new(1001),
        transcriptions: Mutex::new(Vec::new()),
        speeches: Mutex::new(Vec::new()),
        problems: Mutex::new(Vec::new()),
        hits: Mutex::new(0),
        release: Notify::new(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .fallback(handle)
        .with_state(Arc::clone(&state));
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    FakeOpenAiAudio {
        addr,
        state,
        server,
    }
}

impl FakeOpenAiAudio {
    /// `http://127.0.0.1:<port>/v1`, as an OpenAI base URL is configured.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }
    pub fn set_failure(&self, failure: Failure) {
        *self.state.failure.lock().unwrap() = failure;
    }
    /// The 24 kHz audio `/audio/speech` streams.
    pub fn set_speech_pcm(&self, pcm: Vec<i16>) {
        *self.state.speech_pcm.lock().unwrap() = pcm;
    }
    pub fn set_chunk_bytes(&self, n: usize) {
        *self.state.chunk_bytes.lock().unwrap() = n.max(1);
    }
    /// Lets a body held by [`Failure::HoldAfterFirstChunk`] go on.
    pub fn release(&self) {
        self.state.release.notify_one();
    }
    pub fn transcriptions(&self) -> Vec<TranscriptionRequest> {
        self.state.transcriptions.lock().unwrap().clone()
    }
    pub fn speech_requests(&self) -> Vec<SpeechRequest> {
        self.state.speeches.lock().unwrap().clone()
    }
    /// Protocol violations seen so far (empty when the client behaved).
    pub fn problems(&self) -> Vec<String> {
        self.state.problems.lock().unwrap().clone()
    }
    /// Requests received, whatever their fate.
    pub fn hits(&self) -> usize {
        *self.state.hits.lock().unwrap()
    }
}

async fn handle(
    axum::extract::State(state): axum::extract::State<Arc<State>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    *state.hits.lock().unwrap() += 1;
    if method != Method::POST {
        return problem(&state, format!("{method} {uri}: only POST is served"));
    }
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if auth != Some(format!("Bearer {API_KEY}").as_str()) {
        return openai_error(
            StatusCode::UNAUTHORIZED,
            "Incorrect API key provided: sk-test-****cdef. You can find your API key at https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            Some("invalid_api_key"),
            None,
        );
    }
    let failure = state.failure.lock().unwrap().clone();
    match &failure {
        Failure::Status { code, retry_after } => {
            let status = StatusCode::from_u16(*code).unwrap();
            let (kind, message) = match code {
                429 => (
                    "requests",
                    "Rate limit reached for requests. Please try again in 7s.",
                ),
                500..=599 => (
                    "server_error",
                    "The server had an error while processing your request.",
                ),
                _ => ("invalid_request_error", "The request was refused."),
            };
            return openai_error(status, message, kind, None, retry_after.clone());
        }
        Failure::Stall => std::future::pending::<()>().await,
        _ => {}
    }
    match uri.path() {
        "/v1/audio/transcriptions" => transcription(&state, &headers, &body, &failure),
        "/v1/audio/speech" => speech(&state, &headers, &body, failure),
        other => problem(&state, format!("unknown path {other}")),
    }
}

fn problem(state: &State, what: String) -> Response {
    state.problems.lock().unwrap().push(what.clone());
    openai_error(
        StatusCode::BAD_REQUEST,
        &what,
        "invalid_request_error",
        None,
        None,
    )
}

fn openai_error(
    status: StatusCode,
    message: &str,
    kind: &str,
    code: Option<&str>,
    retry_after: Option<String>,
) -> Response {
    let body = serde_json::json!({
        "error": { "message": message, "type": kind, "param": null, "code": code }
    });
    let mut response = (status, axum::Json(body)).into_response();
    if let Some(wait) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, wait.parse().unwrap());
    }
    response
}

fn transcription(state: &State, headers: &HeaderMap, body: &[u8], failure: &Failure) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let parts = match parse_multipart(content_type, body) {
        Ok(p) => p,
        Err(e) => return problem(state, format!("multipart: {e}")),
    };
    let mut req = TranscriptionRequest::default();
    for part in parts {
        req.fields.push(part.name.clone());
        let text = || String::from_utf8_lossy(&part.data).into_owned();
        match part.name.as_str() {
            "file" => {
                req.file_name = part.file_name.clone().unwrap_or_default();
                req.file_type = part.content_type.clone().unwrap_or_default();
                match wav_pcm16_mono_16k(&part.data) {
                    Ok(pcm) => req.pcm = pcm,
                    Err(e) => return problem(state, format!("file: {e}")),
                }
            }
            "model" => req.model = text(),
            "response_format" => req.response_format = text(),
            "temperature" => req.temperature = text(),
            "language" => req.language = text(),
            "include[]" => req.include.push(text()),
            other => return problem(state, format!("undocumented form field `{other}`")),
        }
    }
    let mut wrong = Vec::new();
    if req.file_name != "utterance.wav" || req.file_type != "audio/wav" {
        wrong.push(format!(
            "file part `{}` typed `{}`",
            req.file_name, req.file_type
        ));
    }
    if req.model.is_empty() || req.pcm.is_empty() {
        wrong.push("missing model or file".to_string());
    }
    if !matches!(req.response_format.as_str(), "json" | "verbose_json") {
        wrong.push(format!("response_format `{}`", req.response_format));
    }
    if req.temperature != "0" || req.language != "en" {
        wrong.push(format!(
            "temperature `{}` language `{}`",
            req.temperature, req.language
        ));
    }
    let logprobs = req.include == ["logprobs"];
    if !(req.include.is_empty() || logprobs && req.response_format == "json") {
        wrong.push(format!(
            "include {:?} with {}",
            req.include, req.response_format
        ));
    }
    if !wrong.is_empty() {
        return problem(state, wrong.join("; "));
    }
    let n = {
        let mut all = state.transcriptions.lock().unwrap();
        all.push(req.clone());
        all.len()
    };
    if *failure == Failure::Malformed {
        return (
            [(header::CONTENT_TYPE, "application/json")],
            "{\"text\": \"utter",
        )
            .into_response();
    }
    let text = format!("utterance {n}: {} samples", req.pcm.len());
    let seconds = req.pcm.len() as f64 / 16_000.0;
    let reply = match (req.response_format.as_str(), logprobs) {
        ("verbose_json", _) => serde_json::json!({
            "task": "transcribe", "language": "english", "duration": seconds, "text": text,
            "segments": [{
                "id": 0, "seek": 0, "start": 0.0, "end": seconds, "text": format!(" {text}"),
                "tokens": [50364, 1062], "temperature": 0.0, "avg_logprob": -0.2,
                "compression_ratio": 1.2, "no_speech_prob": 0.01
            }],
            "x_groq": { "id": format!("req_{n}") }
        }),
        (_, true) => serde_json::json!({
            "text": text,
            "logprobs": [
                { "token": "utterance", "logprob": -0.1, "bytes": [117] },
                { "token": " n", "logprob": -0.3, "bytes": [32] }
            ],
            "usage": { "type": "tokens", "input_tokens": 40, "output_tokens": 8, "total_tokens": 48 }
        }),
        _ => {
            serde_json::json!({ "text": text, "usage": { "type": "duration", "seconds": seconds.ceil() } })
        }
    };
    axum::Json(reply).into_response()
}

fn speech(state: &Arc<State>, headers: &HeaderMap, body: &[u8], failure: Failure) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if content_type != Some("application/json") {
        return problem(state, format!("speech content type {content_type:?}"));
    }
    let json: serde_json::Value = match serde_json::from_slice(body) {
        Ok(j) => j,
        Err(e) => return problem(state, format!("speech body is not JSON: {e}")),
    };
    let Some(object) = json.as_object() else {
        return problem(state, "speech body is not an object".into());
    };
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    if keys != ["input", "model", "response_format", "voice"] {
        return problem(state, format!("speech body keys {keys:?}"));
    }
    let field = |k: &str| {
        object
            .get(k)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string()
    };
    let req = SpeechRequest {
        model: field("model"),
        input: field("input"),
        voice: field("voice"),
        response_format: field("response_format"),
    };
    let chars = req.input.chars().count();
    if req.response_format != "pcm"
        || req.model.is_empty()
        || req.voice.is_empty()
        || chars == 0
        || chars > 4096
    {
        return problem(state, format!("speech request {req:?}"));
    }
    state.speeches.lock().unwrap().push(req);
    let pcm: Vec<u8> = state
        .speech_pcm
        .lock()
        .unwrap()
        .iter()
        .flat_map(|s| s.to_le_bytes())
        .collect();
    let chunk = *state.chunk_bytes.lock().unwrap();
    if failure == Failure::Malformed {
        return (StatusCode::OK, "{\"error\": ").into_response();
    }
    stream_body(pcm, chunk, failure, Arc::clone(state))
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
                return;
            }
            sent += piece.len();
        }
    });
    (
        [(header::CONTENT_TYPE, "application/octet-stream")],
        Body::from_stream(ReceiverStream::new(rx)),
    )
        .into_response()
}

struct FormPart {
    name: String,
    file_name: Option<String>,
    content_type: Option<String>,
    data: Vec<u8>,
}

/// Parses a `multipart/form-data` body strictly (RFC 7578 framing).
fn parse_multipart(content_type: &str, body: &[u8]) -> Result<Vec<FormPart>, String> {
    let rest = content_type
        .strip_prefix("multipart/form-data")
        .ok_or_else(|| format!("content type `{content_type}`"))?;
    let boundary = rest
        .split(';')
        .filter_map(|p| p.trim().strip_prefix("boundary="))
        .next()
        .map(|b| b.trim_matches('"').to_string())
        .ok_or("no boundary")?;
    let open = format!("--{boundary}");
    let sep = format!("\r\n--{boundary}");
    let mut rest = body
        .strip_prefix(open.as_bytes())
        .ok_or("body does not open with the boundary")?;
    let mut parts = Vec::new();
    loop {
        if rest.starts_with(b"--") {
            return Ok(parts);
        }
        rest = rest
            .strip_prefix(b"\r\n")
            .ok_or("no CRLF after a boundary")?;
        let end = find(rest, sep.as_bytes()).ok_or("unterminated part")?;
        let (part, after) = (&rest[..end], &rest[end + sep.len()..]);
        rest = after;
        let split = find(part, b"\r\n\r\n").ok_or("part without a header end")?;
        let head = std::str::from_utf8(&part[..split]).map_err(|_| "non-UTF-8 part headers")?;
        let mut fp = FormPart {
            name: String::new(),
            file_name: None,
            content_type: None,
            data: part[split + 4..].to_vec(),
        };
        for line in head.split("\r\n") {
            let (k, v) = line.split_once(':').ok_or("malformed part header")?;
            match k.trim().to_ascii_lowercase().as_str() {
                "content-disposition" => {
                    fp.name = param(v, "name").ok_or("part without a name")?;
                    fp.file_name = param(v, "filename");
                }
                "content-type" => fp.content_type = Some(v.trim().to_string()),
                _ => {}
            }
        }
        parts.push(fp);
    }
}

fn param(header: &str, key: &str) -> Option<String> {
    header.split(';').find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        (k == key).then(|| v.trim_matches('"').to_string())
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Checks a WAV image byte by byte: RIFF/WAVE, a 16-byte PCM `fmt ` chunk of
/// one channel at 16 kHz and 16 bits, and a `data` chunk whose size matches.
fn wav_pcm16_mono_16k(b: &[u8]) -> Result<Vec<i16>, String> {
    let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
    let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    if b.len() < 44 || &b[0..4] != b"RIFF" || &b[8..16] != b"WAVEfmt " {
        return Err("not a RIFF/WAVE file with fmt first".into());
    }
    if u32_at(4) as usize != b.len() - 8 {
        return Err(format!("RIFF size {} for {} bytes", u32_at(4), b.len()));
    }
    let fmt = (
        u32_at(16),
        u16_at(20),
        u16_at(22),
        u32_at(24),
        u32_at(28),
        u16_at(32),
        u16_at(34),
    );
    if fmt != (16, 1, 1, 16_000, 32_000, 2, 16) {
        return Err(format!(
            "fmt (size, tag, channels, rate, byte rate, align, bits) = {fmt:?}"
        ));
    }
    if &b[36..40] != b"data" || u32_at(40) as usize != b.len() - 44 {
        return Err("data chunk missing or its size is wrong".into());
    }
    Ok(b[44..]
        .chunks_exact(2)
        .map(|p| i16::from_le_bytes([p[0], p[1]]))
        .collect())
}
