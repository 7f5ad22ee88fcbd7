//! OpenAI-compatible transcription made streaming, against a fake
//! `/v1/audio/transcriptions` that checks the multipart request and answers
//! with text derived from the audio it received. Four recorded sentences go
//! in; each must be sent once, in order, as the exact audio of its sentence,
//! and come back as SpeechStarted / Final / UtteranceEnd. Every documented
//! failure ends the stream with one `Error` of the right kind.

#[path = "support/fake_openai_audio.rs"]
mod fake_openai_audio;

use std::path::Path;
use std::time::{Duration, Instant};

use fake_openai_audio::{Failure, FakeOpenAiAudio, API_KEY};
use switchboard::audio::wav::read_wav_16k;
use switchboard::audio::{Frame, FRAME_SAMPLES};
use switchboard::config::{Secret, TranscribeConfig};
use switchboard::providers::stt::transcribe::TranscribeStt;
use switchboard::providers::{ProviderError, SttEvent, SttProvider};
use url::Url;

const TIMEOUT: Duration = Duration::from_millis(400);
const PATIENCE: Duration = Duration::from_secs(20);

fn fixture() -> (Vec<i16>, Vec<(f64, f64)>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/audio");
    let pcm = read_wav_16k(&dir.join("speech_slt.wav")).expect("fixture");
    let labels = std::fs::read_to_string(dir.join("speech_slt.labels")).expect("labels");
    let spans = labels
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace().map(|v| v.parse::<f64>().ok());
            Some((it.next()??, it.next()??))
        })
        .collect();
    (pcm, spans)
}

/// The first sentence (it ends at 4.7 s) with the silence after it.
fn first_sentence() -> Vec<i16> {
    fixture().0[..16_000 * 11 / 2].to_vec()
}

fn config(base: &str, key: &str, model: &str) -> TranscribeConfig {
    TranscribeConfig {
        api_key: Some(Secret::new(key)),
        base_url: Url::parse(base).unwrap(),
        model: model.into(),
        language: "en".into(),
    }
}

fn stt(fake: &FakeOpenAiAudio, model: &str) -> TranscribeStt {
    TranscribeStt::new(config(&fake.base_url(), API_KEY, model), TIMEOUT)
}

/// Feeds `pcm` as frames, ends the audio, and returns every event until the
/// stream closes.
async fn run(stt: &TranscribeStt, pcm: &[i16]) -> Vec<SttEvent> {
    let mut stream = stt.open().expect("open");
    let audio = stream.audio;
    let pcm = pcm.to_vec();
    let feeder = tokio::spawn(async move {
        for chunk in pcm.chunks(FRAME_SAMPLES) {
            let mut frame = Frame::SILENCE;
            frame.0[..chunk.len()].copy_from_slice(chunk);
            if audio.send(frame).await.is_err() {
                break;
            }
        }
    });
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match tokio::time::timeout_at(deadline, stream.events.recv()).await {
            Ok(Some(ev)) => events.push(ev),
            Ok(None) => break,
            Err(_) => panic!("stream still open after {PATIENCE:?}: {events:?}"),
        }
    }
    feeder.await.expect("feeder");
    events
}

/// The single error a failed stream ends with, after its speech start.
fn the_error(events: &[SttEvent]) -> ProviderError {
    match events {
        [SttEvent::SpeechStarted, SttEvent::Error(e)] => {
            assert_eq!(e.engine, "transcribe");
            assert!(!e.message.contains(API_KEY), "{e}");
            e.clone()
        }
        other => panic!("expected a start then one error: {other:?}"),
    }
}

async fn failing(failure: Failure) -> (FakeOpenAiAudio, ProviderError) {
    let fake = fake_openai_audio::start().await;
    fake.set_failure(failure);
    let events = run(&stt(&fake, "whisper-large-v3"), &first_sentence()).await;
    (fake, the_error(&events))
}

/// Where `part` sits in `whole` at a frame boundary, if it is an exact copy.
fn frame_aligned_offset(whole: &[i16], part: &[i16]) -> Option<usize> {
    (0..whole.len().saturating_sub(part.len()) + 1)
        .step_by(FRAME_SAMPLES)
        .find(|&at| &whole[at..at + part.len()] == part)
}

#[tokio::test]
async fn each_sentence_is_sent_once_in_order_and_reported() {
    let fake = fake_openai_audio::start().await;
    let (pcm, spans) = fixture();
    let events = run(&stt(&fake, "whisper-large-v3"), &pcm).await;
    assert_eq!(fake.problems(), Vec::<String>::new());
    let sent = fake.transcriptions();
    assert_eq!(sent.len(), 4, "{events:?}");
    for (i, (req, (start, end))) in sent.iter().zip(&spans).enumerate() {
        assert_eq!(
            req.fields,
            [
                "file",
                "model",
                "response_format",
                "temperature",
                "language"
            ]
        );
        assert_eq!(req.model, "whisper-large-v3");
        assert_eq!(req.response_format, "verbose_json");
        assert!(req.include.is_empty());
        // The upload is this sentence's audio, untouched, with a little
        // silence before and after.
        let at = frame_aligned_offset(&pcm, &req.pcm).expect("an exact slice of the input");
        let (from, to) = (at as f64 / 16_000.0, (at + req.pcm.len()) as f64 / 16_000.0);
        assert!(
            from <= *start && from > start - 0.8,
            "utterance {i} from {from} s, label {start}"
        );
        assert!(
            to >= *end && to < end + 0.8,
            "utterance {i} to {to} s, label {end}"
        );
    }
    let confidence = (-0.2f32).exp();
    let mut expected = Vec::new();
    for (i, req) in sent.iter().enumerate() {
        expected.push(SttEvent::Final {
            text: format!("utterance {}: {} samples", i + 1, req.pcm.len()),
            confidence,
            end_of_turn: true,
        });
        expected.push(SttEvent::UtteranceEnd);
    }
    let results: Vec<SttEvent> = events
        .iter()
        .filter(|e| **e != SttEvent::SpeechStarted)
        .cloned()
        .collect();
    assert_eq!(results, expected);
    let starts = events
        .iter()
        .filter(|e| **e == SttEvent::SpeechStarted)
        .count();
    assert_eq!(starts, 4);
    assert_eq!(events[0], SttEvent::SpeechStarted);
}

