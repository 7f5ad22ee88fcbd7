//! The OpenAI-compatible chat intent engine against a fake server that
//! checks every request: the documented request in each structured-output
//! form, fallback between forms, the retry policy for each failure, and the
//! reply streamed sentence by sentence.

#[path = "support/fake_chat.rs"]
mod fake_chat;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use tokio::sync::mpsc;

use fake_chat::{Behaviour, FakeChat, Form};
use switchboard::config::{Business, ChatConfig, ChatFormat, Secret};
use switchboard::domain::{Conversation, Extraction, Speaker, Urgency, Utterance};
use switchboard::providers::intent::chat::ChatExtractor;
use switchboard::providers::IntentExtractor;

const KEY: &str = "sk-test-key";

fn business() -> Business {
    Business {
        name: "Acme Home Services".into(),
        timezone: chrono_tz::America::New_York,
        categories: vec!["plumbing".into(), "electrical".into(), "locksmith".into()],
        greeting: "Thanks for calling Acme Home Services.".into(),
        service_area: Some("Springfield".into()),
    }
}

fn config(fake: &FakeChat, timeout_ms: u64) -> ChatConfig {
    ChatConfig {
        api_key: Some(Secret::new(KEY)),
        base_url: url::Url::parse(&fake.base_url()).unwrap(),
        model: "test-model".into(),
        timeout: Duration::from_millis(timeout_ms),
        format: ChatFormat::JsonSchema,
    }
}

fn extractor(fake: &FakeChat) -> ChatExtractor {
    ChatExtractor::new(config(fake, 2500), business()).unwrap()
}

fn turn(speaker: Speaker, text: &str) -> Utterance {
    Utterance {
        speaker,
        text: text.into(),
    }
}

/// A call in progress on Monday 10 March 2025, 10:00 in New York.
fn conversation() -> Conversation {
    Conversation {
        turns: vec![
            turn(
                Speaker::Agent,
                "Thanks for calling Acme Home Services. How can I help?",
            ),
            turn(
                Speaker::Caller,
                "Hi, my kitchen sink is leaking everywhere.",
            ),
            turn(Speaker::Agent, "Sorry to hear that. What's the address?"),
            turn(
                Speaker::Caller,
                "12 Elm Street. Tomorrow at nine please. I'm Ann Lee, call me on 555 123 4567.",
            ),
        ],
        caller_number: Some("+15550001111".into()),
        now: Some(Utc.with_ymd_and_hms(2025, 3, 10, 14, 0, 0).unwrap()),
        known: Extraction {
            category: Some("plumbing".into()),
            issue: Some("Kitchen sink is leaking".into()),
            ..Default::default()
        },
    }
}

const FULL_ANSWER: &str = r#"{"reply":"Thanks, Ann. We'll see you tomorrow at nine. Is there anything else?","category":"plumbing","issue":"Kitchen sink leaking everywhere","location":"12 Elm Street","requested_time":"tomorrow at nine","requested_at":"2025-03-11T09:00","urgency":"high","caller_name":"Ann Lee","callback_number":"555 123 4567","confidence":0.92,"wants_human":false}"#;

