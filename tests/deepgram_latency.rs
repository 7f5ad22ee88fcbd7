//! What the Deepgram clients add to time-to-first-audio and to recognition
//! latency, measured over loopback against the fake (so the figures also
//! include the fake and the loopback round trip: upper bounds). Ignored by
//! default; run with
//! `cargo test --release --test deepgram_latency -- --ignored --nocapture`.

#[path = "support/fake_deepgram.rs"]
mod fake_deepgram;

use std::time::{Duration, Instant};

use fake_deepgram::marked_frame;
use switchboard::providers::stt::deepgram::DeepgramStt;
use switchboard::providers::tts::deepgram::DeepgramTts;
use switchboard::providers::{SttEvent, SttProvider, TtsProvider};

const RUNS: usize = 50;
const LIMIT: Duration = Duration::from_secs(10);

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let i = ((samples.len() - 1) as f64 * p).round() as usize;
    samples[i]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; run explicitly"]
async fn tts_time_to_first_frame() {
    let fake = fake_deepgram::start().await;
    fake.set_speak_audio(vec![0xFF; 8000], 480);
    let tts = DeepgramTts::new(fake.config(), Duration::from_secs(2));
    let mut samples = Vec::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        let mut rx = tts.synthesize("Thanks, a plumber will call you back shortly.");
        let first = tokio::time::timeout(LIMIT, rx.recv()).await.unwrap();
        samples.push(started.elapsed());
        assert!(matches!(first, Some(Ok(_))), "{first:?}");
        while rx.recv().await.is_some() {}
    }
    let p50 = percentile(&mut samples, 0.5);
    let p95 = percentile(&mut samples, 0.95);
    println!("Deepgram TTS request → first frame over loopback: p50 {p50:?}, p95 {p95:?}");
    assert!(p50 < Duration::from_millis(100), "p50 {p50:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; run explicitly"]
async fn stt_frame_to_interim() {
    let fake = fake_deepgram::start().await;
    fake.set_final_every(1_000);
    let stt = DeepgramStt::new(fake.config(), Duration::from_secs(2));
    let mut stream = stt.open().unwrap();
    let mut samples = Vec::new();
    for m in 0..RUNS as u16 {
        let started = Instant::now();
        stream.audio.send(marked_frame(m)).await.unwrap();
        loop {
            let ev = tokio::time::timeout(LIMIT, stream.events.recv())
                .await
                .unwrap()
                .expect("stream open");
            if matches!(ev, SttEvent::Interim { .. }) {
                break;
            }
        }
        samples.push(started.elapsed());
    }
    let p50 = percentile(&mut samples, 0.5);
    let p95 = percentile(&mut samples, 0.95);
    println!(
        "Deepgram STT frame sent → its interim result over loopback: p50 {p50:?}, p95 {p95:?}"
    );
    assert!(p50 < Duration::from_millis(100), "p50 {p50:?}");
}
