//! The per-call I/O shell around the sans-IO call core. [`run_call`] owns one
//! call from its [`CallLeg`] to its end: it creates the call row at once, then
//! drives [`crate::call::Call`] with one loop — apply an input, drain outputs
//! until the core names its next deadline, then wait on the leg, the STT
//! stream, extraction and synthesis results, the deadline and an outside stop.
//! Results of executing outputs come back as inputs. Every transcript line,
//! decision event and task change is written as it happens; the end reason is
//! written whatever ends the call.
//!
//! Also here: the live-call [`registry`] (admission cap, dashboard listing,
//! shutdown draining), [`Sessions`] (the [`CallHost`] transports hand legs
//! to) and `simulate` (a whole call with no network).
//!
//! Must not touch: sockets and codecs (transport), SQL (store), dialogue
//! decisions (call core).

mod detect;
mod driver;
mod latency;
mod recording;
pub mod registry;
pub mod simulate;
mod speech;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use chrono::Utc;
use serde::Serialize;

use crate::call::CallConfig;
use crate::config::Config;
use crate::providers::chain::{IntentChain, SttChain, TtsChain};
use crate::providers::report::EngineStats;
use crate::providers::{BoxFuture, IntentExtractor, SttProvider, TtsProvider};
use crate::store::{NewCall, Store, StoreError, Transport};
use crate::transport::sip::outbound::CALLBACK_TASK;
use crate::transport::twilio::CallHost;
use crate::transport::{CallLeg, LegInfo};

pub use registry::{Admission, AdmittedLeg, LiveCall, Registry};

/// The engines a call talks through: one fallback chain per stage, and the
/// counters they share.
#[derive(Clone)]
pub struct Engines {
    pub stt: Arc<SttChain>,
    pub tts: Arc<TtsChain>,
    pub extractor: Arc<IntentChain>,
    pub stats: Arc<EngineStats>,
}

impl Engines {
    pub fn new(
        stt: Vec<Arc<dyn SttProvider>>,
        tts: Vec<Arc<dyn TtsProvider>>,
        extractors: Vec<Arc<dyn IntentExtractor>>,
        stats: Arc<EngineStats>,
    ) -> Engines {
        Engines {
            stt: Arc::new(SttChain::new(stt, stats.clone())),
            tts: Arc::new(TtsChain::new(tts, stats.clone())),
            extractor: Arc::new(IntentChain::new(extractors, stats.clone())),
            stats,
        }
    }

    /// One engine per stage.
    pub fn single(
        stt: Arc<dyn SttProvider>,
        tts: Arc<dyn TtsProvider>,
        extractor: Arc<dyn IntentExtractor>,
    ) -> Engines {
        Engines::new(vec![stt], vec![tts], vec![extractor], EngineStats::new())
    }
}

/// Everything a call needs; cheap to clone.
#[derive(Clone)]
pub struct Deps {
    pub config: Arc<Config>,
    pub store: Store,
    pub engines: Engines,
    pub registry: Registry,
    /// Texts callers their reference and the on-call person escalations,
    /// when configured.
    pub outbox: Option<crate::outbox::Outbox>,
}

/// How a call ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallOutcome {
    pub call_id: i64,
    pub end_reason: String,
    /// The task the call created, if any.
    pub task_reference: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("at the concurrent call limit")]
    AtCapacity,
    #[error("could not record the call: {0}")]
    Store(#[from] StoreError),
}

/// Where a transfer goes for this transport, if configured.
fn transfer_target(config: &Config, info: &LegInfo) -> Option<String> {
    match info.transport {
        Transport::Twilio => config.escalation.agent_number.clone(),
        Transport::Sip => config.escalation.agent_sip_uri.clone(),
        Transport::Browser | Transport::Simulated => None,
    }
}

/// The core's configuration for this leg. An outbound callback (a leg with a
/// `callback_task` parameter, from SIP or a Twilio `<Parameter>`) opens with
/// the task's context, and the person on the line is the one we called.
async fn call_config(deps: &Deps, info: &LegInfo, can_transfer: bool) -> CallConfig {
    let callback = info.params.get(CALLBACK_TASK);
    let other_party = if callback.is_some() {
        &info.to
    } else {
        &info.from
    };
    let caller = Some(other_party.clone()).filter(|n| !n.is_empty());
    let mut cc = CallConfig::inbound(&deps.config, caller, can_transfer, Utc::now());
    if let Some(reference) = callback {
        cc.opening = Some(callback_opening(deps, reference).await);
    }
    cc
}

