//! OpenAI TTS against a fake `/v1/audio/speech` that checks the request and
//! streams 24 kHz PCM: the audio comes out at 16 kHz with its tone intact and
//! no aliasing, the first frame leaves before the body ends, long text is
//! split within the API's limit, and every failure maps to the right
//! `ProviderError`.

#[path = "support/fake_openai_audio.rs"]
mod fake_openai_audio;

use std::f64::consts::PI;
use std::time::{Duration, Instant};

use fake_openai_audio::{tone_24k, Failure, FakeOpenAiAudio, SpeechRequest, API_KEY};
use switchboard::audio::Frame;
use switchboard::config::{OpenAiTtsConfig, Secret};
use switchboard::providers::tts::openai::{OpenAiTts, MAX_INPUT_CHARS};
use switchboard::providers::{ProviderError, TtsProvider};
use tokio::sync::mpsc;
use url::Url;

const TIMEOUT: Duration = Duration::from_millis(400);
const PATIENCE: Duration = Duration::from_secs(10);

fn config(base: &str, key: &str) -> OpenAiTtsConfig {
    OpenAiTtsConfig {
        api_key: Some(Secret::new(key)),
        base_url: Url::parse(base).unwrap(),
        model: "gpt-4o-mini-tts".into(),
        voice: "alloy".into(),
    }
}

fn tts(fake: &FakeOpenAiAudio) -> OpenAiTts {
    OpenAiTts::new(config(&fake.base_url(), API_KEY), TIMEOUT)
}

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

/// Amplitude of the `freq` component of 16 kHz audio (one DFT bin).
fn amplitude_at(x: &[i16], freq: f64) -> f64 {
    let (mut re, mut im) = (0.0, 0.0);
    for (i, &s) in x.iter().enumerate() {
        let ph = 2.0 * PI * freq * i as f64 / 16_000.0;
        re += s as f64 * ph.cos();
        im += s as f64 * ph.sin();
    }
    2.0 * (re * re + im * im).sqrt() / x.len() as f64
}

