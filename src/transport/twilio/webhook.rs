//! Twilio's HTTP entry points, as axum routes over the web layer's state:
//! `POST /twilio/voice` answers an incoming call with `<Connect><Stream>` and
//! a per-call token; `POST /twilio/status` records status callbacks on the
//! call row; `GET /twilio/media` upgrades to the Media Streams WebSocket and
//! hands the resulting [`CallLeg`] to the [`CallHost`]. When an auth token is
//! configured every request's `X-Twilio-Signature` is checked (403 when bad
//! or missing), the WebSocket handshake included.
//!
//! The routes need a [`TwilioRuntime`] as an axum `Extension` (added by the
//! composition root); without it the media route answers 503.

use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Extension, OriginalUri};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use chrono::Utc;
use futures::{SinkExt, StreamExt};

use super::media::{self, MediaOptions};
use super::rest::RestClient;
use super::signature;
use super::token;
use super::token::TokenKey;
use super::twiml;
use crate::config::Config;
use crate::providers::BoxFuture;
use crate::transport::sip::outbound::CALLBACK_TASK;
use crate::transport::CallLeg;
use crate::web::AppState;

/// Runs calls for the transport: admission, the per-call session, and
/// carrier-reported ends. Implemented by the session layer.
pub trait CallHost: Send + Sync + 'static {
    /// Whether another call may start now.
    fn has_capacity(&self) -> bool;
    /// Runs one call to its end.
    fn run(&self, leg: CallLeg) -> BoxFuture<'static, ()>;
    /// The carrier says this call is over (status callback).
    fn carrier_ended(&self, external_id: &str);
}

/// What the Twilio routes need beyond [`AppState`].
#[derive(Clone)]
pub struct TwilioRuntime {
    pub media: MediaOptions,
    pub host: Arc<dyn CallHost>,
}

impl TwilioRuntime {
    /// The runtime for this configuration: the media token key derived from
    /// its secrets and, when credentials are set, the REST client transfers use.
    pub fn new(config: &Config, host: Arc<dyn CallHost>) -> TwilioRuntime {
        TwilioRuntime {
            media: MediaOptions::new(
                TokenKey::derive(config),
                RestClient::from_config(&config.twilio),
            ),
            host,
        }
    }
}

/// `POST /twilio/voice`, `POST /twilio/status`, `GET /twilio/media`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/twilio/voice", post(voice))
        .route("/twilio/status", post(status))
        .route("/twilio/media", get(media_socket))
}

type Params = Vec<(String, String)>;

/// The public URL of `path` (no leading slash), with `ws`/`wss` when `socket`.
fn public_endpoint(state: &AppState, headers: &HeaderMap, path: &str, socket: bool) -> String {
    let base = match &state.config().public_url {
        Some(u) => u.as_str().trim_end_matches('/').to_string(),
        None => {
            // Without a configured public URL, trust the Host header: fine
            // behind a tunnel in development; production sets public_url.
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("localhost");
            format!("https://{host}")
        }
    };
    let full = format!("{base}/{path}");
    if !socket {
        return full;
    }
    if let Some(rest) = full.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = full.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        full
    }
}

/// The URL Twilio called, query included, as it signs it.
fn signed_url(endpoint: &str, uri: &OriginalUri) -> String {
    match uri.query() {
        Some(q) => format!("{endpoint}?{q}"),
        None => endpoint.to_string(),
    }
}

/// Checks the signature when an auth token is configured.
fn check_signature(
    state: &AppState,
    headers: &HeaderMap,
    url: &str,
    params: &Params,
) -> Result<(), Box<Response>> {
    let Some(token) = &state.config().twilio.auth_token else {
        return Ok(());
    };
    let sig = headers
        .get(signature::HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if signature::verify(token.expose(), url, params, sig) {
        Ok(())
    } else {
        tracing::warn!(%url, present = !sig.is_empty(), "rejected request with a bad Twilio signature");
        Err(Box::new(
            (StatusCode::FORBIDDEN, "invalid Twilio signature").into_response(),
        ))
    }
}

fn param<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn xml(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/xml; charset=utf-8")], body).into_response()
}

fn unix_now() -> u64 {
    Utc::now().timestamp().max(0) as u64
}

async fn voice(
    axum::extract::State(state): axum::extract::State<AppState>,
    runtime: Option<Extension<TwilioRuntime>>,
    uri: OriginalUri,
    headers: HeaderMap,
    Form(params): Form<Params>,
) -> Response {
    let url = signed_url(
        &public_endpoint(&state, &headers, "twilio/voice", false),
        &uri,
    );
    if let Err(resp) = check_signature(&state, &headers, &url, &params) {
        return *resp;
    }
    let Some(call_sid) = param(&params, "CallSid").filter(|s| !s.is_empty()) else {
        return (StatusCode::BAD_REQUEST, "missing CallSid").into_response();
    };
    let Some(Extension(runtime)) = runtime else {
        return xml(twiml::say_and_hang_up(
            "Sorry, we cannot take your call right now. Please try again later.",
        ));
    };
    if !runtime.host.has_capacity() {
        tracing::warn!(%call_sid, "refusing call: at the concurrent call limit");
        return xml(twiml::say_and_hang_up(
            "Sorry, all of our lines are busy. Please call again in a few minutes.",
        ));
    }
    let token = runtime.media.token_key.issue(call_sid, unix_now());
    let stream_url = public_endpoint(&state, &headers, "twilio/media", true);
    let from = param(&params, "From").unwrap_or("");
    let to = param(&params, "To").unwrap_or("");
    let mut stream_params = vec![(token::PARAM, token.as_str()), ("From", from), ("To", to)];
    // An outbound callback placed by the API names its task in the query
    // (covered by the signature); only a task reference shape is passed on.
    let callback = uri.0.query().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == CALLBACK_TASK)
            .map(|(_, v)| v.into_owned())
            .filter(|v| is_task_reference(v))
    });
    if let Some(reference) = &callback {
        stream_params.push((CALLBACK_TASK, reference.as_str()));
    }
    tracing::info!(%call_sid, %from, %to, callback = ?callback, "answering Twilio call");
    xml(twiml::connect_stream(&stream_url, &stream_params))
}