/// The existing task a callback continues (what it learns updates that
/// task), noted on the task's trail.
async fn callback_task(deps: &Deps, info: &LegInfo, call_id: i64) -> Option<String> {
    let reference = info.params.get(CALLBACK_TASK)?;
    if let Err(e) = deps.store.mark_call_outbound(call_id).await {
        tracing::warn!(call_id, error = %e, "could not record the call as outbound");
    }
    let task = deps.store.task(reference).await.ok()?;
    let note = format!("called back (call {call_id})");
    if let Err(e) = deps
        .store
        .add_task_note(&task.reference, "agent", &note)
        .await
    {
        tracing::warn!(call_id, error = %e, "could not note the callback on its task");
    }
    Some(task.reference)
}

/// "your plumbing request, reference T 1 0 0 1": what a callback is about.
async fn callback_opening(deps: &Deps, reference: &str) -> String {
    let spoken = crate::call::prompts::spell(reference);
    match deps.store.task(reference).await {
        Ok(task) => match task.category {
            Some(category) => format!(
                "your {} request, reference {spoken}",
                category.replace('_', " ")
            ),
            None => format!("your request, reference {spoken}"),
        },
        Err(e) => {
            tracing::warn!(%reference, error = %e, "callback task not found; opening without its details");
            format!("your request, reference {spoken}")
        }
    }
}

/// Runs one call to its end. Fails only when the call cannot be admitted or
/// its row cannot be created; later store errors are logged and the caller
/// is kept on the line.
pub async fn run_call(leg: CallLeg, deps: &Deps) -> Result<CallOutcome, SessionError> {
    let admission = deps
        .registry
        .try_admit(&leg.info)
        .ok_or(SessionError::AtCapacity)?;
    run_admitted(AdmittedLeg { leg, admission }, deps).await
}

/// Runs a call whose transport already took its slot in the registry.
pub async fn run_admitted(admitted: AdmittedLeg, deps: &Deps) -> Result<CallOutcome, SessionError> {
    let AdmittedLeg { leg, admission } = admitted;
    let call = deps
        .store
        .create_call(NewCall {
            transport: leg.info.transport,
            external_id: leg.info.external_id.clone(),
            from_number: leg.info.from.clone(),
            to_number: leg.info.to.clone(),
            started_at: Utc::now(),
        })
        .await?;
    admission.set_call_id(call.id);
    if let Err(e) = deps.store.mark_call_answered(call.id, Utc::now()).await {
        tracing::warn!(call_id = call.id, error = %e, "could not mark call answered");
    }
    let target = transfer_target(&deps.config, &leg.info);
    let can_transfer = leg.info.can_transfer && target.is_some();
    let cc = call_config(deps, &leg.info, can_transfer).await;
    tracing::info!(call_id = call.id, external_id = %leg.info.external_id, "call started");
    let mut driver = driver::Driver::new(deps, call.id, cc, target, admission.stop_token());
    if let Some(reference) = callback_task(deps, &leg.info, call.id).await {
        driver = driver.continuing_task(reference);
    }
    let outcome = driver.run(leg).await;
    if let Err(e) = deps
        .store
        .end_call(call.id, Utc::now(), &outcome.end_reason)
        .await
    {
        tracing::error!(call_id = call.id, error = %e, "could not record the end of the call");
    }
    tracing::info!(call_id = call.id, reason = %outcome.end_reason, "call ended");
    Ok(outcome)
}

/// The [`CallHost`] the transports hand their legs to.
#[derive(Clone)]
pub struct Sessions {
    deps: Deps,
}

impl Sessions {
    pub fn new(deps: Deps) -> Sessions {
        Sessions { deps }
    }

    pub fn deps(&self) -> &Deps {
        &self.deps
    }

    /// Runs every admitted leg that arrives on `legs` (a transport's accept
    /// loop, such as the SIP server) as its own task, until the channel closes.
    pub async fn serve_legs(&self, mut legs: tokio::sync::mpsc::Receiver<AdmittedLeg>) {
        while let Some(admitted) = legs.recv().await {
            let deps = self.deps.clone();
            tokio::spawn(async move {
                if let Err(e) = run_admitted(admitted, &deps).await {
                    tracing::warn!(error = %e, "call not run");
                }
            });
        }
    }
}

impl CallHost for Sessions {
    fn has_capacity(&self) -> bool {
        self.deps.registry.has_capacity()
    }

    fn run(&self, leg: CallLeg) -> BoxFuture<'static, ()> {
        let deps = self.deps.clone();
        Box::pin(async move {
            if let Err(e) = run_call(leg, &deps).await {
                tracing::warn!(error = %e, "call not run");
            }
        })
    }

    fn carrier_ended(&self, external_id: &str) {
        self.deps.registry.end_external(external_id);
    }
}
