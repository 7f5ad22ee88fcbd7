//! The session driving the real call core, the rules extractor and a real
//! SQLite store, with scripted speech engines and an in-memory leg whose
//! caller hears the agent instantly (marks are echoed as they arrive).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use super::*;
use crate::audio::Frame;
use crate::config::Sources;
use crate::domain::{Speaker, TaskStatus};
use crate::events::Bus;
use crate::providers::intent::rules::RulesExtractor;
use crate::providers::{ProviderError, SttEvent, SttStream};
use crate::transport::{HangupReason, TransportCommand, TransportEvent};

/// Recognises each burst of loud frames followed by quiet as the next line
/// of its script.
struct ScriptedStt {
    lines: Arc<Mutex<VecDeque<String>>>,
}

impl SttProvider for ScriptedStt {
    fn name(&self) -> &'static str {
        "scripted"
    }
    fn open(&self) -> Result<SttStream, ProviderError> {
        let (audio, mut frames) = mpsc::channel::<Frame>(1024);
        let (tx, events) = mpsc::channel(16);
        let lines = self.lines.clone();
        tokio::spawn(async move {
            let (mut loud, mut quiet) = (0, 0);
            while let Some(f) = frames.recv().await {
                if f.0.iter().any(|s| s.unsigned_abs() > 1000) {
                    loud += 1;
                    quiet = 0;
                    if loud == 1 && tx.send(SttEvent::SpeechStarted).await.is_err() {
                        return;
                    }
                } else if loud > 0 {
                    quiet += 1;
                    if quiet == 10 {
                        loud = 0;
                        let text = lines.lock().unwrap().pop_front().unwrap_or_default();
                        let ev = SttEvent::Final {
                            text,
                            confidence: 0.9,
                            end_of_turn: true,
                        };
                        if tx.send(ev).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Ok(SttStream { audio, events })
    }
}

/// Two frames of quiet audio per word.
struct CountingTts;

impl TtsProvider for CountingTts {
    fn name(&self) -> &'static str {
        "counting"
    }
    fn synthesize(&self, text: &str) -> mpsc::Receiver<Result<Frame, ProviderError>> {
        let n = text.split_whitespace().count() * 2;
        let (tx, rx) = mpsc::channel(8);
        tokio::spawn(async move {
            for _ in 0..n {
                if tx.send(Ok(Frame([5; 320]))).await.is_err() {
                    return;
                }
            }
        });
        rx
    }
}

const LINES: [&str; 4] = [
    "Hi, my kitchen sink is leaking under the cabinet.",
    "I live at 42 Oak Street.",
    "Tomorrow morning would be great.",
    "My name is Sarah Johnson.",
];

async fn deps() -> (Deps, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let env = vec![
        (
            "SWITCHBOARD_DATABASE_URL".to_string(),
            format!("sqlite://{}", dir.path().join("s.db").display()),
        ),
        (
            "SWITCHBOARD_ONCALL_SMS".to_string(),
            "+15550001111".to_string(),
        ),
        (
            "SWITCHBOARD_RECORDINGS_DIR".to_string(),
            dir.path().join("rec").display().to_string(),
        ),
        (
            "SWITCHBOARD_AGENT_NUMBER".to_string(),
            "+15550009999".to_string(),
        ),
    ];
    let config = Config::from_sources(&Sources::load(None, env).unwrap()).unwrap();
    let store = Store::open(config.database_url.expose(), Bus::new(), "t")
        .await
        .unwrap();
    let engines = Engines::single(
        Arc::new(ScriptedStt {
            lines: Arc::new(Mutex::new(LINES.iter().map(|s| s.to_string()).collect())),
        }),
        Arc::new(CountingTts),
        Arc::new(RulesExtractor::new(
            config.business.categories.clone(),
            config.business.timezone,
        )),
    );
    // No Twilio credentials: texts are queued and stay in the table.
    let outbox = crate::outbox::Outbox::new(
        store.clone(),
        None,
        crate::outbox::OutboxConfig::from_config(&config),
    );
    let deps = Deps {
        outbox: Some(outbox),
        registry: Registry::new(4),
        config: Arc::new(config),
        store,
        engines,
    };
    (deps, dir)
}

fn leg() -> (
    CallLeg,
    mpsc::Sender<TransportEvent>,
    mpsc::Receiver<TransportCommand>,
) {
    CallLeg::channel(LegInfo {
        transport: Transport::Twilio,
        external_id: "CAsession".into(),
        from: "+15551234567".into(),
        to: "+15557654321".into(),
        params: Default::default(),
        can_transfer: true,
    })
}

/// Echoes marks until the agent finishes an utterance; returns what else came.
async fn hear_utterance(
    events: &mpsc::Sender<TransportEvent>,
    commands: &mut mpsc::Receiver<TransportCommand>,
) -> Vec<TransportCommand> {
    let mut other = Vec::new();
    loop {
        let cmd = tokio::time::timeout(Duration::from_secs(10), commands.recv())
            .await
            .expect("the agent speaks")
            .expect("leg open");
        match cmd {
            TransportCommand::Play(_) => {}
            TransportCommand::Mark(name) => {
                let end = name.ends_with("-end");
                events.send(TransportEvent::Mark(name)).await.unwrap();
                if end {
                    return other;
                }
            }
            c => other.push(c),
        }
    }
}

async fn say_line(events: &mpsc::Sender<TransportEvent>) {
    // Half a second of speech, then a second of line silence (a live line never stops).
    for k in 0..75 {
        let frame = if k < 25 {
            let mut f = Frame::SILENCE;
            for (i, s) in f.0.iter_mut().enumerate() {
                *s = if i % 16 < 8 { 6000 } else { -6000 };
            }
            f
        } else {
            Frame::SILENCE
        };
        events.send(TransportEvent::Audio(frame)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test]
async fn a_call_fills_the_task_and_transfers_on_dtmf_zero() {
    let (deps, _dir) = deps().await;
    let (leg, events, mut commands) = leg();
    let call = tokio::spawn({
        let deps = deps.clone();
        async move { run_call(leg, &deps).await }
    });
    hear_utterance(&events, &mut commands).await; // the greeting
    for _ in LINES {
        say_line(&events).await;
        hear_utterance(&events, &mut commands).await;
    }
    events.send(TransportEvent::Dtmf('0')).await.unwrap();
    let other = hear_utterance(&events, &mut commands).await;
    let transfer = match other
        .iter()
        .find(|c| matches!(c, TransportCommand::Transfer(_)))
    {
        Some(t) => t.clone(),
        None => tokio::time::timeout(Duration::from_secs(10), commands.recv())
            .await
            .expect("a transfer")
            .expect("leg open"),
    };
    assert_eq!(transfer, TransportCommand::Transfer("+15550009999".into()));
    events
        .send(TransportEvent::TransferResult { ok: true })
        .await
        .unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("the call ends")
        .unwrap()
        .unwrap();
    assert_eq!(outcome.end_reason, "transferred");

    let store = &deps.store;
    let row = store.call(outcome.call_id).await.unwrap();
    assert_eq!(row.end_reason.as_deref(), Some("transferred"));
    assert_eq!(row.external_id, "CAsession");
    let task = store
        .task(outcome.task_reference.as_deref().expect("a task"))
        .await
        .unwrap();
    assert_eq!(task.category.as_deref(), Some("plumbing"), "{task:?}");
    assert!(
        task.location
            .as_deref()
            .unwrap_or("")
            .contains("42 Oak Street"),
        "{task:?}"
    );
    assert!(task.requested_time.is_some(), "{task:?}");
    assert_eq!(
        task.caller_name.as_deref(),
        Some("Sarah Johnson"),
        "{task:?}"
    );
    assert_eq!(task.status, TaskStatus::Escalated);
    assert!(task.summary.is_some());
    let trail = store.task_events(&task.reference).await.unwrap();
    assert!(trail.iter().all(|e| e.actor == "agent"), "{trail:?}");
    let transcript = store.transcript(outcome.call_id).await.unwrap();
    let caller: Vec<&str> = transcript
        .iter()
        .filter(|t| t.speaker == Speaker::Caller)
        .map(|t| t.text.as_str())
        .collect();
    assert_eq!(caller, LINES);
    assert!(
        transcript
            .iter()
            .filter(|t| t.speaker == Speaker::Agent)
            .count()
            >= 5
    );
    assert!(!store.call_events(outcome.call_id).await.unwrap().is_empty());
    assert!(deps.registry.is_empty());
    // Every answered turn has its latency record, each stage in order.
    let turns = store.turn_latencies(outcome.call_id).await.unwrap();
    assert!(turns.len() >= LINES.len(), "{turns:?}");
    for t in &turns[..LINES.len()] {
        let (stt, intent, tts, sent) = (
            t.stt_ms.unwrap(),
            t.intent_ms.unwrap(),
            t.tts_ms.unwrap(),
            t.first_frame_ms.unwrap(),
        );
        assert!(stt <= intent && intent <= tts && tts <= sent, "{t:?}");
        assert_eq!(t.stt_engine.as_deref(), Some("scripted"));
        assert_eq!(t.intent_engine.as_deref(), Some("rules"));
        assert_eq!(t.tts_engine.as_deref(), Some("counting"));
    }
    let events = store.call_events(outcome.call_id).await.unwrap();
    assert!(
        events
            .iter()
            .any(|(_, kind, d)| kind == "engine_latency" && d["engine"] == "rules"),
        "{events:?}"
    );
    // The on-call person got the escalation, the caller their reference.
    let texts = store.outbox_recent(10).await.unwrap();
    let payloads: Vec<serde_json::Value> = texts
        .iter()
        .map(|m| serde_json::from_str(&m.payload).unwrap())
        .collect();
    assert_eq!(texts.len(), 2, "{payloads:?}");
    let to_caller = payloads.iter().find(|p| p["to"] == "+15551234567");
    let to_oncall = payloads.iter().find(|p| p["to"] == "+15550001111");
    assert!(
        to_caller.unwrap()["body"]
            .as_str()
            .unwrap()
            .contains(&task.reference),
        "{payloads:?}"
    );
    assert!(
        to_oncall.unwrap()["body"]
            .as_str()
            .unwrap()
            .contains("plumbing"),
        "{payloads:?}"
    );
}

#[tokio::test]
async fn with_no_speech_recognition_the_caller_leaves_a_voice_message() {
    let (mut deps, dir) = deps().await;
    deps.engines = Engines::single(
        Arc::new(crate::providers::stt::unavailable::UnavailableStt {
            reason: "model not loaded".into(),
        }),
        Arc::new(CountingTts),
        deps.engines.extractor.clone(),
    );
    let (leg, events, mut commands) = leg();
    let call = tokio::spawn({
        let deps = deps.clone();
        async move { run_call(leg, &deps).await }
    });
    hear_utterance(&events, &mut commands).await; // the voice-message prompt
    say_line(&events).await;
    events
        .send(TransportEvent::Hangup(HangupReason::Remote))
        .await
        .unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("the call ends")
        .unwrap()
        .unwrap();
    let store = &deps.store;
    let reference = outcome.task_reference.expect("a task even without words");
    let name = store
        .task_recording(&reference)
        .await
        .unwrap()
        .expect("a recording");
    let pcm = crate::audio::wav::read_wav_16k(&dir.path().join("rec").join(name)).unwrap();
    // The caller's half second of speech (and the silence after) is in it.
    assert!(pcm.len() >= 16_000, "{} samples", pcm.len());
    assert!(pcm.iter().any(|s| s.unsigned_abs() > 5000));
    let events = store.call_events(outcome.call_id).await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.1.as_str()).collect();
    assert!(kinds.contains(&"engine_exhausted"), "{kinds:?}");
    assert!(kinds.contains(&"voice_message"), "{kinds:?}");
    let transcript = store.transcript(outcome.call_id).await.unwrap();
    assert!(
        transcript.iter().any(|t| t.speaker == Speaker::Agent
            && t.text.starts_with("Thanks for calling")
            && t.text.contains("leave your name")),
        "the cut greeting's business name is kept: {transcript:?}"
    );
    let notes = store.task_events(&reference).await.unwrap();
    assert!(
        notes
            .iter()
            .any(|e| e.note.as_deref() == Some("the caller left a voice message")),
        "{notes:?}"
    );
}

#[tokio::test]
async fn a_lost_leg_ends_the_call_and_keeps_what_was_said() {
    let (deps, _dir) = deps().await;
    let (leg, events, mut commands) = leg();
    let call = tokio::spawn({
        let deps = deps.clone();
        async move { run_call(leg, &deps).await }
    });
    hear_utterance(&events, &mut commands).await;
    say_line(&events).await;
    hear_utterance(&events, &mut commands).await;
    events
        .send(TransportEvent::Hangup(HangupReason::Lost))
        .await
        .unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("the call ends")
        .unwrap()
        .unwrap();
    assert_eq!(outcome.end_reason, "socket_lost");
    let row = deps.store.call(outcome.call_id).await.unwrap();
    assert!(row.ended_at.is_some());
    let transcript = deps.store.transcript(outcome.call_id).await.unwrap();
    assert!(transcript
        .iter()
        .any(|t| t.speaker == Speaker::Caller && t.text == LINES[0]));
    let task = deps.store.task_for_call(outcome.call_id).await.unwrap();
    assert_eq!(task.and_then(|t| t.category).as_deref(), Some("plumbing"));
}

#[tokio::test]
async fn at_capacity_a_call_is_refused_before_any_record() {
    let (mut deps, _dir) = deps().await;
    deps.registry = Registry::new(1);
    let (first, _e1, _c1) = leg();
    let hold = deps.registry.try_admit(&first.info).unwrap();
    let (second, _e2, _c2) = leg();
    assert!(matches!(
        run_call(second, &deps).await,
        Err(SessionError::AtCapacity)
    ));
    assert_eq!(deps.store.count_calls().await.unwrap(), 0);
    drop(hold);
}
