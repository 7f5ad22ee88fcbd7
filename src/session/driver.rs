//! The driver loop of one call: apply one input to the core, drain its
//! outputs until it names a deadline, then wait for whichever comes first —
//! a leg event, an STT event, an extraction result, a synthesis message, the
//! deadline, or an outside stop. Executing an output may produce an input
//! (a created task's reference, a failed transfer), which is applied at once.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::detect::Detector;
use super::latency::{LatencyTracker, TurnFigures};
use super::recording::MessageRecorder;
use super::speech::{self, MarkKind, SpeechMsg};
use super::{CallOutcome, Deps};
use crate::audio::Frame;
use crate::call::{Call, CallConfig, EndReason, Input, Output, TurnId, UtteranceId};
use crate::domain::{Conversation, Extraction, TaskStatus};
use crate::providers::report::{EngineReport, ReportKind, Reporter, Stage};
use crate::providers::{ProviderError, SttEvent};
use crate::store::{NewTurn, TaskFields, TurnLatency};
use crate::transport::{CallLeg, HangupReason, TransportCommand, TransportEvent};

/// Who writes task changes made during a call.
const ACTOR: &str = "agent";

/// Extra time past the configured maximum before the session ends a call
/// on its own, in case the core's goodbye never finishes.
const HARD_CAP_SLACK: Duration = Duration::from_secs(60);

type Extracted = (TurnId, Result<Extraction, ProviderError>);

fn now() -> Instant {
    // tokio's clock, so paused-time tests and simulations stay consistent.
    tokio::time::Instant::now().into_std()
}

