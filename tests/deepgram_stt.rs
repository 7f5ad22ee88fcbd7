//! The Deepgram live-transcription client against a fake Deepgram that
//! checks what it is sent: the handshake (auth, path, every query
//! parameter), the audio bytes, `KeepAlive` during a pause and `CloseStream`
//! at the end; and that it survives the documented failures: refused,
//! stalled and cut connections, and malformed messages.

#[path = "support/fake_deepgram.rs"]
mod fake_deepgram;

use std::time::Duration;

use fake_deepgram::{marked_frame, word, ClientMessage, Cut, FakeDeepgram, Reject, API_KEY};
use switchboard::audio::Frame;
use switchboard::config::Secret;
use switchboard::providers::stt::deepgram::{DeepgramStt, Tuning};
use switchboard::providers::{SttEvent, SttProvider, SttStream};
use tokio::sync::mpsc;

/// Upper bound for any wait in these tests; none should come near it.
const LIMIT: Duration = Duration::from_secs(10);

fn tuning() -> Tuning {
    Tuning {
        keepalive: Duration::from_millis(150),
        backoff_base: Duration::from_millis(20),
        backoff_max: Duration::from_millis(100),
        ..Tuning::default()
    }
}

fn client(fake: &FakeDeepgram) -> DeepgramStt {
    DeepgramStt::new(fake.config(), Duration::from_secs(2)).with_tuning(tuning())
}

fn pcm_bytes(frames: &[Frame]) -> Vec<u8> {
    frames
        .iter()
        .flat_map(|f| f.samples().iter().flat_map(|s| s.to_le_bytes()))
        .collect()
}

async fn feed(stream: &SttStream, frames: &[Frame]) {
    for f in frames {
        stream.audio.send(f.clone()).await.expect("stream open");
    }
}

/// Every event until the stream ends.
async fn drain(events: &mut mpsc::Receiver<SttEvent>) -> Vec<SttEvent> {
    let mut out = Vec::new();
    loop {
        match tokio::time::timeout(LIMIT, events.recv()).await {
            Ok(Some(e)) => out.push(e),
            Ok(None) => return out,
            Err(_) => panic!("stream did not end; so far: {out:?}"),
        }
    }
}

fn interim(words: &[u16]) -> SttEvent {
    SttEvent::Interim {
        text: words.iter().map(|m| word(*m)).collect::<Vec<_>>().join(" "),
    }
}

fn final_of(words: &[u16], end_of_turn: bool) -> SttEvent {
    SttEvent::Final {
        text: words.iter().map(|m| word(*m)).collect::<Vec<_>>().join(" "),
        confidence: 0.98,
        end_of_turn,
    }
}

/// The words of every final, in order.
fn final_words(events: &[SttEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            SttEvent::Final { text, .. } => Some(text.clone()),
            _ => None,
        })
        .flat_map(|t| t.split(' ').map(str::to_string).collect::<Vec<_>>())
        .collect()
}

/// Whether a KeepAlive went out when exactly `audio_bytes` had been sent.
fn keepalive_after(conn: &fake_deepgram::ListenRecord, audio_bytes: usize) -> bool {
    let mut sent = 0;
    conn.messages.iter().any(|m| match m {
        ClientMessage::Audio(n) => {
            sent += n;
            false
        }
        ClientMessage::Text(t) => sent == audio_bytes && t == r#"{"type":"KeepAlive"}"#,
    })
}

fn the_error(events: &[SttEvent]) -> switchboard::providers::ProviderError {
    match events {
        [SttEvent::Error(e)] => e.clone(),
        other => panic!("expected one error, got {other:?}"),
    }
}

