//! One request to `POST {base}/chat/completions` and the reading of its
//! streamed answer: status and error bodies classified, server-sent events
//! decoded, answer text accumulated, reply sentences handed on as they
//! complete, time to first token measured, and the finished answer checked.
//! Retrying, timing out and choosing the form belong to the caller.

use std::time::{Duration, Instant};

use chrono::Utc;
use futures::StreamExt;
use reqwest::header::{ACCEPT, CONTENT_TYPE, RETRY_AFTER};
use tokio::sync::mpsc;

use crate::config::{ChatFormat, Secret};
use crate::domain::Extraction;
use crate::providers::ProviderError;

use super::answer::{parse_answer, AnswerRules};
use super::reply::ReplyReader;
use super::wire::{
    parse_chunk, parse_completion, parse_retry_after, ApiError, ChunkPart, SseData, SseDecoder,
};
use super::ENGINE;

/// Why an attempt gave no answer, and what to do next.
#[derive(Debug)]
pub(super) enum Failure {
    /// The server does not take this form of structured output: ask with the next.
    Refused(ProviderError),
    /// Worth one more try: a timeout, 429, 5xx, dropped connection or an invalid answer.
    Retry(ProviderError),
    /// No point trying again: bad credentials or a request the server rejects.
    Stop(ProviderError),
}

/// Where reply sentences go while an answer streams in. Counts what was
/// sent across attempts, so a retry does not repeat sentences already spoken.
pub(super) struct SentenceOut<'a> {
    pub tx: &'a mpsc::Sender<String>,
    pub sent: usize,
}

/// One request, ready to send.
pub(super) struct Request<'a> {
    pub http: &'a reqwest::Client,
    pub url: &'a str,
    pub api_key: Option<&'a Secret>,
    pub body: Vec<u8>,
    pub form: ChatFormat,
    pub rules: AnswerRules<'a>,
}

/// A checked answer and how long its first token took.
pub(super) struct Outcome {
    pub extraction: Extraction,
    pub first_token: Option<Duration>,
}

/// Sends the request and reads the answer to its end.
pub(super) async fn run(
    req: Request<'_>,
    mut out: Option<&mut SentenceOut<'_>>,
) -> Result<Outcome, Failure> {
    let started = Instant::now();
    let mut builder = req
        .http
        .post(req.url)
        .header(CONTENT_TYPE, "application/json")
        .header(ACCEPT, "text/event-stream")
        .body(req.body);
    if let Some(key) = req.api_key {
        builder = builder.bearer_auth(key.expose());
    }
    let resp = builder.send().await.map_err(|e| {
        let builder_error = e.is_builder();
        let msg = format!("cannot reach the chat server: {}", describe(e));
        if builder_error {
            Failure::Stop(ProviderError::fatal(ENGINE, msg))
        } else {
            Failure::Retry(ProviderError::retryable(ENGINE, msg))
        }
    })?;
    let status = resp.status().as_u16();
    if !resp.status().is_success() {
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, Utc::now()));
        let body = resp.text().await.unwrap_or_default();
        return Err(classify(
            status,
            &ApiError::parse(&body),
            retry_after,
            req.form,
        ));
    }
    let whole = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    let mut read = Reading::new(started);
    if whole {
        // A server that ignored `stream: true` sends one chat.completion.
        let body = resp.text().await.map_err(broken)?;
        let part = parse_completion(&body).map_err(invalid)?;
        read.on_part(part, &mut out).await?;
        read.done = true;
    } else {
        let mut sse = SseDecoder::default();
        let mut body = resp.bytes_stream();
        while !read.done {
            let Some(bytes) = body.next().await else {
                break;
            };
            for event in sse.feed(&bytes.map_err(broken)?) {
                read.on_event(event, &mut out).await?;
            }
        }
        for event in sse.finish() {
            read.on_event(event, &mut out).await?;
        }
    }
    read.finish(&req.rules)
}

/// What one non-2xx answer means for the next step.
fn classify(
    status: u16,
    err: &ApiError,
    retry_after: Option<Duration>,
    form: ChatFormat,
) -> Failure {
    let what = err.describe();
    match status {
        401 | 403 => Failure::Stop(ProviderError::fatal(
            ENGINE,
            format!("the chat server refused our credentials ({status}): {what}"),
        )),
        429 => {
            let e = ProviderError::retryable(ENGINE, format!("rate limited (429): {what}"));
            Failure::Retry(match retry_after {
                Some(wait) => e.with_retry_after(wait),
                None => e,
            })
        }
        408 | 409 | 500..=599 => Failure::Retry(ProviderError::retryable(
            ENGINE,
            format!("the chat server failed ({status}): {what}"),
        )),
        _ if err.refuses_form(status) => Failure::Refused(ProviderError::fatal(
            ENGINE,
            format!(
                "the chat server does not take the {} form ({status}): {what}",
                form_name(form)
            ),
        )),
        _ => Failure::Stop(ProviderError::fatal(
            ENGINE,
            format!("the chat server rejected the request ({status}): {what}"),
        )),
    }
}

