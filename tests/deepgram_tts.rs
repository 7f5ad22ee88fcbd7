//! The Deepgram Aura speech client against a fake Deepgram that checks the
//! request (auth, query, content type, JSON body) and streams μ-law back:
//! frames come out as the body arrives, match the audio sent, and every
//! documented failure becomes the right error after the frames already
//! delivered.

#[path = "support/fake_deepgram.rs"]
mod fake_deepgram;

use std::time::Duration;

use fake_deepgram::{FakeDeepgram, Reject, API_KEY};
use switchboard::audio::g711::{ulaw_decode, ulaw_encode};
use switchboard::audio::resample::{Upsampler, NARROW_FRAME_SAMPLES};
use switchboard::audio::Frame;
use switchboard::config::Secret;
use switchboard::providers::tts::deepgram::DeepgramTts;
use switchboard::providers::{ProviderError, TtsProvider};
use tokio::sync::mpsc;

const LIMIT: Duration = Duration::from_secs(10);
const TEXT: &str = "Your reference is T-1042. A plumber will call you back.";

/// 2450 μ-law samples of a 440 Hz tone: 15 whole 20 ms frames and a part.
fn tone() -> Vec<u8> {
    (0..2450)
        .map(|i| {
            let t = i as f32 / 8000.0;
            ulaw_encode(((t * 440.0 * std::f32::consts::TAU).sin() * 9000.0) as i16)
        })
        .collect()
}

/// The frames the μ-law bytes stand for at 16 kHz, the last padded.
fn expected_frames(mulaw: &[u8]) -> Vec<Frame> {
    let mut up = Upsampler::new();
    mulaw
        .chunks(NARROW_FRAME_SAMPLES)
        .map(|chunk| {
            let mut narrow = [0i16; NARROW_FRAME_SAMPLES];
            for (n, c) in narrow.iter_mut().zip(chunk) {
                *n = ulaw_decode(*c);
            }
            up.process(&narrow)
        })
        .collect()
}

fn tts(fake: &FakeDeepgram) -> DeepgramTts {
    DeepgramTts::new(fake.config(), Duration::from_secs(2))
}

async fn next(
    rx: &mut mpsc::Receiver<Result<Frame, ProviderError>>,
) -> Option<Result<Frame, ProviderError>> {
    tokio::time::timeout(LIMIT, rx.recv())
        .await
        .expect("synthesis stalled")
}

/// Everything until the channel closes.
async fn rest(
    rx: &mut mpsc::Receiver<Result<Frame, ProviderError>>,
) -> Vec<Result<Frame, ProviderError>> {
    let mut out = Vec::new();
    while let Some(item) = next(rx).await {
        out.push(item);
    }
    out
}

fn only_error(items: Vec<Result<Frame, ProviderError>>) -> ProviderError {
    match <[_; 1]>::try_from(items) {
        Ok([Err(e)]) => e,
        other => panic!("expected one error, got {other:?}"),
    }
}

#[tokio::test]
async fn happy_path_streams_frames_as_the_body_arrives() {
    let fake = fake_deepgram::start().await;
    let audio = tone();
    fake.set_speak_audio(audio.clone(), 480);
    // The fake holds the rest of the body after its first chunk until we
    // have seen a frame: a client that waited for the whole body would stall.
    let release = fake.hold_speak_at(480);
    let tts = tts(&fake);
    assert_eq!(tts.name(), "deepgram");
    assert!(
        !format!("{tts:?}").contains(API_KEY),
        "the key shows in Debug"
    );
    let mut rx = tts.synthesize(TEXT);

    let first = next(&mut rx).await.expect("a frame").expect("no error");
    assert!(fake.speak_held(), "the body was not held back");
    release.notify_one();
    let mut frames = vec![first];
    for item in rest(&mut rx).await {
        frames.push(item.expect("no error"));
    }
    assert_eq!(frames, expected_frames(&audio));

    let requests = fake.speak_records();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(
        r.authorization.as_deref(),
        Some(&*format!("Token {API_KEY}"))
    );
    let query: Vec<(&str, &str)> = r
        .query
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        query,
        [
            ("model", "aura-2-thalia-en"),
            ("encoding", "mulaw"),
            ("sample_rate", "8000"),
            ("container", "none"),
        ]
    );
    assert_eq!(r.content_type.as_deref(), Some("application/json"));
    let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(body, serde_json::json!({ "text": TEXT }));
}

