//! Intent extraction by an OpenAI-compatible chat model (OpenAI, Groq,
//! Ollama, vLLM): `POST {base_url}/chat/completions`, streamed, at
//! temperature 0, with a system prompt built from the business settings and
//! the conversation so far, asking for one structured answer (see
//! [`schema`]) that includes the next thing to say.
//!
//! Structured output is asked for in the configured form first —
//! `response_format` `json_schema` (strict), a forced function call, or
//! `json_object` with the schema in the prompt — and a server that refuses a
//! form is asked with the next one; the form that worked is kept for later
//! turns. Each attempt has `chat.timeout_ms` for the whole answer. A timeout,
//! dropped stream, 429, 5xx or invalid answer is retried once; bad
//! credentials are not. The error that remains goes back to the caller, whose
//! fallback chain answers the turn with the rule engine.
//!
//! The API key is sent only as a bearer token and appears nowhere else.

mod answer;
mod attempt;
mod prompt;
mod reply;
mod schema;
mod wire;

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::mpsc;

use crate::config::{Business, ChatConfig, ChatFormat};
use crate::domain::{Conversation, Extraction};
use crate::providers::{BoxFuture, IntentExtractor, ProviderError};

use answer::AnswerRules;
use attempt::{form_name, Failure, Outcome, Request, SentenceOut};
use prompt::PromptContext;
use schema::{AnswerSchema, RequestBody};

pub use reply::sentences;

const ENGINE: &str = "chat";

/// The forms of structured output, in the order they are tried.
const FORMS: [ChatFormat; 3] = [ChatFormat::JsonSchema, ChatFormat::Tools, ChatFormat::Json];

fn form_index(form: ChatFormat) -> u8 {
    match form {
        ChatFormat::JsonSchema => 0,
        ChatFormat::Tools => 1,
        ChatFormat::Json => 2,
    }
}

/// No first token recorded yet.
const NO_TIME: u64 = u64::MAX;

/// One extraction's result with its timings.
#[derive(Debug, Clone)]
pub struct ChatAnswer {
    pub extraction: Extraction,
    /// From sending the successful request to its first answer text.
    pub first_token: Option<Duration>,
    /// From the start of the first attempt to the checked answer.
    pub elapsed: Duration,
    /// The form the server answered in.
    pub form: ChatFormat,
    /// Requests made, including refused forms and the retry.
    pub requests: u32,
}

/// The chat-model extractor. Build once per configuration and share: it
/// holds a connection pool, and remembers which form the server takes.
pub struct ChatExtractor {
    config: ChatConfig,
    business: Business,
    http: reqwest::Client,
    url: String,
    schema: AnswerSchema,
    schema_text: String,
    /// Index into `FORMS` of the form to try first.
    form: AtomicU8,
    last_first_token_ns: AtomicU64,
}

