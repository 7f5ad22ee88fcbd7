//! ElevenLabs streaming TTS against a fake ElevenLabs that checks the
//! request: the audio arrives frame-exact and the first frame before the body
//! ends; every documented failure becomes the right `ProviderError`.

#[path = "support/fake_elevenlabs.rs"]
mod fake_elevenlabs;

use std::time::{Duration, Instant};

use fake_elevenlabs::{Failure, FakeElevenLabs, API_KEY, VOICE_ID};
use switchboard::audio::{Frame, FRAME_SAMPLES};
use switchboard::config::{ElevenLabsConfig, Secret};
use switchboard::providers::tts::elevenlabs::ElevenLabsTts;
use switchboard::providers::{ProviderError, TtsProvider};
use tokio::sync::mpsc;
use url::Url;

const TIMEOUT: Duration = Duration::from_millis(400);
/// Upper bound on any wait in these tests.
const PATIENCE: Duration = Duration::from_secs(10);

fn config(base: &str, key: &str) -> ElevenLabsConfig {
    ElevenLabsConfig {
        api_key: Some(Secret::new(key)),
        base_url: Url::parse(base).unwrap(),
        voice_id: VOICE_ID.into(),
        model: "eleven_flash_v2_5".into(),
        optimize_streaming_latency: 3,
    }
}

fn tts(fake: &FakeElevenLabs) -> ElevenLabsTts {
    ElevenLabsTts::new(config(&fake.base_url(), API_KEY), TIMEOUT)
}

/// Every frame until the stream ends, and the error that ended it, if any.
async fn collect(
    mut rx: mpsc::Receiver<Result<Frame, ProviderError>>,
) -> (Vec<Frame>, Option<ProviderError>) {
    let mut frames = Vec::new();
    loop {
        match tokio::time::timeout(PATIENCE, rx.recv())
            .await
            .expect("stream ended in time")
        {
            Some(Ok(f)) => frames.push(f),
            Some(Err(e)) => {
                assert!(rx.recv().await.is_none(), "nothing follows an error");
                return (frames, Some(e));
            }
            None => return (frames, None),
        }
    }
}

fn samples(frames: &[Frame]) -> Vec<i16> {
    frames.iter().flat_map(|f| f.0).collect()
}

async fn failing(failure: Failure) -> (FakeElevenLabs, Vec<Frame>, ProviderError) {
    let fake = fake_elevenlabs::start().await;
    fake.set_failure(failure);
    let (frames, err) = collect(tts(&fake).synthesize("Hello.")).await;
    let err = err.expect("an error");
    assert_eq!(err.engine, "elevenlabs");
    assert!(!err.message.contains(API_KEY), "{err}");
    (fake, frames, err)
}

#[tokio::test]
async fn streams_the_voice_frame_exact_and_asks_as_documented() {
    let fake = fake_elevenlabs::start().await;
    // 1.5 frames over a whole second: the last frame is padded.
    let pcm = fake_elevenlabs::ramp_16k(16_000 + 160);
    fake.set_pcm(pcm.clone());
    let text = "Your plumber will come tomorrow at nine.";
    let (frames, err) = collect(tts(&fake).synthesize(text)).await;
    assert_eq!(err, None);
    assert_eq!(fake.problems(), Vec::<String>::new());
    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(r.voice_id, VOICE_ID);
    assert_eq!(r.output_format, "pcm_16000");
    assert_eq!(r.optimize_streaming_latency, Some(3));
    assert_eq!(
        (r.text.as_str(), r.model_id.as_str()),
        (text, "eleven_flash_v2_5")
    );
    assert_eq!(r.body_keys, ["model_id", "text"]);
    assert_eq!(frames.len(), 51);
    let out = samples(&frames);
    assert_eq!(
        &out[..pcm.len()],
        &pcm[..],
        "byte-exact audio, odd chunk splits"
    );
    assert!(out[pcm.len()..].iter().all(|s| *s == 0));
}

#[tokio::test]
async fn the_first_frame_is_forwarded_before_the_body_ends() {
    let fake = fake_elevenlabs::start().await;
    fake.set_failure(Failure::HoldAfterFirstChunk);
    let pcm = fake.pcm();
    let mut rx = tts(&fake).synthesize("One moment please.");
    let started = Instant::now();
    let first = tokio::time::timeout(PATIENCE, rx.recv())
        .await
        .expect("first frame in time");
    let first = first.expect("a frame").expect("audio");
    eprintln!("first frame {:?} after the request", started.elapsed());
    // The fake is still holding everything after its first 1001 bytes.
    assert_eq!(&first.0[..], &pcm[..FRAME_SAMPLES]);
    fake.release();
    let (rest, err) = collect(rx).await;
    assert_eq!(err, None);
    let mut all = first.0.to_vec();
    all.extend(samples(&rest));
    assert_eq!(&all[..pcm.len()], &pcm[..]);
}

