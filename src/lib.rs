//! Switchboard: an AI phone receptionist server.
//!
//! This is the composition root. [`run`] opens the store, creates the first
//! admin on an empty database, wires the event bus and the web router
//! together and serves until shutdown, then drains in-flight requests.

pub mod audio;
pub mod call;
pub mod config;
pub mod domain;
pub mod events;
pub mod models;
pub mod outbox;
pub mod providers;
pub mod session;
pub mod store;
pub mod transport;
pub mod web;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use std::sync::Arc;

use config::{Config, LogFormat};
use events::Bus;
use providers::intent::chat::ChatExtractor;
use providers::intent::rules::RulesExtractor;
use providers::stt::deepgram::DeepgramStt;
use providers::stt::offline::{OfflineStt, WhisperEngine};
use providers::stt::transcribe::TranscribeStt;
use providers::stt::unavailable::UnavailableStt;
use providers::tts::deepgram::DeepgramTts;
use providers::tts::elevenlabs::ElevenLabsTts;
use providers::tts::offline::OfflineTts;
use providers::tts::openai::OpenAiTts;
use providers::SttProvider;
use session::{Deps, Engines, Registry, Sessions};
use store::{Role, Store};
use transport::twilio::{CallHost, TwilioRuntime};
use web::AppState;

/// How long shutdown waits for live calls to finish their goodbyes.
const CALL_DRAIN: Duration = Duration::from_secs(10);

/// How often expired sign-in sessions are deleted.
const SESSION_SWEEP: Duration = Duration::from_secs(3600);

/// Installs the global tracing subscriber: `config.log` as the filter, JSON
/// lines when `log_format = json`. A second call is a no-op.
pub fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour codes only for a person at a terminal, never into files or collectors.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match config.log_format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Opens the database named by the config and applies its migrations.
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    Store::open(config.database_url.expose(), Bus::new(), &config.node_id)
        .await
        .context("cannot open the database (database_url)")
}

