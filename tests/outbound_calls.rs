//! `POST /api/v1/calls`: callbacks. Over SIP, the whole server calls a SIPp
//! phone reached through its registrar (the same SIPp), which challenges the
//! INVITE with a 401 Digest; the answered call opens with the task's context,
//! the phone's media socket receives our speech, and the transcript holds the
//! opening naming the task. Over Twilio, the REST Calls create request is
//! checked against a fake. Bad input gets a 400 that says what is wrong.

#[path = "support/fake_twilio_calls.rs"]
mod fake_twilio_calls;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use switchboard::config::{Config, Registrar, Secret};
use switchboard::domain::Speaker;
use switchboard::events::Event;
use switchboard::store::{Store, TaskFields};
use tokio::net::UdpSocket;

const API_TOKEN: &str = "outbound-test-token";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Node {
    http: String,
    store: Store,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

async fn start_node(edit: impl FnOnce(&mut Config)) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::defaults();
    config.database_url = Secret::new(format!("sqlite://{}", dir.path().join("out.db").display()));
    config.api_token = Some(Secret::new(API_TOKEN));
    config.sip.addr = None;
    edit(&mut config);
    let store = switchboard::open_store(&config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(switchboard::serve(
        config,
        store.clone(),
        listener,
        async move {
            let _ = stopped.await;
        },
    ));
    Node {
        http,
        store,
        stop,
        server,
        _dir: dir,
    }
}

impl Node {
    async fn place(&self, body: serde_json::Value) -> (u16, serde_json::Value) {
        let resp = reqwest::Client::new()
            .post(format!("{}/api/v1/calls", self.http))
            .bearer_auth(API_TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or_default())
    }

    async fn task(&self, category: &str) -> String {
        let fields = TaskFields {
            category: Some(category.into()),
            issue: Some("kitchen sink leaking".into()),
            ..Default::default()
        };
        self.store
            .create_task(None, fields, "test")
            .await
            .unwrap()
            .reference
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.server.await.unwrap().unwrap();
    }
}

/// Counts RTP packets and loud 20 ms μ-law payloads arriving on `socket`
/// until `until` resolves.
async fn listen_rtp(
    socket: UdpSocket,
    until: tokio::sync::oneshot::Receiver<()>,
) -> (usize, usize) {
    let (mut packets, mut loud) = (0, 0);
    let mut buf = [0u8; 2048];
    tokio::pin!(until);
    loop {
        tokio::select! {
            _ = &mut until => return (packets, loud),
            got = socket.recv_from(&mut buf) => {
                let Ok((n, _)) = got else { continue };
                if n <= 12 || buf[1] & 0x7f != 0 { continue; }
                packets += 1;
                let energy: f64 = buf[12..n]
                    .iter()
                    .map(|&b| f64::from(switchboard::audio::g711::ulaw_decode(b)).powi(2))
                    .sum::<f64>() / (n - 12) as f64;
                if energy.sqrt() > 500.0 { loud += 1; }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sip_callback_goes_through_the_registrar_with_digest_and_opens_with_the_task() {
    let model = root().join("models/ggml-tiny.en.bin");
    tokio::task::spawn_blocking({
        let model = model.clone();
        move || switchboard::models::fetch(&model).expect("speech model")
    })
    .await
    .unwrap();
    let pbx_port = free_udp_port();
    let media = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let media_port = media.local_addr().unwrap().port();
    let sip: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
    let node = start_node(|c| {
        c.stt.whisper_model = model;
        c.sip.addr = Some(sip);
        c.sip.rtp_ports = 52000..=52099;
        c.sip.registration = Some(Registrar {
            addr: format!("127.0.0.1:{pbx_port}").parse().unwrap(),
            domain: "pbx.test".into(),
            username: "1001".into(),
            password: Secret::new("s3cret"),
            expires: 600,
        });
    })
    .await;
    let reference = node.task("plumbing").await;
    let mut events = node.store.bus().subscribe();

    let dir = tempfile::tempdir().unwrap();
    let scenario = std::fs::read_to_string(root().join("tests/sipp/callee_auth.xml"))
        .unwrap()
        .replace("{{USER}}", "1001")
        .replace("{{PASSWORD}}", "s3cret")
        .replace("{{MEDIA_PORT}}", &media_port.to_string())
        .replace("{{LISTEN_MS}}", "9000");
    let file = dir.path().join("callee.xml");
    std::fs::write(&file, scenario).unwrap();
    // The PBX: first our REGISTER (a call of its own to SIPp), then the INVITE.
    let pbx = tokio::process::Command::new("sipp")
        .arg("-sf")
        .arg(&file)
        .args(["-i", "127.0.0.1", "-p", &pbx_port.to_string(), "-m", "2"])
        .args([
            "-nostdin",
            "-trace_err",
            "-trace_msg",
            "-timeout",
            "90s",
            "-timeout_error",
        ])
        .current_dir(dir.path())
        .output();
    let (heard_tx, heard_rx) = tokio::sync::oneshot::channel();
    let rtp = tokio::spawn(listen_rtp(media, heard_rx));
    let call = async {
        // Place the call once the extension is registered (REGISTER 200).
        let mut ready = Box::pin(async {
            loop {
                let body: serde_json::Value = reqwest::get(format!("{}/readyz", node.http))
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                if body["sip_registration"]["state"] == "registered" {
                    break;
                }
                tokio::task::yield_now().await;
            }
        });
        tokio::time::timeout(Duration::from_secs(20), &mut ready)
            .await
            .expect("registered with the SIPp registrar");
        let to = format!("sip:bob@127.0.0.1:{pbx_port}");
        node.place(serde_json::json!({ "to": to, "task": reference }))
            .await
    };
    let (out, (status, body)) = tokio::join!(pbx, call);
    let log = String::from_utf8_lossy(&out.as_ref().unwrap().stdout).to_string();
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["call"]["transport"], "sip");
    let call_id = body["call"]["id"].as_str().unwrap().to_string();
    let errors: String = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            name.contains("errors") || name.contains("messages")
        })
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect();
    // SIPp saw REGISTER, a 401-challenged INVITE and a retry whose digest it verified.
    assert!(out.unwrap().status.success(), "{log}\n{errors}");

    let ended = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            if let Ok(Event::CallEnded { call_id, .. }) = events.recv().await {
                break call_id;
            }
        }
    })
    .await
    .expect("the call ends");
    let _ = heard_tx.send(());
    let (packets, loud) = rtp.await.unwrap();
    let row = node.store.call(ended).await.unwrap();
    assert_eq!(row.external_id, call_id);
    assert_eq!(row.direction, "outbound");
    assert_eq!(
        (row.from_number.as_str(), row.to_number.as_str()),
        ("1001", "bob")
    );
    assert!(packets >= 300, "the phone got {packets} RTP packets");
    assert!(loud >= 50, "the phone heard only {loud} loud packets");
    let events = node.store.call_events(ended).await.unwrap();
    let started = events
        .iter()
        .find(|(_, k, _)| k == "call_started")
        .expect("call_started");
    assert_eq!(started.2["outbound"], true, "{events:?}");
    let transcript = node.store.transcript(ended).await.unwrap();
    let opening = transcript
        .iter()
        .find(|t| t.speaker == Speaker::Agent)
        .unwrap_or_else(|| panic!("no agent line: {transcript:?}"));
    let spelled = switchboard::call::prompts::spell(&reference);
    assert!(
        opening
            .text
            .contains("calling you back about your plumbing request")
            && opening.text.contains(&spelled),
        "{}",
        opening.text
    );
    // The callback continues the task it is about: no second task, and the
    // task's trail says it was called back.
    assert!(node.store.task_for_call(ended).await.unwrap().is_none());
    let trail = node.store.task_events(&reference).await.unwrap();
    assert!(
        trail
            .iter()
            .any(|e| e.note.as_deref() == Some(&format!("called back (call {ended})"))),
        "{trail:?}"
    );
    println!("outbound SIP call: {packets} RTP packets to the phone, {loud} loud");
    node.stop().await;
}