impl std::fmt::Debug for ChatExtractor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatExtractor")
            .field("url", &self.url)
            .field("model", &self.config.model)
            .field("form", &self.form())
            .field(
                "api_key",
                &self.config.api_key.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

impl ChatExtractor {
    /// An extractor for `config`'s server, answering for `business`.
    pub fn new(config: ChatConfig, business: Business) -> Result<Self, ProviderError> {
        let http = reqwest::Client::builder()
            .connect_timeout(config.timeout)
            .tcp_nodelay(true)
            .user_agent(concat!("switchboard/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                ProviderError::fatal(ENGINE, format!("cannot build an HTTP client: {e}"))
            })?;
        let url = format!(
            "{}/chat/completions",
            config.base_url.as_str().trim_end_matches('/')
        );
        let schema = AnswerSchema::new(&business.categories);
        let schema_text = schema.to_text();
        Ok(ChatExtractor {
            form: AtomicU8::new(form_index(config.format)),
            config,
            business,
            http,
            url,
            schema,
            schema_text,
            last_first_token_ns: AtomicU64::new(NO_TIME),
        })
    }

    /// The form the next request will use first.
    pub fn form(&self) -> ChatFormat {
        FORMS[usize::from(self.form.load(Ordering::Relaxed)).min(FORMS.len() - 1)]
    }

    /// Time to first token of the most recent successful answer (any call).
    pub fn last_first_token(&self) -> Option<Duration> {
        match self.last_first_token_ns.load(Ordering::Relaxed) {
            NO_TIME => None,
            ns => Some(Duration::from_nanos(ns)),
        }
    }

    /// Extracts from `conversation`, sending each sentence of the reply to
    /// `sentences` as soon as it is complete, then returns the checked
    /// extraction (whose `reply` is the whole reply). If an attempt fails
    /// after sentences went out, the retry does not send them again.
    pub async fn extract_streaming(
        &self,
        conversation: &Conversation,
        sentences: mpsc::Sender<String>,
    ) -> Result<Extraction, ProviderError> {
        self.answer(conversation, Some(&sentences))
            .await
            .map(|a| a.extraction)
    }

    /// Extracts from `conversation`, with timings; see
    /// [`extract_streaming`](Self::extract_streaming) for `sentences`.
    pub async fn answer(
        &self,
        conversation: &Conversation,
        sentences: Option<&mpsc::Sender<String>>,
    ) -> Result<ChatAnswer, ProviderError> {
        let started = Instant::now();
        let mut out = sentences.map(|tx| SentenceOut { tx, sent: 0 });
        let mut requests = 0;
        let mut retried = false;
        loop {
            let result = self
                .try_forms(conversation, out.as_mut(), &mut requests)
                .await;
            let error = match result {
                Ok((outcome, form)) => {
                    if let Some(t) = outcome.first_token {
                        let ns = u64::try_from(t.as_nanos()).unwrap_or(NO_TIME - 1);
                        self.last_first_token_ns.store(ns, Ordering::Relaxed);
                    }
                    return Ok(ChatAnswer {
                        extraction: outcome.extraction,
                        first_token: outcome.first_token,
                        elapsed: started.elapsed(),
                        form,
                        requests,
                    });
                }
                Err(Failure::Retry(e)) if !retried => e,
                Err(Failure::Retry(e) | Failure::Stop(e) | Failure::Refused(e)) => return Err(e),
            };
            // A caller is waiting: a long pause asked for is not worth it.
            let wait = error.retry_after.unwrap_or(Duration::ZERO);
            if wait > self.config.timeout {
                return Err(error);
            }
            tracing::warn!(error = %error, "chat extraction failed; retrying once");
            tokio::time::sleep(wait).await;
            retried = true;
        }
    }

    /// One attempt: the remembered form first, then the next on refusal.
    async fn try_forms(
        &self,
        conversation: &Conversation,
        mut out: Option<&mut SentenceOut<'_>>,
        requests: &mut u32,
    ) -> Result<(Outcome, ChatFormat), Failure> {
        let first = usize::from(self.form.load(Ordering::Relaxed)).min(FORMS.len() - 1);
        let mut refused = None;
        for (i, &form) in FORMS.iter().enumerate().skip(first) {
            *requests += 1;
            let request = self.request(conversation, form)?;
            let attempt = attempt::run(request, out.as_deref_mut());
            match tokio::time::timeout(self.config.timeout, attempt).await {
                Ok(Ok(outcome)) => {
                    self.remember(first, i, form);
                    return Ok((outcome, form));
                }
                Ok(Err(Failure::Refused(e))) => {
                    tracing::info!(error = %e, "chat server refused a structured-output form; trying the next");
                    refused = Some(e);
                }
                Ok(Err(other)) => {
                    // The server took the form even if this answer failed.
                    self.remember(first, i, form);
                    return Err(other);
                }
                Err(_) => {
                    return Err(Failure::Retry(ProviderError::retryable(
                        ENGINE,
                        format!(
                            "no complete answer within {} ms",
                            self.config.timeout.as_millis()
                        ),
                    )))
                }
            }
        }
        let last = refused
            .unwrap_or_else(|| ProviderError::fatal(ENGINE, "no structured-output form left"));
        Err(Failure::Stop(ProviderError::fatal(
            ENGINE,
            format!(
                "the chat server takes none of json_schema, tools, json: {}",
                last.message
            ),
        )))
    }

    /// Keeps the form at `index` for later turns when it differs from the
    /// one this attempt started with (another call may have moved it too).
    fn remember(&self, first: usize, index: usize, form: ChatFormat) {
        if index == first {
            return;
        }
        let (from, to) = (first as u8, index as u8);
        if self
            .form
            .compare_exchange(from, to, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            tracing::info!(
                form = form_name(form),
                "chat server: using this form from now on"
            );
        }
    }

    fn request(
        &self,
        conversation: &Conversation,
        form: ChatFormat,
    ) -> Result<Request<'_>, Failure> {
        let ctx = PromptContext {
            business: &self.business,
            form,
            schema_text: &self.schema_text,
            now: conversation.now.unwrap_or_else(Utc::now),
        };
        let messages = prompt::messages(&ctx, conversation);
        let body = serde_json::to_vec(&RequestBody::new(
            &self.config.model,
            &messages,
            &self.schema,
            form,
        ))
        .map_err(|e| {
            Failure::Stop(ProviderError::fatal(
                ENGINE,
                format!("cannot encode the request: {e}"),
            ))
        })?;
        Ok(Request {
            http: &self.http,
            url: &self.url,
            api_key: self.config.api_key.as_ref(),
            body,
            form,
            rules: AnswerRules {
                categories: &self.business.categories,
                tz: self.business.timezone,
            },
        })
    }
}

impl IntentExtractor for ChatExtractor {
    fn name(&self) -> &'static str {
        ENGINE
    }

    fn extract<'a>(
        &'a self,
        conversation: &'a Conversation,
    ) -> BoxFuture<'a, Result<Extraction, ProviderError>> {
        Box::pin(async move { self.answer(conversation, None).await.map(|a| a.extraction) })
    }

    fn extract_streaming<'a>(
        &'a self,
        conversation: &'a Conversation,
        sentences: mpsc::Sender<String>,
    ) -> BoxFuture<'a, Result<Extraction, ProviderError>> {
        Box::pin(async move {
            self.answer(conversation, Some(&sentences))
                .await
                .map(|a| a.extraction)
        })
    }
}
