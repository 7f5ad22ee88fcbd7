//! baresip (a real softphone) calls the SIP server on loopback with a WAV as
//! its microphone and records what it hears (the sndfile module). In the
//! first test an in-test answerer stands in for the session: it plays a tone
//! and measures the caller audio that arrives. In the second the whole server
//! (session, Whisper, flite, rules) answers: baresip hears the greeting and
//! the call's transcript holds what baresip said.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use switchboard::audio::{wav, Frame, FRAME_SAMPLES};
use switchboard::config::{Config, Secret};
use switchboard::domain::Speaker;
use switchboard::events::Event;
use switchboard::session::{AdmittedLeg, Registry};
use switchboard::transport::sip::server::SipServer;
use switchboard::transport::{CallLeg, TransportCommand, TransportEvent};
use tokio::net::UdpSocket;
use tokio::sync::{broadcast, mpsc, oneshot};

fn tone(i: usize) -> Frame {
    let mut f = Frame::SILENCE;
    for (n, s) in f.0.iter_mut().enumerate() {
        let t = (i * FRAME_SAMPLES + n) as f32 / 16_000.0;
        *s = (8000.0 * (2.0 * std::f32::consts::PI * 500.0 * t).sin()) as i16;
    }
    f
}

fn rms(samples: &[i16]) -> f64 {
    (samples.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / samples.len().max(1) as f64)
        .sqrt()
}

/// Plays three seconds of tone; returns how many caller frames carried sound.
async fn answer(mut leg: CallLeg) -> usize {
    for i in 0..150 {
        let _ = leg.commands.send(TransportCommand::Play(tone(i))).await;
    }
    let mut loud = 0;
    while let Some(ev) = leg.events.recv().await {
        match ev {
            TransportEvent::Audio(f) if rms(&f.0) > 300.0 => loud += 1,
            TransportEvent::Hangup(_) => break,
            _ => {}
        }
    }
    loud
}

#[tokio::test]
async fn baresip_hears_us_and_we_hear_baresip() {
    let mut sip = Config::defaults().sip;
    sip.ring = Duration::from_millis(100);
    sip.rtp_ports = 39500..=39599;
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let (calls_tx, mut calls_rx) = mpsc::channel::<AdmittedLeg>(4);
    let (_stop, stopped) = oneshot::channel::<()>();
    let server = SipServer {
        config: sip,
        registry: Registry::new(4),
        calls: calls_tx,
        agent_uri: None,
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
    let answered =
        tokio::spawn(
            async move { answer(calls_rx.recv().await.expect("a call arrives").leg).await },
        );

    let dir = tempfile::tempdir().unwrap();
    let mic = mic_wav(dir.path(), "fixtures/audio/speech_slt.wav", 0, 0);
    let log = baresip_call(dir.path(), &mic, addr, 8).await;

    let loud = tokio::time::timeout(Duration::from_secs(20), answered)
        .await
        .expect("the call ends")
        .unwrap();
    assert!(
        loud >= 50,
        "we heard only {loud} frames of baresip's speech\n{log}"
    );

    let (files, best) = loudest_recording(dir.path());
    assert!(files > 0, "baresip recorded nothing\n{log}");
    assert!(
        best >= 50,
        "baresip heard only {best} loud 20 ms chunks of our tone ({files} files)\n{log}"
    );
}

/// baresip's microphone: `fixture` as 8 kHz 16-bit PCM (all aufile reads),
/// after `lead_ms` of silence and followed by `tail_ms` of it.
fn mic_wav(dir: &Path, fixture: &str, lead_ms: usize, tail_ms: usize) -> PathBuf {
    let speech = wav::read_wav_16k(&Path::new(env!("CARGO_MANIFEST_DIR")).join(fixture)).unwrap();
    let mut narrow = vec![0i16; lead_ms * 8];
    narrow.extend(switchboard::audio::resample::resample(&speech, 16_000, 8_000).unwrap());
    narrow.extend(std::iter::repeat_n(0i16, tail_ms * 8));
    let mic = dir.join("mic.wav");
    wav::write_wav(&mic, &narrow, 8_000).unwrap();
    mic
}

/// baresip dials `target` with `mic` as its microphone, records what it hears
/// into `dir` (sndfile), and hangs up after `seconds`; returns its output.
async fn baresip_call(dir: &Path, mic: &Path, target: SocketAddr, seconds: u32) -> String {
    let free = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let phone_port = free.local_addr().unwrap().port();
    drop(free);
    let config = format!(
        "poll_method epoll\nsip_listen 127.0.0.1:{phone_port}\nsip_transports udp\naudio_source aufile,{}\naudio_player aufile,{}/unused.wav\n\
audio_alert aufile,{}/alert.wav\nsnd_path {}\nmodule_path /usr/lib/baresip/modules\nmodule g711.so\nmodule aufile.so\nmodule sndfile.so\nmodule menu.so\nmodule account.so\n",
        mic.display(),
        dir.display(),
        dir.display(),
        dir.display()
    );
    std::fs::write(dir.join("config"), config).unwrap();
    std::fs::write(
        dir.join("accounts"),
        "<sip:caller@127.0.0.1>;regint=0;audio_codecs=PCMU\n",
    )
    .unwrap();
    let out = tokio::process::Command::new("baresip")
        .args([
            "-f",
            dir.to_str().unwrap(),
            "-t",
            &seconds.to_string(),
            "-e",
            &format!("/dial sip:switchboard@{target}"),
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("baresip runs (Debian package baresip)");
    String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
}

/// sndfile writes one WAV per direction; returns how many there are and the
/// most loud 20 ms chunks any of them holds (the decoded far end).
fn loudest_recording(dir: &Path) -> (usize, usize) {
    let recordings: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == "wav")
                && p.file_name().unwrap().to_string_lossy().starts_with("dump")
        })
        .collect();
    let best = recordings
        .iter()
        .filter_map(|p| wav::read_wav_16k(p).ok())
        .map(|audio| audio.chunks(320).filter(|c| rms(c) > 1000.0).count())
        .max()
        .unwrap_or(0);
    (recordings.len(), best)
}