#[tokio::test]
async fn connection_refused_is_retryable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let fake = fake_deepgram::start().await;
    let mut config = fake.config();
    config.base_url = url::Url::parse(&format!("http://{addr}")).unwrap();
    let mut rx = DeepgramTts::new(config, Duration::from_secs(2)).synthesize(TEXT);
    let err = only_error(rest(&mut rx).await);
    assert!(err.retryable, "{err:?}");
    assert_eq!(err.engine, "deepgram");
}

#[tokio::test]
async fn a_refused_key_is_fatal_and_never_shown() {
    let fake = fake_deepgram::start().await;
    let mut config = fake.config();
    config.api_key = Some(Secret::new("wrong-key-456"));
    let mut rx = DeepgramTts::new(config, Duration::from_secs(2)).synthesize(TEXT);
    let err = only_error(rest(&mut rx).await);
    assert!(!err.retryable);
    assert_eq!(err.message, "HTTP 401: Invalid credentials.");
    assert!(!format!("{err:?}").contains("wrong-key-456"));
}

#[tokio::test]
async fn rate_limits_carry_retry_after() {
    let fake = fake_deepgram::start().await;
    fake.reject_speak(Some(Reject {
        retry_after: Some("12".into()),
        ..Reject::status(429)
    }));
    let err = only_error(rest(&mut tts(&fake).synthesize(TEXT)).await);
    assert!(err.retryable);
    assert_eq!(err.retry_after, Some(Duration::from_secs(12)));
    assert!(err.message.contains("fake refusal 429"), "{}", err.message);
}

#[tokio::test]
async fn server_errors_are_retryable() {
    let fake = fake_deepgram::start().await;
    fake.reject_speak(Some(Reject::status(500)));
    let err = only_error(rest(&mut tts(&fake).synthesize(TEXT)).await);
    assert!(err.retryable);
    assert_eq!(err.message, "HTTP 500: fake refusal 500");
}

#[tokio::test]
async fn a_malformed_error_body_still_gives_a_clear_fatal_error() {
    let fake = fake_deepgram::start().await;
    fake.reject_speak(Some(Reject {
        body: "{\"err_msg\": oops".into(),
        ..Reject::status(400)
    }));
    let err = only_error(rest(&mut tts(&fake).synthesize(TEXT)).await);
    assert!(!err.retryable);
    assert_eq!(err.message, "HTTP 400: {\"err_msg\": oops");
}

#[tokio::test]
async fn a_body_cut_mid_way_errors_after_the_frames_delivered() {
    let fake = fake_deepgram::start().await;
    let audio = tone();
    fake.set_speak_audio(audio.clone(), 400);
    // Twelve whole frames' worth, held until we have them, then the cut.
    let cut_at = 12 * NARROW_FRAME_SAMPLES;
    let release = fake.hold_speak_at(cut_at);
    fake.cut_speak_after(cut_at);
    let mut rx = tts(&fake).synthesize(TEXT);
    let mut frames = Vec::new();
    for _ in 0..12 {
        frames.push(next(&mut rx).await.expect("a frame").expect("no error"));
    }
    assert_eq!(frames, expected_frames(&audio[..cut_at]));
    release.notify_one();
    let err = only_error(rest(&mut rx).await);
    assert!(err.retryable, "{err:?}");
    assert!(err.message.contains("cut off"), "{}", err.message);
}

#[tokio::test]
async fn no_answer_times_out() {
    let fake = fake_deepgram::start().await;
    fake.stall_speak(true);
    let tts = DeepgramTts::new(fake.config(), Duration::from_millis(300));
    let err = only_error(rest(&mut tts.synthesize(TEXT)).await);
    assert!(err.retryable);
    assert_eq!(err.message, "no response within 300 ms");
}

#[tokio::test]
async fn a_body_that_stalls_times_out_after_its_frames() {
    let fake = fake_deepgram::start().await;
    let audio = tone();
    fake.set_speak_audio(audio.clone(), 320);
    let _never = fake.hold_speak_at(320);
    let tts = DeepgramTts::new(fake.config(), Duration::from_millis(300));
    let mut rx = tts.synthesize(TEXT);
    let items = rest(&mut rx).await;
    assert_eq!(items.len(), 3, "{items:?}");
    assert_eq!(
        items[..2]
            .iter()
            .map(|i| i.clone().unwrap())
            .collect::<Vec<_>>(),
        expected_frames(&audio[..320])
    );
    let err = items[2].clone().unwrap_err();
    assert!(err.retryable);
    assert_eq!(err.message, "audio stalled for 300 ms");
}

#[tokio::test]
async fn blank_text_makes_no_request() {
    let fake = fake_deepgram::start().await;
    let items = rest(&mut tts(&fake).synthesize("  \n ")).await;
    assert!(items.is_empty());
    assert!(fake.speak_records().is_empty());
}