#[tokio::test]
async fn dropping_the_receiver_stops_the_download() {
    let fake = fake_elevenlabs::start().await;
    fake.set_failure(Failure::HoldAfterFirstChunk);
    let mut rx = tts(&fake).synthesize("A long answer that will not be heard.");
    let first = tokio::time::timeout(PATIENCE, rx.recv())
        .await
        .expect("first frame in time");
    assert!(matches!(first, Some(Ok(_))));
    drop(rx);
    fake.release();
    // The fake can only finish sending if the client kept reading.
    tokio::time::timeout(PATIENCE, fake.abandoned())
        .await
        .expect("the client hung up");
}

#[tokio::test]
async fn blank_text_makes_no_request() {
    let fake = fake_elevenlabs::start().await;
    let (frames, err) = collect(tts(&fake).synthesize("  \n ")).await;
    assert!(frames.is_empty() && err.is_none());
    assert_eq!(fake.hits(), 0);
}

#[tokio::test]
async fn a_refused_connection_is_retryable() {
    let base = fake_elevenlabs::refused_base_url().await;
    let tts = ElevenLabsTts::new(config(&base, API_KEY), TIMEOUT);
    let (frames, err) = collect(tts.synthesize("Hello.")).await;
    let err = err.expect("an error");
    assert!(frames.is_empty());
    assert!(
        err.retryable && err.message.contains("cannot connect"),
        "{err}"
    );
}

#[tokio::test]
async fn a_wrong_key_is_fatal_and_never_shown() {
    let fake = fake_elevenlabs::start().await;
    let wrong = "xi-wrong-key-9876543210";
    let tts = ElevenLabsTts::new(config(&fake.base_url(), wrong), TIMEOUT);
    let (_, err) = collect(tts.synthesize("Hello.")).await;
    let err = err.expect("an error");
    assert!(!err.retryable, "{err}");
    assert!(
        err.message.contains("401") && err.message.contains("Invalid API key"),
        "{err}"
    );
    let shown = format!("{err} {err:?} {tts:?}");
    assert!(!shown.contains(wrong), "{shown}");
}

#[tokio::test]
async fn an_unknown_voice_is_fatal_with_elevenlabs_message() {
    let fake = fake_elevenlabs::start().await;
    let mut c = config(&fake.base_url(), API_KEY);
    c.voice_id = "no-such-voice".into();
    let (_, err) = collect(ElevenLabsTts::new(c, TIMEOUT).synthesize("Hi.")).await;
    let err = err.expect("an error");
    assert!(
        !err.retryable && err.message.contains("voice_not_found"),
        "{err}"
    );
}

#[tokio::test]
async fn too_many_requests_is_retryable_after_the_given_wait() {
    let failure = Failure::Status {
        code: 429,
        retry_after: Some("3".into()),
    };
    let (_, frames, err) = failing(failure).await;
    assert!(frames.is_empty());
    assert!(err.retryable, "{err}");
    assert_eq!(err.retry_after, Some(Duration::from_secs(3)));
    assert!(
        err.message.contains("Too many concurrent requests"),
        "{err}"
    );
}

#[tokio::test]
async fn a_server_error_is_retryable() {
    let (_, _, err) = failing(Failure::Status {
        code: 500,
        retry_after: None,
    })
    .await;
    assert!(err.retryable && err.retry_after.is_none(), "{err}");
    assert!(err.message.contains("500"), "{err}");
}

#[tokio::test]
async fn a_body_cut_mid_way_errors_after_the_frames_delivered() {
    let (fake, frames, err) = failing(Failure::CutAfter(8008)).await;
    // 8008 bytes are 4004 samples: twelve whole frames, then the cut.
    assert_eq!(frames.len(), 12);
    assert_eq!(samples(&frames), fake.pcm()[..12 * FRAME_SAMPLES].to_vec());
    assert!(err.retryable && err.message.contains("cut off"), "{err}");
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let started = Instant::now();
    let (_, frames, err) = failing(Failure::Stall).await;
    let waited = started.elapsed();
    assert!(frames.is_empty());
    assert!(
        err.retryable && err.message.contains("no response within 400 ms"),
        "{err}"
    );
    assert!(waited >= TIMEOUT && waited < TIMEOUT * 5, "{waited:?}");
}

#[tokio::test]
async fn a_body_that_stalls_times_out_after_its_frames() {
    let (_, frames, err) = failing(Failure::StallAfter(4004)).await;
    assert_eq!(frames.len(), 6);
    assert!(err.retryable && err.message.contains("stalled"), "{err}");
}
