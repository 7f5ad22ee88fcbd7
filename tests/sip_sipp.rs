//! The SIP server against a real SIP peer, SIPp (Debian `sip-tester`), on
//! loopback. A small in-test answerer stands in for the session: it plays a
//! tone to every call and measures the caller audio it receives. The full
//! conversation over SIP is tested with the session in `sip_call.rs`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use switchboard::audio::{Frame, FRAME_SAMPLES};
use switchboard::config::{Config, IpNet};
use switchboard::session::{AdmittedLeg, Registry};
use switchboard::store::Transport;
use switchboard::transport::sip::server::SipServer;
use switchboard::transport::{HangupReason, LegInfo, TransportCommand, TransportEvent};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

/// What the answerer saw of one call.
#[derive(Debug)]
struct CallReport {
    codec: String,
    speech_frames: usize,
    ended: Option<HangupReason>,
}

struct Server {
    addr: SocketAddr,
    /// The node's live calls, shared with every transport.
    registry: Registry,
    reports: mpsc::UnboundedReceiver<CallReport>,
    _stop: oneshot::Sender<()>,
}

fn tone(i: usize) -> Frame {
    let mut f = Frame::SILENCE;
    for (n, s) in f.0.iter_mut().enumerate() {
        let t = (i * FRAME_SAMPLES + n) as f32 / 16_000.0;
        *s = (8000.0 * (2.0 * std::f32::consts::PI * 440.0 * t).sin()) as i16;
    }
    f
}

/// Holds the call's slot until the call ends, as the session does.
async fn answer(admitted: AdmittedLeg, reports: mpsc::UnboundedSender<CallReport>) {
    let AdmittedLeg {
        mut leg,
        admission: _slot,
    } = admitted;
    for i in 0..50 {
        let _ = leg.commands.send(TransportCommand::Play(tone(i))).await;
    }
    let _ = leg
        .commands
        .send(TransportCommand::Mark("tone".into()))
        .await;
    let mut report = CallReport {
        codec: leg.info.params.get("codec").cloned().unwrap_or_default(),
        speech_frames: 0,
        ended: None,
    };
    while let Some(ev) = leg.events.recv().await {
        match ev {
            TransportEvent::Audio(frame) => {
                let energy: f64 = frame.0.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>()
                    / FRAME_SAMPLES as f64;
                if energy.sqrt() > 300.0 {
                    report.speech_frames += 1;
                }
            }
            TransportEvent::Hangup(reason) => {
                report.ended = Some(reason);
                break;
            }
            _ => {}
        }
    }
    let _ = reports.send(report);
}

async fn start(ring_ms: u64, rtp_base: u16, max_calls: usize, allow: &str) -> Server {
    let mut config = Config::defaults().sip;
    config.ring = Duration::from_millis(ring_ms);
    config.rtp_ports = rtp_base..=rtp_base + 999;
    config.allow = allow
        .split(',')
        .map(|n| n.parse::<IpNet>().unwrap())
        .collect();
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let (calls_tx, mut calls_rx) = mpsc::channel::<AdmittedLeg>(64);
    let registry = Registry::new(max_calls);
    let (reports_tx, reports) = mpsc::unbounded_channel();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = SipServer {
        config,
        registry: registry.clone(),
        calls: calls_tx,
        agent_uri: Some("sip:agent@127.0.0.1:5999".into()),
        registration_status: Default::default(),
        dials: None,
    };
    tokio::spawn(async move {
        let _ = server
            .run(socket, async {
                let _ = stopped.await;
            })
            .await;
    });
    tokio::spawn(async move {
        while let Some(leg) = calls_rx.recv().await {
            tokio::spawn(answer(leg, reports_tx.clone()));
        }
    });
    Server {
        addr,
        registry,
        reports,
        _stop: stop,
    }
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/audio")
        .join(name)
}

/// Runs SIPp with a scenario template; returns (success, combined output).
async fn sipp(
    template: &str,
    vars: &[(&str, String)],
    target: SocketAddr,
    media_port: u16,
    calls: usize,
    rate: usize,
) -> (bool, String) {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/sipp")
            .join(template),
    )
    .expect("scenario template");
    let text = vars
        .iter()
        .fold(text, |t, (k, v)| t.replace(&format!("{{{{{k}}}}}"), v));
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join(template);
    std::fs::write(&scenario, text).unwrap();
    let out = tokio::process::Command::new("sipp")
        .arg(target.to_string())
        .args([
            "-sf",
            scenario.to_str().unwrap(),
            "-i",
            "127.0.0.1",
            "-mi",
            "127.0.0.1",
        ])
        .args([
            "-m",
            &calls.to_string(),
            "-l",
            &calls.to_string(),
            "-r",
            &rate.to_string(),
        ])
        .args([
            "-mp",
            &media_port.to_string(),
            "-timeout",
            "60s",
            "-timeout_error",
            "-recv_timeout",
            "20000",
            "-nostdin",
            "-trace_err",
        ])
        .current_dir(dir.path())
        .output()
        .await
        .expect("sipp runs (Debian package sip-tester)");
    let errors: String = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("errors"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect();
    let log = format!(
        "{}\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        errors
    );
    (out.status.success(), log)
}

