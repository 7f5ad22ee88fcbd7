//! The Twilio HTTP surface over real sockets, with a fake call host in place
//! of the session: the signed voice webhook answers with `<Connect><Stream>`
//! and a token; the signed WebSocket handshake and `start` produce a call leg
//! whose audio, DTMF and marks flow both ways; bad or missing signatures get
//! 403; status callbacks are recorded and end the call; at capacity the
//! webhook apologises instead of streaming.

#[path = "support/twilio.rs"]
mod twilio_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use switchboard::audio::Frame;
use switchboard::config::{Config, Sources};
use switchboard::events::Bus;
use switchboard::providers::BoxFuture;
use switchboard::store::{NewCall, Store, Transport};
use switchboard::transport::twilio::{signature, CallHost, MediaOptions, TokenKey, TwilioRuntime};
use switchboard::transport::{CallLeg, HangupReason, TransportCommand, TransportEvent};
use switchboard::web::{self, AppState};
use tokio::sync::mpsc;
use twilio_support::{parse_stream_twiml, post_voice, post_voice_url, Phone};

const AUTH_TOKEN: &str = "hook-auth-token";
const ACCOUNT_SID: &str = "AC0000000000000000000000000000e2e";

struct FakeHost {
    legs: mpsc::UnboundedSender<CallLeg>,
    full: AtomicBool,
    ended: std::sync::Mutex<Vec<String>>,
}

impl CallHost for FakeHost {
    fn has_capacity(&self) -> bool {
        !self.full.load(Ordering::SeqCst)
    }
    fn run(&self, leg: CallLeg) -> BoxFuture<'static, ()> {
        let _ = self.legs.send(leg);
        Box::pin(async {})
    }
    fn carrier_ended(&self, external_id: &str) {
        self.ended.lock().unwrap().push(external_id.to_string());
    }
}

struct Harness {
    base: String,
    store: Store,
    host: Arc<FakeHost>,
    legs: mpsc::UnboundedReceiver<CallLeg>,
    _dir: tempfile::TempDir,
}

