//! DTMF 0 → transfer to a human over SIP, end to end: the real server
//! (session, call core, Whisper, flite, rules) answers a SIPp caller who
//! presses 0. The server sends REFER; the caller follows it like a phone
//! (RFC 3515: 202, NOTIFY sipfrag, a new INVITE carrying Referred-By) to a
//! second SIPp that stands in for the human agent's phone. When the agent
//! answers, the server leaves the call with BYE; when the agent is busy, the
//! caller is told and leaves a message, and the task records it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use switchboard::config::{Config, Secret};
use switchboard::domain::{Speaker, TaskStatus};
use switchboard::events::Event;
use switchboard::store::{Call, Store};

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

async fn speech_model() -> PathBuf {
    let model = root().join("models/ggml-tiny.en.bin");
    tokio::task::spawn_blocking({
        let model = model.clone();
        move || switchboard::models::fetch(&model).expect("speech model")
    })
    .await
    .unwrap();
    model
}

struct Node {
    sip: SocketAddr,
    store: Store,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
    dir: tempfile::TempDir,
}

/// The whole server with SIP on a free port; transfers go to `agent_port`.
async fn start_node(agent_port: u16, rtp: std::ops::RangeInclusive<u16>) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::defaults();
    config.database_url = Secret::new(format!("sqlite://{}", dir.path().join("xfer.db").display()));
    config.stt.whisper_model = speech_model().await;
    let sip: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
    config.sip.addr = Some(sip);
    config.sip.rtp_ports = rtp;
    config.sip.ring = Duration::from_millis(100);
    config.escalation.agent_sip_uri = Some(format!("sip:agent@127.0.0.1:{agent_port}"));
    let store = switchboard::open_store(&config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
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
        sip,
        store,
        stop,
        server,
        dir,
    }
}

/// Runs one SIPp process to its end; returns (success, stdout + error log).
async fn sipp(dir: &Path, scenario: &Path, args: &[String]) -> (bool, String) {
    let out = tokio::process::Command::new("sipp")
        .arg("-sf")
        .arg(scenario)
        .args(["-i", "127.0.0.1", "-mi", "127.0.0.1", "-m", "1"])
        .args([
            "-nostdin",
            "-trace_err",
            "-timeout",
            "120s",
            "-timeout_error",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .await
        .expect("sipp runs (Debian package sip-tester)");
    let stem = scenario.file_stem().unwrap().to_string_lossy().to_string();
    let errors: String = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            name.starts_with(&stem) && name.contains("errors")
        })
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect();
    let log = format!("{}\n{errors}", String::from_utf8_lossy(&out.stdout));
    (out.status.success(), log)
}

/// The agent's phone (a SIPp UAS on `port`) and the caller (a SIPp UAC
/// following `part` after the agent answers), run together.
async fn call_with_transfer(
    node: &Node,
    agent: &str,
    part: &str,
    agent_port: u16,
    media: u16,
) -> ((bool, String), (bool, String)) {
    let dir = node.dir.path();
    let caller = std::fs::read_to_string(root().join("tests/sipp/transfer_caller.xml"))
        .unwrap()
        .replace(
            "{{AFTER}}",
            &std::fs::read_to_string(root().join("tests/sipp").join(part)).unwrap(),
        )
        .replace("{{AGENT_PORT}}", &agent_port.to_string())
        .replace("{{LISTEN_MS}}", "6000")
        .replace(
            "{{WAV}}",
            &root()
                .join("fixtures/utterances/10_lock.wav")
                .display()
                .to_string(),
        );
    let caller_file = dir.join("caller.xml");
    std::fs::write(&caller_file, caller).unwrap();
    let agent_file = root().join("tests/sipp").join(agent);
    let agent_args = vec![
        "-p".to_string(),
        agent_port.to_string(),
        "-mp".into(),
        (media + 200).to_string(),
    ];
    let agent_run = sipp(dir, &agent_file, &agent_args);
    let caller_args = vec![node.sip.to_string(), "-mp".into(), media.to_string()];
    let caller_run = async {
        // The agent's SIPp binds its port at start; give it that head start.
        wait_for_udp_bound(agent_port).await;
        sipp(dir, &caller_file, &caller_args).await
    };
    tokio::join!(agent_run, caller_run)
}

/// Resolves once a socket is bound to the UDP port, as the kernel lists it
/// (looking, not binding, so SIPp never finds the port taken).
async fn wait_for_udp_bound(port: u16) {
    let needle = format!(":{port:04X} ");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    loop {
        let table = std::fs::read_to_string("/proc/net/udp").unwrap_or_default();
        if table.lines().any(|l| {
            l.split_whitespace()
                .nth(1)
                .is_some_and(|local| format!("{local} ").ends_with(&needle))
        }) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the agent's SIPp never bound its port"
        );
        tick.tick().await;
    }
}