#[tokio::test]
async fn happy_path_sends_the_documented_request_and_maps_every_field() {
    let fake = fake_chat::start().await;
    fake.set_answer(FULL_ANSWER);
    let chat = extractor(&fake);
    assert_eq!(chat.name(), "chat");
    let e = chat.extract(&conversation()).await.unwrap();

    assert_eq!(
        e.reply.as_deref(),
        Some("Thanks, Ann. We'll see you tomorrow at nine. Is there anything else?")
    );
    assert_eq!(e.category.as_deref(), Some("plumbing"));
    assert_eq!(e.issue.as_deref(), Some("Kitchen sink leaking everywhere"));
    assert_eq!(e.location.as_deref(), Some("12 Elm Street"));
    assert_eq!(e.requested_time.as_deref(), Some("tomorrow at nine"));
    // 09:00 on 11 March in New York (EDT, UTC−4) is 13:00 UTC.
    assert_eq!(
        e.requested_at,
        Some(Utc.with_ymd_and_hms(2025, 3, 11, 13, 0, 0).unwrap())
    );
    assert_eq!(e.urgency, Some(Urgency::High));
    assert_eq!(e.caller_name.as_deref(), Some("Ann Lee"));
    assert_eq!(e.callback_number.as_deref(), Some("+15551234567"));
    assert!((e.confidence - 0.92).abs() < 1e-6);
    assert!(!e.wants_human);

    assert_eq!(fake.violations(), Vec::<String>::new());
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/v1/chat/completions");
    assert_eq!(r.authorization.as_deref(), Some("Bearer sk-test-key"));
    assert_eq!(r.content_type.as_deref(), Some("application/json"));
    assert_eq!(r.form, Some(Form::JsonSchema));
    assert_eq!(r.body["model"], "test-model");
    assert_eq!(r.body["stream"], true);
    assert_eq!(r.body["response_format"]["json_schema"]["strict"], true);
    assert_eq!(
        r.roles(),
        ["system", "assistant", "user", "assistant", "user"]
    );
    let m = r.messages();
    assert_eq!(
        m[2]["content"],
        "Hi, my kitchen sink is leaking everywhere."
    );
    assert_eq!(m[3]["content"], "Sorry to hear that. What's the address?");
    let system = r.system_prompt();
    for needle in [
        "Acme Home Services",
        "Springfield",
        "plumbing, electrical, locksmith",
        "Monday 10 March 2025, 10:00",
        "America/New_York",
        "+15550001111",
        "issue: Kitchen sink is leaking",
    ] {
        assert!(
            system.contains(needle),
            "system prompt lacks {needle:?}:\n{system}"
        );
    }
    // The key is never shown.
    assert!(!format!("{chat:?}").contains(KEY));
}

#[tokio::test]
async fn timings_are_reported_with_the_answer() {
    let fake = fake_chat::start().await;
    fake.set_answer(FULL_ANSWER);
    let chat = extractor(&fake);
    assert_eq!(chat.last_first_token(), None);
    let a = chat.answer(&conversation(), None).await.unwrap();
    let first = a.first_token.expect("a first token");
    assert!(first <= a.elapsed);
    assert_eq!(a.requests, 1);
    assert_eq!(a.form, ChatFormat::JsonSchema);
    assert_eq!(chat.last_first_token(), Some(first));
    eprintln!(
        "loopback fake: first token after {:?}, whole answer after {:?}",
        first, a.elapsed
    );
}

#[tokio::test]
async fn refused_json_schema_falls_back_to_a_forced_tool_and_remembers_it() {
    let fake = fake_chat::start().await;
    fake.refuse_json_schema(true);
    fake.set_answer(FULL_ANSWER);
    let chat = extractor(&fake);
    let (tx, mut rx) = mpsc::channel(8);
    let e = chat.extract_streaming(&conversation(), tx).await.unwrap();
    assert_eq!(e.category.as_deref(), Some("plumbing"));
    assert_eq!(e.caller_name.as_deref(), Some("Ann Lee"));
    // The reply came out of the streamed function arguments, sentence by sentence.
    let mut said = Vec::new();
    while let Some(s) = rx.recv().await {
        said.push(s);
    }
    assert_eq!(
        said,
        [
            "Thanks, Ann.",
            "We'll see you tomorrow at nine.",
            "Is there anything else?"
        ]
    );
    assert_eq!(chat.form(), ChatFormat::Tools);

    chat.extract(&conversation()).await.unwrap();
    let forms: Vec<_> = fake.requests().iter().map(|r| r.form).collect();
    assert_eq!(
        forms,
        [Some(Form::JsonSchema), Some(Form::Tools), Some(Form::Tools)]
    );
    assert_eq!(fake.violations(), Vec::<String>::new());
    let tools = &fake.requests()[1].body;
    assert_eq!(
        tools["tool_choice"]["function"]["name"],
        "record_call_details"
    );
}