async fn start() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let env: Vec<(String, String)> = [
        ("SWITCHBOARD_PUBLIC_URL", format!("http://{addr}")),
        (
            "SWITCHBOARD_DATABASE_URL",
            format!("sqlite://{}", dir.path().join("hook.db").display()),
        ),
        ("SWITCHBOARD_TWILIO_AUTH_TOKEN", AUTH_TOKEN.to_string()),
        ("SWITCHBOARD_TWILIO_ACCOUNT_SID", ACCOUNT_SID.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let config = Config::from_sources(&Sources::load(None, env).unwrap()).unwrap();
    let store = Store::open(config.database_url.expose(), Bus::new(), "hook")
        .await
        .unwrap();
    let (tx, legs) = mpsc::unbounded_channel();
    let host = Arc::new(FakeHost {
        legs: tx,
        full: AtomicBool::new(false),
        ended: Default::default(),
    });
    let runtime = TwilioRuntime {
        media: MediaOptions::new(TokenKey::derive(&config), None),
        host: host.clone(),
    };
    let app = web::router(AppState::new(config, store.clone())).layer(Extension(runtime));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Harness {
        base: format!("http://{addr}"),
        store,
        host,
        legs,
        _dir: dir,
    }
}

async fn recv_event(leg: &mut CallLeg) -> TransportEvent {
    tokio::time::timeout(Duration::from_secs(10), leg.events.recv())
        .await
        .expect("an event in time")
        .expect("leg open")
}

fn tone() -> Frame {
    let mut f = Frame::SILENCE;
    for (i, s) in f.0.iter_mut().enumerate() {
        *s = (6000.0 * (i as f64 * 0.2).sin()) as i16;
    }
    f
}

#[tokio::test]
async fn a_signed_call_becomes_a_leg_that_carries_audio_both_ways() {
    let mut h = start().await;
    let (status, twiml) = post_voice(
        &h.base,
        AUTH_TOKEN,
        "CAhook1",
        "+15551112222",
        "+15553334444",
        false,
    )
    .await;
    assert_eq!(status, 200, "{twiml}");
    let (url, params) = parse_stream_twiml(&twiml);
    assert_eq!(
        url,
        format!("{}/twilio/media", h.base.replace("http://", "ws://"))
    );
    let token = &params
        .iter()
        .find(|(k, _)| k == "token")
        .expect("token parameter")
        .1;
    assert!(TokenKey::derive(&switchboard_config(&h))
        .check(Some(token), "CAhook1", now_unix())
        .is_ok());

    let phone = Phone::connect(&url, AUTH_TOKEN, "CAhook1", &params).await;
    let mut leg = tokio::time::timeout(Duration::from_secs(10), h.legs.recv())
        .await
        .expect("a leg")
        .unwrap();
    assert_eq!(leg.info.transport, Transport::Twilio);
    assert_eq!(leg.info.external_id, "CAhook1");
    assert_eq!(leg.info.from, "+15551112222");
    assert_eq!(leg.info.to, "+15553334444");

    // Caller → agent: the phone streams silence frames; then DTMF; then speech.
    match recv_event(&mut leg).await {
        TransportEvent::Audio(f) => assert_eq!(f, Frame::SILENCE),
        other => panic!("expected audio, got {other:?}"),
    }
    phone.dtmf('5');
    loop {
        match recv_event(&mut leg).await {
            TransportEvent::Audio(_) => continue,
            TransportEvent::Dtmf(d) => {
                assert_eq!(d, '5');
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    // Agent → caller: 25 frames and a mark; the phone plays them in real time and echoes the mark.
    for _ in 0..25 {
        leg.commands
            .send(TransportCommand::Play(tone()))
            .await
            .unwrap();
    }
    leg.commands
        .send(TransportCommand::Mark("u1-end".into()))
        .await
        .unwrap();
    loop {
        match recv_event(&mut leg).await {
            TransportEvent::Audio(_) => continue,
            TransportEvent::Mark(name) => {
                assert_eq!(name, "u1-end");
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    {
        let log = phone.log.lock().unwrap();
        assert_eq!(log.media.len(), 25);
        assert!(log.media.iter().all(|(_, len)| *len == 160));
        let span = log.media[24].0 - log.media[0].0;
        // 25 chunks = 500 ms of audio; 100 ms may go ahead, so ~400 ms between first and last.
        assert!(
            span >= Duration::from_millis(300),
            "paced, not a burst: {span:?}"
        );
        assert!(log.bad_messages.is_empty(), "{:?}", log.bad_messages);
    }
    // A malformed frame does not end the leg; stop does.
    phone.send_raw("{oops");
    phone.stop();
    loop {
        match recv_event(&mut leg).await {
            TransportEvent::Audio(_) => continue,
            TransportEvent::Hangup(reason) => {
                assert_eq!(reason, HangupReason::Remote);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn switchboard_config(h: &Harness) -> Config {
    let env = vec![
        ("SWITCHBOARD_PUBLIC_URL".to_string(), h.base.clone()),
        (
            "SWITCHBOARD_DATABASE_URL".to_string(),
            format!("sqlite://{}", h._dir.path().join("hook.db").display()),
        ),
        (
            "SWITCHBOARD_TWILIO_AUTH_TOKEN".to_string(),
            AUTH_TOKEN.to_string(),
        ),
        (
            "SWITCHBOARD_TWILIO_ACCOUNT_SID".to_string(),
            ACCOUNT_SID.to_string(),
        ),
    ];
    Config::from_sources(&Sources::load(None, env).unwrap()).unwrap()
}

fn now_unix() -> u64 {
    chrono::Utc::now().timestamp() as u64
}

#[tokio::test]
async fn a_stream_without_the_webhook_token_gets_no_leg() {
    let mut h = start().await;
    let url = format!("{}/twilio/media", h.base.replace("http://", "ws://"));
    let forged = vec![("token".to_string(), "1.AAAA".to_string())];
    let phone = Phone::connect(&url, AUTH_TOKEN, "CAforged", &forged).await;
    phone
        .wait_for(
            "the server to close the socket",
            Duration::from_secs(10),
            |l| l.closed,
        )
        .await;
    assert!(h.legs.try_recv().is_err(), "no call may start");
    assert!(phone.log.lock().unwrap().media.is_empty());
}
#[tokio::test]
async fn bad_signatures_are_refused_with_403() {
    let h = start().await;
    let (status, _) = post_voice(&h.base, AUTH_TOKEN, "CAbad", "+1555", "+1666", true).await;
    assert_eq!(status, 403);
    // Missing header.
    let resp = reqwest::Client::new()
        .post(format!("{}/twilio/voice", h.base))
        .form(&[("CallSid", "CAbad")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    let resp = reqwest::Client::new()
        .post(format!("{}/twilio/status", h.base))
        .header("X-Twilio-Signature", "bm9wZQ==")
        .form(&[("CallSid", "CAbad"), ("CallStatus", "completed")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    // The WebSocket handshake is signed too.
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = format!("{}/twilio/media", h.base.replace("http://", "ws://"));
    let mut req = url.as_str().into_client_request().unwrap();
    req.headers_mut()
        .insert("X-Twilio-Signature", "bm9wZQ==".parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 403)
        }
        other => panic!("handshake should be refused, got {:?}", other.map(|_| ())),
    }
}

async fn post_status(h: &Harness, call_sid: &str, status: &str) -> u16 {
    let url = format!("{}/twilio/status", h.base);
    let params: Vec<(String, String)> = [
        ("CallSid", call_sid),
        ("CallStatus", status),
        ("AccountSid", ACCOUNT_SID),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    let sig = signature::compute(AUTH_TOKEN, &url, &params);
    reqwest::Client::new()
        .post(url)
        .header("X-Twilio-Signature", sig)
        .form(&params)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn status_callbacks_are_recorded_and_end_the_call() {
    let h = start().await;
    let call = h
        .store
        .create_call(NewCall {
            transport: Transport::Twilio,
            external_id: "CAstatus".into(),
            from_number: "+1555".into(),
            to_number: "+1666".into(),
            started_at: chrono::Utc::now(),
        })
        .await
        .unwrap();
    assert_eq!(post_status(&h, "CAstatus", "in-progress").await, 204);
    let c = h.store.call(call.id).await.unwrap();
    assert_eq!(c.carrier_status.as_deref(), Some("in-progress"));
    assert!(c.ended_at.is_none());
    assert_eq!(post_status(&h, "CAstatus", "no-answer").await, 204);
    let c = h.store.call(call.id).await.unwrap();
    assert_eq!(c.carrier_status.as_deref(), Some("no-answer"));
    assert_eq!(c.end_reason.as_deref(), Some("carrier_no_answer"));
    // An unknown call is accepted and changes nothing.
    assert_eq!(post_status(&h, "CAunknown", "completed").await, 204);
    assert_eq!(
        h.host.ended.lock().unwrap().as_slice(),
        ["CAstatus", "CAunknown"]
    );
    // At capacity the webhook apologises instead of streaming.
    h.host.full.store(true, Ordering::SeqCst);
    let (status, body) = post_voice(&h.base, AUTH_TOKEN, "CAbusy", "+1555", "+1666", false).await;
    assert_eq!(status, 200);
    assert!(
        body.contains("<Say>") && body.contains("<Hangup/>") && !body.contains("<Stream"),
        "{body}"
    );
}

#[tokio::test]
async fn an_answered_callback_carries_its_task_to_the_media_stream() {
    let h = start().await;
    let url = format!("{}/twilio/voice?callback_task=T-1042", h.base);
    let (status, twiml) = post_voice_url(
        &url,
        AUTH_TOKEN,
        "CAcallback",
        "+15550009999",
        "+15551234567",
        false,
    )
    .await;
    assert_eq!(status, 200, "{twiml}");
    let (_, params) = parse_stream_twiml(&twiml);
    assert!(
        params
            .iter()
            .any(|(k, v)| k == "callback_task" && v == "T-1042"),
        "{twiml}"
    );
    // Anything but a task reference is not passed on.
    let url = format!("{}/twilio/voice?callback_task=%22%3E%3Cx", h.base);
    let (status, twiml) = post_voice_url(
        &url,
        AUTH_TOKEN,
        "CAcallback2",
        "+15550009999",
        "+15551234567",
        false,
    )
    .await;
    assert_eq!(status, 200, "{twiml}");
    assert!(!twiml.contains("callback_task"), "{twiml}");
}