/// On a database with no users, creates `admin` with a random password and
/// returns that password (the only time it exists in clear); else `None`.
pub async fn bootstrap_admin(store: &Store) -> anyhow::Result<Option<String>> {
    if store.count_users().await? > 0 {
        return Ok(None);
    }
    let password = web::auth::random_token()[..20].to_string();
    let hash = web::auth::hash_password(&password).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    match store.create_user("admin", &hash, Role::Admin).await {
        Ok(_) => Ok(Some(password)),
        // Another node created it first.
        Err(store::StoreError::Conflict(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Opens the store, creates the first admin if needed, and serves HTTP on
/// `listener` until `shutdown` completes; in-flight requests are drained.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let store = open_store(&config).await?;
    if let Some(password) = bootstrap_admin(&store).await? {
        tracing::warn!(
            email = "admin",
            %password,
            "created the first admin account; this password is shown only now: sign in and change it"
        );
    }
    serve(config, store, listener, shutdown).await
}

/// Serves the web app over an open store until `shutdown` completes.
pub async fn serve(
    config: Config,
    store: Store,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let stop = CancellationToken::new();
    let state = AppState::with_shutdown(config.clone(), store.clone(), stop.clone());
    let engines = build_engines(&config, state.metrics().engine_stats());
    tracing::info!(
        stt = ?engines.stt.names(),
        tts = ?engines.tts.names(),
        intent = ?engines.extractor.names(),
        "engine chains"
    );
    // Texts are queued only when the operator asked for them (a sender
    // number); missing credentials then keep them queued, not lost.
    let outbox = config.twilio.from_number.is_some().then(|| {
        outbox::Outbox::new(
            store.clone(),
            transport::twilio::rest::RestClient::from_config(&config.twilio),
            outbox::OutboxConfig::from_config(&config),
        )
    });
    if outbox.is_none() {
        tracing::info!(
            "text messages off (set twilio.from_number to text callers and the on-call number)"
        );
    }
    let outbox_worker = outbox.clone().map(|outbox| {
        let stop = stop.clone();
        tokio::spawn(async move { outbox.run(stop).await })
    });
    let sessions = Sessions::new(Deps {
        config: Arc::new(config.clone()),
        store: store.clone(),
        engines,
        registry: Registry::new(config.call.max_concurrent),
        outbox,
    });
    let registry = sessions.deps().registry.clone();
    let (sip, sip_status, dialer) = start_sip(&config, sessions.clone(), stop.clone()).await?;
    let host: Arc<dyn CallHost> = Arc::new(sessions);
    let twilio = TwilioRuntime::new(&config, host);
    let mut app = web::router(state)
        .layer(axum::Extension(twilio))
        .layer(axum::Extension(sip_status));
    if let Some(dialer) = dialer {
        app = app.layer(axum::Extension(dialer));
    }
    let addr = listener.local_addr().context("listener has no address")?;
    tracing::info!(%addr, "serving HTTP");
    let sweeper = tokio::spawn(sweep_sessions(store.clone(), stop.clone()));
    let signal = {
        let stop = stop.clone();
        async move {
            tokio::select! {
                _ = shutdown => tracing::info!("shutting down: draining in-flight requests"),
                _ = stop.cancelled() => {}
            }
            // Ends SSE streams so the drain can finish.
            stop.cancel();
        }
    };
    let served = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(signal)
    .await;
    stop.cancel();
    registry.shutdown();
    if tokio::time::timeout(CALL_DRAIN, registry.drained())
        .await
        .is_err()
    {
        tracing::warn!("calls still live after the drain period; closing anyway");
    }
    if let Some(sip) = sip {
        let _ = sip.await;
    }
    let _ = sweeper.await;
    if let Some(worker) = outbox_worker {
        let _ = worker.await;
    }
    store.close().await;
    served.context("HTTP server failed")?;
    tracing::info!("stopped");
    Ok(())
}

/// The embedded engines only: Whisper (when its model is there), flite, rules.
pub fn offline_engines(config: &Config) -> Engines {
    Engines::new(
        vec![offline_stt(config)],
        vec![Arc::new(OfflineTts::new())],
        vec![rules(config)],
        providers::report::EngineStats::new(),
    )
}

/// The engine chains the configuration names, in its order.
pub fn build_engines(config: &Config, stats: Arc<providers::report::EngineStats>) -> Engines {
    use config::{IntentEngine, SttEngine, TtsEngine};
    let e = &config.engines;
    // Whisper is loaded only when the chain names it (at most once: the
    // configuration refuses repeats).
    let stt = e
        .stt
        .iter()
        .map(|engine| match engine {
            SttEngine::Offline => offline_stt(config),
            SttEngine::Transcribe => Arc::new(TranscribeStt::new(e.transcribe.clone(), e.timeout)),
            SttEngine::Deepgram => Arc::new(DeepgramStt::new(e.deepgram.clone(), e.timeout)),
        })
        .collect();
    let tts = e
        .tts
        .iter()
        .map(|engine| match engine {
            TtsEngine::Offline => Arc::new(OfflineTts::new()) as Arc<dyn providers::TtsProvider>,
            TtsEngine::ElevenLabs => Arc::new(ElevenLabsTts::new(e.elevenlabs.clone(), e.timeout)),
            TtsEngine::OpenAi => Arc::new(OpenAiTts::new(e.openai_tts.clone(), e.timeout)),
            TtsEngine::Deepgram => Arc::new(DeepgramTts::new(e.deepgram.clone(), e.timeout)),
        })
        .collect();
    let intent = e
        .intent
        .iter()
        .map(|engine| match engine {
            IntentEngine::Rules => rules(config),
            IntentEngine::Chat => {
                match ChatExtractor::new(e.chat.clone(), config.business.clone()) {
                    Ok(chat) => Arc::new(chat) as Arc<dyn providers::IntentExtractor>,
                    Err(err) => {
                        tracing::error!(error = %err, "chat engine unavailable; the rules answer instead");
                        rules(config)
                    }
                }
            }
        })
        .collect();
    Engines::new(stt, tts, intent, stats)
}

/// Whisper, loaded from the configured model (a few hundred MB of work), or
/// an engine that explains why it is missing.
fn offline_stt(config: &Config) -> Arc<dyn SttProvider> {
    match WhisperEngine::load(&config.stt.whisper_model, config.stt.threads) {
        Ok(engine) => Arc::new(OfflineStt::new(Arc::new(engine))),
        Err(e) => {
            let reason = format!(
                "speech model {} not loaded ({e}); run `switchboard models fetch`",
                config.stt.whisper_model.display()
            );
            tracing::error!("{reason}");
            Arc::new(UnavailableStt { reason })
        }
    }
}

fn rules(config: &Config) -> Arc<dyn providers::IntentExtractor> {
    Arc::new(RulesExtractor::new(
        config.business.categories.clone(),
        config.business.timezone,
    ))
}

/// Binds the SIP socket (when configured) and serves it until `stop`. Calls
/// are admitted against the sessions' registry at the INVITE and every
/// answered call goes to the sessions with its slot. Also returns the
/// registration status `/readyz` and the dashboard show, and (with SIP on)
/// the dialer `POST /api/v1/calls` places calls with.
async fn start_sip(
    config: &Config,
    sessions: Sessions,
    stop: CancellationToken,
) -> anyhow::Result<(
    Option<tokio::task::JoinHandle<()>>,
    transport::sip::status::RegistrationStatus,
    Option<transport::sip::outbound::SipDialer>,
)> {
    let status = transport::sip::status::RegistrationStatus::new();
    let Some(addr) = config.sip.addr else {
        return Ok((None, status, None));
    };
    let (dialer, dials) = transport::sip::outbound::SipDialer::channel();
    let socket = tokio::net::UdpSocket::bind(addr)
        .await
        .with_context(|| format!("cannot bind SIP on {addr} (sip.addr)"))?;
    let (legs_tx, legs_rx) = tokio::sync::mpsc::channel(64);
    let server = transport::sip::server::SipServer {
        config: config.sip.clone(),
        registry: sessions.deps().registry.clone(),
        calls: legs_tx,
        agent_uri: config.escalation.agent_sip_uri.clone(),
        registration_status: status.clone(),
        dials: Some(dials),
    };
    tokio::spawn(async move { sessions.serve_legs(legs_rx).await });
    let task = tokio::spawn(async move {
        if let Err(e) = server.run(socket, stop.cancelled_owned()).await {
            tracing::error!(error = %e, "SIP server failed");
        }
    });
    Ok((Some(task), status, Some(dialer)))
}

async fn sweep_sessions(store: Store, stop: CancellationToken) {
    loop {
        match store.delete_expired_sessions(chrono::Utc::now()).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(n, "expired sessions deleted"),
            Err(e) => tracing::warn!(error = %e, "cannot delete expired sessions"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(SESSION_SWEEP) => {}
        }
    }
}