#[tokio::test]
async fn a_server_without_schemas_or_tools_gets_json_mode_with_the_schema_in_the_prompt() {
    let fake = fake_chat::start().await;
    fake.refuse_json_schema(true);
    fake.refuse_tools(true);
    fake.set_answer(FULL_ANSWER);
    let chat = extractor(&fake);
    let e = chat.extract(&conversation()).await.unwrap();
    assert_eq!(e.location.as_deref(), Some("12 Elm Street"));
    assert_eq!(chat.form(), ChatFormat::Json);
    let reqs = fake.requests();
    let forms: Vec<_> = reqs.iter().map(|r| r.form).collect();
    assert_eq!(
        forms,
        [
            Some(Form::JsonSchema),
            Some(Form::Tools),
            Some(Form::JsonObject)
        ]
    );
    let system = reqs[2].system_prompt();
    assert!(
        system.contains("JSON Schema: {\"type\":\"object\",\"properties\":{\"reply\""),
        "{system}"
    );
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn a_keyless_server_gets_no_authorization_header() {
    let fake = fake_chat::start().await;
    fake.expect_key(None);
    let mut cfg = config(&fake, 2500);
    cfg.api_key = None;
    let chat = ChatExtractor::new(cfg, business()).unwrap();
    let e = chat.extract(&conversation()).await.unwrap();
    assert_eq!(
        e.reply.as_deref(),
        Some("I can help with that. What is the address?")
    );
    assert_eq!(fake.requests()[0].authorization, None);
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn a_refused_connection_is_retried_once_then_reported_as_retryable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let cfg = ChatConfig {
        api_key: Some(Secret::new(KEY)),
        base_url: url::Url::parse(&format!("http://127.0.0.1:{port}/v1")).unwrap(),
        model: "test-model".into(),
        timeout: Duration::from_millis(2500),
        format: ChatFormat::JsonSchema,
    };
    let chat = ChatExtractor::new(cfg, business()).unwrap();
    let started = Instant::now();
    let err = chat.extract(&conversation()).await.unwrap_err();
    assert!(err.retryable, "{err}");
    assert_eq!(err.engine, "chat");
    assert!(err.message.contains("cannot reach"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_wrong_key_is_fatal_and_not_retried() {
    let fake = fake_chat::start().await;
    fake.expect_key(Some("sk-the-right-one"));
    let chat = extractor(&fake);
    let err = chat.extract(&conversation()).await.unwrap_err();
    assert!(!err.retryable, "{err}");
    assert!(err.message.contains("401"), "{err}");
    assert!(!err.to_string().contains(KEY));
    assert_eq!(fake.request_count(), 1);
    assert_eq!(
        fake.requests()[0].authorization.as_deref(),
        Some("Bearer sk-test-key")
    );
}

#[tokio::test]
async fn rate_limited_with_a_long_retry_after_gives_up_at_once() {
    let fake = fake_chat::start().await;
    fake.push(Behaviour::Status {
        code: 429,
        retry_after: Some("30".into()),
    });
    let chat = extractor(&fake);
    let started = Instant::now();
    let err = chat.extract(&conversation()).await.unwrap_err();
    assert!(err.retryable);
    assert_eq!(err.retry_after, Some(Duration::from_secs(30)));
    assert!(err.message.contains("429"), "{err}");
    assert_eq!(fake.request_count(), 1);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn rate_limited_with_a_short_retry_after_waits_then_retries() {
    let fake = fake_chat::start().await;
    fake.push(Behaviour::Status {
        code: 429,
        retry_after: Some("1".into()),
    });
    let chat = extractor(&fake);
    let started = Instant::now();
    let e = chat.extract(&conversation()).await.unwrap();
    assert_eq!(e.category.as_deref(), Some("plumbing"));
    assert_eq!(fake.request_count(), 2);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_server_error_is_retried_and_the_retry_answers() {
    let fake = fake_chat::start().await;
    fake.fail_first(
        1,
        Behaviour::Status {
            code: 500,
            retry_after: None,
        },
    );
    let chat = extractor(&fake);
    let a = chat.answer(&conversation(), None).await.unwrap();
    assert_eq!(a.extraction.category.as_deref(), Some("plumbing"));
    assert_eq!(a.requests, 2);
    assert_eq!(fake.request_count(), 2);
    // Two failures in a row are reported, retryable.
    fake.fail_first(
        2,
        Behaviour::Status {
            code: 503,
            retry_after: None,
        },
    );
    let err = chat.extract(&conversation()).await.unwrap_err();
    assert!(err.retryable && err.message.contains("503"), "{err}");
    assert_eq!(fake.request_count(), 4);
}

#[tokio::test]
async fn a_stalled_stream_times_out_after_the_configured_time_and_is_retried_once() {
    let fake = fake_chat::start().await;
    fake.set_default(Behaviour::StallMidStream);
    let chat = ChatExtractor::new(config(&fake, 300), business()).unwrap();
    let started = Instant::now();
    let err = chat.extract(&conversation()).await.unwrap_err();
    let took = started.elapsed();
    assert!(err.retryable, "{err}");
    assert!(err.message.contains("300 ms"), "{err}");
    assert_eq!(fake.request_count(), 2);
    assert!(took >= Duration::from_millis(600), "{took:?}");
    assert!(took < Duration::from_millis(2000), "{took:?}");

    // A server that never even sends headers is bounded the same way.
    fake.set_default(Behaviour::StallBeforeHeaders);
    let started = Instant::now();
    let err = chat.extract(&conversation()).await.unwrap_err();
    assert!(err.retryable);
    assert!(started.elapsed() >= Duration::from_millis(600));
    assert!(started.elapsed() < Duration::from_millis(2000));
    assert_eq!(fake.request_count(), 4);
}

#[tokio::test]
async fn a_stream_cut_midway_is_retried() {
    let fake = fake_chat::start().await;
    fake.fail_first(1, Behaviour::Cut);
    let chat = extractor(&fake);
    let e = chat.extract(&conversation()).await.unwrap();
    assert_eq!(e.category.as_deref(), Some("plumbing"));
    assert_eq!(fake.request_count(), 2);

    fake.fail_first(2, Behaviour::Cut);
    let err = chat.extract(&conversation()).await.unwrap_err();
    assert!(err.retryable, "{err}");
    assert!(err.message.contains("stream"), "{err}");
    assert_eq!(fake.request_count(), 4);
}

#[tokio::test]
async fn malformed_json_is_retried_once_then_a_fatal_error() {
    let fake = fake_chat::start().await;
    fake.set_default(Behaviour::Malformed);
    let chat = extractor(&fake);
    let err = chat.extract(&conversation()).await.unwrap_err();
    assert!(!err.retryable, "{err}");
    assert!(err.message.contains("not valid JSON"), "{err}");
    assert_eq!(fake.request_count(), 2);

    // Malformed once, then good: the retry's answer is used.
    fake.set_default(Behaviour::Answer);
    fake.push(Behaviour::Malformed);
    let e = chat.extract(&conversation()).await.unwrap();
    assert_eq!(e.category.as_deref(), Some("plumbing"));
    assert_eq!(fake.request_count(), 4);
}

#[tokio::test]
async fn a_category_outside_the_list_is_dropped_and_trusted_less() {
    let fake = fake_chat::start().await;
    fake.set_answer(
        r#"{"reply":"A roofer, got it. What is the address?","category":"roofing","issue":"Roof leaks","location":null,"requested_time":null,"requested_at":null,"urgency":"normal","caller_name":null,"callback_number":null,"confidence":0.8,"wants_human":false}"#,
    );
    let e = extractor(&fake).extract(&conversation()).await.unwrap();
    assert_eq!(e.category, None);
    assert_eq!(e.issue.as_deref(), Some("Roof leaks"));
    assert!((e.confidence - 0.4).abs() < 1e-6, "{}", e.confidence);
    assert_eq!(fake.request_count(), 1);
}

#[tokio::test]
async fn reply_sentences_arrive_before_the_stream_finishes() {
    let fake = fake_chat::start().await;
    fake.set_answer(
        r#"{"reply":"Sorry to hear about the leak. Someone can come tomorrow at nine. What is your name?","category":"plumbing","issue":"Leak","location":null,"requested_time":"tomorrow at nine","requested_at":"2025-03-11T09:00","urgency":"normal","caller_name":null,"callback_number":null,"confidence":0.9,"wants_human":false}"#,
    );
    fake.set_piece_chars(4);
    // The fake sends nothing past the first sentence (and its following
    // space) until the test has heard that sentence.
    fake.hold_after("leak. ");
    let chat = Arc::new(extractor(&fake));
    let (tx, mut rx) = mpsc::channel(8);
    let task = {
        let chat = chat.clone();
        tokio::spawn(async move { chat.extract_streaming(&conversation(), tx).await })
    };
    let first = tokio::time::timeout(Duration::from_secs(2), rx.recv())
        .await
        .expect("the first sentence before the stream ends")
        .unwrap();
    assert_eq!(first, "Sorry to hear about the leak.");
    assert!(!task.is_finished(), "the answer cannot be complete yet");
    fake.release();
    let rest: Vec<String> = {
        let mut v = Vec::new();
        while let Some(s) = rx.recv().await {
            v.push(s);
        }
        v
    };
    assert_eq!(
        rest,
        ["Someone can come tomorrow at nine.", "What is your name?"]
    );
    let e = task.await.unwrap().unwrap();
    assert_eq!(
        e.reply.as_deref(),
        Some("Sorry to hear about the leak. Someone can come tomorrow at nine. What is your name?")
    );
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn a_retry_does_not_repeat_sentences_already_sent() {
    let fake = fake_chat::start().await;
    fake.set_answer(
        r#"{"reply":"One moment. Let me note that down. What is the address?","category":"plumbing","confidence":0.9,"wants_human":false}"#,
    );
    // The first attempt is cut after the first sentence or two; the retry answers.
    fake.fail_first(1, Behaviour::Cut);
    let chat = extractor(&fake);
    let (tx, mut rx) = mpsc::channel(8);
    let e = chat.extract_streaming(&conversation(), tx).await.unwrap();
    let mut said = Vec::new();
    while let Some(s) = rx.recv().await {
        said.push(s);
    }
    assert_eq!(
        said,
        [
            "One moment.",
            "Let me note that down.",
            "What is the address?"
        ]
    );
    assert_eq!(
        e.reply.as_deref(),
        Some("One moment. Let me note that down. What is the address?")
    );
    assert_eq!(fake.request_count(), 2);
}

/// The fake's checks bite: a request that breaks the documented rules is
/// refused with OpenAI's error shape and every broken rule is listed.
#[tokio::test]
async fn the_fake_refuses_an_undocumented_request() {
    let fake = fake_chat::start().await;
    let body = serde_json::json!({
        "model": "other-model",
        "stream": false,
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "user", "content": "again", "name": "ann"}
        ],
        "response_format": {"type": "json_schema", "json_schema": {"name": "bad name!", "schema": {"type": "object"}}}
    });
    let resp = reqwest::Client::new()
        .post(format!("{}/chat/completions", fake.base_url()))
        .bearer_auth(KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let err: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["type"], "invalid_request_error");
    let v = fake.violations().join("\n");
    for rule in [
        "model is",
        "stream is not true",
        "temperature",
        "first message is not the system prompt",
        "repeats role user",
        "has a name",
        "json_schema.name",
        "strict is not true",
        "additionalProperties",
        "reply is not the first property",
    ] {
        assert!(v.contains(rule), "no violation {rule:?} in:\n{v}");
    }
    // And a wrong path is a 404.
    let resp = reqwest::Client::new()
        .post(format!("{}/completions", fake.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}