async fn reports(server: &mut Server, n: usize) -> Vec<CallReport> {
    let mut out = Vec::new();
    while out.len() < n {
        match tokio::time::timeout(Duration::from_secs(30), server.reports.recv()).await {
            Ok(Some(r)) => out.push(r),
            _ => break,
        }
    }
    out
}

#[tokio::test]
async fn options_ping_is_answered() {
    let server = start(0, 31000, 10, "127.0.0.0/8").await;
    let (ok, log) = sipp("options.xml", &[], server.addr, 41000, 1, 1).await;
    assert!(ok, "{log}");
}

#[tokio::test]
async fn pcmu_call_carries_speech_both_ways() {
    let mut server = start(200, 32000, 10, "127.0.0.0/8").await;
    let vars = [
        ("PT", "0".to_string()),
        ("CODEC", "PCMU".into()),
        ("WAV", fixture("speech_slt.wav").display().to_string()),
        ("TALK_MS", "6000".into()),
    ];
    let (ok, log) = sipp("call_rtp.xml", &vars, server.addr, 42000, 1, 1).await;
    assert!(ok, "{log}");
    let r = reports(&mut server, 1).await;
    assert_eq!(r.len(), 1, "{log}");
    assert_eq!(r[0].codec, "PCMU");
    assert!(
        r[0].speech_frames >= 50,
        "only {} frames of speech arrived",
        r[0].speech_frames
    );
    assert_eq!(r[0].ended, Some(HangupReason::Remote));
}

#[tokio::test]
async fn pcma_call_is_decoded() {
    let mut server = start(0, 33000, 10, "127.0.0.0/8").await;
    let vars = [
        ("PT", "8".to_string()),
        ("CODEC", "PCMA".into()),
        ("WAV", fixture("speech_slt_alaw.wav").display().to_string()),
        ("TALK_MS", "3000".into()),
    ];
    let (ok, log) = sipp("call_rtp.xml", &vars, server.addr, 43000, 1, 1).await;
    assert!(ok, "{log}");
    let r = reports(&mut server, 1).await;
    assert_eq!(r[0].codec, "PCMA");
    assert!(
        r[0].speech_frames >= 25,
        "only {} frames of speech arrived",
        r[0].speech_frames
    );
}

#[tokio::test]
async fn cancel_before_answer_gets_487_and_no_call() {
    let mut server = start(3000, 34000, 10, "127.0.0.0/8").await;
    let (ok, log) = sipp("cancel.xml", &[], server.addr, 44000, 1, 1).await;
    assert!(ok, "{log}");
    assert!(
        server.reports.try_recv().is_err(),
        "a cancelled call never reaches the session"
    );
}

#[tokio::test]
async fn reinvite_to_hold_is_answered_recvonly() {
    let mut server = start(0, 35000, 10, "127.0.0.0/8").await;
    let (ok, log) = sipp("reinvite.xml", &[], server.addr, 45000, 1, 1).await;
    assert!(ok, "{log}");
    assert_eq!(reports(&mut server, 1).await.len(), 1);
}

#[tokio::test]
async fn fifty_concurrent_calls_with_rtp() {
    let mut server = start(100, 36000, 100, "127.0.0.0/8").await;
    let vars = [
        ("PT", "0".to_string()),
        ("CODEC", "PCMU".into()),
        ("WAV", fixture("speech_kal.wav").display().to_string()),
        ("TALK_MS", "5000".into()),
    ];
    let (ok, log) = sipp("call_rtp.xml", &vars, server.addr, 46000, 50, 50).await;
    assert!(ok, "{log}");
    let r = reports(&mut server, 50).await;
    assert_eq!(r.len(), 50);
    let quiet = r.iter().filter(|c| c.speech_frames < 25).count();
    assert_eq!(
        quiet,
        0,
        "calls without caller audio: {:?}",
        r.iter().map(|c| c.speech_frames).collect::<Vec<_>>()
    );
}