pub(super) struct Driver<'a> {
    deps: &'a Deps,
    call_id: i64,
    call: Call,
    caller_number: Option<String>,
    transfer_target: Option<String>,
    stop: CancellationToken,
    commands: Option<mpsc::Sender<TransportCommand>>,
    stt_audio: Option<mpsc::Sender<Frame>>,
    speech_tx: mpsc::Sender<SpeechMsg>,
    extract_tx: mpsc::Sender<Extracted>,
    speaking: Option<(UtteranceId, JoinHandle<()>)>,
    task_ref: Option<String>,
    detector: Detector,
    /// Inputs produced while executing outputs.
    pending: VecDeque<Input>,
    /// The end reason once known.
    end: Option<String>,
    /// How the leg ended, if it did.
    leg_end: Option<HangupReason>,
    /// A transfer was handed to the carrier and has not failed: the carrier
    /// ending the leg now means the human took the call.
    transfer_in_flight: bool,
    dropped_stt_frames: u64,
    started: Instant,
    max_duration: Duration,
    /// Where the engine chains report; the receiving half is read in `run`.
    reporter: Reporter,
    reports: Option<mpsc::UnboundedReceiver<EngineReport>>,
    /// The engine that last produced a result, per stage.
    last_engine: [Option<&'static str>; 3],
    /// Every first-result latency seen, per (stage, engine), for the call's summary.
    engine_latency: std::collections::BTreeMap<(Stage, &'static str), Vec<u64>>,
    latency: LatencyTracker,
    /// The caller's voice message, once the core asked for one.
    recorder: Option<MessageRecorder>,
    /// The first frame of each utterance already handed to the leg.
    first_frame_sent: Option<UtteranceId>,
    /// The turn whose extraction is running, and reply sentences whose
    /// synthesis started before the answer was complete.
    extracting: Option<TurnId>,
    prefetched: speech::Prefetched,
    prefetch_tx: mpsc::Sender<(TurnId, String)>,
}

impl<'a> Driver<'a> {
    pub(super) fn new(
        deps: &'a Deps,
        call_id: i64,
        config: CallConfig,
        transfer_target: Option<String>,
        stop: CancellationToken,
    ) -> Driver<'a> {
        let (speech_tx, _) = mpsc::channel(1);
        let (prefetch_tx, _) = mpsc::channel(1);
        let (extract_tx, _) = mpsc::channel(1);
        let started = now();
        let (reporter, reports) = Reporter::for_call(deps.engines.stats.clone());
        Driver {
            deps,
            call_id,
            caller_number: config.caller_number.clone(),
            max_duration: config.tuning.max_duration,
            call: Call::new(config, started),
            transfer_target,
            stop,
            commands: None,
            stt_audio: None,
            speech_tx,
            extract_tx,
            speaking: None,
            task_ref: None,
            detector: Detector::new(),
            pending: VecDeque::new(),
            end: None,
            leg_end: None,
            transfer_in_flight: false,
            dropped_stt_frames: 0,
            started,
            reporter,
            reports: Some(reports),
            last_engine: [None; 3],
            engine_latency: Default::default(),
            latency: LatencyTracker::default(),
            recorder: None,
            first_frame_sent: None,
            extracting: None,
            prefetched: Vec::new(),
            prefetch_tx,
        }
    }

    /// The call continues an existing task (a callback): its changes update
    /// that task instead of opening a new one.
    pub(super) fn continuing_task(mut self, reference: String) -> Self {
        self.pending.push_back(Input::TaskSaved {
            at: now(),
            reference: reference.clone(),
        });
        self.task_ref = Some(reference);
        self
    }

    /// Runs the call until the core hangs up or the leg is gone.
    pub(super) async fn run(mut self, leg: CallLeg) -> CallOutcome {
        let CallLeg {
            events: mut leg_events,
            commands,
            ..
        } = leg;
        self.commands = Some(commands);
        let (speech_tx, mut speech_rx) = mpsc::channel(256);
        let (extract_tx, mut extract_rx) = mpsc::channel(8);
        let (prefetch_tx, mut prefetch_rx) = mpsc::channel(8);
        self.prefetch_tx = prefetch_tx;
        self.speech_tx = speech_tx;
        self.extract_tx = extract_tx;
        let mut stt_events = self.open_stt();
        let mut reports = self.reports.take().expect("run is called once");
        let hard_cap =
            tokio::time::Instant::from_std(self.started + self.max_duration + HARD_CAP_SLACK);

        loop {
            let deadline = self.drain().await;
            if self.end.is_some() {
                break;
            }
            if self.leg_end.is_some() {
                // The core did not end after the hang-up input: end anyway.
                self.end = Some(self.leg_end_reason());
                break;
            }
            let at = tokio::time::Instant::from_std(deadline);
            let input = tokio::select! {
                ev = leg_events.recv() => self.on_leg(ev),
                ev = recv_stt(&mut stt_events) => self.on_stt(ev, &mut stt_events),
                Some((turn, result)) = extract_rx.recv() => {
                    self.latency.on_extracted(turn, now());
                    Some(Input::Extracted { at: now(), turn, result })
                }
                Some(msg) = speech_rx.recv() => self.on_speech(msg).await,
                Some((turn, sentence)) = prefetch_rx.recv() => {
                    self.on_prefetch(turn, sentence);
                    None
                }
                Some(report) = reports.recv() => {
                    self.on_report(report).await;
                    None
                }
                _ = tokio::time::sleep_until(at) => Some(Input::Timeout { at: now() }),
                _ = self.stop.cancelled(), if self.leg_end.is_none() => {
                    self.leg_end = Some(HangupReason::Remote);
                    Some(Input::CallerHungUp { at: now() })
                }
                _ = tokio::time::sleep_until(hard_cap) => {
                    self.end = Some(EndReason::MaxDuration.as_str().to_string());
                    None
                }
            };
            if let Some(input) = input {
                self.pending.push_back(input);
            }
        }
        self.finish().await
    }

    async fn finish(mut self) -> CallOutcome {
        if let Some((_, task)) = self.speaking.take() {
            task.abort();
        }
        self.latency.close_open();
        self.store_latencies().await;
        self.store_engine_summary().await;
        self.save_recording().await;
        self.text_reference().await;
        if self.dropped_stt_frames > 0 {
            tracing::warn!(
                call_id = self.call_id,
                frames = self.dropped_stt_frames,
                "STT fell behind; frames dropped"
            );
        }
        // Dropping the command sender closes the leg.
        self.commands = None;
        CallOutcome {
            call_id: self.call_id,
            end_reason: self.end.unwrap_or_else(|| "error".into()),
            task_reference: self.task_ref,
        }
    }

    fn open_stt(&mut self) -> Option<mpsc::Receiver<SttEvent>> {
        match self.deps.engines.stt.open_for(self.reporter.clone()) {
            Ok(stream) => {
                self.stt_audio = Some(stream.audio);
                Some(stream.events)
            }
            Err(e) => {
                tracing::error!(call_id = self.call_id, error = %e, "speech recognition unavailable");
                self.pending.push_back(Input::Stt {
                    at: now(),
                    event: SttEvent::Error(e),
                });
                None
            }
        }
    }

    /// Executes outputs until the core waits, applying pending inputs one at
    /// a time, each only after the previous one's outputs are drained.
    async fn drain(&mut self) -> Instant {
        loop {
            match self.call.poll_output() {
                Output::Timeout(at) => match self.pending.pop_front() {
                    Some(input) => self.call.handle_input(input),
                    None => return at,
                },
                out => self.execute(out).await,
            }
        }
    }

    fn leg_end_reason(&self) -> String {
        self.leg_end
            .as_ref()
            .map(|r| r.as_end_reason().to_string())
            .unwrap_or_else(|| "error".into())
    }

    fn on_leg(&mut self, ev: Option<TransportEvent>) -> Option<Input> {
        let at = now();
        match ev {
            Some(TransportEvent::Audio(frame)) => {
                let speech = self.detector.push(&frame);
                self.latency.on_vad(at, speech);
                if let Some(r) = self.recorder.as_mut() {
                    r.push(&frame);
                }
                if let Some(tx) = &self.stt_audio {
                    if tx.try_send(frame).is_err() {
                        self.dropped_stt_frames += 1;
                    }
                }
                Some(Input::CallerAudio { at, speech })
            }
            Some(TransportEvent::Dtmf(digit)) => Some(Input::Dtmf { at, digit }),
            Some(TransportEvent::Mark(name)) => match speech::parse_mark(&name) {
                Some(MarkKind::Sentence(utterance, index)) => Some(Input::SentencePlayed {
                    at,
                    utterance,
                    index,
                }),
                Some(MarkKind::End(utterance)) => Some(Input::PlaybackFinished { at, utterance }),
                None => None,
            },
            Some(TransportEvent::TransferResult { ok }) => {
                self.transfer_in_flight &= ok;
                Some(Input::TransferResult { at, ok })
            }
            Some(TransportEvent::Hangup(reason)) => {
                self.leg_end = Some(reason);
                Some(Input::CallerHungUp { at })
            }
            None => {
                self.leg_end = Some(HangupReason::Lost);
                Some(Input::CallerHungUp { at })
            }
        }
    }

    fn on_stt(
        &mut self,
        ev: Option<SttEvent>,
        stream: &mut Option<mpsc::Receiver<SttEvent>>,
    ) -> Option<Input> {
        match ev {
            Some(event) => {
                if matches!(event, SttEvent::Final { .. }) {
                    self.latency.on_stt_final(now());
                }
                Some(Input::Stt { at: now(), event })
            }
            None => {
                // The engine closed its stream: stop feeding it.
                *stream = None;
                self.stt_audio = None;
                None
            }
        }
    }

    async fn on_speech(&mut self, msg: SpeechMsg) -> Option<Input> {
        let current = self.speaking.as_ref().map(|(id, _)| *id);
        let (id, cmd) = match msg {
            SpeechMsg::Frame(id, f) => {
                if current == Some(id) && self.first_frame_sent != Some(id) {
                    self.latency.on_tts_frame(id, now());
                }
                (id, TransportCommand::Play(f))
            }
            SpeechMsg::SentenceEnd(id, i) => {
                (id, TransportCommand::Mark(speech::sentence_mark(id, i)))
            }
            SpeechMsg::End(id) => (id, TransportCommand::Mark(speech::end_mark(id))),
            SpeechMsg::Failed(id, error) => {
                if current != Some(id) {
                    return None;
                }
                self.speaking = None;
                return Some(Input::SpeechFailed {
                    at: now(),
                    utterance: id,
                    error,
                });
            }
        };
        if current == Some(id) {
            let first_frame =
                matches!(cmd, TransportCommand::Play(_)) && self.first_frame_sent != Some(id);
            self.command(cmd).await;
            if first_frame {
                self.first_frame_sent = Some(id);
                self.latency.on_frame_sent(id, now());
                self.store_latencies().await;
            }
        }
        None
    }

    async fn command(&mut self, cmd: TransportCommand) {
        if let Some(tx) = &self.commands {
            // A closed leg shows up as a hang-up event; nothing to do here.
            let _ = tx.send(cmd).await;
        }
    }

    async fn execute(&mut self, out: Output) {
        match out {
            Output::Say {
                utterance,
                sentences,
                purpose,
            } => {
                self.latency.on_say(utterance, purpose);
                self.on_say(utterance, sentences)
            }
            Output::RecordMessage => {
                tracing::warn!(
                    call_id = self.call_id,
                    "speech recognition is down: recording a voice message"
                );
                self.recorder = Some(MessageRecorder::default());
            }
            Output::StopSpeaking { utterance } => self.on_stop_speaking(utterance).await,
            Output::ExtractIntent { turn, conversation } => {
                self.latency.on_turn_end(turn, now());
                self.on_extract(turn, conversation)
            }
            Output::Transcript {
                speaker,
                text,
                heard_chars,
                confidence,
                start_ms,
                end_ms,
            } => {
                let turn = NewTurn {
                    speaker,
                    text,
                    start_ms: Some(start_ms as i64),
                    end_ms: Some(end_ms as i64),
                    confidence,
                    heard_chars: heard_chars.map(|h| h as i64),
                };
                self.on_transcript(turn).await
            }
            Output::SaveTask { extraction } => self.on_save_task(extraction).await,
            Output::Escalate { reason, summary } => {
                self.on_escalate(reason.as_str(), summary).await
            }
            Output::Transfer => self.on_transfer().await,
            Output::Hangup { reason } => self.on_hangup(reason).await,
            Output::Event { kind, detail } => {
                if let Err(e) = self
                    .deps
                    .store
                    .append_call_event(self.call_id, Utc::now(), kind, &detail)
                    .await
                {
                    tracing::warn!(call_id = self.call_id, error = %e, "could not record call event");
                }
            }
            Output::Timeout(_) => {}
        }
    }

    fn on_say(&mut self, utterance: UtteranceId, sentences: Vec<String>) {
        if let Some((_, old)) = self.speaking.take() {
            old.abort();
        }
        let tts = Arc::clone(&self.deps.engines.tts);
        // Only sentences this utterance says; the rest wait for the reply.
        let (mine, rest) = std::mem::take(&mut self.prefetched)
            .into_iter()
            .partition(|(text, _)| sentences.iter().any(|s| s.trim() == text));
        self.prefetched = rest;
        let task = speech::spawn_speaker(
            tts,
            self.reporter.clone(),
            utterance,
            sentences,
            mine,
            self.speech_tx.clone(),
        );
        self.speaking = Some((utterance, task));
    }

    async fn on_stop_speaking(&mut self, utterance: UtteranceId) {
        if let Some((id, task)) = self.speaking.take() {
            if id == utterance {
                task.abort();
            } else {
                self.speaking = Some((id, task));
            }
        }
        self.command(TransportCommand::Clear).await;
    }

    fn on_extract(&mut self, turn: TurnId, conversation: Conversation) {
        let extractor = Arc::clone(&self.deps.engines.extractor);
        let tx = self.extract_tx.clone();
        let reporter = self.reporter.clone();
        // A new turn: speech prepared for the last one's reply is stale.
        self.extracting = Some(turn);
        self.prefetched.clear();
        let (sentences_tx, mut sentences_rx) = mpsc::channel::<String>(4);
        let prefetch = self.prefetch_tx.clone();
        tokio::spawn(async move {
            while let Some(s) = sentences_rx.recv().await {
                if prefetch.send((turn, s)).await.is_err() {
                    return;
                }
            }
        });
        tokio::spawn(async move {
            let result = extractor
                .extract_streaming_for(&conversation, &reporter, Some(sentences_tx))
                .await;
            let _ = tx.send((turn, result)).await;
        });
    }

    async fn on_transcript(&mut self, turn: NewTurn) {
        if let Err(e) = self
            .deps
            .store
            .append_turn(self.call_id, Utc::now(), turn)
            .await
        {
            tracing::warn!(call_id = self.call_id, error = %e, "could not store a transcript line");
        }
    }

    fn fields(&self, x: &Extraction) -> TaskFields {
        TaskFields {
            category: x.category.clone(),
            issue: x.issue.clone(),
            location: x.location.clone(),
            requested_time: x.requested_time.clone(),
            requested_at: x.requested_at,
            urgency: x.urgency,
            caller_name: x.caller_name.clone(),
            caller_number: x
                .callback_number
                .clone()
                .or_else(|| self.caller_number.clone()),
            confidence: Some(x.confidence.clamp(0.0, 1.0)),
            summary: None,
        }
    }

    async fn on_save_task(&mut self, extraction: Extraction) {
        let fields = self.fields(&extraction);
        let store = &self.deps.store;
        match &self.task_ref {
            Some(reference) => {
                if let Err(e) = store
                    .update_task_fields(reference, &fields, ACTOR, None)
                    .await
                {
                    tracing::warn!(call_id = self.call_id, error = %e, "could not update the task");
                }
            }
            None => match store.create_task(Some(self.call_id), fields, ACTOR).await {
                Ok(task) => {
                    self.task_ref = Some(task.reference.clone());
                    self.pending.push_back(Input::TaskSaved {
                        at: now(),
                        reference: task.reference,
                    });
                }
                Err(e) => {
                    tracing::error!(call_id = self.call_id, error = %e, "could not create the task")
                }
            },
        }
    }

    async fn on_escalate(&mut self, reason: &str, summary: String) {
        let store = &self.deps.store;
        let reference = match &self.task_ref {
            Some(r) => r.clone(),
            None => {
                let fields = TaskFields {
                    summary: Some(summary.clone()),
                    ..Default::default()
                };
                match store.create_task(Some(self.call_id), fields, ACTOR).await {
                    Ok(t) => {
                        self.task_ref = Some(t.reference.clone());
                        t.reference
                    }
                    Err(e) => {
                        tracing::error!(call_id = self.call_id, error = %e, "could not create the task to escalate");
                        return;
                    }
                }
            }
        };
        let patch = TaskFields {
            summary: Some(summary),
            ..Default::default()
        };
        if let Err(e) = store
            .update_task_fields(&reference, &patch, ACTOR, None)
            .await
        {
            tracing::warn!(call_id = self.call_id, error = %e, "could not store the summary");
        }
        let note = format!("escalated: {reason}");
        match store
            .transition_task(&reference, TaskStatus::Escalated, ACTOR, Some(&note))
            .await
        {
            Ok(task) => {
                if let Some(outbox) = &self.deps.outbox {
                    if let Err(e) = outbox.text_oncall_escalation(&task).await {
                        tracing::warn!(call_id = self.call_id, error = %e, "could not queue the escalation text");
                    }
                }
            }
            Err(e) => {
                tracing::warn!(call_id = self.call_id, error = %e, "could not escalate the task")
            }
        }
    }

    async fn on_transfer(&mut self) {
        match self.transfer_target.clone() {
            Some(target) if self.commands.is_some() => {
                self.transfer_in_flight = true;
                self.command(TransportCommand::Transfer(target)).await;
            }
            _ => self.pending.push_back(Input::TransferResult {
                at: now(),
                ok: false,
            }),
        }
    }

    async fn on_hangup(&mut self, reason: EndReason) {
        let reason_text = match (&self.leg_end, reason) {
            // Twilio ends the media stream when <Dial> takes over, sometimes
            // before the transfer's own answer arrives.
            (Some(HangupReason::Remote), EndReason::CallerHungUp) if self.transfer_in_flight => {
                EndReason::Transferred.as_str().to_string()
            }
            // The carrier side ended first: say how.
            (Some(leg), EndReason::CallerHungUp) => leg.as_end_reason().to_string(),
            _ => reason.as_str().to_string(),
        };
        if !matches!(reason, EndReason::CallerHungUp | EndReason::Transferred) {
            self.command(TransportCommand::Hangup).await;
        }
        self.end = Some(reason_text);
    }
}

