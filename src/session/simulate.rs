//! `switchboard simulate`: one whole call through the same session, core and
//! engines, with no network. A simulated caller plays the given turns (WAV
//! recordings or text spoken by the TTS engine) into an in-memory leg in real
//! time, each after the agent has finished speaking; the agent's audio is
//! "heard" instantly (its marks are echoed as soon as they are queued), which
//! keeps the run short. The result — call, transcript, task — is JSON.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::mpsc;
use tokio::time::{interval, timeout, MissedTickBehavior};

use super::{run_call, Deps, Engines, Registry};
use crate::audio::{Frame, FRAME_SAMPLES};
use crate::config::Config;
use crate::events::Bus;
use crate::store::{Store, Transport};
use crate::transport::{CallLeg, HangupReason, LegInfo, TransportCommand, TransportEvent};

/// One caller turn.
#[derive(Debug, Clone, PartialEq)]
pub enum CallerTurn {
    /// A recording (8 or 16 kHz; μ-law or PCM).
    Wav(PathBuf),
    /// Text the TTS engine speaks as the caller.
    Say(String),
}

/// Silence after each caller turn, so the end of speech is heard.
const TRAILING_SILENCE: Duration = Duration::from_millis(1500);
/// How long the caller waits for the agent to answer before going on.
const PATIENCE: Duration = Duration::from_secs(30);
/// Quiet after the agent's last mark before the caller speaks.
const SETTLE: Duration = Duration::from_millis(300);

/// Runs a simulated call with the configured offline engines.
pub async fn simulate(config: Config, turns: Vec<CallerTurn>) -> anyhow::Result<serde_json::Value> {
    let engines = crate::offline_engines(&config);
    simulate_with(config, engines, turns).await
}

/// Runs a simulated call with the given engines against an in-memory store.
pub async fn simulate_with(
    config: Config,
    engines: Engines,
    turns: Vec<CallerTurn>,
) -> anyhow::Result<serde_json::Value> {
    let store = Store::open("sqlite::memory:", Bus::new(), "simulate")
        .await
        .context("opening the in-memory store")?;
    let mut audio = Vec::with_capacity(turns.len());
    for turn in &turns {
        audio.push(turn_audio(turn, &engines).await?);
    }
    let deps = Deps {
        outbox: None,
        registry: Registry::new(1),
        config: Arc::new(config),
        store: store.clone(),
        engines,
    };
    let info = LegInfo {
        transport: Transport::Simulated,
        external_id: format!("SIM-{}", uuid::Uuid::new_v4()),
        from: "+15550100000".into(),
        to: "+15550199999".into(),
        params: Default::default(),
        can_transfer: false,
    };
    let (leg, events, commands) = CallLeg::channel(info);
    let caller = tokio::spawn(play_caller(audio, events, commands));
    let outcome = run_call(leg, &deps).await?;
    caller.abort();
    let call = store.call(outcome.call_id).await?;
    let transcript = store.transcript(outcome.call_id).await?;
    let task = store.task_for_call(outcome.call_id).await?;
    let events = store.call_events(outcome.call_id).await?;
    Ok(serde_json::json!({
        "call": call,
        "end_reason": outcome.end_reason,
        "transcript": transcript.iter().map(|t| serde_json::json!({
            "speaker": t.speaker, "text": t.text, "heard_chars": t.heard_chars,
            "start_ms": t.start_ms, "end_ms": t.end_ms,
        })).collect::<Vec<_>>(),
        "task": task,
        "events": events.iter().map(|(_, kind, detail)| serde_json::json!({"kind": kind, "detail": detail})).collect::<Vec<_>>(),
    }))
}

/// 16 kHz PCM of one turn.
async fn turn_audio(turn: &CallerTurn, engines: &Engines) -> anyhow::Result<Vec<i16>> {
    match turn {
        CallerTurn::Wav(path) => crate::audio::wav::read_wav_16k(path)
            .with_context(|| format!("reading {}", path.display())),
        CallerTurn::Say(text) => {
            let mut rx = crate::providers::TtsProvider::synthesize(engines.tts.as_ref(), text);
            let mut pcm = Vec::new();
            while let Some(frame) = rx.recv().await {
                let frame = frame.with_context(|| format!("synthesizing `{text}`"))?;
                pcm.extend_from_slice(&frame.0);
            }
            Ok(pcm)
        }
    }
}

