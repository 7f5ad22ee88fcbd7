//! The offline engines against real audio: the converted Whisper model loads
//! in whisper.cpp, recognises the recorded caller utterances (8 kHz μ-law, as
//! a phone line carries them) within the word-error budget, the streaming
//! adapter reports each utterance, and flite's speech survives the phone
//! chain well enough for Whisper to understand it.
//!
//! The model is the server's own path (`models/ggml-tiny.en.bin` under the
//! crate root), fetched and converted on first use and cached between runs.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use switchboard::audio::{Frame, FRAME_SAMPLES};
use switchboard::models;
use switchboard::providers::stt::offline::{OfflineStt, WhisperEngine};
use switchboard::providers::tts::offline::OfflineTts;
use switchboard::providers::{SttEvent, SttProvider, TtsProvider};

fn crate_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Fetches (or finds) the model once per test binary; `fetch` itself is
/// safe against other processes doing the same (atomic rename).
fn model_path() -> &'static Path {
    static MODEL: OnceLock<PathBuf> = OnceLock::new();
    MODEL.get_or_init(|| {
        let target = crate_root().join("models/ggml-tiny.en.bin");
        let started = Instant::now();
        let path = models::fetch(&target).unwrap_or_else(|e| panic!("model fetch failed: {e}"));
        eprintln!("model ready in {:?}", started.elapsed());
        path
    })
}

fn engine() -> Arc<WhisperEngine> {
    static ENGINE: OnceLock<Arc<WhisperEngine>> = OnceLock::new();
    ENGINE
        .get_or_init(|| Arc::new(WhisperEngine::load(model_path(), 2).expect("model loads")))
        .clone()
}

#[test]
fn converted_model_loads_in_whisper_cpp_with_tiny_en_shape() {
    let path = model_path();
    let bytes = std::fs::read(path).expect("read model");
    let word = |i: usize| {
        i32::from_le_bytes([
            bytes[4 * i],
            bytes[4 * i + 1],
            bytes[4 * i + 2],
            bytes[4 * i + 3],
        ])
    };
    assert_eq!(word(0) as u32, 0x6767_6d6c, "ggml magic");
    // n_vocab, audio ctx/state/head/layer, text ctx/state/head/layer, mels, ftype.
    let hparams: Vec<i32> = (1..=11).map(word).collect();
    assert_eq!(hparams, vec![51864, 1500, 384, 6, 4, 448, 384, 6, 4, 80, 1]);
    assert_eq!((word(12), word(13)), (80, 201), "mel filter bank shape");
    WhisperEngine::load(path, 1).expect("whisper.cpp loads the converted model");
    // A second fetch finds the file in place and leaves it alone.
    let before = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .expect("mtime");
    models::fetch(path).expect("idempotent fetch");
    let after = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .expect("mtime");
    assert_eq!(before, after);
}