fn rms(x: &[i16]) -> f64 {
    (x.iter().map(|&s| (s as f64).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
}

fn db(ratio: f64) -> f64 {
    20.0 * ratio.log10()
}

async fn failing(failure: Failure) -> (Vec<Frame>, ProviderError) {
    let fake = fake_openai_audio::start().await;
    fake.set_failure(failure);
    let (frames, err) = collect(tts(&fake).synthesize("Hello.")).await;
    let err = err.expect("an error");
    assert_eq!(err.engine, "openai");
    assert!(!err.message.contains(API_KEY), "{err}");
    (frames, err)
}

#[tokio::test]
async fn a_24k_tone_arrives_at_16k_with_its_level_and_the_request_is_documented() {
    let fake = fake_openai_audio::start().await;
    let text = "Thanks for calling. How can I help?";
    let (frames, err) = collect(tts(&fake).synthesize(text)).await;
    assert_eq!(err, None);
    assert_eq!(fake.problems(), Vec::<String>::new());
    assert_eq!(
        fake.speech_requests(),
        vec![SpeechRequest {
            model: "gpt-4o-mini-tts".into(),
            input: text.into(),
            voice: "alloy".into(),
            response_format: "pcm".into(),
        }]
    );
    // One second at 24 kHz is 16 000 samples at 16 kHz, plus the filter's
    // flushed tail, in whole frames.
    let out = samples(&frames);
    assert!(
        (16_000..=16_000 + 2 * 320).contains(&out.len()),
        "{}",
        out.len()
    );
    let steady = &out[480..480 + 14_400];
    let level = db(amplitude_at(steady, 1000.0) / 8000.0);
    assert!(level.abs() < 0.2, "1 kHz at {level:.2} dB");
    // Nothing but the tone: its RMS is the whole signal's RMS.
    let purity = db(rms(steady) * 2f64.sqrt() / amplitude_at(steady, 1000.0));
    assert!(purity.abs() < 0.1, "extra energy {purity:.2} dB");
}

#[tokio::test]
async fn content_above_8k_does_not_fold_into_the_band() {
    let fake = fake_openai_audio::start().await;
    let low = tone_24k(1000.0, 1.0, 6000.0);
    let high = tone_24k(10_000.0, 1.0, 6000.0);
    fake.set_speech_pcm(low.iter().zip(&high).map(|(a, b)| a + b).collect());
    let (frames, err) = collect(tts(&fake).synthesize("Hi.")).await;
    assert_eq!(err, None);
    let out = samples(&frames);
    let steady = &out[480..480 + 14_400];
    let kept = db(amplitude_at(steady, 1000.0) / 6000.0);
    let alias = db(amplitude_at(steady, 6000.0) / 6000.0);
    assert!(kept.abs() < 0.2, "1 kHz at {kept:.2} dB");
    assert!(alias < -40.0, "10 kHz folded to 6 kHz at {alias:.1} dB");
}

#[tokio::test]
async fn the_first_frame_is_forwarded_before_the_body_ends() {
    let fake = fake_openai_audio::start().await;
    fake.set_failure(Failure::HoldAfterFirstChunk);
    let mut rx = tts(&fake).synthesize("One moment please.");
    let started = Instant::now();
    let first = tokio::time::timeout(PATIENCE, rx.recv())
        .await
        .expect("first frame in time");
    first.expect("a frame").expect("audio");
    eprintln!("first frame {:?} after the request", started.elapsed());
    // The fake holds all but its first 1001 bytes (500 samples at 24 kHz).
    fake.release();
    let (rest, err) = collect(rx).await;
    assert_eq!(err, None);
    assert!(rest.len() >= 49, "{} more frames", rest.len());
}

#[tokio::test]
async fn text_over_the_limit_is_sent_in_order_within_it() {
    let fake = fake_openai_audio::start().await;
    fake.set_speech_pcm(tone_24k(500.0, 0.1, 4000.0));
    let sentence = "Your technician will arrive between nine and eleven tomorrow morning. ";
    let text = sentence.repeat(MAX_INPUT_CHARS / sentence.len() + 20);
    let (frames, err) = collect(tts(&fake).synthesize(&text)).await;
    assert_eq!(err, None);
    assert_eq!(fake.problems(), Vec::<String>::new());
    let inputs: Vec<String> = fake
        .speech_requests()
        .into_iter()
        .map(|r| r.input)
        .collect();
    assert_eq!(inputs.len(), 2);
    assert!(inputs.iter().all(|i| i.chars().count() <= MAX_INPUT_CHARS));
    assert_eq!(inputs.join(" "), text.trim());
    // Two 0.1 s bodies: 2 × 1600 samples at 16 kHz, joined without a gap.
    assert!((10..=12).contains(&frames.len()), "{} frames", frames.len());
}

#[tokio::test]
async fn a_refused_connection_is_retryable() {
    let base = fake_openai_audio::refused_base_url().await;
    let tts = OpenAiTts::new(config(&base, API_KEY), TIMEOUT);
    let (frames, err) = collect(tts.synthesize("Hello.")).await;
    let err = err.expect("an error");
    assert!(frames.is_empty());
    assert!(
        err.retryable && err.message.contains("cannot connect"),
        "{err}"
    );
}

#[tokio::test]
async fn a_wrong_key_is_fatal_and_its_echo_is_scrubbed() {
    let fake = fake_openai_audio::start().await;
    let wrong = "sk-test-wrongkey-4242";
    let tts = OpenAiTts::new(config(&fake.base_url(), wrong), TIMEOUT);
    let (_, err) = collect(tts.synthesize("Hello.")).await;
    let err = err.expect("an error");
    assert!(!err.retryable, "{err}");
    assert!(
        err.message.contains("401") && err.message.contains("Incorrect API key provided"),
        "{err}"
    );
    // The fake echoes a masked key the way OpenAI does; none of it survives.
    assert!(
        !err.message.contains("****") && !err.message.contains("cdef"),
        "{err}"
    );
    assert!(!format!("{err:?} {tts:?}").contains(wrong));
}

#[tokio::test]
async fn too_many_requests_is_retryable_after_the_given_wait() {
    let (_, err) = failing(Failure::Status {
        code: 429,
        retry_after: Some("7".into()),
    })
    .await;
    assert!(err.retryable, "{err}");
    assert_eq!(err.retry_after, Some(Duration::from_secs(7)));
    assert!(err.message.contains("Rate limit reached"), "{err}");
}

#[tokio::test]
async fn a_server_error_is_retryable() {
    let (_, err) = failing(Failure::Status {
        code: 503,
        retry_after: None,
    })
    .await;
    assert!(err.retryable && err.message.contains("503"), "{err}");
}

#[tokio::test]
async fn a_body_cut_mid_way_errors_after_the_frames_delivered() {
    // 12 012 bytes are 6006 samples at 24 kHz: about 4000 at 16 kHz.
    let (frames, err) = failing(Failure::CutAfter(12_012)).await;
    assert_eq!(frames.len(), 12, "whole frames before the cut");
    assert!(err.retryable && err.message.contains("cut off"), "{err}");
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let started = Instant::now();
    let (frames, err) = failing(Failure::Stall).await;
    let waited = started.elapsed();
    assert!(frames.is_empty());
    assert!(
        err.retryable && err.message.contains("no response"),
        "{err}"
    );
    assert!(waited >= TIMEOUT && waited < TIMEOUT * 5, "{waited:?}");
}

#[tokio::test]
async fn a_body_that_stalls_times_out_after_its_frames() {
    let (frames, err) = failing(Failure::StallAfter(6006)).await;
    assert_eq!(frames.len(), 6);
    assert!(err.retryable && err.message.contains("stalled"), "{err}");
}