pub(super) fn form_name(form: ChatFormat) -> &'static str {
    match form {
        ChatFormat::JsonSchema => "json_schema",
        ChatFormat::Tools => "tools",
        ChatFormat::Json => "json",
    }
}

/// A transport error with its causes ("connection refused" sits below
/// "error sending request"), without the URL.
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

fn broken(e: reqwest::Error) -> Failure {
    Failure::Retry(ProviderError::retryable(
        ENGINE,
        format!("the answer stream broke off: {}", describe(e)),
    ))
}

fn invalid(msg: String) -> Failure {
    Failure::Retry(ProviderError::fatal(
        ENGINE,
        format!("invalid answer: {msg}"),
    ))
}

/// The state of one answer being read.
struct Reading {
    started: Instant,
    text: String,
    reply: ReplyReader,
    emitted: usize,
    first_token: Option<Duration>,
    finish_reason: Option<String>,
    refusal: Option<String>,
    done: bool,
}

impl Reading {
    fn new(started: Instant) -> Self {
        Reading {
            started,
            text: String::new(),
            reply: ReplyReader::default(),
            emitted: 0,
            first_token: None,
            finish_reason: None,
            refusal: None,
            done: false,
        }
    }

    async fn on_event(
        &mut self,
        event: SseData,
        out: &mut Option<&mut SentenceOut<'_>>,
    ) -> Result<(), Failure> {
        match event {
            SseData::Done => {
                self.done = true;
                Ok(())
            }
            SseData::Json(data) => {
                let part = parse_chunk(&data).map_err(invalid)?;
                self.on_part(part, out).await
            }
        }
    }

    async fn on_part(
        &mut self,
        part: ChunkPart,
        out: &mut Option<&mut SentenceOut<'_>>,
    ) -> Result<(), Failure> {
        if let Some(e) = part.error {
            return Err(Failure::Retry(ProviderError::retryable(
                ENGINE,
                format!("the chat server failed mid-answer: {}", e.describe()),
            )));
        }
        if !part.text.is_empty() {
            self.first_token
                .get_or_insert_with(|| self.started.elapsed());
            self.text.push_str(&part.text);
            let sentences = self.reply.feed(part.text.as_bytes());
            if let Some(out) = out.as_deref_mut() {
                for sentence in sentences {
                    self.emitted += 1;
                    if self.emitted > out.sent {
                        out.sent = self.emitted;
                        // A listener that went away only stops the speaking.
                        let _ = out.tx.send(sentence).await;
                    }
                }
            }
        }
        if let Some(r) = part.refusal {
            self.refusal.get_or_insert_with(String::new).push_str(&r);
        }
        if part.finish_reason.is_some() {
            self.finish_reason = part.finish_reason;
        }
        Ok(())
    }

    /// The answer once the stream has ended.
    fn finish(self, rules: &AnswerRules<'_>) -> Result<Outcome, Failure> {
        if !self.done && self.finish_reason.is_none() {
            return Err(Failure::Retry(ProviderError::retryable(
                ENGINE,
                "the answer stream ended before the answer did",
            )));
        }
        if let Some(r) = self.refusal {
            return Err(invalid(format!("the model refused: {r}")));
        }
        match self.finish_reason.as_deref() {
            Some("length") => return Err(invalid("cut at the token limit".into())),
            Some("content_filter") => return Err(invalid("withheld by a content filter".into())),
            _ => {}
        }
        let extraction = parse_answer(&self.text, rules).map_err(invalid)?;
        Ok(Outcome {
            extraction,
            first_token: self.first_token,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_the_right_next_step() {
        let err = ApiError::parse(r#"{"error":{"message":"nope","type":"invalid_request_error"}}"#);
        let schema_err = ApiError::parse(
            r#"{"error":{"message":"response_format json_schema is not supported","type":"invalid_request_error"}}"#,
        );
        let f = ChatFormat::JsonSchema;
        assert!(matches!(classify(401, &err, None, f), Failure::Stop(e) if !e.retryable));
        assert!(matches!(classify(403, &err, None, f), Failure::Stop(_)));
        assert!(matches!(classify(400, &err, None, f), Failure::Stop(_)));
        assert!(matches!(classify(404, &err, None, f), Failure::Stop(_)));
        assert!(matches!(
            classify(400, &schema_err, None, f),
            Failure::Refused(_)
        ));
        assert!(matches!(classify(503, &err, None, f), Failure::Retry(e) if e.retryable));
        match classify(429, &err, Some(Duration::from_secs(3)), f) {
            Failure::Retry(e) => {
                assert!(e.retryable);
                assert_eq!(e.retry_after, Some(Duration::from_secs(3)));
            }
            other => panic!("{other:?}"),
        }
    }
}