#[test]
fn fixture_utterances_are_recognised_within_15_percent_wer() {
    let engine = engine();
    let (mut edits, mut words) = (0, 0);
    for (file, text) in fixtures() {
        let pcm =
            phone::load_ulaw_wav_as_16k(&crate_root().join("fixtures/utterances").join(&file));
        let started = Instant::now();
        let heard = engine.transcribe(&pcm).expect("transcribes");
        let (e, n) = wer::edits(&text, &heard.text);
        eprintln!(
            "{file}: {:.0} ms, conf {:.2}, {e}/{n} errors: {:?}",
            started.elapsed().as_secs_f64() * 1000.0,
            heard.confidence,
            heard.text
        );
        assert!(heard.confidence > 0.0 && heard.confidence <= 1.0);
        edits += e;
        words += n;
    }
    let rate = edits as f64 / words as f64;
    eprintln!("overall WER {:.1} % ({edits}/{words})", rate * 100.0);
    assert!(rate <= 0.15, "WER {:.1} %", rate * 100.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_adapter_reports_each_utterance_in_order() {
    let stt = OfflineStt::new(engine());
    let mut stream = stt.open().expect("open");
    let chosen = [fixtures().remove(1), fixtures().remove(8)];
    let mut pcm = vec![0i16; 8000];
    for (file, _) in &chosen {
        pcm.extend(phone::load_ulaw_wav_as_16k(
            &crate_root().join("fixtures/utterances").join(file),
        ));
        pcm.extend(std::iter::repeat_n(0i16, 16000));
    }
    let audio = stream.audio;
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
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while let Ok(Some(ev)) = tokio::time::timeout_at(deadline, stream.events.recv()).await {
        events.push(ev);
    }
    feeder.await.expect("feeder");
    let kinds: Vec<&str> = events.iter().map(kind).collect();
    assert_eq!(
        kinds,
        ["started", "final", "end", "started", "final", "end"],
        "{events:?}"
    );
    for (i, (_, text)) in chosen.iter().enumerate() {
        let SttEvent::Final {
            text: heard,
            confidence,
            end_of_turn,
        } = &events[3 * i + 1]
        else {
            unreachable!("checked above");
        };
        let (e, n) = wer::edits(text, heard);
        assert!(e * 4 <= n, "{heard:?} vs {text:?}");
        assert!(*end_of_turn && *confidence > 0.0);
    }
}

fn kind(ev: &SttEvent) -> &'static str {
    match ev {
        SttEvent::SpeechStarted => "started",
        SttEvent::Interim { .. } => "interim",
        SttEvent::Final { .. } => "final",
        SttEvent::UtteranceEnd => "end",
        SttEvent::Error(_) => "error",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flite_speech_survives_the_phone_chain_into_whisper() {
    let sentence = "Your plumber will arrive tomorrow morning between nine and eleven.";
    let started = Instant::now();
    let mut rx = OfflineTts::new().synthesize(sentence);
    let mut pcm = Vec::new();
    let mut first_audio = None;
    while let Some(frame) = rx.recv().await {
        first_audio.get_or_insert_with(|| started.elapsed());
        pcm.extend_from_slice(&frame.expect("synthesis").0);
    }
    let first_audio = first_audio.expect("some audio");
    eprintln!(
        "TTS: first audio after {first_audio:?}, {} s of speech",
        pcm.len() / 16000
    );
    assert!(pcm.len() > 16000 * 2, "too short");
    let phone = phone::through_phone_chain(&pcm);
    let heard = engine().transcribe_async(phone).await.expect("transcribes");
    let (e, n) = wer::edits(sentence, &heard.text);
    eprintln!("round trip: {:?} ({e}/{n})", heard.text);
    assert!(e as f64 <= 0.2 * n as f64, "{:?}", heard.text);
}

fn fixtures() -> Vec<(String, String)> {
    let tsv = std::fs::read_to_string(crate_root().join("fixtures/utterances/transcripts.tsv"))
        .expect("transcripts.tsv");
    tsv.lines()
        .skip(1)
        .filter_map(|line| {
            let mut cols = line.split('\t');
            Some((cols.next()?.to_string(), cols.nth(1)?.to_string()))
        })
        .collect()
}

/// Word error rate: lower-case, punctuation stripped, numbers spelled out.
mod wer {
    /// (substitutions + insertions + deletions, reference words).
    pub fn edits(reference: &str, hypothesis: &str) -> (usize, usize) {
        let r = normalise(reference);
        let h = normalise(hypothesis);
        let mut row: Vec<usize> = (0..=h.len()).collect();
        for (i, rw) in r.iter().enumerate() {
            let mut prev_diag = row[0];
            row[0] = i + 1;
            for (j, hw) in h.iter().enumerate() {
                let cost = usize::from(rw != hw);
                let next = (prev_diag + cost).min(row[j] + 1).min(row[j + 1] + 1);
                prev_diag = row[j + 1];
                row[j + 1] = next;
            }
        }
        (row[h.len()], r.len())
    }

    pub fn normalise(text: &str) -> Vec<String> {
        let spaced: String = text
            .to_lowercase()
            .chars()
            .map(|c| {
                if c.is_alphanumeric() || c == '\'' {
                    c
                } else {
                    ' '
                }
            })
            .filter(|c| *c != '\'')
            .collect();
        spaced
            .split_whitespace()
            .flat_map(|w| match w.parse::<u32>() {
                Ok(n) if n < 10_000 => spell(n),
                _ => vec![w.to_string()],
            })
            .collect()
    }

    fn spell(n: u32) -> Vec<String> {
        const ONES: [&str; 20] = [
            "zero",
            "one",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "eleven",
            "twelve",
            "thirteen",
            "fourteen",
            "fifteen",
            "sixteen",
            "seventeen",
            "eighteen",
            "nineteen",
        ];
        const TENS: [&str; 10] = [
            "", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
        ];
        let mut out = Vec::new();
        let (thousands, rest) = (n / 1000, n % 1000);
        if thousands > 0 {
            out.extend(spell(thousands));
            out.push("thousand".into());
        }
        let (hundreds, rest) = (rest / 100, rest % 100);
        if hundreds > 0 {
            out.push(ONES[hundreds as usize].into());
            out.push("hundred".into());
        }
        if rest >= 20 {
            out.push(TENS[(rest / 10) as usize].into());
            if rest % 10 > 0 {
                out.push(ONES[(rest % 10) as usize].into());
            }
        } else if rest > 0 || out.is_empty() {
            out.push(ONES[rest as usize].into());
        }
        out
    }

    #[test]
    fn counts_edits_after_normalising() {
        assert_eq!(
            edits("I live at 42 Oak Street.", "I live at forty-two Oak street"),
            (0, 6)
        );
        assert_eq!(edits("a b c d", "a x c"), (2, 4));
        assert_eq!(
            edits("Tomorrow at 3:30", "tomorrow at three thirty"),
            (0, 4)
        );
        assert_eq!(edits("one", ""), (1, 1));
        assert_eq!(
            normalise("It's 1205"),
            vec!["its", "one", "thousand", "two", "hundred", "five"]
        );
    }
}

/// Minimal phone-line helpers for these tests: WAV μ-law reading, G.711
/// μ-law, and 2× resampling with a windowed-sinc low-pass.
mod phone {
    use std::path::Path;

    pub fn load_ulaw_wav_as_16k(path: &Path) -> Vec<i16> {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(&bytes[0..4], b"RIFF");
        assert_eq!(&bytes[8..12], b"WAVE");
        let mut pos = 12;
        let mut format = None;
        while pos + 8 <= bytes.len() {
            let id = &bytes[pos..pos + 4];
            let len = u32::from_le_bytes([
                bytes[pos + 4],
                bytes[pos + 5],
                bytes[pos + 6],
                bytes[pos + 7],
            ]) as usize;
            let body = &bytes[pos + 8..(pos + 8 + len).min(bytes.len())];
            if id == b"fmt " {
                let tag = u16::from_le_bytes([body[0], body[1]]);
                let rate = u32::from_le_bytes([body[4], body[5], body[6], body[7]]);
                format = Some((tag, rate));
            } else if id == b"data" {
                assert_eq!(
                    format,
                    Some((7, 8000)),
                    "{}: expected 8 kHz μ-law",
                    path.display()
                );
                let pcm8: Vec<i16> = body.iter().map(|b| ulaw_decode(*b)).collect();
                return upsample_2x(&pcm8);
            }
            pos += 8 + len + (len & 1);
        }
        panic!("{}: no data chunk", path.display());
    }

    /// 16 kHz → low-pass, 8 kHz → μ-law → 8 kHz → 16 kHz.
    pub fn through_phone_chain(pcm16: &[i16]) -> Vec<i16> {
        let filtered = lowpass(pcm16);
        let narrow: Vec<i16> = filtered
            .iter()
            .step_by(2)
            .map(|s| ulaw_decode(ulaw_encode(*s)))
            .collect();
        upsample_2x(&narrow)
    }

    fn ulaw_decode(b: u8) -> i16 {
        let u = !b;
        let t = ((i32::from(u & 0x0f) << 3) + 0x84) << ((u & 0x70) >> 4);
        (if u & 0x80 != 0 { 0x84 - t } else { t - 0x84 }) as i16
    }

    fn ulaw_encode(s: i16) -> u8 {
        let sign = if s < 0 { 0x80 } else { 0 };
        let mag = (i32::from(s).abs().min(32635) + 0x84) as u32;
        let exp = (31 - mag.leading_zeros()).saturating_sub(7).min(7);
        let mantissa = (mag >> (exp + 3)) & 0x0f;
        !(sign | ((exp as u8) << 4) | mantissa as u8)
    }

    /// Windowed-sinc low-pass at a quarter of the sample rate (Hann, 63 taps).
    fn taps() -> Vec<f64> {
        let n = 63;
        let mid = (n / 2) as f64;
        (0..n)
            .map(|i| {
                let x = i as f64 - mid;
                let sinc = if x == 0.0 {
                    0.5
                } else {
                    (std::f64::consts::PI * x * 0.5).sin() / (std::f64::consts::PI * x)
                };
                let hann =
                    0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / (n - 1) as f64).cos();
                sinc * hann
            })
            .collect()
    }

    fn lowpass(x: &[i16]) -> Vec<i16> {
        convolve(x, &taps(), 1.0)
    }

    fn upsample_2x(x: &[i16]) -> Vec<i16> {
        let mut stuffed = vec![0i16; x.len() * 2];
        for (i, s) in x.iter().enumerate() {
            stuffed[2 * i] = *s;
        }
        convolve(&stuffed, &taps(), 2.0)
    }

    fn convolve(x: &[i16], h: &[f64], gain: f64) -> Vec<i16> {
        let half = h.len() / 2;
        (0..x.len())
            .map(|i| {
                let acc: f64 = h
                    .iter()
                    .enumerate()
                    .filter_map(|(k, c)| {
                        (i + k)
                            .checked_sub(half)
                            .and_then(|j| x.get(j))
                            .map(|s| c * f64::from(*s))
                    })
                    .sum();
                (acc * gain).round().clamp(-32768.0, 32767.0) as i16
            })
            .collect()
    }

    #[test]
    fn ulaw_round_trips_within_quantisation() {
        for s in [-32000i16, -1000, -1, 0, 1, 100, 1000, 32000] {
            let back = ulaw_decode(ulaw_encode(s));
            assert!(
                (i32::from(back) - i32::from(s)).abs() <= (i32::from(s).abs() / 16).max(8),
                "{s} -> {back}"
            );
        }
        assert_eq!(ulaw_encode(0), 0xff);
    }
}
