//! End to end over a real WebSocket on loopback: the real server (the web
//! router with the Twilio routes, the session, the call core and the offline
//! engines) against a fake phone that behaves as Twilio — signed webhook,
//! signed handshake, real-time μ-law media from recorded caller turns, marks
//! echoed as its playback reaches them, `clear` honoured — and a fake Twilio
//! REST API for the transfer.

#[path = "support/twilio.rs"]
mod twilio_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Extension;
use switchboard::config::{Config, Sources};
use switchboard::domain::{Speaker, TaskStatus, Urgency};
use switchboard::events::Bus;
use switchboard::session::{Deps, Registry, Sessions};
use switchboard::store::Store;
use switchboard::transport::twilio::TwilioRuntime;
use switchboard::web::{self, AppState};
use twilio_support::{fake_rest, parse_stream_twiml, post_voice, Phone, RestRequest};

const AUTH_TOKEN: &str = "e2e-auth-token";
const ACCOUNT_SID: &str = "AC0000000000000000000000000000e2e";
const AGENT: &str = "+15550009999";

struct Harness {
    base: String,
    store: Store,
    rest: tokio::sync::mpsc::UnboundedReceiver<RestRequest>,
    _dir: tempfile::TempDir,
}

async fn start(with_engines: bool) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (rest_base, rest) = fake_rest().await;
    let model = std::env::current_dir()
        .unwrap()
        .join("models/ggml-tiny.en.bin");
    let env: Vec<(String, String)> = [
        ("SWITCHBOARD_PUBLIC_URL", format!("http://{addr}")),
        (
            "SWITCHBOARD_DATABASE_URL",
            format!("sqlite://{}", dir.path().join("e2e.db").display()),
        ),
        ("SWITCHBOARD_TWILIO_AUTH_TOKEN", AUTH_TOKEN.to_string()),
        ("SWITCHBOARD_TWILIO_ACCOUNT_SID", ACCOUNT_SID.to_string()),
        ("SWITCHBOARD_TWILIO_API_BASE", rest_base.to_string()),
        ("SWITCHBOARD_AGENT_NUMBER", AGENT.to_string()),
        ("SWITCHBOARD_WHISPER_MODEL", model.display().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let config = Config::from_sources(&Sources::load(None, env).unwrap()).unwrap();
    let store = Store::open(config.database_url.expose(), Bus::new(), "e2e")
        .await
        .unwrap();
    let state = AppState::new(config.clone(), store.clone());
    let mut app = web::router(state);
    if with_engines {
        switchboard::models::fetch(&config.stt.whisper_model).expect("the Whisper model");
        let engines = switchboard::offline_engines(&config);
        let deps = Deps {
            outbox: None,
            registry: Registry::new(config.call.max_concurrent),
            config: Arc::new(config.clone()),
            store: store.clone(),
            engines,
        };
        let runtime = TwilioRuntime::new(&config, Arc::new(Sessions::new(deps)));
        app = app.layer(Extension(runtime));
    }
    tokio::spawn(async move { axum::serve(listener, app).await });
    Harness {
        base: format!("http://{addr}"),
        store,
        rest,
        _dir: dir,
    }
}

/// The raw μ-law bytes of an 8 kHz μ-law fixture WAV.
fn fixture(name: &str) -> Vec<u8> {
    let path = format!("fixtures/utterances/{name}");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(&bytes[..4], b"RIFF", "{path}");
    let mut at = 12;
    let mut format = None;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        let body = &bytes[at + 8..(at + 8 + len).min(bytes.len())];
        if id == b"fmt " {
            let tag = u16::from_le_bytes([body[0], body[1]]);
            let rate = u32::from_le_bytes(body[4..8].try_into().unwrap());
            format = Some((tag, rate));
        } else if id == b"data" {
            assert_eq!(format, Some((7, 8000)), "{path} must be 8 kHz μ-law");
            return body.to_vec();
        }
        at += 8 + len + (len & 1);
    }
    panic!("{path}: no data chunk");
}

async fn place_call(h: &Harness, call_sid: &str) -> Phone {
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
    assert_eq!(
        url,
        format!("{}/twilio/media", h.base.replace("http://", "ws://"))
    );
    assert!(params.iter().any(|(k, _)| k == "token"), "{twiml}");
    Phone::connect(&url, AUTH_TOKEN, call_sid, &params).await
}