/// The whole server answers baresip: the recording holds our greeting and the
/// transcript in the database holds baresip's sentence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baresip_speech_reaches_the_transcript() {
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
    config.database_url = Secret::new(format!("sqlite://{}", dir.path().join("b.db").display()));
    config.stt.whisper_model = model;
    let sip: SocketAddr = {
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    };
    config.sip.addr = Some(sip);
    config.sip.rtp_ports = 39600..=39699;
    config.sip.ring = Duration::from_millis(100);
    let store = switchboard::open_store(&config).await.unwrap();
    let mut events = store.bus().subscribe();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(switchboard::serve(
        config,
        store.clone(),
        listener,
        async move {
            let _ = stopped.await;
        },
    ));

    // baresip waits out the greeting, says its sentence, then stays quiet
    // long enough for Whisper to finish before it hangs up.
    let phone = tempfile::tempdir().unwrap();
    let mic = mic_wav(
        phone.path(),
        "fixtures/utterances/10_lock.wav",
        6000,
        40_000,
    );
    let log = baresip_call(phone.path(), &mic, sip, 35).await;

    let call_id = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match events.recv().await {
                Ok(Event::CallEnded { call_id, .. }) => break call_id,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("event bus closed: {e}"),
            }
        }
    })
    .await
    .expect("the call ends");
    let transcript = store.transcript(call_id).await.unwrap();
    let caller: Vec<&str> = transcript
        .iter()
        .filter(|t| t.speaker == Speaker::Caller)
        .map(|t| t.text.as_str())
        .collect();
    assert!(
        caller
            .iter()
            .any(|t| t.to_lowercase().contains("door lock is broken")),
        "baresip said \"The front door lock is broken.\"; the transcript has {caller:?}\n{log}"
    );
    let greeting = transcript
        .iter()
        .find(|t| t.speaker == Speaker::Agent)
        .expect("the agent spoke");
    assert!(greeting.text.contains("How can I help"), "{transcript:?}");
    let (files, best) = loudest_recording(phone.path());
    // The greeting alone is several seconds of speech.
    assert!(
        best >= 50,
        "baresip heard only {best} loud 20 ms chunks of our voice ({files} files)\n{log}"
    );

    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