#[tokio::test]
async fn happy_path_sends_what_deepgram_documents_and_maps_events_in_order() {
    let fake = fake_deepgram::start().await;
    fake.set_final_every(8);
    let stt = client(&fake);
    assert_eq!(stt.name(), "deepgram");
    assert!(
        !format!("{stt:?}").contains(API_KEY),
        "the key shows in Debug"
    );
    let mut stream = stt.open().unwrap();

    let before_pause: Vec<Frame> = (0..7).map(marked_frame).collect();
    let after_pause: Vec<Frame> = (7..10).map(marked_frame).chain([Frame::SILENCE]).collect();
    feed(&stream, &before_pause).await;
    // The leg pauses: no audio for a while. A KeepAlive must follow the audio.
    let audio_len = pcm_bytes(&before_pause).len();
    let kept_alive = fake
        .wait_for(LIMIT, |c| c.len() == 1 && keepalive_after(&c[0], audio_len))
        .await;
    assert!(
        kept_alive,
        "no KeepAlive during the pause: {:?}",
        fake.connections()
    );
    feed(&stream, &after_pause).await;
    drop(stream.audio);
    let events = drain(&mut stream.events).await;

    let conns = fake.connections();
    assert_eq!(conns.len(), 1);
    let conn = &conns[0];
    assert_eq!(
        conn.authorization.as_deref(),
        Some(&*format!("Token {API_KEY}"))
    );
    let query: Vec<(&str, &str)> = conn
        .query
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        query,
        [
            ("model", "nova-3"),
            ("language", "en"),
            ("encoding", "linear16"),
            ("sample_rate", "16000"),
            ("channels", "1"),
            ("interim_results", "true"),
            ("endpointing", "300"),
            ("utterance_end_ms", "1000"),
            ("vad_events", "true"),
            ("smart_format", "true"),
            ("punctuate", "true"),
            ("keyterm", "Acme Plumbing"),
            ("keyterm", "Elm Street"),
        ]
    );
    let all: Vec<Frame> = before_pause.iter().chain(&after_pause).cloned().collect();
    assert_eq!(
        conn.audio,
        pcm_bytes(&all),
        "audio bytes differ from what was fed"
    );

    // Order on the wire: the first seven frames, KeepAlive during the pause,
    // the rest, then exactly one CloseStream, last.
    assert!(keepalive_after(conn, audio_len));
    assert_eq!(
        conn.messages.last(),
        Some(&ClientMessage::Text(r#"{"type":"CloseStream"}"#.into()))
    );
    let texts = conn.texts();
    assert_eq!(
        texts.iter().filter(|t| t.contains("CloseStream")).count(),
        1
    );
    assert!(texts
        .iter()
        .all(|t| t.contains("CloseStream") || t.contains("KeepAlive")));

    let mut expected = vec![SttEvent::SpeechStarted];
    for n in 1..=8 {
        expected.push(interim(&(0..n).collect::<Vec<_>>()));
    }
    expected.push(final_of(&(0..8).collect::<Vec<_>>(), false));
    expected.push(interim(&[8]));
    expected.push(interim(&[8, 9]));
    expected.push(final_of(&[8, 9], true));
    expected.push(SttEvent::UtteranceEnd);
    assert_eq!(events, expected);
    assert_eq!(stt.stats().malformed_messages(), 0);
    assert_eq!(stt.stats().reconnects(), 0);
}

#[tokio::test]
async fn connection_refused_is_a_retryable_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let fake = fake_deepgram::start().await;
    let mut config = fake.config();
    config.base_url = url::Url::parse(&format!("http://{addr}")).unwrap();
    let stt = DeepgramStt::new(config, Duration::from_secs(2)).with_tuning(tuning());
    let mut stream = stt.open().unwrap();
    let err = the_error(&drain(&mut stream.events).await);
    assert!(err.retryable, "{err:?}");
    assert_eq!(err.engine, "deepgram");
    assert!(err.message.contains("connecting"), "{}", err.message);
}

#[tokio::test]
async fn a_refused_key_is_fatal_and_never_shown() {
    let fake = fake_deepgram::start().await;
    let mut config = fake.config();
    config.api_key = Some(Secret::new("wrong-key-123"));
    let stt = DeepgramStt::new(config, Duration::from_secs(2));
    let mut stream = stt.open().unwrap();
    let err = the_error(&drain(&mut stream.events).await);
    assert!(!err.retryable, "{err:?}");
    assert!(err.message.contains("401"), "{}", err.message);
    assert!(
        err.message.contains("Invalid credentials."),
        "{}",
        err.message
    );
    assert!(!format!("{err:?}").contains("wrong-key-123"));
    let records = fake.listen_records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].status, 401);
    assert_eq!(
        records[0].authorization.as_deref(),
        Some("Token wrong-key-123")
    );
}

#[tokio::test]
async fn rate_limited_handshakes_carry_retry_after() {
    let fake = fake_deepgram::start().await;
    fake.reject_handshakes(Some(Reject {
        retry_after: Some("3".into()),
        ..Reject::status(429)
    }));
    let mut stream = client(&fake).open().unwrap();
    let err = the_error(&drain(&mut stream.events).await);
    assert!(err.retryable);
    assert_eq!(err.retry_after, Some(Duration::from_secs(3)));
    assert!(err.message.contains("fake refusal 429"), "{}", err.message);
}

#[tokio::test]
async fn server_errors_are_retryable() {
    let fake = fake_deepgram::start().await;
    fake.reject_handshakes(Some(Reject::status(500)));
    let mut stream = client(&fake).open().unwrap();
    let err = the_error(&drain(&mut stream.events).await);
    assert!(err.retryable);
    assert_eq!(err.retry_after, None);
    assert!(err.message.starts_with("HTTP 500"), "{}", err.message);
}

