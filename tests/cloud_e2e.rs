//! Whole calls on the cloud engines, end to end: the real server (web router,
//! Twilio media WebSocket, session, call core, engine chains) answers a fake
//! Twilio phone over a real loopback WebSocket, while speech-to-text,
//! intent and text-to-speech are served by local fakes of Deepgram, an
//! OpenAI-compatible chat server and OpenAI's speech endpoint — each checking
//! what our clients send. One call runs clean; in another the chat server
//! stalls mid-call and the turn completes on the rule engine without dead
//! air; in a third Deepgram dies mid-call and the offline recogniser takes
//! over with the audio replayed.

#[path = "support/fake_chat.rs"]
mod fake_chat;
#[path = "support/fake_deepgram.rs"]
mod fake_deepgram;
#[path = "support/fake_openai_audio.rs"]
mod fake_openai_audio;
#[path = "support/twilio.rs"]
mod twilio_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Extension;
use switchboard::config::{Config, Sources};
use switchboard::domain::Speaker;
use switchboard::events::Bus;
use switchboard::session::{Deps, Registry, Sessions};
use switchboard::store::Store;
use switchboard::transport::twilio::TwilioRuntime;
use switchboard::web::{self, AppState};
use twilio_support::{fake_rest, parse_stream_twiml, post_voice, post_voice_url, Phone};

const AUTH_TOKEN: &str = "cloud-auth-token";
const ACCOUNT_SID: &str = "AC00000000000000000000000000cloud";
const LOCK_LINE: &str = "Hi, I'm locked out of my house and need a locksmith.";
const ADDRESS_LINE: &str = "I live at 42 Oak Street.";

struct Harness {
    base: String,
    store: Store,
    deepgram: fake_deepgram::FakeDeepgram,
    chat: fake_chat::FakeChat,
    speech: fake_openai_audio::FakeOpenAiAudio,
    _dir: tempfile::TempDir,
}

fn answer(reply: &str, location: Option<&str>) -> String {
    serde_json::json!({
        "reply": reply,
        "category": "locksmith",
        "issue": "Locked out of the house",
        "location": location,
        "requested_time": null,
        "requested_at": null,
        "urgency": "normal",
        "caller_name": null,
        "callback_number": null,
        "confidence": 0.92,
        "wants_human": false
    })
    .to_string()
}