#[tokio::test]
async fn gpt_4o_models_get_json_with_logprobs() {
    let fake = fake_openai_audio::start().await;
    let events = run(&stt(&fake, "gpt-4o-mini-transcribe"), &first_sentence()).await;
    assert_eq!(fake.problems(), Vec::<String>::new());
    let sent = fake.transcriptions();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].response_format, "json");
    assert_eq!(sent[0].include, ["logprobs"]);
    let confidence = ((-0.1f32).exp() + (-0.3f32).exp()) / 2.0;
    let text = format!("utterance 1: {} samples", sent[0].pcm.len());
    assert_eq!(
        events,
        [
            SttEvent::SpeechStarted,
            SttEvent::Final {
                text,
                confidence,
                end_of_turn: true
            },
            SttEvent::UtteranceEnd
        ]
    );
}

#[tokio::test]
async fn other_models_get_plain_json() {
    let fake = fake_openai_audio::start().await;
    let events = run(&stt(&fake, "parakeet-tdt-0.6b"), &first_sentence()).await;
    assert_eq!(fake.problems(), Vec::<String>::new());
    let sent = fake.transcriptions();
    assert_eq!(
        (sent[0].response_format.as_str(), sent[0].include.len()),
        ("json", 0)
    );
    assert!(
        matches!(&events[1], SttEvent::Final { confidence, .. } if *confidence == 1.0),
        "{events:?}"
    );
}

#[tokio::test]
async fn silence_sends_nothing() {
    let fake = fake_openai_audio::start().await;
    let events = run(&stt(&fake, "whisper-large-v3"), &vec![0i16; 16_000 * 3]).await;
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(fake.hits(), 0);
}

#[tokio::test]
async fn a_refused_connection_is_retryable() {
    let base = fake_openai_audio::refused_base_url().await;
    let stt = TranscribeStt::new(config(&base, API_KEY, "whisper-1"), TIMEOUT);
    let err = the_error(&run(&stt, &first_sentence()).await);
    assert!(
        err.retryable && err.message.contains("cannot connect"),
        "{err}"
    );
}

#[tokio::test]
async fn a_wrong_key_is_fatal_and_never_shown() {
    let fake = fake_openai_audio::start().await;
    let wrong = "sk-test-wrongkey-31337";
    let stt = TranscribeStt::new(config(&fake.base_url(), wrong, "whisper-1"), TIMEOUT);
    let err = the_error(&run(&stt, &first_sentence()).await);
    assert!(
        !err.retryable && err.message.contains("Incorrect API key provided"),
        "{err}"
    );
    assert!(!err.message.contains("****"), "{err}");
    assert!(!format!("{err:?} {stt:?}").contains(wrong));
}

#[tokio::test]
async fn too_many_requests_is_retryable_after_the_given_wait() {
    let (_, err) = failing(Failure::Status {
        code: 429,
        retry_after: Some("7".into()),
    })
    .await;
    assert!(err.retryable && err.message.contains("429"), "{err}");
    assert_eq!(err.retry_after, Some(Duration::from_secs(7)));
}

#[tokio::test]
async fn a_server_error_is_retryable_and_ends_the_stream() {
    let fake = fake_openai_audio::start().await;
    fake.set_failure(Failure::Status {
        code: 500,
        retry_after: None,
    });
    // All four sentences: after the first failure nothing more is sent.
    let events = run(&stt(&fake, "whisper-large-v3"), &fixture().0).await;
    // Audio is fed faster than real time, so later speech starts may come
    // before the failure; the error is the last event and the only other kind.
    let (last, before) = events.split_last().expect("events");
    assert!(
        before.iter().all(|e| *e == SttEvent::SpeechStarted),
        "{events:?}"
    );
    let SttEvent::Error(err) = last else {
        panic!("the stream did not end with an error: {events:?}")
    };
    assert!(err.retryable && err.message.contains("500"), "{err}");
    assert_eq!(fake.hits(), 1);
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let started = Instant::now();
    let (_, err) = failing(Failure::Stall).await;
    let waited = started.elapsed();
    assert!(
        err.retryable && err.message.contains("no response within 400 ms"),
        "{err}"
    );
    assert!(waited >= TIMEOUT, "{waited:?}");
}

#[tokio::test]
async fn a_malformed_reply_is_fatal() {
    let (fake, err) = failing(Failure::Malformed).await;
    assert!(
        !err.retryable && err.message.contains("not a transcription"),
        "{err}"
    );
    assert_eq!(
        fake.transcriptions().len(),
        1,
        "the request itself was valid"
    );
}
