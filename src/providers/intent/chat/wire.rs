//! The OpenAI-compatible chat wire format, read side: server-sent events
//! (`data: {chunk}` lines, `data: [DONE]` at the end), the pieces of a
//! `chat.completion.chunk`, a whole non-streamed `chat.completion`, the
//! `{"error": {...}}` body, and the `Retry-After` header. Pure codecs.

pub use crate::providers::http::parse_retry_after;

use serde::Deserialize;
use serde_json::Value;

/// One dispatched server-sent event's data.
#[derive(Debug, Clone, PartialEq)]
pub enum SseData {
    Json(String),
    Done,
}

/// Splits a byte stream into server-sent events. Lines end in LF, CRLF or
/// CR; `data:` lines accumulate until a blank line dispatches the event;
/// comments and other fields are ignored.
#[derive(Debug, Default)]
pub struct SseDecoder {
    line: Vec<u8>,
    data: Option<String>,
    after_cr: bool,
}

impl SseDecoder {
    /// Feeds bytes; returns the events completed by them.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<SseData> {
        let mut out = Vec::new();
        for &b in bytes {
            let after_cr = std::mem::replace(&mut self.after_cr, false);
            match b {
                b'\n' if after_cr => {}
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    let line = std::mem::take(&mut self.line);
                    self.on_line(&line, &mut out);
                }
                _ => self.line.push(b),
            }
        }
        out
    }

    /// The end of the stream: an event still open is dispatched (servers
    /// sometimes omit the last blank line).
    pub fn finish(&mut self) -> Vec<SseData> {
        let mut out = Vec::new();
        let line = std::mem::take(&mut self.line);
        if !line.is_empty() {
            self.on_line(&line, &mut out);
        }
        self.dispatch(&mut out);
        out
    }

    fn on_line(&mut self, line: &[u8], out: &mut Vec<SseData>) {
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        let Some(rest) = line.strip_prefix(b"data:") else {
            return; // a comment (":…"), or a field we do not use
        };
        let rest = rest.strip_prefix(b" ").unwrap_or(rest);
        let text = String::from_utf8_lossy(rest);
        match &mut self.data {
            Some(d) => {
                d.push('\n');
                d.push_str(&text);
            }
            None => self.data = Some(text.into_owned()),
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseData>) {
        if let Some(data) = self.data.take() {
            if data.trim() == "[DONE]" {
                out.push(SseData::Done);
            } else {
                out.push(SseData::Json(data));
            }
        }
    }
}

/// What one streamed chunk adds to the answer (choice 0, tool call 0).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ChunkPart {
    /// Answer text: message content or function-call arguments.
    pub text: String,
    pub finish_reason: Option<String>,
    pub refusal: Option<String>,
    /// An error the server reported inside the stream.
    pub error: Option<ApiError>,
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Option<Vec<StreamChoice>>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct StreamChoice {
    #[serde(default)]
    index: u32,
    #[serde(default)]
    delta: Option<Body>,
    #[serde(default)]
    message: Option<Body>,
    #[serde(default)]
    finish_reason: Option<String>,
}

/// A `delta` (streamed) or `message` (whole) object.
#[derive(Deserialize, Default)]
struct Body {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<ToolCall>>,
}

#[derive(Deserialize)]
struct ToolCall {
    #[serde(default)]
    index: Option<u32>,
    #[serde(default)]
    function: Option<FunctionArgs>,
}

#[derive(Deserialize)]
struct FunctionArgs {
    #[serde(default)]
    arguments: Option<Value>,
}

impl Body {
    fn text(&self) -> String {
        let mut text = self.content.clone().unwrap_or_default();
        for call in self.tool_calls.iter().flatten() {
            if call.index.unwrap_or(0) != 0 {
                continue;
            }
            match call.function.as_ref().and_then(|f| f.arguments.as_ref()) {
                Some(Value::String(s)) => text.push_str(s),
                // A few servers send the arguments as an object, not text.
                Some(v @ Value::Object(_)) => text.push_str(&v.to_string()),
                _ => {}
            }
        }
        text
    }
}

/// Reads one `data:` payload of a streamed answer.
pub fn parse_chunk(data: &str) -> Result<ChunkPart, String> {
    let chunk: Chunk =
        serde_json::from_str(data).map_err(|e| format!("unreadable stream chunk: {e}"))?;
    let mut part = ChunkPart {
        error: chunk.error.as_ref().map(ApiError::from_value),
        ..Default::default()
    };
    for choice in chunk.choices.iter().flatten().filter(|c| c.index == 0) {
        if let Some(body) = choice.delta.as_ref().or(choice.message.as_ref()) {
            part.text.push_str(&body.text());
            if let Some(r) = body.refusal.as_ref().filter(|r| !r.is_empty()) {
                part.refusal.get_or_insert_with(String::new).push_str(r);
            }
        }
        if choice.finish_reason.is_some() {
            part.finish_reason = choice.finish_reason.clone();
        }
    }
    Ok(part)
}

/// Reads a whole, non-streamed `chat.completion` (a server that ignored
/// `stream: true`); the same fields as a single chunk.
pub fn parse_completion(body: &str) -> Result<ChunkPart, String> {
    parse_chunk(body).map_err(|_| "unreadable completion body".to_string())
}

/// The `error` object of a failed request: `{"error": {"message", "type",
/// "param", "code"}}`; some servers send `{"error": "text"}`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApiError {
    pub message: String,
    pub kind: Option<String>,
    pub param: Option<String>,
    pub code: Option<String>,
}