/// Waits until the agent finished an utterance and has been quiet for
/// [`SETTLE`], echoing marks; false when the call is over.
async fn wait_for_agent(
    events: &mpsc::Sender<TransportEvent>,
    commands: &mut mpsc::Receiver<TransportCommand>,
) -> bool {
    let mut finished = false;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let wait = if finished {
            SETTLE
        } else {
            deadline.saturating_duration_since(tokio::time::Instant::now())
        };
        match timeout(wait, commands.recv()).await {
            Err(_) => return true,
            Ok(None) | Ok(Some(TransportCommand::Hangup)) => return false,
            Ok(Some(TransportCommand::Mark(name))) => {
                finished = name.ends_with("-end");
                if events.send(TransportEvent::Mark(name)).await.is_err() {
                    return false;
                }
            }
            Ok(Some(TransportCommand::Transfer(_))) => {
                let _ = events
                    .send(TransportEvent::TransferResult { ok: false })
                    .await;
            }
            Ok(Some(TransportCommand::Play(_) | TransportCommand::Clear)) => finished = false,
        }
    }
}

/// Sends `pcm` then trailing silence as paced 20 ms frames, echoing marks.
async fn speak(
    pcm: &[i16],
    events: &mpsc::Sender<TransportEvent>,
    commands: &mut mpsc::Receiver<TransportCommand>,
) -> bool {
    let silence = (TRAILING_SILENCE.as_millis() / 20) as usize;
    let frames = pcm.len().div_ceil(FRAME_SAMPLES) + silence;
    let mut tick = interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    for k in 0..frames {
        tick.tick().await;
        while let Ok(cmd) = commands.try_recv() {
            match cmd {
                TransportCommand::Mark(name) => {
                    let _ = events.send(TransportEvent::Mark(name)).await;
                }
                TransportCommand::Hangup => return false,
                _ => {}
            }
        }
        let mut frame = Frame::SILENCE;
        let start = k * FRAME_SAMPLES;
        if start < pcm.len() {
            let end = (start + FRAME_SAMPLES).min(pcm.len());
            frame.0[..end - start].copy_from_slice(&pcm[start..end]);
        }
        if events.send(TransportEvent::Audio(frame)).await.is_err() {
            return false;
        }
    }
    true
}

/// The simulated caller: each turn after the agent speaks, then hang up
/// once the agent has answered the last one.
async fn play_caller(
    turns: Vec<Vec<i16>>,
    events: mpsc::Sender<TransportEvent>,
    mut commands: mpsc::Receiver<TransportCommand>,
) {
    for pcm in &turns {
        if !wait_for_agent(&events, &mut commands).await {
            return;
        }
        if !speak(pcm, &events, &mut commands).await {
            return;
        }
    }
    if wait_for_agent(&events, &mut commands).await {
        let _ = events
            .send(TransportEvent::Hangup(HangupReason::Remote))
            .await;
    }
}

/// Reads `--wav PATH` and `--say TEXT` pairs, in order, from the command line.
pub fn parse_turns(args: &[String]) -> Result<Vec<CallerTurn>, String> {
    let mut turns = Vec::new();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--wav" => turns.push(CallerTurn::Wav(PathBuf::from(value))),
            "--say" => turns.push(CallerTurn::Say(value.clone())),
            other => {
                return Err(format!(
                    "unknown simulate option `{other}` (use --wav PATH or --say TEXT)"
                ))
            }
        }
    }
    if turns.is_empty() {
        return Err("give at least one caller turn: --wav PATH or --say TEXT".into());
    }
    Ok(turns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_keep_their_order_and_bad_options_are_named() {
        let args: Vec<String> = ["--say", "hello", "--wav", "a.wav"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            parse_turns(&args).unwrap(),
            vec![
                CallerTurn::Say("hello".into()),
                CallerTurn::Wav("a.wav".into())
            ]
        );
        assert!(parse_turns(&["--wav".to_string()])
            .unwrap_err()
            .contains("needs a value"));
        assert!(parse_turns(&["--mp3".to_string(), "x".to_string()])
            .unwrap_err()
            .contains("--mp3"));
        assert!(parse_turns(&[]).is_err());
    }
}
