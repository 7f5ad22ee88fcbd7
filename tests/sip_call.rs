//! A whole conversation over SIP: the real server (session, call core,
//! Whisper, flite, rules) answers a SIPp caller who speaks a recorded
//! sentence over RTP; the call ends with its transcript (both sides) and a
//! task in the database.

use std::path::Path;
use std::time::Duration;

use switchboard::config::{Config, Secret};
use switchboard::domain::Speaker;

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sip_caller_leaves_a_task() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let model = root.join("models/ggml-tiny.en.bin");
    tokio::task::spawn_blocking({
        let model = model.clone();
        move || switchboard::models::fetch(&model).expect("speech model")
    })
    .await
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::defaults();
    config.database_url = Secret::new(format!("sqlite://{}", dir.path().join("sip.db").display()));
    config.stt.whisper_model = model;
    let sip_port = free_udp_port();
    config.sip.addr = Some(format!("127.0.0.1:{sip_port}").parse().unwrap());
    config.sip.rtp_ports = 38800..=38899;
    config.sip.ring = Duration::from_millis(100);
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

    let template = std::fs::read_to_string(root.join("tests/sipp/call_rtp.xml")).unwrap();
    let wav = root.join("fixtures/utterances/10_lock.wav");
    let scenario = template
        .replace("{{PT}}", "0")
        .replace("{{CODEC}}", "PCMU")
        .replace("{{WAV}}", &wav.display().to_string())
        .replace("{{TALK_MS}}", "15000");
    let file = dir.path().join("call.xml");
    std::fs::write(&file, scenario).unwrap();
    // The caller speaks as soon as the call is answered, over the greeting.
    let out = tokio::process::Command::new("sipp")
        .arg(format!("127.0.0.1:{sip_port}"))
        .args([
            "-sf",
            file.to_str().unwrap(),
            "-i",
            "127.0.0.1",
            "-mi",
            "127.0.0.1",
            "-m",
            "1",
            "-l",
            "1",
            "-r",
            "1",
        ])
        .args([
            "-mp",
            "48600",
            "-timeout",
            "60s",
            "-timeout_error",
            "-nostdin",
        ])
        .current_dir(dir.path())
        .output()
        .await
        .expect("sipp runs (Debian package sip-tester)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // The call row, its transcript and its task are written as the call goes.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let call = loop {
        let calls = store.list_calls(&Default::default()).await.unwrap();
        if let Some(c) = calls.into_iter().find(|c| c.ended_at.is_some()) {
            break c;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the call never ended"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(call.end_reason.as_deref(), Some("caller_hung_up"));
    assert_eq!(call.from_number, "+15551234567");
    let transcript = store.transcript(call.id).await.unwrap();
    let agent_lines = transcript
        .iter()
        .filter(|t| t.speaker == Speaker::Agent)
        .count();
    let caller: Vec<&str> = transcript
        .iter()
        .filter(|t| t.speaker == Speaker::Caller)
        .map(|t| t.text.as_str())
        .collect();
    assert!(agent_lines >= 2, "greeting and a reply: {transcript:?}");
    assert!(
        caller.iter().any(|t| t.to_lowercase().contains("lock")),
        "caller said: {caller:?}"
    );
    let task = store.task_for_call(call.id).await.unwrap().expect("a task");
    assert_eq!(task.category.as_deref(), Some("locksmith"), "{task:?}");
    assert_eq!(task.caller_number.as_deref(), Some("+15551234567"));

    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
