//! A fake OpenAI-compatible chat server (`POST /v1/chat/completions`) for
//! tests. It checks what the client sends — path, bearer key (or its absence
//! for a keyless server such as Ollama), content type, and the body: model,
//! `stream: true`, `temperature: 0`, a system prompt first that names the
//! business and its categories, then user/assistant turns, and exactly one
//! documented structured-output form (`response_format` json_schema with
//! `strict`, a forced function tool, or `json_object` with "JSON" in the
//! prompt). A request that breaks a rule gets a 400 in OpenAI's error shape
//! and is listed in `violations()`.
//!
//! It answers a scripted JSON answer as documented server-sent events:
//! `chat.completion.chunk` objects with content deltas (or function-argument
//! deltas for the tools form), a last chunk with `finish_reason`, then
//! `data: [DONE]`. Knobs make it refuse a form the way Groq and Ollama do,
//! answer an error status (with `Retry-After` for 429), stall, drop the
//! connection mid-stream, send malformed JSON, or hold the stream at a
//! marker until the test releases it.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use axum::Router;
use serde_json::{json, Value};
use tokio::sync::{mpsc, Notify};
use tokio_stream::wrappers::ReceiverStream;

#[path = "fake_chat_checks.rs"]
mod checks;

use checks::{check_body, form_of, Expect};

/// What the fake does with one request that passed its checks.
#[derive(Debug, Clone, PartialEq)]
pub enum Behaviour {
    /// Stream the scripted answer.
    Answer,
    /// Answer this status with an OpenAI-style error body.
    Status {
        code: u16,
        retry_after: Option<String>,
    },
    /// Never answer at all.
    StallBeforeHeaders,
    /// Send the headers and the first chunk, then nothing more.
    StallMidStream,
    /// Send about half of the answer, then drop the connection.
    Cut,
    /// Stream content that is not valid JSON, finished normally.
    Malformed,
}

/// The structured-output form a request asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    JsonSchema,
    Tools,
    JsonObject,
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    pub raw: String,
    pub body: Value,
    pub form: Option<Form>,
}

impl Recorded {
    /// The messages' roles in order.
    pub fn roles(&self) -> Vec<String> {
        self.messages()
            .iter()
            .map(|m| m["role"].as_str().unwrap_or("?").to_string())
            .collect()
    }

