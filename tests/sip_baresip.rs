//! baresip (a real softphone) calls the SIP server on loopback with a WAV as
//! its microphone and records what it hears (the sndfile module). An in-test
//! answerer stands in for the session: it plays a tone and measures the
//! caller audio that arrives.

use std::path::Path;
use std::time::Duration;

use switchboard::audio::{wav, Frame, FRAME_SAMPLES};
use switchboard::config::Config;
use switchboard::session::{AdmittedLeg, Registry};
use switchboard::transport::sip::server::SipServer;
use switchboard::transport::{CallLeg, TransportCommand, TransportEvent};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

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
    let free = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let phone_port = free.local_addr().unwrap().port();
    drop(free);
    // baresip's aufile reads 16-bit PCM at 8 kHz only: convert the μ-law fixture.
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/audio/speech_slt.wav");
    let mic = dir.path().join("mic.wav");
    let narrow = switchboard::audio::resample::resample(
        &wav::read_wav_16k(&fixture).unwrap(),
        16_000,
        8_000,
    )
    .unwrap();
    wav::write_wav(&mic, &narrow, 8_000).unwrap();
    let config = format!(
        "poll_method epoll\nsip_listen 127.0.0.1:{phone_port}\nsip_transports udp\naudio_source aufile,{}\naudio_player aufile,{}/unused.wav\n\
audio_alert aufile,{}/alert.wav\nsnd_path {}\nmodule_path /usr/lib/baresip/modules\nmodule g711.so\nmodule aufile.so\nmodule sndfile.so\nmodule menu.so\nmodule account.so\n",
        mic.display(),
        dir.path().display(),
        dir.path().display(),
        dir.path().display()
    );
    std::fs::write(dir.path().join("config"), config).unwrap();
    std::fs::write(
        dir.path().join("accounts"),
        "<sip:caller@127.0.0.1>;regint=0;audio_codecs=PCMU\n",
    )
    .unwrap();
    let out = tokio::process::Command::new("baresip")
        .args([
            "-f",
            dir.path().to_str().unwrap(),
            "-t",
            "8",
            "-e",
            &format!("/dial sip:switchboard@{addr}"),
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("baresip runs (Debian package baresip)");
    let log =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);

    let loud = tokio::time::timeout(Duration::from_secs(20), answered)
        .await
        .expect("the call ends")
        .unwrap();
    assert!(
        loud >= 50,
        "we heard only {loud} frames of baresip's speech\n{log}"
    );

    // sndfile writes one WAV per direction; the decoded far-end stream holds our tone.
    let recordings: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == "wav")
                && p.file_name().unwrap().to_string_lossy().starts_with("dump")
        })
        .collect();
    assert!(!recordings.is_empty(), "baresip recorded nothing\n{log}");
    let best = recordings
        .iter()
        .filter_map(|p| wav::read_wav_16k(p).ok())
        .map(|audio| audio.chunks(320).filter(|c| rms(c) > 1000.0).count())
        .max()
        .unwrap_or(0);
    assert!(
        best >= 50,
        "baresip heard only {best} loud 20 ms chunks of our tone ({} files)\n{log}",
        recordings.len()
    );
}