impl ApiError {
    fn from_value(v: &Value) -> ApiError {
        let text = |v: Option<&Value>| match v {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        match v {
            Value::String(s) => ApiError {
                message: s.clone(),
                ..Default::default()
            },
            Value::Object(o) => ApiError {
                message: text(o.get("message")).unwrap_or_default(),
                kind: text(o.get("type")),
                param: text(o.get("param")),
                code: text(o.get("code")),
            },
            other => ApiError {
                message: other.to_string(),
                ..Default::default()
            },
        }
    }

    /// Reads an error body; anything else becomes its text, cut short.
    pub fn parse(body: &str) -> ApiError {
        match serde_json::from_str::<Value>(body) {
            Ok(v) => match v.get("error") {
                Some(e) => ApiError::from_value(e),
                None => ApiError::from_value(&v),
            },
            Err(_) => ApiError {
                message: shorten(body.trim(), 300),
                ..Default::default()
            },
        }
    }

    /// The error in one line for logs and `ProviderError`s.
    pub fn describe(&self) -> String {
        let mut s = shorten(&self.message, 300);
        if let Some(code) = self.code.as_deref().or(self.kind.as_deref()) {
            s.push_str(&format!(" ({code})"));
        }
        s
    }

    /// Whether a 400-class answer says the server does not take the way we
    /// asked for structure (`response_format`, `json_schema`, tools), so
    /// the next form should be tried.
    pub fn refuses_form(&self, status: u16) -> bool {
        if !matches!(status, 400 | 422 | 501) {
            return false;
        }
        let all = format!(
            "{} {} {}",
            self.message,
            self.param.as_deref().unwrap_or(""),
            self.code.as_deref().unwrap_or("")
        )
        .to_lowercase();
        [
            "response_format",
            "response format",
            "json_schema",
            "json schema",
            "json_object",
            "tool",
            "function",
        ]
        .iter()
        .any(|w| all.contains(w))
    }
}

/// `text` cut to at most `max` bytes at a character boundary.
pub fn shorten(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_events_survive_any_split_and_line_ending() {
        let stream = "data: {\"a\":1}\r\n\r\n: keep-alive\n\ndata: {\"b\":\ndata: 2}\n\nevent: x\ndata: [DONE]\n\n";
        let want = vec![
            SseData::Json("{\"a\":1}".into()),
            SseData::Json("{\"b\":\n2}".into()),
            SseData::Done,
        ];
        let bytes = stream.as_bytes();
        for k in 0..=bytes.len() {
            let mut d = SseDecoder::default();
            let mut got = d.feed(&bytes[..k]);
            got.extend(d.feed(&bytes[k..]));
            got.extend(d.finish());
            assert_eq!(got, want, "split at {k}");
        }
        // CR alone ends lines too; an unterminated last event is still dispatched.
        let mut d = SseDecoder::default();
        let mut got = d.feed(b"data: {}\r\rdata: [DONE]");
        got.extend(d.finish());
        assert_eq!(got, vec![SseData::Json("{}".into()), SseData::Done]);
    }

    #[test]
    fn content_and_tool_deltas_are_answer_text() {
        let first = r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}"#;
        assert_eq!(parse_chunk(first).unwrap(), ChunkPart::default());
        let content =
            r#"{"choices":[{"index":0,"delta":{"content":"{\"re"},"finish_reason":null}]}"#;
        assert_eq!(parse_chunk(content).unwrap().text, "{\"re");
        let tool_head = r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":""}}]},"finish_reason":null}]}"#;
        assert_eq!(parse_chunk(tool_head).unwrap().text, "");
        let tool_args = r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"reply\""}}]},"finish_reason":null}]}"#;
        assert_eq!(parse_chunk(tool_args).unwrap().text, "{\"reply\"");
        let last = r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#;
        assert_eq!(
            parse_chunk(last).unwrap().finish_reason.as_deref(),
            Some("stop")
        );
        let usage_only = r#"{"id":"c","choices":[],"usage":{"total_tokens":9}}"#;
        assert_eq!(parse_chunk(usage_only).unwrap(), ChunkPart::default());
        let refusal = r#"{"choices":[{"index":0,"delta":{"refusal":"I can't"}}]}"#;
        assert_eq!(
            parse_chunk(refusal).unwrap().refusal.as_deref(),
            Some("I can't")
        );
        let error = r#"{"error":{"message":"overloaded","type":"server_error"}}"#;
        assert_eq!(
            parse_chunk(error).unwrap().error.unwrap().message,
            "overloaded"
        );
        assert!(parse_chunk("{not json").is_err());
    }

    #[test]
    fn whole_completions_read_like_one_chunk() {
        let body = r#"{"id":"c","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"x","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},"finish_reason":"stop"}]}"#;
        let part = parse_completion(body).unwrap();
        assert_eq!(part.text, "{\"a\":1}");
        assert_eq!(part.finish_reason.as_deref(), Some("stop"));
    }

    #[test]
    fn error_bodies_and_form_refusals() {
        let groq = ApiError::parse(
            r#"{"error":{"message":"This model does not support response format `json_schema`.","type":"invalid_request_error"}}"#,
        );
        assert!(groq.refuses_form(400));
        assert!(!groq.refuses_form(500));
        let ollama = ApiError::parse(
            r#"{"error":{"message":"model does not support tools","type":"api_error","param":null,"code":null}}"#,
        );
        assert!(ollama.refuses_form(400));
        let other = ApiError::parse(
            r#"{"error":{"message":"Invalid model","type":"invalid_request_error","param":"model","code":"model_not_found"}}"#,
        );
        assert!(!other.refuses_form(400));
        assert_eq!(other.describe(), "Invalid model (model_not_found)");
        assert_eq!(ApiError::parse(r#"{"error":"boom"}"#).message, "boom");
        assert_eq!(
            ApiError::parse("<html>bad gateway</html>").message,
            "<html>bad gateway</html>"
        );
    }
}