#[tokio::test]
async fn a_stalled_handshake_times_out() {
    let fake = fake_deepgram::start().await;
    fake.stall(true);
    let stt = DeepgramStt::new(fake.config(), Duration::from_millis(300));
    let started = std::time::Instant::now();
    let mut stream = stt.open().unwrap();
    let err = the_error(&drain(&mut stream.events).await);
    assert!(err.retryable);
    assert!(err.message.contains("within 300 ms"), "{}", err.message);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

/// Feeds `n` marked frames, ends the stream and returns its events.
async fn run_markers(stt: &DeepgramStt, n: u16) -> Vec<SttEvent> {
    let mut stream = stt.open().unwrap();
    let frames: Vec<Frame> = (0..n).map(marked_frame).collect();
    feed(&stream, &frames).await;
    drop(stream.audio);
    drain(&mut stream.events).await
}

async fn assert_recovers_every_word(cut: Cut) {
    let fake = fake_deepgram::start().await;
    fake.set_final_every(4);
    // Cut mid-way through the fifteenth frame's message.
    fake.cut_first_connection_after(14 * 640 + 1, cut);
    let stt = client(&fake);
    let events = run_markers(&stt, 40).await;

    assert!(
        !events.iter().any(|e| matches!(e, SttEvent::Error(_))),
        "{events:?}"
    );
    let expected: Vec<String> = (0..40).map(word).collect();
    assert_eq!(final_words(&events), expected, "lost or repeated words");

    let conns = fake.connections();
    assert_eq!(conns.len(), 2, "expected exactly one reconnect");
    assert_eq!(stt.stats().reconnects(), 1);
    // The second connection starts at a final boundary the first one reached
    // and repeats audio the first one had received but never finalized.
    let first = conns[0].markers();
    let second = conns[1].markers();
    let resumed_at = second[0];
    assert_eq!(resumed_at % 4, 0, "resumed mid-segment at {resumed_at}");
    assert!(first.contains(&resumed_at), "{first:?} / {second:?}");
    assert_eq!(second, (resumed_at..40).collect::<Vec<_>>());
    assert!(conns[1]
        .texts()
        .last()
        .is_some_and(|t| t.contains("CloseStream")));
}

#[tokio::test]
async fn a_dropped_connection_reconnects_and_loses_no_audio() {
    assert_recovers_every_word(Cut::Drop).await;
}

#[tokio::test]
async fn a_server_error_close_reconnects_and_loses_no_audio() {
    assert_recovers_every_word(Cut::Close(1011, "NET-0000")).await;
}

#[tokio::test]
async fn a_refused_audio_close_is_fatal() {
    let fake = fake_deepgram::start().await;
    fake.cut_first_connection_after(640, Cut::Close(1008, "DATA-0000"));
    let stt = client(&fake);
    let events = run_markers(&stt, 3).await;
    let err = match events.last() {
        Some(SttEvent::Error(e)) => e.clone(),
        other => panic!("{other:?}"),
    };
    assert!(!err.retryable);
    assert!(err.message.contains("1008"), "{}", err.message);
    assert_eq!(fake.connections().len(), 1, "must not reconnect");
}

#[tokio::test]
async fn gives_up_with_a_retryable_error_when_reconnects_fail() {
    let fake = fake_deepgram::start().await;
    fake.cut_first_connection_after(640, Cut::Drop);
    fake.reject_handshakes(Some(Reject {
        from_handshake: 1,
        ..Reject::status(503)
    }));
    let stt = client(&fake);
    let mut stream = stt.open().unwrap();
    let frames: Vec<Frame> = (0..3).map(marked_frame).collect();
    feed(&stream, &frames).await;
    // The caller is still on the line: the audio sender stays open.
    let events = drain(&mut stream.events).await;
    let err = match events.last() {
        Some(SttEvent::Error(e)) => e.clone(),
        other => panic!("{other:?}"),
    };
    assert!(err.retryable, "{err:?}");
    assert!(
        err.message.contains("not recovered after 4"),
        "{}",
        err.message
    );
    let records = fake.listen_records();
    assert_eq!(
        records.len(),
        5,
        "one connection and four reconnect attempts"
    );
    assert!(records[1..].iter().all(|r| r.status == 503));
}

#[tokio::test]
async fn malformed_messages_are_skipped_and_counted() {
    let fake = fake_deepgram::start().await;
    fake.send_malformed_after_frames(3);
    let stt = client(&fake);
    let events = run_markers(&stt, 12).await;
    assert!(
        !events.iter().any(|e| matches!(e, SttEvent::Error(_))),
        "{events:?}"
    );
    let expected: Vec<String> = (0..12).map(word).collect();
    assert_eq!(final_words(&events), expected);
    assert_eq!(stt.stats().malformed_messages(), 1);
    assert_eq!(fake.connections().len(), 1);
}

#[tokio::test]
async fn dropping_the_audio_sender_before_connecting_ends_cleanly() {
    let fake = fake_deepgram::start().await;
    let stt = client(&fake);
    let mut stream = stt.open().unwrap();
    drop(stream.audio);
    assert_eq!(drain(&mut stream.events).await, []);
}