async fn call_id(h: &Harness, call_sid: &str) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(c) = h.store.call_by_external_id(call_sid).await.unwrap() {
            return c.id;
        }
        assert!(Instant::now() < deadline, "no call row for {call_sid}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_ended(h: &Harness, id: i64, within: Duration) -> switchboard::store::Call {
    let deadline = Instant::now() + within;
    loop {
        let c = h.store.call(id).await.unwrap();
        if c.ended_at.is_some() {
            return c;
        }
        assert!(Instant::now() < deadline, "call {id} did not end");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Speaks one turn once the agent is quiet; returns the latency from the
/// end of the caller's speech to the first agent audio after it.
async fn turn(phone: &Phone, file: &str) -> Duration {
    let before = phone.log.lock().unwrap().speech_ends.len();
    phone.speak(fixture(file));
    phone
        .wait_for("the caller's speech to end", Duration::from_secs(20), |l| {
            l.speech_ends.len() > before
        })
        .await;
    let ended = phone.log.lock().unwrap().speech_ends[before];
    phone
        .wait_agent_done(ended, Duration::from_millis(700), Duration::from_secs(60))
        .await;
    let first = phone.log.lock().unwrap().media_after(ended)[0];
    first - ended
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_call_end_to_end() {
    let mut h = start(true).await;
    let phone = place_call(&h, "CAe2e0000000000000000000000000001").await;
    let id = call_id(&h, "CAe2e0000000000000000000000000001").await;

    // The greeting arrives as paced 20 ms μ-law frames, not a burst.
    phone
        .wait_for("greeting audio", Duration::from_secs(20), |l| {
            l.media.len() >= 40
        })
        .await;
    {
        let l = phone.log.lock().unwrap();
        assert!(
            l.media.iter().all(|(_, len)| *len == 160),
            "every frame is 160 μ-law bytes"
        );
        let span = l.media[39].0 - l.media[0].0;
        assert!(
            span >= Duration::from_millis(600),
            "40 frames in {span:?}: not paced"
        );
        assert!(l.bad_messages.is_empty(), "{:?}", l.bad_messages);
    }

    // The caller talks over the greeting: barge-in clears playback.
    let t_barge = Instant::now();
    phone.speak(fixture("10_lock.wav"));
    phone
        .wait_for("clear after barge-in", Duration::from_secs(10), |l| {
            !l.clears.is_empty()
        })
        .await;
    let clear_after = phone.log.lock().unwrap().clears[0] - t_barge;
    eprintln!("barge-in: clear {clear_after:?} after the caller started");

    // A malformed frame is logged and skipped; the call goes on.
    phone.send_raw("{this is not json");
    phone
        .wait_for(
            "the caller's first turn to end",
            Duration::from_secs(20),
            |l| !l.speech_ends.is_empty(),
        )
        .await;
    let ended = phone.log.lock().unwrap().speech_ends[0];
    phone
        .wait_agent_done(ended, Duration::from_millis(700), Duration::from_secs(60))
        .await;
    let mut latencies = vec![phone.log.lock().unwrap().media_after(ended)[0] - ended];
    for file in ["02_address.wav", "03_time.wav", "04_name.wav"] {
        latencies.push(turn(&phone, file).await);
    }
    eprintln!("turn latency (caller end of speech → first agent audio): {latencies:?}");

    let task = h
        .store
        .task_for_call(id)
        .await
        .unwrap()
        .expect("a task for the call");
    assert_eq!(task.category.as_deref(), Some("locksmith"), "{task:?}");
    let location = task.location.clone().unwrap_or_default().to_lowercase();
    assert!(location.contains("42 oak street"), "{task:?}");
    let when = task
        .requested_time
        .clone()
        .unwrap_or_default()
        .to_lowercase();
    assert!(when.contains("tomorrow morning"), "{task:?}");
    assert_eq!(task.urgency, Urgency::Normal, "{task:?}");

    // Pressing 0 hands the call to a person through the REST API.
    phone.dtmf('0');
    let req = tokio::time::timeout(Duration::from_secs(40), h.rest.recv())
        .await
        .expect("a transfer request")
        .unwrap();
    assert_eq!(req.account_sid, ACCOUNT_SID);
    assert_eq!(req.call, "CAe2e0000000000000000000000000001.json");
    let expected_auth = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{ACCOUNT_SID}:{AUTH_TOKEN}")
        )
    );
    assert_eq!(req.authorization.as_deref(), Some(expected_auth.as_str()));
    assert_eq!(
        req.form,
        vec![(
            "Twiml".to_string(),
            format!("<Response><Dial>{AGENT}</Dial></Response>")
        )]
    );
    // Twilio now ends the stream.
    phone.stop();
    let call = wait_ended(&h, id, Duration::from_secs(20)).await;
    assert_eq!(call.end_reason.as_deref(), Some("transferred"), "{call:?}");

    let task = h.store.task(&task.reference).await.unwrap();
    assert_eq!(task.status, TaskStatus::Escalated);
    assert!(task.summary.is_some());
    let transcript = h.store.transcript(id).await.unwrap();
    assert!(transcript.iter().any(|t| t.speaker == Speaker::Agent));
    let caller: Vec<&str> = transcript
        .iter()
        .filter(|t| t.speaker == Speaker::Caller)
        .map(|t| t.text.as_str())
        .collect();
    assert!(caller.len() >= 4, "{caller:?}");
    assert!(
        caller.join(" ").to_lowercase().contains("lock"),
        "{caller:?}"
    );
    // The greeting was cut by the barge-in: its line says how much was heard.
    assert!(
        transcript
            .iter()
            .any(|t| t.speaker == Speaker::Agent && t.heard_chars.is_some()),
        "{transcript:?}"
    );

    // A second call: the socket drops without a stop.
    let phone = place_call(&h, "CAe2e0000000000000000000000000002").await;
    let id = call_id(&h, "CAe2e0000000000000000000000000002").await;
    let start = Instant::now();
    phone
        .wait_agent_done(start, Duration::from_millis(500), Duration::from_secs(30))
        .await;
    turn(&phone, "10_lock.wav").await;
    phone.drop_socket();
    let call = wait_ended(&h, id, Duration::from_secs(20)).await;
    assert_eq!(call.end_reason.as_deref(), Some("socket_lost"), "{call:?}");
    let transcript = h.store.transcript(id).await.unwrap();
    assert!(transcript
        .iter()
        .any(|t| t.speaker == Speaker::Caller && t.text.to_lowercase().contains("lock")));
    assert!(transcript.iter().any(|t| t.speaker == Speaker::Agent));
    let task = h.store.task_for_call(id).await.unwrap().expect("task kept");
    assert_eq!(task.category.as_deref(), Some("locksmith"));
}