/// The first call to end, as the event bus reports it.
async fn ended_call(store: &Store, events: &mut tokio::sync::broadcast::Receiver<Event>) -> Call {
    let call_id = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match events.recv().await {
                Ok(Event::CallEnded { call_id, .. }) => break call_id,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("event bus closed: {e}"),
            }
        }
    })
    .await
    .expect("the call ends");
    store.call(call_id).await.unwrap()
}

/// The task is Escalated and its trail says who escalated it, when, and why.
async fn assert_escalated_by_dtmf(store: &Store, call: &Call) -> String {
    let task = store
        .task_for_call(call.id)
        .await
        .unwrap()
        .expect("the call left a task");
    assert_eq!(task.status, TaskStatus::Escalated, "{task:?}");
    let trail = store.task_events(&task.reference).await.unwrap();
    let escalation = trail
        .iter()
        .find(|e| e.field == "status" && e.to_value.as_deref() == Some("escalated"))
        .unwrap_or_else(|| panic!("no escalation in the trail: {trail:?}"));
    assert_eq!(escalation.actor, "agent");
    assert_eq!(escalation.note.as_deref(), Some("escalated: dtmf_zero"));
    let ended = call.ended_at.expect("ended");
    assert!(
        escalation.at >= call.started_at && escalation.at <= ended,
        "escalated at {} outside the call {}..{ended}",
        escalation.at,
        call.started_at
    );
    task.reference
}

/// The digit arrived once and the transfer's outcome was recorded.
async fn assert_dtmf_and_transfer_result(store: &Store, call: &Call, ok: bool) {
    let events = store.call_events(call.id).await.unwrap();
    let digits: Vec<_> = events.iter().filter(|(_, k, _)| k == "dtmf").collect();
    assert_eq!(digits.len(), 1, "one key press, one digit: {digits:?}");
    assert_eq!(digits[0].2["digit"], "0");
    let result = events
        .iter()
        .find(|(_, k, _)| k == "transfer_result")
        .unwrap_or_else(|| panic!("no transfer result: {events:?}"));
    assert_eq!(result.2["ok"], ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dtmf_zero_transfers_the_caller_to_the_agent() {
    let agent_port = free_udp_port();
    let node = start_node(agent_port, 51000..=51099).await;
    let mut events = node.store.bus().subscribe();
    let ((agent_ok, agent_log), (caller_ok, caller_log)) = call_with_transfer(
        &node,
        "agent_answer.xml",
        "transfer_answered.part.xml",
        agent_port,
        51500,
    )
    .await;
    // The caller got REFER to the agent, and BYE right after its NOTIFY 200.
    assert!(caller_ok, "caller: {caller_log}");
    // The agent's phone got the transferred INVITE, naming who referred it.
    assert!(agent_ok, "agent: {agent_log}");

    let call = ended_call(&node.store, &mut events).await;
    assert_eq!(call.end_reason.as_deref(), Some("transferred"));
    assert_escalated_by_dtmf(&node.store, &call).await;
    assert_dtmf_and_transfer_result(&node.store, &call, true).await;
    let transcript = node.store.transcript(call.id).await.unwrap();
    assert!(
        transcript
            .iter()
            .any(|t| t.speaker == Speaker::Agent && t.text.contains("connecting you")),
        "the caller heard the transfer announced: {transcript:?}"
    );

    let _ = node.stop.send(());
    node.server.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_agent_means_the_caller_leaves_a_message() {
    let agent_port = free_udp_port();
    let node = start_node(agent_port, 51100..=51199).await;
    let mut events = node.store.bus().subscribe();
    let ((agent_ok, agent_log), (caller_ok, caller_log)) = call_with_transfer(
        &node,
        "agent_busy.xml",
        "transfer_refused.part.xml",
        agent_port,
        51600,
    )
    .await;
    assert!(agent_ok, "agent: {agent_log}");
    // After NOTIFY 486 the call stayed up until the server's goodbye.
    assert!(caller_ok, "caller: {caller_log}");

    let call = ended_call(&node.store, &mut events).await;
    assert_eq!(call.end_reason.as_deref(), Some("escalated_callback"));
    let reference = assert_escalated_by_dtmf(&node.store, &call).await;
    assert_dtmf_and_transfer_result(&node.store, &call, false).await;
    let transcript = node.store.transcript(call.id).await.unwrap();
    let said = |who: Speaker, what: &str| {
        transcript
            .iter()
            .any(|t| t.speaker == who && t.text.to_lowercase().contains(what))
    };
    assert!(
        said(Speaker::Agent, "couldn't reach anyone"),
        "the caller was told: {transcript:?}"
    );
    assert!(said(Speaker::Caller, "lock"), "the message: {transcript:?}");
    assert!(said(Speaker::Agent, "pass that on"), "{transcript:?}");
    // The message is on the task, which stays escalated for the callback.
    let task = node.store.task(&reference).await.unwrap();
    assert_eq!(task.status, TaskStatus::Escalated);
    assert_eq!(task.category.as_deref(), Some("locksmith"), "{task:?}");

    let _ = node.stop.send(());
    node.server.await.unwrap().unwrap();
}
