//! Opening the `/v1/listen` WebSocket: the URL with every query parameter
//! from config, the `Authorization: Token` header, TLS (rustls with ring, as
//! the crate requires), one time limit over TCP connect, TLS and the HTTP
//! upgrade, and the handshake's failures mapped to [`ProviderError`]s.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::header::{HeaderValue, AUTHORIZATION, RETRY_AFTER};
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};
use url::Url;

use super::api::{self, ENGINE};
use crate::audio::SAMPLE_RATE;
use crate::config::{DeepgramConfig, Secret};
use crate::providers::ProviderError;

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The streaming URL: the base URL with `http`→`ws` / `https`→`wss`, path
/// `/v1/listen`, and the recognition settings as query parameters (one
/// `keyterm` per boosted term). We always send 16 kHz mono linear16.
pub fn listen_url(config: &DeepgramConfig) -> Result<Url, ProviderError> {
    let mut url = config.base_url.clone();
    let scheme = match url.scheme() {
        "http" | "ws" => "ws",
        "https" | "wss" => "wss",
        other => {
            return Err(ProviderError::fatal(
                ENGINE,
                format!("base URL scheme `{other}` is not http(s)"),
            ))
        }
    };
    url.set_scheme(scheme)
        .map_err(|()| ProviderError::fatal(ENGINE, "base URL cannot take a ws scheme"))?;
    let path = format!("{}/v1/listen", url.path().trim_end_matches('/'));
    url.set_path(&path);
    let mut params: Vec<(&str, String)> = vec![
        ("model", config.model.clone()),
        ("language", config.language.clone()),
        ("encoding", "linear16".into()),
        ("sample_rate", SAMPLE_RATE.to_string()),
        ("channels", "1".into()),
        ("interim_results", "true".into()),
        ("endpointing", config.endpointing_ms.to_string()),
        ("utterance_end_ms", config.utterance_end_ms.to_string()),
        ("vad_events", "true".into()),
        ("smart_format", "true".into()),
        ("punctuate", "true".into()),
    ];
    params.extend(config.keyterms.iter().map(|k| ("keyterm", k.clone())));
    let query = params
        .iter()
        .map(|(k, v)| format!("{k}={}", percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    url.set_query(Some(&query));
    Ok(url)
}

/// Percent-encodes everything but RFC 3986 unreserved characters, so a
/// space is `%20` (never `+`, which some servers keep literally).
fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Connects and upgrades within `limit`.
pub async fn open(url: &Url, key: &Secret, limit: Duration) -> Result<Ws, ProviderError> {
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| ProviderError::fatal(ENGINE, format!("listen request: {e}")))?;
    let mut auth = HeaderValue::from_str(&api::authorization(key))
        .map_err(|_| ProviderError::fatal(ENGINE, "the API key is not a valid header value"))?;
    auth.set_sensitive(true);
    request.headers_mut().insert(AUTHORIZATION, auth);
    let connector = match url.scheme() {
        "wss" => Some(Connector::Rustls(tls_config()?)),
        _ => None,
    };
    let attempt = tokio_tungstenite::connect_async_tls_with_config(request, None, true, connector);
    match tokio::time::timeout(limit, attempt).await {
        Err(_) => Err(ProviderError::retryable(
            ENGINE,
            format!("no WebSocket handshake within {} ms", limit.as_millis()),
        )),
        Ok(Err(e)) => Err(handshake_error(e, key)),
        Ok(Ok((ws, _response))) => Ok(ws),
    }
}

fn handshake_error(e: WsError, key: &Secret) -> ProviderError {
    match e {
        WsError::Http(response) => {
            let header = |name| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v: &HeaderValue| v.to_str().ok())
            };
            let body = response.body().as_deref().unwrap_or_default();
            api::status_error(
                response.status().as_u16(),
                header(RETRY_AFTER.as_str()),
                header("dg-error"),
                body,
                key,
            )
        }
        WsError::Io(e) => ProviderError::retryable(ENGINE, format!("connecting: {e}")),
        WsError::Tls(e) => ProviderError::retryable(ENGINE, format!("TLS: {e}")),
        WsError::Url(e) => ProviderError::fatal(ENGINE, format!("listen URL: {e}")),
        other => ProviderError::retryable(ENGINE, format!("handshake: {other}")),
    }
}

/// rustls with the ring provider named explicitly (two providers are in the
/// build, and rustls refuses to pick one) and the webpki root store.
fn tls_config() -> Result<Arc<rustls::ClientConfig>, ProviderError> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots =
                rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map(|b| Arc::new(b.with_root_certificates(roots).with_no_client_auth()))
            .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(|e| ProviderError::fatal(ENGINE, format!("TLS set-up: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(base: &str) -> DeepgramConfig {
        DeepgramConfig {
            api_key: Some(Secret::new("k")),
            base_url: Url::parse(base).unwrap(),
            model: "nova-3".into(),
            language: "en".into(),
            endpointing_ms: 300,
            utterance_end_ms: 1000,
            keyterms: vec!["Acme Plumbing".into(), "Ünterweg & Co".into()],
            tts_model: "aura-2-thalia-en".into(),
        }
    }

    #[test]
    fn the_url_carries_every_setting() {
        let url = listen_url(&config("https://api.deepgram.com")).unwrap();
        assert_eq!(url.scheme(), "wss");
        assert_eq!(url.path(), "/v1/listen");
        assert_eq!(
            url.query().unwrap(),
            "model=nova-3&language=en&encoding=linear16&sample_rate=16000&channels=1\
             &interim_results=true&endpointing=300&utterance_end_ms=1000&vad_events=true\
             &smart_format=true&punctuate=true&keyterm=Acme%20Plumbing\
             &keyterm=%C3%9Cnterweg%20%26%20Co"
        );
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert!(pairs.contains(&("keyterm".into(), "Ünterweg & Co".into())));
    }

    #[test]
    fn plain_http_bases_and_paths() {
        let url = listen_url(&config("http://127.0.0.1:9/proxy/")).unwrap();
        assert_eq!(url.scheme(), "ws");
        assert_eq!(url.port(), Some(9));
        assert_eq!(url.path(), "/proxy/v1/listen");
    }

    #[test]
    fn tls_config_builds_with_ring() {
        assert!(tls_config().is_ok());
    }
}