    pub fn messages(&self) -> Vec<Value> {
        self.body["messages"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub fn system_prompt(&self) -> String {
        self.messages()
            .first()
            .and_then(|m| m["content"].as_str().map(str::to_string))
            .unwrap_or_default()
    }
}

struct Inner {
    api_key: Option<String>,
    model: String,
    business: String,
    categories: Vec<String>,
    answer: String,
    script: VecDeque<Behaviour>,
    default: Behaviour,
    refuse_json_schema: bool,
    refuse_tools: bool,
    piece_chars: usize,
    hold_after: Option<String>,
    requests: Vec<Recorded>,
    violations: Vec<String>,
}

struct Shared {
    inner: Mutex<Inner>,
    release: Notify,
}

/// A running fake; it stops when the test's runtime ends.
pub struct FakeChat {
    addr: std::net::SocketAddr,
    shared: Arc<Shared>,
}

pub const TOOL_CALL_ID: &str = "call_fake0001";

/// Starts the fake on 127.0.0.1 with defaults: key `sk-test-key`, model
/// `test-model`, business "Acme Home Services" with plumbing, electrical and
/// locksmith, and a plumbing answer.
pub async fn start() -> FakeChat {
    let shared = Arc::new(Shared {
        inner: Mutex::new(Inner {
            api_key: Some("sk-test-key".into()),
            model: "test-model".into(),
            business: "Acme Home Services".into(),
            categories: vec!["plumbing".into(), "electrical".into(), "locksmith".into()],
            answer: json!({
                "reply": "I can help with that. What is the address?",
                "category": "plumbing",
                "issue": "Kitchen sink is leaking",
                "location": null,
                "requested_time": null,
                "requested_at": null,
                "urgency": "normal",
                "caller_name": null,
                "callback_number": null,
                "confidence": 0.9,
                "wants_human": false
            })
            .to_string(),
            script: VecDeque::new(),
            default: Behaviour::Answer,
            refuse_json_schema: false,
            refuse_tools: false,
            piece_chars: 7,
            hold_after: None,
            requests: Vec::new(),
            violations: Vec::new(),
        }),
        release: Notify::new(),
    });
    let app = {
        let shared = shared.clone();
        Router::new().fallback(move |method, uri, headers, body| {
            let shared = shared.clone();
            async move { handle(shared, method, uri, headers, body).await }
        })
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    FakeChat { addr, shared }
}

impl FakeChat {
    /// The OpenAI-style base URL, ending in `/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.shared.inner.lock().unwrap())
    }

    /// The key required as `Authorization: Bearer …`; `None` requires no header.
    pub fn expect_key(&self, key: Option<&str>) {
        self.with(|i| i.api_key = key.map(str::to_string));
    }

    pub fn expect_model(&self, model: &str) {
        self.with(|i| i.model = model.to_string());
    }

    /// The business name and categories the system prompt must mention.
    pub fn expect_business(&self, name: &str, categories: &[&str]) {
        self.with(|i| {
            i.business = name.to_string();
            i.categories = categories.iter().map(|c| c.to_string()).collect();
        });
    }

    /// The answer to stream, as JSON text (its key order is kept).
    pub fn set_answer(&self, json_text: &str) {
        self.with(|i| i.answer = json_text.to_string());
    }

    /// How many characters each streamed delta carries.
    pub fn set_piece_chars(&self, n: usize) {
        self.with(|i| i.piece_chars = n.max(1));
    }

    /// What the next request does (queued in order; then the default).
    pub fn push(&self, b: Behaviour) {
        self.with(|i| i.script.push_back(b));
    }

    /// The first `n` requests behave as `b`; later ones answer.
    pub fn fail_first(&self, n: usize, b: Behaviour) {
        self.with(|i| i.script.extend(std::iter::repeat_n(b, n)));
    }

    /// What every request does once the script is used up.
    pub fn set_default(&self, b: Behaviour) {
        self.with(|i| i.default = b);
    }

    /// Refuse `response_format: json_schema` as Groq does for models without it.
    pub fn refuse_json_schema(&self, on: bool) {
        self.with(|i| i.refuse_json_schema = on);
    }

    /// Refuse `tools` as Ollama does for models without tool support.
    pub fn refuse_tools(&self, on: bool) {
        self.with(|i| i.refuse_tools = on);
    }

    /// Stop streaming right after the answer text containing `marker` has
    /// been sent, until [`release`](Self::release).
    pub fn hold_after(&self, marker: &str) {
        self.with(|i| i.hold_after = Some(marker.to_string()));
    }

    pub fn release(&self) {
        self.shared.release.notify_one();
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.with(|i| i.requests.clone())
    }

    pub fn request_count(&self) -> usize {
        self.with(|i| i.requests.len())
    }

    /// Every rule a request broke.
    pub fn violations(&self) -> Vec<String> {
        self.with(|i| i.violations.clone())
    }
}

fn error_body(status: u16, message: &str, kind: &str, param: Value, code: Value) -> Response {
    let body = json!({"error": {"message": message, "type": kind, "param": param, "code": code}});
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

async fn handle(
    shared: Arc<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let raw = String::from_utf8_lossy(&body).into_owned();
    let parsed: Value = serde_json::from_str(&raw).unwrap_or(Value::Null);
    let form = form_of(&parsed);
    let (behaviour, answer, piece_chars, hold, model) = {
        let mut i = shared.inner.lock().unwrap();
        i.requests.push(Recorded {
            method: method.to_string(),
            path: uri.path().to_string(),
            authorization: header("authorization"),
            content_type: header("content-type"),
            raw: raw.clone(),
            body: parsed.clone(),
            form,
        });
        if method != Method::POST || uri.path() != "/v1/chat/completions" {
            let msg = format!("Unknown request URL: {method} {}.", uri.path());
            i.violations.push(msg.clone());
            return error_body(
                404,
                &msg,
                "invalid_request_error",
                Value::Null,
                json!("unknown_url"),
            );
        }
        let auth = header("authorization");
        match &i.api_key {
            Some(key) if auth.as_deref() != Some(&format!("Bearer {key}")) => {
                return error_body(
                    401,
                    "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
                    "invalid_request_error",
                    Value::Null,
                    json!("invalid_api_key"),
                );
            }
            None if auth.is_some() => {
                let msg = "an Authorization header was sent to a keyless server".to_string();
                i.violations.push(msg.clone());
                return error_body(400, &msg, "invalid_request_error", Value::Null, Value::Null);
            }
            _ => {}
        }
        let expect = Expect {
            model: &i.model,
            business: &i.business,
            categories: &i.categories,
        };
        let problems = check_body(
            &expect,
            header("content-type").as_deref(),
            &raw,
            &parsed,
            form,
        );
        if !problems.is_empty() {
            let msg = problems.join("; ");
            i.violations.extend(problems);
            return error_body(400, &msg, "invalid_request_error", Value::Null, Value::Null);
        }
        if form == Some(Form::JsonSchema) && i.refuse_json_schema {
            return error_body(
                400,
                "This model does not support response format `json_schema`. See supported models at https://console.groq.com/docs/structured-outputs#supported-models",
                "invalid_request_error",
                Value::Null,
                Value::Null,
            );
        }
        if form == Some(Form::Tools) && i.refuse_tools {
            return error_body(
                400,
                &format!(
                    "registry.ollama.ai/library/{} does not support tools",
                    i.model
                ),
                "api_error",
                Value::Null,
                Value::Null,
            );
        }
        let behaviour = i.script.pop_front().unwrap_or_else(|| i.default.clone());
        (
            behaviour,
            i.answer.clone(),
            i.piece_chars,
            i.hold_after.clone(),
            i.model.clone(),
        )
    };
    let tools = form == Some(Form::Tools);
    match behaviour {
        Behaviour::Status { code, retry_after } => status_response(code, retry_after),
        Behaviour::StallBeforeHeaders => std::future::pending().await,
        Behaviour::Answer => stream(
            shared,
            model,
            tools,
            pieces(&answer, piece_chars),
            hold,
            End::Finish,
        ),
        Behaviour::Malformed => {
            let broken = r#"{"reply": "Let me check that for you.", "category": plumb"#;
            stream(
                shared,
                model,
                tools,
                pieces(broken, piece_chars),
                None,
                End::Finish,
            )
        }
        Behaviour::Cut => {
            let mut p = pieces(&answer, piece_chars);
            p.truncate(p.len() / 2);
            stream(shared, model, tools, p, None, End::Drop)
        }
        Behaviour::StallMidStream => {
            let p = pieces(&answer, piece_chars).into_iter().take(1).collect();
            stream(shared, model, tools, p, None, End::Stall)
        }
    }
}

fn status_response(code: u16, retry_after: Option<String>) -> Response {
    let (message, kind, err_code) = match code {
        401 => (
            "Incorrect API key provided.",
            "invalid_request_error",
            json!("invalid_api_key"),
        ),
        429 => (
            "Rate limit reached for requests. Please try again later.",
            "requests",
            json!("rate_limit_exceeded"),
        ),
        503 => (
            "The engine is currently overloaded, please try again later.",
            "server_error",
            Value::Null,
        ),
        _ => (
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
            Value::Null,
        ),
    };
    let mut resp = error_body(code, message, kind, Value::Null, err_code);
    if let Some(ra) = retry_after {
        resp.headers_mut()
            .insert("retry-after", ra.parse().unwrap());
    }
    resp
}

/// `text` in pieces of at most `n` characters.
fn pieces(text: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars.chunks(n).map(|c| c.iter().collect()).collect()
}

/// How a stream ends.
#[derive(Clone, Copy, PartialEq)]
enum End {
    /// A last chunk with `finish_reason`, then `[DONE]`.
    Finish,
    /// The connection drops.
    Drop,
    /// Nothing more is sent until the client goes away.
    Stall,
}

fn chunk(model: &str, delta: Value, finish: Option<&str>) -> Bytes {
    let c = json!({
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1_741_600_000,
        "model": model,
        "system_fingerprint": "fp_fake",
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]
    });
    Bytes::from(format!("data: {c}\n\n"))
}

fn stream(
    shared: Arc<Shared>,
    model: String,
    tools: bool,
    pieces: Vec<String>,
    hold: Option<String>,
    end: End,
) -> Response {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    tokio::spawn(async move {
        let first = if tools {
            json!({"role": "assistant", "content": null, "tool_calls": [{"index": 0, "id": TOOL_CALL_ID, "type": "function", "function": {"name": "record_call_details", "arguments": ""}}]})
        } else {
            json!({"role": "assistant", "content": ""})
        };
        if tx.send(Ok(chunk(&model, first, None))).await.is_err() {
            return;
        }
        let mut sent = String::new();
        let mut held = false;
        for piece in pieces {
            sent.push_str(&piece);
            let delta = if tools {
                json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
            } else {
                json!({"content": piece})
            };
            if tx.send(Ok(chunk(&model, delta, None))).await.is_err() {
                return;
            }
            if !held && hold.as_deref().is_some_and(|m| sent.contains(m)) {
                held = true;
                shared.release.notified().await;
            }
        }
        match end {
            End::Finish => {
                let _ = tx.send(Ok(chunk(&model, json!({}), Some("stop")))).await;
                let _ = tx.send(Ok(Bytes::from_static(b"data: [DONE]\n\n"))).await;
            }
            End::Drop => {
                let _ = tx
                    .send(Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionReset,
                        "fake cut",
                    )))
                    .await;
            }
            End::Stall => {
                tokio::select! {
                    _ = tx.closed() => {}
                    _ = tokio::time::sleep(Duration::from_secs(60)) => {}
                }
            }
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/event-stream; charset=utf-8")
        .header("cache-control", "no-cache")
        .body(Body::from_stream(ReceiverStream::new(rx)))
        .unwrap()
}