#[tokio::test]
async fn a_phone_number_is_called_through_twilio() {
    let fake = fake_twilio_calls::start().await;
    let node = start_node(|c| {
        c.twilio.account_sid = Some("AC0123456789abcdef0123456789abcdef".into());
        c.twilio.auth_token = Some(Secret::new("twilio-secret"));
        c.twilio.api_base = fake.base_url();
        c.twilio.from_number = Some("+15550009999".into());
        c.public_url = Some(url::Url::parse("https://switchboard.example.com").unwrap());
    })
    .await;
    let reference = node.task("electrical").await;
    let (status, body) = node
        .place(serde_json::json!({ "to": "+15551234567", "task": reference }))
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["call"]["transport"], "twilio");
    assert_eq!(body["call"]["id"], fake_twilio_calls::CALL_SID);
    let seen = fake.seen();
    assert_eq!(seen.len(), 1);
    let req = &seen[0];
    assert_eq!(req.path_account, "AC0123456789abcdef0123456789abcdef");
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD
        .encode("AC0123456789abcdef0123456789abcdef:twilio-secret");
    assert_eq!(
        req.authorization.as_deref(),
        Some(format!("Basic {basic}").as_str())
    );
    assert_eq!(
        req.content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(req.field("To"), Some("+15551234567"));
    assert_eq!(req.field("From"), Some("+15550009999"));
    // Answered, Twilio fetches the TwiML from our signed voice webhook,
    // which carries the task on to the media stream.
    assert_eq!(req.field("Method"), Some("POST"));
    let answer_url = req.field("Url").unwrap();
    assert_eq!(
        answer_url,
        format!("https://switchboard.example.com/twilio/voice?callback_task={reference}")
    );

    // Twilio refusing the number is reported, not hidden.
    fake.fail_with(
        400,
        21211,
        "The 'To' number +15551234567 is not a valid phone number.",
    );
    let (status, body) = node
        .place(serde_json::json!({ "to": "+15551234567", "task": reference }))
        .await;
    assert_eq!(status, 409, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("not a valid phone number"), "{body}");
    node.stop().await;
}

#[tokio::test]
async fn bad_requests_say_what_is_wrong() {
    let node = start_node(|_| {}).await;
    let reference = node.task("plumbing").await;
    let cases = [
        (
            serde_json::json!({ "to": "sip:bob@127.0.0.1:5999", "task": "T-9999" }),
            "there is no task T-9999",
        ),
        (
            serde_json::json!({ "to": "sip:bob@pbx.example.com", "task": reference }),
            "the host must be an IP address",
        ),
        (
            serde_json::json!({ "to": "bob", "task": reference }),
            "neither a sip: URI nor an E.164",
        ),
        (
            serde_json::json!({ "to": "sip:bob@127.0.0.1", "task": reference }),
            "SIP is not enabled",
        ),
        (
            serde_json::json!({ "to": "+15551234567", "task": reference }),
            "needs Twilio configured",
        ),
    ];
    for (body, want) in cases {
        let (status, answer) = node.place(body.clone()).await;
        assert_eq!(status, 400, "{body} → {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(want), "{body} → {answer}");
    }
    // Without credentials: 401, like every /api/v1 route.
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/calls", node.http))
        .json(&serde_json::json!({ "to": "sip:bob@127.0.0.1", "task": reference }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    node.stop().await;
}