async fn start() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let deepgram = fake_deepgram::start().await;
    deepgram.set_script(&[LOCK_LINE, ADDRESS_LINE]);
    let chat = fake_chat::start().await;
    chat.expect_business("Acme Plumbing", &["plumbing", "electrical", "locksmith"]);
    chat.set_answer(&answer(
        "I can get a locksmith out to you. What is the address?",
        None,
    ));
    let speech = fake_openai_audio::start().await;
    // Half a second of tone per sentence keeps the calls short.
    speech.set_speech_pcm(fake_openai_audio::tone_24k(440.0, 0.5, 6000.0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (rest_base, _rest) = fake_rest().await;
    let model = std::env::current_dir()
        .unwrap()
        .join("models/ggml-tiny.en.bin");
    let env: Vec<(String, String)> = [
        ("SWITCHBOARD_PUBLIC_URL", format!("http://{addr}")),
        (
            "SWITCHBOARD_DATABASE_URL",
            format!("sqlite://{}", dir.path().join("cloud.db").display()),
        ),
        ("SWITCHBOARD_TWILIO_AUTH_TOKEN", AUTH_TOKEN.into()),
        ("SWITCHBOARD_TWILIO_ACCOUNT_SID", ACCOUNT_SID.into()),
        ("SWITCHBOARD_TWILIO_API_BASE", rest_base.to_string()),
        ("SWITCHBOARD_WHISPER_MODEL", model.display().to_string()),
        ("SWITCHBOARD_BUSINESS_NAME", "Acme Plumbing".into()),
        (
            "SWITCHBOARD_CATEGORIES",
            "plumbing,electrical,locksmith".into(),
        ),
        ("SWITCHBOARD_STT_ENGINES", "deepgram,offline".into()),
        (
            "SWITCHBOARD_DEEPGRAM_API_KEY",
            fake_deepgram::API_KEY.into(),
        ),
        (
            "SWITCHBOARD_DEEPGRAM_BASE_URL",
            deepgram.base_url().to_string(),
        ),
        (
            "SWITCHBOARD_DEEPGRAM_KEYTERMS",
            "Acme Plumbing,Elm Street".into(),
        ),
        ("SWITCHBOARD_INTENT_ENGINES", "chat,rules".into()),
        ("SWITCHBOARD_CHAT_API_KEY", "sk-test-key".into()),
        ("SWITCHBOARD_CHAT_BASE_URL", chat.base_url()),
        ("SWITCHBOARD_CHAT_MODEL", "test-model".into()),
        ("SWITCHBOARD_TTS_ENGINES", "openai,offline".into()),
        (
            "SWITCHBOARD_OPENAI_TTS_API_KEY",
            fake_openai_audio::API_KEY.into(),
        ),
        ("SWITCHBOARD_OPENAI_TTS_BASE_URL", speech.base_url()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let config = Config::from_sources(&Sources::load(None, env).unwrap()).unwrap();
    switchboard::models::fetch(&config.stt.whisper_model).expect("the Whisper model");
    let store = Store::open(config.database_url.expose(), Bus::new(), "cloud")
        .await
        .unwrap();
    let state = AppState::new(config.clone(), store.clone());
    let engines = switchboard::build_engines(&config, state.metrics().engine_stats());
    assert_eq!(engines.stt.names(), ["deepgram", "whisper"]);
    assert_eq!(engines.extractor.names(), ["chat", "rules"]);
    assert_eq!(engines.tts.names(), ["openai", "flite"]);
    let deps = Deps {
        outbox: None,
        registry: Registry::new(config.call.max_concurrent),
        config: Arc::new(config.clone()),
        store: store.clone(),
        engines,
    };
    let runtime = TwilioRuntime::new(&config, Arc::new(Sessions::new(deps)));
    let app = web::router(state).layer(Extension(runtime));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Harness {
        base: format!("http://{addr}"),
        store,
        deepgram,
        chat,
        speech,
        _dir: dir,
    }
}

/// The raw μ-law bytes of an 8 kHz μ-law fixture WAV.
fn fixture(name: &str) -> Vec<u8> {
    let path = format!("fixtures/utterances/{name}");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let data = bytes
        .windows(4)
        .position(|w| w == b"data")
        .expect("a data chunk");
    bytes[data + 8..].to_vec()
}

async fn place_call(h: &Harness, call_sid: &str) -> (Phone, i64) {
    let (status, twiml) = post_voice(
        &h.base,
        AUTH_TOKEN,
        call_sid,
        "+15551234567",
        "+15557654321",
        false,
    )
    .await;
    assert_eq!(status, 200, "{twiml}");
    let (url, params) = parse_stream_twiml(&twiml);
    let phone = Phone::connect(&url, AUTH_TOKEN, call_sid, &params).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let id = loop {
        if let Some(c) = h.store.call_by_external_id(call_sid).await.unwrap() {
            break c.id;
        }
        assert!(Instant::now() < deadline, "no call row for {call_sid}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // The greeting plays to its end before the caller talks.
    phone
        .wait_agent_done(
            Instant::now() - Duration::from_secs(1),
            Duration::from_millis(500),
            Duration::from_secs(20),
        )
        .await;
    (phone, id)
}

/// Speaks one fixture and waits for the agent's whole answer (agent audio
/// followed by `quiet`); returns when the caller's speech ended.
async fn turn(phone: &Phone, file: &str, quiet: Duration) -> Instant {
    let before = phone.log.lock().unwrap().speech_ends.len();
    phone.speak(fixture(file));
    phone
        .wait_for("the caller's speech to end", Duration::from_secs(20), |l| {
            l.speech_ends.len() > before
        })
        .await;
    let ended = phone.log.lock().unwrap().speech_ends[before];
    phone
        .wait_agent_done(ended, quiet, Duration::from_secs(60))
        .await;
    ended
}

/// The longest stretch without agent audio from `from` to the last agent
/// audio: what the caller hears as dead air while waiting for the answer.
fn longest_gap(phone: &Phone, from: Instant) -> Duration {
    let media = phone.log.lock().unwrap().media_after(from);
    let mut last = from;
    let mut longest = Duration::ZERO;
    for t in media {
        longest = longest.max(t - last);
        last = t;
    }
    longest
}

async fn wait_ended(h: &Harness, id: i64) -> switchboard::store::Call {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let c = h.store.call(id).await.unwrap();
        if c.ended_at.is_some() {
            return c;
        }
        assert!(Instant::now() < deadline, "call {id} did not end");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn caller_lines(transcript: &[switchboard::store::TranscriptTurn]) -> Vec<String> {
    transcript
        .iter()
        .filter(|t| t.speaker == Speaker::Caller)
        .map(|t| t.text.clone())
        .collect()
}

fn assert_fakes_clean(h: &Harness) {
    assert!(h.chat.violations().is_empty(), "{:?}", h.chat.violations());
    assert!(h.speech.problems().is_empty(), "{:?}", h.speech.problems());
    let refused: Vec<_> = h
        .deepgram
        .listen_records()
        .into_iter()
        .filter(|r| r.status != 101)
        .map(|r| r.status)
        .collect();
    assert!(
        refused.is_empty(),
        "deepgram refused handshakes: {refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_runs_on_the_cloud_engines_end_to_end() {
    let h = start().await;
    let (phone, id) = place_call(&h, "CAcloud00000000000000000000000001").await;
    // The chat server stops after the reply's first sentence: its speech is
    // requested while the rest of the answer is still being written.
    h.chat.hold_after("What is the");
    let spoken_before = h.speech.speech_requests().len();
    phone.speak(fixture("10_lock.wav"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !h.speech.speech_requests()[spoken_before..]
        .iter()
        .any(|r| r.input == "I can get a locksmith out to you.")
    {
        assert!(
            Instant::now() < deadline,
            "the first sentence was not synthesized early: {:?}",
            h.speech.speech_requests()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        h.store.task_for_call(id).await.unwrap().is_none(),
        "the answer is still incomplete"
    );
    h.chat.release();
    phone
        .wait_for("the caller's speech to end", Duration::from_secs(20), |l| {
            !l.speech_ends.is_empty()
        })
        .await;
    let first = phone.log.lock().unwrap().speech_ends[0];
    phone
        .wait_agent_done(first, Duration::from_millis(700), Duration::from_secs(60))
        .await;
    let requests = h.speech.speech_requests();
    assert_eq!(
        requests[spoken_before..]
            .iter()
            .filter(|r| r.input == "I can get a locksmith out to you.")
            .count(),
        1,
        "the early synthesis is the one played: {requests:?}"
    );
    h.chat.set_answer(&answer(
        "Thanks. When would you like the locksmith to come?",
        Some("42 Oak Street"),
    ));
    turn(&phone, "02_address.wav", Duration::from_millis(700)).await;
    phone.stop();
    let call = wait_ended(&h, id).await;
    assert_eq!(call.end_reason.as_deref(), Some("caller_hung_up"));

    let task = h.store.task_for_call(id).await.unwrap().expect("a task");
    assert_eq!(task.category.as_deref(), Some("locksmith"), "{task:?}");
    assert_eq!(task.location.as_deref(), Some("42 Oak Street"), "{task:?}");
    let transcript = h.store.transcript(id).await.unwrap();
    assert_eq!(caller_lines(&transcript), [LOCK_LINE, ADDRESS_LINE]);
    assert!(transcript.iter().any(
        |t| t.speaker == Speaker::Agent && t.text.contains("When would you like the locksmith")
    ));

    // Each stage ran on its cloud engine, and every turn has its figures.
    let turns = h.store.turn_latencies(id).await.unwrap();
    assert_eq!(turns.len(), 2, "{turns:?}");
    for t in &turns {
        assert_eq!(t.stt_engine.as_deref(), Some("deepgram"), "{t:?}");
        assert_eq!(t.intent_engine.as_deref(), Some("chat"), "{t:?}");
        assert_eq!(t.tts_engine.as_deref(), Some("openai"), "{t:?}");
        assert!(t.first_frame_ms.is_some(), "{t:?}");
        eprintln!(
            "cloud turn {}: STT final {:?} ms, intent {:?} ms, first TTS audio {:?} ms, first frame sent {:?} ms after the end of speech",
            t.turn, t.stt_ms, t.intent_ms, t.tts_ms, t.first_frame_ms
        );
    }
    let connections = h.deepgram.connections();
    assert_eq!(connections.len(), 1);
    assert!(
        connections[0].audio.len() > 16_000 * 2,
        "audio reached Deepgram"
    );
    assert!(h.chat.request_count() >= 2);
    assert!(
        h.speech.speech_requests().len() >= 3,
        "greeting and two replies"
    );
    assert_fakes_clean(&h);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_chat_server_stalls_mid_call_the_rules_answer_without_dead_air() {
    let h = start().await;
    let (phone, id) = place_call(&h, "CAcloud00000000000000000000000002").await;
    turn(&phone, "10_lock.wav", Duration::from_millis(700)).await;
    let asked = h.chat.request_count();
    // From now on the chat server accepts requests and never answers.
    h.chat.set_default(fake_chat::Behaviour::StallBeforeHeaders);
    // The quiet that ends the wait is longer than any allowed gap, so fillers
    // cannot end it early.
    let ended = turn(&phone, "02_address.wav", Duration::from_millis(2500)).await;
    let gap = longest_gap(&phone, ended);
    eprintln!("longest dead air while the chat server stalled: {gap:?}");
    // filler_after (800 ms) plus synthesis and pacing slack.
    assert!(gap < Duration::from_millis(1500), "dead air of {gap:?}");
    assert_eq!(
        h.chat.request_count() - asked,
        2,
        "one attempt and one retry"
    );
    phone.stop();
    wait_ended(&h, id).await;

    let task = h.store.task_for_call(id).await.unwrap().expect("a task");
    assert_eq!(task.category.as_deref(), Some("locksmith"), "{task:?}");
    assert!(
        task.location
            .as_deref()
            .unwrap_or_default()
            .contains("42 Oak Street"),
        "the rules found the address: {task:?}"
    );
    let events = h.store.call_events(id).await.unwrap();
    assert!(
        events.iter().any(|(_, kind, d)| kind == "engine_fallback"
            && d["stage"] == "intent"
            && d["from"] == "chat"
            && d["to"] == "rules"),
        "{events:?}"
    );
    let fillers = events
        .iter()
        .filter(|(_, kind, _)| kind == "filler")
        .count();
    assert!(fillers >= 2, "fillers covered the wait: {fillers}");
    let turns = h.store.turn_latencies(id).await.unwrap();
    assert_eq!(
        turns[1].intent_engine.as_deref(),
        Some("rules"),
        "{turns:?}"
    );
    // The same story in /metrics.
    let metrics = reqwest::get(format!("{}/metrics", h.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "switchboard_engine_fallbacks_total{stage=\"intent\",engine=\"chat\"} 1",
        "switchboard_engine_errors_total{stage=\"intent\",engine=\"chat\"} 1",
        "switchboard_engine_up{stage=\"intent\",engine=\"chat\"} 0",
    ] {
        assert!(metrics.contains(line), "no `{line}` in:\n{metrics}");
    }
    assert!(
        metrics.contains(
            "switchboard_engine_first_result_seconds_count{stage=\"tts\",engine=\"openai\"}"
        ),
        "{metrics}"
    );
    assert_fakes_clean(&h);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_deepgram_dies_mid_call_the_offline_recogniser_takes_over() {
    let h = start().await;
    let (phone, id) = place_call(&h, "CAcloud00000000000000000000000003").await;
    turn(&phone, "10_lock.wav", Duration::from_millis(700)).await;
    // Deepgram goes away: the live socket is cut and every reconnect refused.
    let mut refuse = fake_deepgram::Reject::status(503);
    refuse.from_handshake = 1;
    h.deepgram.reject_handshakes(Some(refuse));
    h.deepgram.kill_live_connections();
    h.chat.set_answer(&answer(
        "Thanks. When would you like the locksmith to come?",
        Some("42 Oak Street"),
    ));
    turn(&phone, "02_address.wav", Duration::from_millis(1500)).await;
    // Whisper on a shared CPU takes seconds per utterance: wait for its line.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !caller_lines(&h.store.transcript(id).await.unwrap())
        .iter()
        .any(|l| l.to_lowercase().contains("oak street"))
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    phone.stop();
    wait_ended(&h, id).await;

    let events = h.store.call_events(id).await.unwrap();
    assert!(
        events.iter().any(|(_, kind, d)| kind == "engine_fallback"
            && d["stage"] == "stt"
            && d["from"] == "deepgram"
            && d["to"] == "whisper"),
        "{events:?}"
    );
    // Whisper heard the address the caller said after Deepgram died.
    let transcript = h.store.transcript(id).await.unwrap();
    let lines = caller_lines(&transcript);
    assert_eq!(lines[0], LOCK_LINE);
    assert!(
        lines[1..]
            .iter()
            .any(|l| l.to_lowercase().contains("oak street")),
        "{lines:?}"
    );
    let task = h.store.task_for_call(id).await.unwrap().expect("a task");
    assert_eq!(task.category.as_deref(), Some("locksmith"), "{task:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_twilio_callback_opens_with_its_task_and_continues_it() {
    let h = start().await;
    let task = h
        .store
        .create_task(
            None,
            switchboard::store::TaskFields {
                category: Some("locksmith".into()),
                caller_number: Some("+15551234567".into()),
                ..Default::default()
            },
            "test",
        )
        .await
        .unwrap();
    // Twilio, once the callee answers, fetches the TwiML from the URL the
    // API gave it (see tests/outbound_calls.rs) and opens the stream.
    let url = format!("{}/twilio/voice?callback_task={}", h.base, task.reference);
    let sid = "CAcloud00000000000000000000000004";
    let (status, twiml) =
        post_voice_url(&url, AUTH_TOKEN, sid, "+15557654321", "+15551234567", false).await;
    assert_eq!(status, 200, "{twiml}");
    let (stream, params) = parse_stream_twiml(&twiml);
    let phone = Phone::connect(&stream, AUTH_TOKEN, sid, &params).await;
    phone
        .wait_agent_done(
            Instant::now() - Duration::from_secs(1),
            Duration::from_millis(500),
            Duration::from_secs(20),
        )
        .await;
    phone.stop();
    let id = h.store.call_by_external_id(sid).await.unwrap().unwrap().id;
    let call = wait_ended(&h, id).await;
    assert_eq!(call.direction, "outbound");
    let transcript = h.store.transcript(id).await.unwrap();
    let opening = transcript
        .iter()
        .find(|t| t.speaker == Speaker::Agent)
        .expect("an opening");
    let spelled = switchboard::call::prompts::spell(&task.reference);
    assert!(
        opening.text.contains("locksmith request") && opening.text.contains(&spelled),
        "{}",
        opening.text
    );
    assert!(
        h.store.task_for_call(id).await.unwrap().is_none(),
        "no second task"
    );
    let trail = h.store.task_events(&task.reference).await.unwrap();
    assert!(
        trail
            .iter()
            .any(|e| e.note.as_deref() == Some(&format!("called back (call {id})"))),
        "{trail:?}"
    );
}
