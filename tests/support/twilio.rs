//! Test doubles for Twilio: a fake REST API that records call updates, and a
//! fake phone that behaves as Twilio's side of a Media Stream — it posts the
//! signed voice webhook, opens the WebSocket with a signed handshake, sends
//! `connected`/`start`, streams caller audio as real-time 20 ms μ-law `media`
//! (silence between turns, as a live line does), plays the agent's audio
//! back in real time, echoes each `mark` when its playback reaches it, and
//! honours `clear`.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Form, Router};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use futures::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use switchboard::transport::twilio::signature;

/// One request the fake REST API received.
#[derive(Debug, Clone)]
pub struct RestRequest {
    pub account_sid: String,
    pub call: String,
    pub authorization: Option<String>,
    pub form: Vec<(String, String)>,
}

/// Starts the fake Twilio REST API on loopback; returns its base URL.
pub async fn fake_rest() -> (url::Url, mpsc::UnboundedReceiver<RestRequest>) {
    async fn update(
        State(tx): State<mpsc::UnboundedSender<RestRequest>>,
        Path((account_sid, call)): Path<(String, String)>,
        headers: HeaderMap,
        Form(form): Form<Vec<(String, String)>>,
    ) -> (StatusCode, &'static str) {
        let authorization = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let _ = tx.send(RestRequest {
            account_sid,
            call,
            authorization,
            form,
        });
        (StatusCode::OK, r#"{"status":"in-progress"}"#)
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let app = Router::new()
        .route("/2010-04-01/Accounts/{account}/Calls/{call}", post(update))
        .with_state(tx);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url::Url::parse(&format!("http://{addr}")).unwrap(), rx)
}

/// Posts Twilio's voice webhook for a new call; returns status and body.
pub async fn post_voice(
    base: &str,
    auth_token: &str,
    call_sid: &str,
    from: &str,
    to: &str,
    bad_signature: bool,
) -> (u16, String) {
    post_voice_url(
        &format!("{base}/twilio/voice"),
        auth_token,
        call_sid,
        from,
        to,
        bad_signature,
    )
    .await
}

/// As [`post_voice`] to a webhook URL of the caller's choosing (a query,
/// say), signed over that URL as Twilio does.
pub async fn post_voice_url(
    url: &str,
    auth_token: &str,
    call_sid: &str,
    from: &str,
    to: &str,
    bad_signature: bool,
) -> (u16, String) {
    let url = url.to_string();
    let params: Vec<(String, String)> = [
        ("AccountSid", "AC0000000000000000000000000000e2e"),
        ("CallSid", call_sid),
        ("CallStatus", "ringing"),
        ("Direction", "inbound"),
        ("From", from),
        ("To", to),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    let mut sig = signature::compute(auth_token, &url, &params);
    if bad_signature {
        sig = signature::compute("wrong-token", &url, &params);
    }
    let resp = reqwest::Client::new()
        .post(&url)
        .header("X-Twilio-Signature", sig)
        .form(&params)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

/// Pulls `url="…"` of the `<Stream>` and every `<Parameter>` out of TwiML.
pub fn parse_stream_twiml(xml: &str) -> (String, Vec<(String, String)>) {
    fn attr(tag: &str, name: &str) -> Option<String> {
        let key = format!("{name}=\"");
        let start = tag.find(&key)? + key.len();
        let end = tag[start..].find('"')? + start;
        Some(
            tag[start..end]
                .replace("&amp;", "&")
                .replace("&quot;", "\"")
                .replace("&lt;", "<")
                .replace("&gt;", ">"),
        )
    }
    let stream_at = xml.find("<Stream ").expect("a <Stream> in the TwiML");
    let stream_tag = &xml[stream_at..xml[stream_at..].find('>').unwrap() + stream_at];
    let url = attr(stream_tag, "url").expect("stream url");
    let mut params = Vec::new();
    let mut rest = xml;
    while let Some(at) = rest.find("<Parameter ") {
        let end = rest[at..].find("/>").unwrap() + at;
        let tag = &rest[at..end];
        params.push((attr(tag, "name").unwrap(), attr(tag, "value").unwrap()));
        rest = &rest[end..];
    }
    (url, params)
}

/// What the phone observed, shared with the test.
#[derive(Debug, Default)]
pub struct PhoneLog {
    /// Arrival time and payload length of every agent `media` message.
    pub media: Vec<(Instant, usize)>,
    /// Arrival times of `clear` messages.
    pub clears: Vec<Instant>,
    /// Marks echoed back (played or dropped by a clear).
    pub marks_echoed: Vec<String>,
    /// Agent audio chunks still to play.
    pub queued: usize,
    /// When the last agent chunk finished playing.
    pub last_played: Option<Instant>,
    /// When each caller turn's speech ended (last non-silent frame sent).
    pub speech_ends: Vec<Instant>,
    /// Whether the caller is speaking now.
    pub speaking: bool,
    /// The server closed the socket.
    pub closed: bool,
    pub bad_messages: Vec<String>,
}

impl PhoneLog {
    /// Agent media that arrived after `t`.
    pub fn media_after(&self, t: Instant) -> Vec<Instant> {
        self.media.iter().map(|m| m.0).filter(|a| *a > t).collect()
    }
}

enum Control {
    Speak(Vec<u8>),
    Raw(String),
    Dtmf(char),
    Stop,
    Drop,
}

/// A connected fake phone.
pub struct Phone {
    pub log: Arc<Mutex<PhoneLog>>,
    control: mpsc::UnboundedSender<Control>,
    pub task: tokio::task::JoinHandle<()>,
}

/// μ-law silence.
const SILENCE: u8 = 0xff;

impl Phone {
    /// Opens the media WebSocket with a signed handshake and starts streaming.
    pub async fn connect(
        stream_url: &str,
        auth_token: &str,
        call_sid: &str,
        params: &[(String, String)],
    ) -> Phone {
        let mut req = stream_url.into_client_request().unwrap();
        let sig = signature::compute(auth_token, stream_url, &[]);
        req.headers_mut()
            .insert("X-Twilio-Signature", sig.parse().unwrap());
        let (ws, _) = tokio_tungstenite::connect_async(req)
            .await
            .expect("media socket");
        let (mut tx, rx) = ws.split();
        let custom: serde_json::Map<String, serde_json::Value> = params
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        let stream_sid = format!("MZ{call_sid}");
        tx.send(Message::text(
            r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#,
        ))
        .await
        .unwrap();
        let start = serde_json::json!({
            "event": "start", "sequenceNumber": "1", "streamSid": stream_sid,
            "start": {
                "accountSid": "AC0000000000000000000000000000e2e", "streamSid": stream_sid,
                "callSid": call_sid, "tracks": ["inbound"],
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                "customParameters": custom
            }
        });
        tx.send(Message::text(start.to_string())).await.unwrap();
        let log = Arc::new(Mutex::new(PhoneLog::default()));
        let (control, control_rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run_phone(tx, rx, stream_sid, log.clone(), control_rx));
        Phone { log, control, task }
    }

    /// Queues caller speech (8 kHz μ-law bytes) to stream in real time.
    pub fn speak(&self, mulaw: Vec<u8>) {
        let _ = self.control.send(Control::Speak(mulaw));
    }

    pub fn send_raw(&self, text: &str) {
        let _ = self.control.send(Control::Raw(text.to_string()));
    }

    pub fn dtmf(&self, digit: char) {
        let _ = self.control.send(Control::Dtmf(digit));
    }

    /// Sends `stop` and closes, as Twilio does when the call ends.
    pub fn stop(&self) {
        let _ = self.control.send(Control::Stop);
    }

    /// Drops the connection without a `stop`.
    pub fn drop_socket(&self) {
        let _ = self.control.send(Control::Drop);
    }

    /// Polls the log until `cond` holds or the deadline passes.
    pub async fn wait_for(&self, what: &str, within: Duration, cond: impl Fn(&PhoneLog) -> bool) {
        let deadline = Instant::now() + within;
        loop {
            if cond(&self.log.lock().unwrap()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {:?}",
                self.summary()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the agent has started and then finished speaking
    /// (`quiet` of no playback) after `since`.
    pub async fn wait_agent_done(&self, since: Instant, quiet: Duration, within: Duration) {
        self.wait_for("the agent to answer and finish", within, |l| {
            !l.media_after(since).is_empty()
                && l.queued == 0
                && l.last_played
                    .is_some_and(|t| t > since && t.elapsed() >= quiet)
        })
        .await;
    }

    pub fn summary(&self) -> String {
        let l = self.log.lock().unwrap();
        format!(
            "media={} clears={} marks={} queued={} closed={} speaking={}",
            l.media.len(),
            l.clears.len(),
            l.marks_echoed.len(),
            l.queued,
            l.closed,
            l.speaking
        )
    }
}

enum Playback {
    Audio,
    Mark(String),
}

type WsTx = futures::stream::SplitSink<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    Message,
>;
type WsRx = futures::stream::SplitStream<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
>;

async fn run_phone(
    mut tx: WsTx,
    mut rx: WsRx,
    stream_sid: String,
    log: Arc<Mutex<PhoneLog>>,
    mut control: mpsc::UnboundedReceiver<Control>,
) {
    let mut playback: VecDeque<Playback> = VecDeque::new();
    let mut speech: VecDeque<u8> = VecDeque::new();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut chunk_no: u64 = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                play_one(&mut playback, &log, &mut tx, &stream_sid).await;
                chunk_no += 1;
                let frame: Vec<u8> = (0..160).map(|_| speech.pop_front().unwrap_or(SILENCE)).collect();
                {
                    let mut l = log.lock().unwrap();
                    if l.speaking && speech.is_empty() {
                        l.speaking = false;
                        l.speech_ends.push(Instant::now());
                    }
                }
                let msg = serde_json::json!({
                    "event": "media", "streamSid": stream_sid, "sequenceNumber": (chunk_no + 1).to_string(),
                    "media": {"track": "inbound", "chunk": chunk_no.to_string(),
                              "timestamp": (chunk_no * 20).to_string(), "payload": B64.encode(&frame)}
                });
                if tx.send(Message::text(msg.to_string())).await.is_err() {
                    log.lock().unwrap().closed = true;
                    return;
                }
            }
            msg = rx.next() => {
                let Some(Ok(msg)) = msg else {
                    log.lock().unwrap().closed = true;
                    return;
                };
                if let Message::Text(text) = msg {
                    on_server_message(text.as_str(), &mut playback, &log, &mut tx, &stream_sid).await;
                }
            }
            ctl = control.recv() => match ctl {
                Some(Control::Speak(bytes)) => {
                    speech.extend(bytes);
                    log.lock().unwrap().speaking = true;
                }
                Some(Control::Raw(text)) => { let _ = tx.send(Message::text(text)).await; }
                Some(Control::Dtmf(d)) => {
                    let msg = serde_json::json!({"event": "dtmf", "streamSid": stream_sid,
                        "sequenceNumber": "0", "dtmf": {"track": "inbound_track", "digit": d.to_string()}});
                    let _ = tx.send(Message::text(msg.to_string())).await;
                }
                Some(Control::Stop) => {
                    let msg = serde_json::json!({"event": "stop", "streamSid": stream_sid, "sequenceNumber": "0",
                        "stop": {"accountSid": "AC0000000000000000000000000000e2e", "callSid": stream_sid.trim_start_matches("MZ")}});
                    let _ = tx.send(Message::text(msg.to_string())).await;
                    let _ = tx.close().await;
                    return;
                }
                Some(Control::Drop) | None => return,
            }
        }
    }
}

/// Plays one 20 ms chunk of agent audio; echoes marks that playback reaches.
async fn play_one(
    playback: &mut VecDeque<Playback>,
    log: &Arc<Mutex<PhoneLog>>,
    tx: &mut WsTx,
    sid: &str,
) {
    let mut played = false;
    loop {
        match playback.front() {
            Some(Playback::Mark(_)) => {
                if let Some(Playback::Mark(name)) = playback.pop_front() {
                    echo_mark(&name, log, tx, sid).await;
                }
            }
            Some(Playback::Audio) if !played => {
                playback.pop_front();
                played = true;
                let mut l = log.lock().unwrap();
                l.queued -= 1;
                l.last_played = Some(Instant::now());
            }
            _ => return,
        }
    }
}

async fn echo_mark(name: &str, log: &Arc<Mutex<PhoneLog>>, tx: &mut WsTx, sid: &str) {
    log.lock().unwrap().marks_echoed.push(name.to_string());
    let msg = serde_json::json!({"event": "mark", "streamSid": sid, "sequenceNumber": "0", "mark": {"name": name}});
    let _ = tx.send(Message::text(msg.to_string())).await;
}

async fn on_server_message(
    text: &str,
    playback: &mut VecDeque<Playback>,
    log: &Arc<Mutex<PhoneLog>>,
    tx: &mut WsTx,
    sid: &str,
) {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(text) else {
        log.lock().unwrap().bad_messages.push(text.to_string());
        return;
    };
    if v["streamSid"] != sid {
        log.lock().unwrap().bad_messages.push(text.to_string());
        return;
    }
    match v["event"].as_str() {
        Some("media") => {
            let len = v["media"]["payload"]
                .as_str()
                .and_then(|p| B64.decode(p).ok())
                .map(|b| b.len())
                .unwrap_or(0);
            let mut l = log.lock().unwrap();
            l.media.push((Instant::now(), len));
            l.queued += 1;
            playback.push_back(Playback::Audio);
        }
        Some("mark") => {
            let name = v["mark"]["name"].as_str().unwrap_or_default().to_string();
            if playback.is_empty() {
                echo_mark(&name, log, tx, sid).await;
            } else {
                playback.push_back(Playback::Mark(name));
            }
        }
        Some("clear") => {
            // Audio is dropped unplayed; marks in the buffer come back at once.
            let marks: Vec<String> = playback
                .drain(..)
                .filter_map(|p| match p {
                    Playback::Mark(n) => Some(n),
                    Playback::Audio => None,
                })
                .collect();
            {
                let mut l = log.lock().unwrap();
                l.clears.push(Instant::now());
                l.queued = 0;
            }
            for m in marks {
                echo_mark(&m, log, tx, sid).await;
            }
        }
        _ => log.lock().unwrap().bad_messages.push(text.to_string()),
    }
}