impl Driver<'_> {
    /// An early sentence of the reply being written: start its synthesis now,
    /// so the audio is ready (or on its way) when the answer is complete.
    fn on_prefetch(&mut self, turn: TurnId, sentence: String) {
        const MAX_PREFETCH: usize = 2;
        if self.extracting != Some(turn) || self.prefetched.len() >= MAX_PREFETCH {
            return;
        }
        let text = sentence.trim().to_string();
        if text.is_empty() || self.prefetched.iter().any(|(t, _)| *t == text) {
            return;
        }
        let rx = self
            .deps
            .engines
            .tts
            .synthesize_for(&text, self.reporter.clone());
        self.prefetched.push((text, rx));
    }

    /// Engine reports become call events (errors, fallbacks) and latency figures.
    async fn on_report(&mut self, report: EngineReport) {
        let stage = report.stage;
        let (kind, detail) = match report.kind {
            ReportKind::Used => {
                self.last_engine[stage as usize] = Some(report.engine);
                return;
            }
            ReportKind::FirstResult(latency) => {
                self.last_engine[stage as usize] = Some(report.engine);
                self.engine_latency
                    .entry((stage, report.engine))
                    .or_default()
                    .push(latency.as_millis() as u64);
                return;
            }
            ReportKind::Error { message, retryable } => (
                "engine_error",
                serde_json::json!({ "stage": stage.as_str(), "engine": report.engine, "error": message, "retryable": retryable }),
            ),
            ReportKind::Fallback { to } => (
                "engine_fallback",
                serde_json::json!({ "stage": stage.as_str(), "from": report.engine, "to": to }),
            ),
            ReportKind::Exhausted => (
                "engine_exhausted",
                serde_json::json!({ "stage": stage.as_str(), "last": report.engine }),
            ),
        };
        self.call_event(kind, detail).await;
    }

    async fn call_event(&self, kind: &str, detail: serde_json::Value) {
        if let Err(e) = self
            .deps
            .store
            .append_call_event(self.call_id, Utc::now(), kind, &detail)
            .await
        {
            tracing::warn!(call_id = self.call_id, error = %e, "could not record call event");
        }
    }

    /// Writes the turns whose figures are complete.
    async fn store_latencies(&mut self) {
        for figures in self.latency.take_done() {
            let row = self.latency_row(&figures);
            if let (Some(engine), Some(stt)) = (self.last_engine[Stage::Stt as usize], figures.stt)
            {
                self.reporter.observed(Stage::Stt, engine, stt);
                self.engine_latency
                    .entry((Stage::Stt, engine))
                    .or_default()
                    .push(stt.as_millis() as u64);
            }
            if let Err(e) = self.deps.store.record_turn_latency(&row).await {
                tracing::warn!(call_id = self.call_id, error = %e, "could not record turn latency");
            }
        }
    }

    fn latency_row(&self, f: &TurnFigures) -> TurnLatency {
        let ago = now().saturating_duration_since(f.speech_end);
        let ms = |d: Option<Duration>| d.map(|d| d.as_millis() as i64);
        let engine = |s: Stage| self.last_engine[s as usize].map(str::to_string);
        TurnLatency {
            call_id: self.call_id,
            turn: f.turn as i64,
            at: Utc::now() - chrono::Duration::from_std(ago).unwrap_or_default(),
            stt_ms: ms(f.stt),
            intent_ms: ms(f.intent),
            tts_ms: ms(f.tts),
            first_frame_ms: ms(f.first_frame),
            stt_engine: engine(Stage::Stt),
            intent_engine: engine(Stage::Intent),
            tts_engine: engine(Stage::Tts),
        }
    }

    /// One event per engine used: how many results and their latency.
    async fn store_engine_summary(&self) {
        for ((stage, engine), ms) in &self.engine_latency {
            let summary = crate::store::Percentiles::of(ms.iter().map(|v| Some(*v as i64)));
            let detail = serde_json::json!({
                "stage": stage.as_str(), "engine": engine, "results": ms.len(),
                "p50_ms": summary.p50, "p95_ms": summary.p95, "max_ms": ms.iter().max(),
            });
            self.call_event("engine_latency", detail).await;
        }
    }

    /// Texts the caller their task reference once the call is over, so the
    /// text carries what the call settled.
    async fn text_reference(&self) {
        let (Some(outbox), Some(reference)) = (&self.deps.outbox, &self.task_ref) else {
            return;
        };
        let task = match self.deps.store.task(reference).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(call_id = self.call_id, error = %e, "could not read the task to text its reference");
                return;
            }
        };
        if let Err(e) = outbox.text_caller_reference(&task).await {
            tracing::warn!(call_id = self.call_id, error = %e, "could not queue the caller's text");
        }
    }

    /// Writes the voice message and attaches it to the call's task (created
    /// now if the call never got one).
    async fn save_recording(&mut self) {
        let Some(recorder) = self.recorder.take() else {
            return;
        };
        let dir = self.deps.config.recordings_dir.clone();
        let call_id = self.call_id;
        let saved = tokio::task::spawn_blocking(move || recorder.save(&dir, call_id)).await;
        let name = match saved {
            Ok(Ok(name)) => name,
            Ok(Err(e)) => {
                tracing::error!(call_id, error = %e, "could not write the voice message");
                return;
            }
            Err(e) => {
                tracing::error!(call_id, error = %e, "voice message writer failed");
                return;
            }
        };
        let summary = "Voice message: speech recognition was unavailable during the call.";
        let store = &self.deps.store;
        let reference = match &self.task_ref {
            Some(r) => r.clone(),
            None => {
                let fields = TaskFields {
                    caller_number: self.caller_number.clone(),
                    summary: Some(summary.into()),
                    ..Default::default()
                };
                match store.create_task(Some(call_id), fields, ACTOR).await {
                    Ok(t) => {
                        self.task_ref = Some(t.reference.clone());
                        t.reference
                    }
                    Err(e) => {
                        tracing::error!(call_id, error = %e, "could not create the task for a voice message");
                        return;
                    }
                }
            }
        };
        if let Err(e) = store.set_task_recording(&reference, &name).await {
            tracing::error!(call_id, error = %e, "could not attach the voice message");
            return;
        }
        if let Err(e) = store
            .add_task_note(&reference, ACTOR, "the caller left a voice message")
            .await
        {
            tracing::warn!(call_id, error = %e, "could not note the voice message");
        }
        tracing::info!(call_id, task = %reference, file = %name, "voice message saved");
    }
}

async fn recv_stt(stream: &mut Option<mpsc::Receiver<SttEvent>>) -> Option<SttEvent> {
    match stream {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