fn raw_request(method: &str, call_id: &str, extra: &str, body: &str) -> String {
    format!(
        "{method} sip:switchboard@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK{call_id}\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:b@127.0.0.1>\r\nCall-ID: {call_id}\r\nCSeq: 1 {method}\r\nMax-Forwards: 70\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

async fn exchange(sock: &UdpSocket, to: SocketAddr, data: &[u8], want: &str) -> String {
    sock.send_to(data, to).await.unwrap();
    let mut buf = vec![0u8; 8192];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (n, _) = tokio::time::timeout_at(deadline, sock.recv_from(&mut buf))
            .await
            .expect("an answer")
            .unwrap();
        let text = String::from_utf8_lossy(&buf[..n]).to_string();
        if text.starts_with(want) {
            return text;
        }
    }
}

#[tokio::test]
async fn malformed_burst_then_calls_still_work() {
    let server = start(0, 37000, 10, "127.0.0.0/8").await;
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let garbage: Vec<Vec<u8>> = vec![
        b"\x00\x01\x02".to_vec(),
        b"INVITE".to_vec(),
        b"INVITE sip:x SIP/2.0\r\n\r\n".to_vec(),
        raw_request("INVITE", "bad1", "", "v=0\r\n")
            .replace("CSeq: 1 INVITE", "CSeq: x INVITE")
            .into_bytes(),
        raw_request(
            "INVITE",
            "bad2",
            "Content-Type: application/sdp\r\n",
            "garbage sdp",
        )
        .into_bytes(),
        raw_request("OPTIONS", "bad3", "", "")
            .replace("Content-Length: 0", "Content-Length: 999")
            .into_bytes(),
        vec![0xffu8; 1400],
        "SIP/2.0 200 OK\r\n\r\n".as_bytes().to_vec(),
    ]
    .into_iter()
    .map(|g| g.to_vec())
    .collect();
    for _ in 0..20 {
        for g in &garbage {
            sock.send_to(g, server.addr).await.unwrap();
        }
    }
    let reply = exchange(
        &sock,
        server.addr,
        raw_request("INVITE", "bad1b", "", "v=0\r\n")
            .replace("CSeq: 1 INVITE", "CSeq: x INVITE")
            .as_bytes(),
        "SIP/2.0 400",
    )
    .await;
    assert!(
        reply.starts_with("SIP/2.0 400 Malformed CSeq header"),
        "{reply}"
    );
    let reply = exchange(
        &sock,
        server.addr,
        raw_request(
            "INVITE",
            "bad2b",
            "Content-Type: application/sdp\r\n",
            "garbage sdp",
        )
        .as_bytes(),
        "SIP/2.0 488",
    )
    .await;
    assert!(reply.contains("Warning: 399"), "{reply}");
    let (ok, log) = sipp("options.xml", &[], server.addr, 47000, 1, 1).await;
    assert!(ok, "{log}");
}

#[tokio::test]
async fn admission_limit_answers_503_with_retry_after() {
    let server = start(5000, 38000, 1, "127.0.0.0/8").await;
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let sdp = "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 9 RTP/AVP 0\r\n";
    let ring = exchange(
        &sock,
        server.addr,
        raw_request("INVITE", "first", "Content-Type: application/sdp\r\n", sdp).as_bytes(),
        "SIP/2.0 180",
    )
    .await;
    assert!(ring.contains("Call-ID: first"));
    let busy = exchange(
        &sock,
        server.addr,
        raw_request("INVITE", "second", "Content-Type: application/sdp\r\n", sdp).as_bytes(),
        "SIP/2.0 503",
    )
    .await;
    assert!(
        busy.contains("Retry-After:") && busy.contains("Call-ID: second"),
        "{busy}"
    );
    let g729 = "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 9 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n";
    let other = start(0, 38500, 5, "127.0.0.0/8").await;
    let refused = exchange(
        &sock,
        other.addr,
        raw_request("INVITE", "third", "Content-Type: application/sdp\r\n", g729).as_bytes(),
        "SIP/2.0 488",
    )
    .await;
    assert!(refused.contains("Warning: 305"), "{refused}");
}

#[tokio::test]
async fn sources_outside_the_allow_list_get_403() {
    let server = start(0, 39000, 10, "10.0.0.0/8").await;
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let reply = exchange(
        &sock,
        server.addr,
        raw_request("OPTIONS", "nope", "", "").as_bytes(),
        "SIP/2.0",
    )
    .await;
    assert!(reply.starts_with("SIP/2.0 403 Forbidden"), "{reply}");
}

fn twilio_leg(sid: &str) -> LegInfo {
    LegInfo {
        transport: Transport::Twilio,
        external_id: sid.into(),
        from: "+15550001111".into(),
        to: "+15550002222".into(),
        params: Default::default(),
        can_transfer: false,
    }
}

/// One admission for the whole node: a Twilio call in progress fills a
/// one-call server, so SIPp's INVITE is refused before anything is answered;
/// once the Twilio call ends, a SIP call gets through.
#[tokio::test]
async fn a_live_twilio_call_makes_sip_answer_503() {
    let mut server = start(0, 38600, 1, "127.0.0.0/8").await;
    let twilio_call = server
        .registry
        .try_admit(&twilio_leg("CA-live"))
        .expect("the Twilio call takes the only slot");
    let (ok, log) = sipp("busy.xml", &[], server.addr, 48000, 1, 1).await;
    assert!(ok, "SIPp expects 503 with a Retry-After: {log}");
    assert_eq!(server.registry.len(), 1, "the refused INVITE took no slot");
    drop(twilio_call);
    let vars = [
        ("PT", "0".to_string()),
        ("CODEC", "PCMU".into()),
        ("WAV", fixture("speech_slt.wav").display().to_string()),
        ("TALK_MS", "1000".into()),
    ];
    let (ok, log) = sipp("call_rtp.xml", &vars, server.addr, 48100, 1, 1).await;
    assert!(ok, "{log}");
    assert_eq!(reports(&mut server, 1).await.len(), 1);
}