/// "T-1001": what a callback's task parameter may hold.
fn is_task_reference(v: &str) -> bool {
    v.strip_prefix("T-")
        .is_some_and(|n| !n.is_empty() && n.len() <= 12 && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Call statuses after which the call is over.
const TERMINAL: [&str; 5] = ["completed", "busy", "failed", "no-answer", "canceled"];

async fn status(
    axum::extract::State(state): axum::extract::State<AppState>,
    runtime: Option<Extension<TwilioRuntime>>,
    uri: OriginalUri,
    headers: HeaderMap,
    Form(params): Form<Params>,
) -> Response {
    let url = signed_url(
        &public_endpoint(&state, &headers, "twilio/status", false),
        &uri,
    );
    if let Err(resp) = check_signature(&state, &headers, &url, &params) {
        return *resp;
    }
    let (Some(call_sid), Some(call_status)) =
        (param(&params, "CallSid"), param(&params, "CallStatus"))
    else {
        return (StatusCode::BAD_REQUEST, "missing CallSid or CallStatus").into_response();
    };
    let call = match state
        .store()
        .set_carrier_status(call_sid, call_status)
        .await
    {
        Ok(call) => call,
        Err(e) => {
            tracing::error!(%call_sid, error = %e, "could not record call status");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    if TERMINAL.contains(&call_status) {
        if let Some(call) = call {
            let reason = format!("carrier_{}", call_status.replace('-', "_"));
            if let Err(e) = state.store().end_call(call.id, Utc::now(), &reason).await {
                tracing::error!(%call_sid, error = %e, "could not end call");
            }
        }
        if let Some(Extension(runtime)) = runtime {
            runtime.host.carrier_ended(call_sid);
        }
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn media_socket(
    axum::extract::State(state): axum::extract::State<AppState>,
    runtime: Option<Extension<TwilioRuntime>>,
    uri: OriginalUri,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let url = signed_url(
        &public_endpoint(&state, &headers, "twilio/media", true),
        &uri,
    );
    if let Err(resp) = check_signature(&state, &headers, &url, &Vec::new()) {
        return *resp;
    }
    let Some(Extension(runtime)) = runtime else {
        return (StatusCode::SERVICE_UNAVAILABLE, "calls are not enabled").into_response();
    };
    upgrade.on_upgrade(move |socket| serve_socket(socket, runtime))
}

/// Adapts the axum socket to text streams, accepts the stream and runs the call.
async fn serve_socket(socket: WebSocket, runtime: TwilioRuntime) {
    let (sink, stream) = socket.split();
    let rx = stream.filter_map(|msg| async move {
        match msg {
            Ok(Message::Text(t)) => Some(Ok(t.to_string())),
            Ok(Message::Close(_)) => None,
            Ok(_) => None,
            Err(e) => Some(Err(e)),
        }
    });
    let rx = Box::pin(rx);
    let tx = Box::pin(
        sink.with(|text: String| async move { Ok::<_, axum::Error>(Message::Text(text.into())) }),
    );
    let (leg, pump) = match media::accept(rx, tx, &runtime.media, unix_now()).await {
        Ok(pair) => pair,
        Err(e) => {
            tracing::warn!(error = %e, "Twilio media stream refused");
            return;
        }
    };
    let call = runtime.host.run(leg);
    let (_, end) = tokio::join!(call, pump.run());
    tracing::debug!(?end, "Twilio media stream finished");
}
