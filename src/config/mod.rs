//! Typed configuration: an optional TOML file overlaid by `SWITCHBOARD_*`
//! environment variables, validated once at start. Every key is listed in
//! [`KEYS`]; an unknown key or a bad value stops start-up with a message that
//! names the key. Secrets never appear in `Debug` or `check-config` output.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono_tz::Tz;

use crate::domain::DEFAULT_CATEGORIES;

mod engines;

pub use engines::{
    ChatConfig, ChatFormat, DeepgramConfig, ElevenLabsConfig, EnginesConfig, IntentEngine,
    OpenAiTtsConfig, SttEngine, TranscribeConfig, TtsEngine,
};

/// A value that must not be printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"[redacted]\"")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// One configuration key: its dotted TOML name, its environment variable,
/// its default (as text) and whether it is a secret.
pub struct Key {
    pub name: &'static str,
    pub env: &'static str,
    pub default: Option<&'static str>,
    pub secret: bool,
    /// May only come from the environment, never the config file (API keys).
    pub env_only: bool,
    pub help: &'static str,
}

const fn key(
    name: &'static str,
    env: &'static str,
    default: Option<&'static str>,
    help: &'static str,
) -> Key {
    Key {
        name,
        env,
        default,
        secret: false,
        env_only: false,
        help,
    }
}

const fn secret(name: &'static str, env: &'static str, help: &'static str) -> Key {
    Key {
        name,
        env,
        default: None,
        secret: true,
        env_only: false,
        help,
    }
}

const fn env_secret(name: &'static str, env: &'static str, help: &'static str) -> Key {
    Key {
        name,
        env,
        default: None,
        secret: true,
        env_only: true,
        help,
    }
}

/// Every key Switchboard reads. The README's configuration reference mirrors this table.
pub const KEYS: &[Key] = &[
    key(
        "http_addr",
        "SWITCHBOARD_HTTP_ADDR",
        Some("127.0.0.1:8080"),
        "address the HTTP server binds",
    ),
    key(
        "public_url",
        "SWITCHBOARD_PUBLIC_URL",
        None,
        "externally visible base URL (https://… for Twilio)",
    ),
    secret(
        "database_url",
        "SWITCHBOARD_DATABASE_URL",
        "sqlite://PATH or postgres://…",
    ),
    key(
        "node_id",
        "SWITCHBOARD_NODE_ID",
        None,
        "name of this node in call records (default: host name)",
    ),
    key(
        "log",
        "SWITCHBOARD_LOG",
        Some("info,whisper_rs=warn"),
        "log filter (tracing EnvFilter syntax)",
    ),
    key(
        "log_format",
        "SWITCHBOARD_LOG_FORMAT",
        Some("text"),
        "text or json",
    ),
    key(
        "recordings_dir",
        "SWITCHBOARD_RECORDINGS_DIR",
        Some("recordings"),
        "where voice messages are written when speech recognition is down",
    ),
    secret(
        "api_token",
        "SWITCHBOARD_API_TOKEN",
        "a bearer token accepted as an admin for automation",
    ),
    key(
        "business.name",
        "SWITCHBOARD_BUSINESS_NAME",
        Some("Switchboard Home Services"),
        "business name used in the greeting",
    ),
    key(
        "business.timezone",
        "SWITCHBOARD_TIMEZONE",
        Some("UTC"),
        "IANA time zone for requested times",
    ),
    key(
        "business.categories",
        "SWITCHBOARD_CATEGORIES",
        None,
        "comma-separated service categories",
    ),
    key(
        "business.greeting",
        "SWITCHBOARD_GREETING",
        None,
        "greeting; {business} is replaced by the name",
    ),
    key(
        "business.service_area",
        "SWITCHBOARD_SERVICE_AREA",
        None,
        "where the business works, for prompts",
    ),
    key(
        "call.end_of_turn_silence_ms",
        "SWITCHBOARD_END_OF_TURN_MS",
        Some("600"),
        "silence that ends a caller turn",
    ),
    key(
        "call.barge_in_min_ms",
        "SWITCHBOARD_BARGE_IN_MS",
        Some("250"),
        "caller speech that interrupts the agent",
    ),
    key(
        "call.filler_after_ms",
        "SWITCHBOARD_FILLER_MS",
        Some("800"),
        "wait before a filler phrase",
    ),
    key(
        "call.reprompt_after_ms",
        "SWITCHBOARD_REPROMPT_MS",
        Some("6000"),
        "caller silence before a re-prompt",
    ),
    key(
        "call.max_silent_prompts",
        "SWITCHBOARD_MAX_SILENT_PROMPTS",
        Some("2"),
        "re-prompts before a polite hang-up",
    ),
    key(
        "call.max_duration_secs",
        "SWITCHBOARD_MAX_CALL_SECS",
        Some("1800"),
        "longest call before a polite goodbye",
    ),
    key(
        "call.max_concurrent",
        "SWITCHBOARD_MAX_CALLS",
        Some("100"),
        "concurrent calls, all transports together",
    ),
    key(
        "stt.whisper_model",
        "SWITCHBOARD_WHISPER_MODEL",
        Some("models/ggml-tiny.en.bin"),
        "whisper.cpp ggml model file",
    ),
    key(
        "stt.threads",
        "SWITCHBOARD_STT_THREADS",
        None,
        "threads for offline speech-to-text (default: cores)",
    ),
    key(
        "twilio.account_sid",
        "SWITCHBOARD_TWILIO_ACCOUNT_SID",
        None,
        "Twilio account SID (AC…)",
    ),
    secret(
        "twilio.auth_token",
        "SWITCHBOARD_TWILIO_AUTH_TOKEN",
        "Twilio auth token; enables signature checks",
    ),
    key(
        "twilio.api_base",
        "SWITCHBOARD_TWILIO_API_BASE",
        Some("https://api.twilio.com"),
        "Twilio REST base URL",
    ),
    key(
        "sip.addr",
        "SWITCHBOARD_SIP_ADDR",
        Some("127.0.0.1:5060"),
        "UDP address for SIP; empty disables SIP",
    ),
    key(
        "sip.rtp_addr",
        "SWITCHBOARD_RTP_ADDR",
        None,
        "media address put in SDP (default: the SIP bind address)",
    ),
    key(
        "sip.rtp_ports",
        "SWITCHBOARD_RTP_PORTS",
        Some("10000-20000"),
        "UDP port range for RTP, one port per call",
    ),
    key(
        "sip.allow",
        "SWITCHBOARD_SIP_ALLOW",
        Some("127.0.0.0/8,::1/128"),
        "source networks allowed to send SIP",
    ),
    key(
        "sip.registrar",
        "SWITCHBOARD_SIP_REGISTRAR",
        None,
        "registrar IP:port to register with as an extension",
    ),
    key(
        "sip.domain",
        "SWITCHBOARD_SIP_DOMAIN",
        None,
        "SIP domain of the extension (default: the registrar address)",
    ),
    key(
        "sip.username",
        "SWITCHBOARD_SIP_USERNAME",
        None,
        "extension user name for REGISTER",
    ),
    secret(
        "sip.password",
        "SWITCHBOARD_SIP_PASSWORD",
        "extension password (digest authentication)",
    ),
    key(
        "sip.register_expires",
        "SWITCHBOARD_SIP_REGISTER_EXPIRES",
        Some("3600"),
        "requested registration lifetime, seconds",
    ),
    key(
        "sip.ring_ms",
        "SWITCHBOARD_SIP_RING_MS",
        Some("500"),
        "ringing time before answering",
    ),
    key(
        "escalation.agent_number",
        "SWITCHBOARD_AGENT_NUMBER",
        None,
        "phone number a human answers (Twilio <Dial>)",
    ),
    key(
        "escalation.agent_sip_uri",
        "SWITCHBOARD_AGENT_SIP_URI",
        None,
        "SIP URI a human answers (REFER target)",
    ),
    key(
        "escalation.oncall_sms",
        "SWITCHBOARD_ONCALL_SMS",
        None,
        "phone number (E.164) texted a summary of every escalation (needs twilio.from_number)",
    ),
    key(
        "twilio.from_number",
        "SWITCHBOARD_TWILIO_FROM",
        None,
        "Twilio number (E.164) that SMS and outbound calls come from",
    ),
    key(
        "stt.engines",
        "SWITCHBOARD_STT_ENGINES",
        None,
        "speech-to-text chain, in order: deepgram, transcribe, offline (default: the cloud engines that have keys, then offline)",
    ),
    key(
        "tts.engines",
        "SWITCHBOARD_TTS_ENGINES",
        None,
        "text-to-speech chain: elevenlabs, openai, deepgram, offline (default: those with keys, then offline)",
    ),
    key(
        "intent.engines",
        "SWITCHBOARD_INTENT_ENGINES",
        None,
        "intent chain: chat, rules (default: chat when it has a key, then rules)",
    ),
    key(
        "engines.timeout_ms",
        "SWITCHBOARD_ENGINE_TIMEOUT_MS",
        Some("5000"),
        "how long a cloud engine may take to connect or send its first byte before the next in the chain takes over",
    ),
    env_secret(
        "openai.api_key",
        "SWITCHBOARD_OPENAI_API_KEY",
        "key shared by transcribe, chat and openai_tts when their own is unset",
    ),
    env_secret(
        "deepgram.api_key",
        "SWITCHBOARD_DEEPGRAM_API_KEY",
        "Deepgram key: enables Deepgram live STT and Aura TTS",
    ),
    key(
        "deepgram.base_url",
        "SWITCHBOARD_DEEPGRAM_BASE_URL",
        Some("https://api.deepgram.com"),
        "Deepgram API base URL (the streaming wss:// URL is derived from it)",
    ),
    key(
        "deepgram.model",
        "SWITCHBOARD_DEEPGRAM_MODEL",
        Some("nova-3"),
        "Deepgram speech model",
    ),
    key(
        "deepgram.language",
        "SWITCHBOARD_DEEPGRAM_LANGUAGE",
        Some("en"),
        "Deepgram language code",
    ),
    key(
        "deepgram.endpointing_ms",
        "SWITCHBOARD_DEEPGRAM_ENDPOINTING_MS",
        Some("300"),
        "silence before Deepgram finalizes speech (endpointing)",
    ),
    key(
        "deepgram.utterance_end_ms",
        "SWITCHBOARD_DEEPGRAM_UTTERANCE_END_MS",
        Some("1000"),
        "gap in words that ends an utterance (utterance_end_ms, at least 1000)",
    ),
    key(
        "deepgram.keyterms",
        "SWITCHBOARD_DEEPGRAM_KEYTERMS",
        None,
        "words to boost, comma-separated (the business name and service area are always added)",
    ),
    key(
        "deepgram.tts_model",
        "SWITCHBOARD_DEEPGRAM_TTS_MODEL",
        Some("aura-2-thalia-en"),
        "Deepgram Aura voice model",
    ),
    env_secret(
        "transcribe.api_key",
        "SWITCHBOARD_TRANSCRIBE_API_KEY",
        "key for the OpenAI-compatible transcription engine (Groq, OpenAI)",
    ),
    key(
        "transcribe.base_url",
        "SWITCHBOARD_TRANSCRIBE_BASE_URL",
        Some("https://api.openai.com/v1"),
        "OpenAI-compatible base URL for /audio/transcriptions (Groq: https://api.groq.com/openai/v1)",
    ),
    key(
        "transcribe.model",
        "SWITCHBOARD_TRANSCRIBE_MODEL",
        Some("whisper-1"),
        "transcription model (Groq: whisper-large-v3)",
    ),
    key(
        "transcribe.language",
        "SWITCHBOARD_TRANSCRIBE_LANGUAGE",
        Some("en"),
        "language of the callers' speech (ISO 639-1), sent to the transcription engine",
    ),
    env_secret(
        "chat.api_key",
        "SWITCHBOARD_CHAT_API_KEY",
        "key for the OpenAI-compatible chat engine (not needed for a local Ollama)",
    ),
    key(
        "chat.base_url",
        "SWITCHBOARD_CHAT_BASE_URL",
        Some("https://api.openai.com/v1"),
        "OpenAI-compatible base URL for /chat/completions (Groq, OpenAI, Ollama, vLLM)",
    ),
    key(
        "chat.model",
        "SWITCHBOARD_CHAT_MODEL",
        Some("gpt-4o-mini"),
        "chat model (Groq: llama-3.3-70b-versatile)",
    ),
    key(
        "chat.timeout_ms",
        "SWITCHBOARD_CHAT_TIMEOUT_MS",
        Some("2500"),
        "time limit for one intent answer; past it the turn is retried once, then handled by the rules",
    ),
    key(
        "chat.response_format",
        "SWITCHBOARD_CHAT_RESPONSE_FORMAT",
        Some("json_schema"),
        "how the model is asked for structure: json_schema, tools or json (a server that refuses one gets the next)",
    ),
    env_secret(
        "openai_tts.api_key",
        "SWITCHBOARD_OPENAI_TTS_API_KEY",
        "key for OpenAI text-to-speech",
    ),
    key(
        "openai_tts.base_url",
        "SWITCHBOARD_OPENAI_TTS_BASE_URL",
        Some("https://api.openai.com/v1"),
        "OpenAI-compatible base URL for /audio/speech",
    ),
    key(
        "openai_tts.model",
        "SWITCHBOARD_OPENAI_TTS_MODEL",
        Some("gpt-4o-mini-tts"),
        "OpenAI speech model",
    ),
    key(
        "openai_tts.voice",
        "SWITCHBOARD_OPENAI_TTS_VOICE",
        Some("alloy"),
        "OpenAI voice",
    ),
    env_secret(
        "elevenlabs.api_key",
        "SWITCHBOARD_ELEVENLABS_API_KEY",
        "ElevenLabs key: enables ElevenLabs streaming TTS",
    ),
    key(
        "elevenlabs.base_url",
        "SWITCHBOARD_ELEVENLABS_BASE_URL",
        Some("https://api.elevenlabs.io"),
        "ElevenLabs API base URL",
    ),
    key(
        "elevenlabs.voice_id",
        "SWITCHBOARD_ELEVENLABS_VOICE_ID",
        Some("21m00Tcm4TlvDq8ikWAM"),
        "ElevenLabs voice id",
    ),
    key(
        "elevenlabs.model",
        "SWITCHBOARD_ELEVENLABS_MODEL",
        Some("eleven_flash_v2_5"),
        "ElevenLabs model id",
    ),
    key(
        "elevenlabs.optimize_streaming_latency",
        "SWITCHBOARD_ELEVENLABS_LATENCY",
        Some("3"),
        "ElevenLabs optimize_streaming_latency, 0-4",
    ),
];

#[derive(Debug, Clone)]
pub struct Config {
    pub http_addr: SocketAddr,
    pub public_url: Option<url::Url>,
    pub database_url: Secret,
    pub node_id: String,
    pub log: String,
    pub log_format: LogFormat,
    pub api_token: Option<Secret>,
    pub recordings_dir: PathBuf,
    pub business: Business,
    pub call: CallTuning,
    pub stt: SttConfig,
    pub twilio: TwilioConfig,
    pub sip: SipConfig,
    pub escalation: Escalation,
    pub engines: EnginesConfig,
}

#[derive(Debug, Clone)]
pub struct SipConfig {
    /// `None` when SIP is disabled.
    pub addr: Option<SocketAddr>,
    /// The address written into SDP; never unspecified.
    pub rtp_addr: std::net::IpAddr,
    pub rtp_ports: std::ops::RangeInclusive<u16>,
    pub allow: Vec<IpNet>,
    pub ring: Duration,
    pub registration: Option<Registrar>,
}

/// Registering as an extension with a PBX or trunk.
#[derive(Debug, Clone)]
pub struct Registrar {
    pub addr: SocketAddr,
    pub domain: String,
    pub username: String,
    pub password: Secret,
    pub expires: u32,
}

/// An IP network in CIDR form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    pub addr: std::net::IpAddr,
    pub prefix: u8,
}

impl IpNet {
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr::*;
        let ip = match ip {
            V6(v6) => v6.to_ipv4_mapped().map(V4).unwrap_or(V6(v6)),
            v4 => v4,
        };
        match (self.addr, ip) {
            (V4(net), V4(ip)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - u32::from(self.prefix.min(32)))
                };
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (V6(net), V6(ip)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - u32::from(self.prefix.min(128)))
                };
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for IpNet {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: std::net::IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("`{addr}` is not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`/{p}` is not a prefix length up to {max}"))?,
            None => max,
        };
        Ok(IpNet { addr, prefix })
    }
}

#[derive(Debug, Clone)]
pub struct Business {
    pub name: String,
    pub timezone: Tz,
    pub categories: Vec<String>,
    pub greeting: String,
    pub service_area: Option<String>,
}

/// Timings of the conversation, all configurable.
#[derive(Debug, Clone, PartialEq)]
pub struct CallTuning {
    pub end_of_turn_silence: Duration,
    pub barge_in_min: Duration,
    pub filler_after: Duration,
    pub reprompt_after: Duration,
    pub max_silent_prompts: u32,
    pub max_duration: Duration,
    pub max_concurrent: usize,
}

impl Default for CallTuning {
    fn default() -> Self {
        CallTuning {
            end_of_turn_silence: Duration::from_millis(600),
            barge_in_min: Duration::from_millis(250),
            filler_after: Duration::from_millis(800),
            reprompt_after: Duration::from_secs(6),
            max_silent_prompts: 2,
            max_duration: Duration::from_secs(1800),
            max_concurrent: 100,
        }
    }
}

#[derive(Debug, Clone)]
pub struct SttConfig {
    pub whisper_model: PathBuf,
    pub threads: usize,
}

#[derive(Debug, Clone)]
pub struct TwilioConfig {
    pub account_sid: Option<String>,
    pub auth_token: Option<Secret>,
    pub api_base: url::Url,
    /// The number SMS and outbound calls come from.
    pub from_number: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Escalation {
    pub agent_number: Option<String>,
    pub agent_sip_uri: Option<String>,
    /// Texted a summary of every escalation.
    pub oncall_sms: Option<String>,
}

/// A configuration problem, naming the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {message}")]
    Toml { path: PathBuf, message: String },
    #[error("unknown config key `{0}` (see `switchboard check-config` for the known keys)")]
    UnknownKey(String),
    #[error("`{key}` is a secret and is read only from the environment: set {env} instead of writing it in the config file")]
    EnvOnly {
        key: &'static str,
        env: &'static str,
    },
    #[error("invalid value for `{key}` ({env}): {reason}")]
    Invalid {
        key: &'static str,
        env: &'static str,
        reason: String,
    },
}

/// The raw, merged text values before typing, keyed by dotted name.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    values: BTreeMap<&'static str, String>,
}

impl Sources {
    /// Reads the TOML file (if any) and overlays the given environment.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Sources, ConfigError> {
        let mut values = BTreeMap::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.into(),
                source,
            })?;
            let table: toml::Table =
                text.parse()
                    .map_err(|e: toml::de::Error| ConfigError::Toml {
                        path: path.into(),
                        message: e.message().to_string(),
                    })?;
            let mut flat = Vec::new();
            flatten("", &table, &mut flat);
            for (name, value) in flat {
                let key = KEYS
                    .iter()
                    .find(|k| k.name == name)
                    .ok_or_else(|| ConfigError::UnknownKey(name.clone()))?;
                if key.env_only {
                    return Err(ConfigError::EnvOnly {
                        key: key.name,
                        env: key.env,
                    });
                }
                values.insert(key.name, value);
            }
        }
        for (var, value) in env {
            if !var.starts_with("SWITCHBOARD_") {
                continue;
            }
            if let Some(key) = KEYS.iter().find(|k| k.env == var) {
                values.insert(key.name, value);
            }
        }
        Ok(Sources { values })
    }

    /// True when the key was given explicitly as an empty string (used to disable a listener).
    fn is_blank(&self, name: &str) -> bool {
        self.values.get(name).is_some_and(|v| v.trim().is_empty())
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
            .or_else(|| KEYS.iter().find(|k| k.name == name).and_then(|k| k.default))
    }
}

fn flatten(prefix: &str, table: &toml::Table, out: &mut Vec<(String, String)>) {
    for (k, v) in table {
        let name = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(t) => flatten(&name, t, out),
            toml::Value::String(s) => out.push((name, s.clone())),
            toml::Value::Array(items) => {
                let joined: Vec<String> = items
                    .iter()
                    .map(|i| match i {
                        toml::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect();
                out.push((name, joined.join(",")));
            }
            other => out.push((name, other.to_string())),
        }
    }
}

fn business_area(src: &Sources) -> Option<&str> {
    src.get("business.service_area")
}

fn spec(name: &str) -> &'static Key {
    KEYS.iter()
        .find(|k| k.name == name)
        .expect("key listed in KEYS")
}

fn invalid(name: &str, reason: impl Into<String>) -> ConfigError {
    let k = spec(name);
    ConfigError::Invalid {
        key: k.name,
        env: k.env,
        reason: reason.into(),
    }
}

fn parse<T: std::str::FromStr>(
    src: &Sources,
    name: &str,
    what: &str,
) -> Result<Option<T>, ConfigError>
where
    T::Err: fmt::Display,
{
    match src.get(name) {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse::<T>()
            .map(Some)
            .map_err(|e| invalid(name, format!("`{v}` is not {what}: {e}"))),
    }
}

fn millis(src: &Sources, name: &str, min: u64, max: u64) -> Result<Duration, ConfigError> {
    let v: u64 = parse(src, name, "a whole number of milliseconds")?.expect("has a default");
    if v < min || v > max {
        return Err(invalid(name, format!("{v} ms is outside {min}..={max}")));
    }
    Ok(Duration::from_millis(v))
}

impl Config {
    /// Loads from `--config PATH`, else `./switchboard.toml` if present, overlaid by the process environment.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let default = Path::new("switchboard.toml");
        let file = path.or_else(|| default.exists().then_some(default));
        Config::from_sources(&Sources::load(file, std::env::vars())?)
    }

    /// The embedded defaults with no file and no environment: what tests start from.
    pub fn defaults() -> Config {
        Config::from_sources(&Sources::default()).expect("defaults are valid")
    }

    pub fn from_sources(src: &Sources) -> Result<Config, ConfigError> {
        let http_addr =
            parse::<SocketAddr>(src, "http_addr", "a socket address like 127.0.0.1:8080")?
                .expect("has a default");
        let public_url = match src.get("public_url") {
            None => None,
            Some(v) => {
                let u = url::Url::parse(v)
                    .map_err(|e| invalid("public_url", format!("`{v}` is not a URL: {e}")))?;
                if !matches!(u.scheme(), "http" | "https") {
                    return Err(invalid(
                        "public_url",
                        format!("scheme `{}` must be http or https", u.scheme()),
                    ));
                }
                Some(u)
            }
        };
        let database_url = src
            .get("database_url")
            .unwrap_or("sqlite://switchboard.db")
            .to_string();
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            return Err(invalid(
                "database_url",
                "must start with sqlite:, postgres:// or postgresql://",
            ));
        }
        let log_format = match src.get("log_format").unwrap_or("text") {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(invalid(
                    "log_format",
                    format!("`{other}` is not text or json"),
                ))
            }
        };
        let log = src.get("log").unwrap_or("info,whisper_rs=warn").to_string();
        tracing_subscriber::EnvFilter::try_new(&log).map_err(|e| invalid("log", e.to_string()))?;
        let node_id = src
            .get("node_id")
            .map(str::to_string)
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "node-1".to_string());

        let name = src
            .get("business.name")
            .unwrap_or_default()
            .trim()
            .to_string();
        if name.is_empty() {
            return Err(invalid("business.name", "must not be empty"));
        }
        let tz_text = src.get("business.timezone").unwrap_or("UTC");
        let timezone: Tz = tz_text.parse().map_err(|_| {
            invalid(
                "business.timezone",
                format!("`{tz_text}` is not an IANA time zone"),
            )
        })?;
        let categories: Vec<String> = match src.get("business.categories") {
            None => DEFAULT_CATEGORIES.iter().map(|s| s.to_string()).collect(),
            Some(list) => {
                let cats: Vec<String> = list
                    .split(',')
                    .map(|c| c.trim().to_lowercase())
                    .filter(|c| !c.is_empty())
                    .collect();
                if let Some(bad) = cats
                    .iter()
                    .find(|c| !c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_'))
                {
                    return Err(invalid(
                        "business.categories",
                        format!("`{bad}` may hold only letters, digits and _"),
                    ));
                }
                if cats.is_empty() {
                    return Err(invalid("business.categories", "lists no category"));
                }
                cats
            }
        };
        let greeting = src
            .get("business.greeting")
            .unwrap_or("Thanks for calling {business}. This is the virtual assistant. How can I help you today?")
            .replace("{business}", &name);

        let call = CallTuning {
            end_of_turn_silence: millis(src, "call.end_of_turn_silence_ms", 100, 10_000)?,
            barge_in_min: millis(src, "call.barge_in_min_ms", 0, 5_000)?,
            filler_after: millis(src, "call.filler_after_ms", 100, 30_000)?,
            reprompt_after: millis(src, "call.reprompt_after_ms", 1_000, 120_000)?,
            max_silent_prompts: parse(src, "call.max_silent_prompts", "a whole number")?
                .expect("has a default"),
            max_duration: Duration::from_secs(
                parse::<u64>(src, "call.max_duration_secs", "a whole number of seconds")?
                    .expect("has a default")
                    .max(10),
            ),
            max_concurrent: parse(src, "call.max_concurrent", "a whole number")?
                .expect("has a default"),
        };
        if call.max_concurrent == 0 {
            return Err(invalid("call.max_concurrent", "must be at least 1"));
        }

        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        let stt = SttConfig {
            whisper_model: PathBuf::from(src.get("stt.whisper_model").unwrap_or_default()),
            threads: parse(src, "stt.threads", "a whole number")?
                .unwrap_or(cores)
                .max(1),
        };

        let api_base_text = src.get("twilio.api_base").unwrap_or_default();
        let twilio = TwilioConfig {
            account_sid: src.get("twilio.account_sid").map(str::to_string),
            auth_token: src.get("twilio.auth_token").map(Secret::new),
            api_base: url::Url::parse(api_base_text).map_err(|e| {
                invalid(
                    "twilio.api_base",
                    format!("`{api_base_text}` is not a URL: {e}"),
                )
            })?,
            from_number: src.get("twilio.from_number").map(str::to_string),
        };
        if let Some(sid) = &twilio.account_sid {
            if !sid.starts_with("AC") {
                return Err(invalid(
                    "twilio.account_sid",
                    "a Twilio account SID starts with AC",
                ));
            }
        }
        let sip = sip_config(src)?;
        let escalation = Escalation {
            agent_number: src.get("escalation.agent_number").map(str::to_string),
            agent_sip_uri: src.get("escalation.agent_sip_uri").map(str::to_string),
            oncall_sms: src.get("escalation.oncall_sms").map(str::to_string),
        };
        let engines = engines::engines_config(src, &name, business_area(src))?;

        Ok(Config {
            http_addr,
            public_url,
            database_url: Secret::new(database_url),
            node_id,
            log,
            log_format,
            api_token: src.get("api_token").map(Secret::new),
            recordings_dir: PathBuf::from(src.get("recordings_dir").unwrap_or("recordings")),
            business: Business {
                name,
                timezone,
                categories,
                greeting,
                service_area: src.get("business.service_area").map(str::to_string),
            },
            call,
            stt,
            twilio,
            sip,
            escalation,
            engines,
        })
    }

    /// Whether session cookies must carry `Secure`.
    pub fn secure_cookies(&self) -> bool {
        self.public_url
            .as_ref()
            .is_some_and(|u| u.scheme() == "https")
    }
}

fn sip_config(src: &Sources) -> Result<SipConfig, ConfigError> {
    let addr = if src.is_blank("sip.addr") {
        None
    } else {
        parse::<SocketAddr>(src, "sip.addr", "a socket address like 127.0.0.1:5060")?
    };
    let rtp_addr = match parse::<std::net::IpAddr>(src, "sip.rtp_addr", "an IP address")? {
        Some(ip) => ip,
        None => addr
            .map(|a| a.ip())
            .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1])),
    };
    if rtp_addr.is_unspecified() {
        return Err(invalid(
            if src.get("sip.rtp_addr").is_some() { "sip.rtp_addr" } else { "sip.addr" },
            "the media address in SDP must not be 0.0.0.0 or ::; set sip.rtp_addr to the address callers reach",
        ));
    }
    let ports = src.get("sip.rtp_ports").unwrap_or("10000-20000");
    let (lo, hi) = ports.split_once('-').ok_or_else(|| {
        invalid(
            "sip.rtp_ports",
            format!("`{ports}` is not a range like 10000-20000"),
        )
    })?;
    let lo: u16 = lo
        .trim()
        .parse()
        .map_err(|_| invalid("sip.rtp_ports", format!("`{lo}` is not a port")))?;
    let hi: u16 = hi
        .trim()
        .parse()
        .map_err(|_| invalid("sip.rtp_ports", format!("`{hi}` is not a port")))?;
    if lo == 0 || lo > hi {
        return Err(invalid(
            "sip.rtp_ports",
            format!("{lo}-{hi} is empty or starts at 0"),
        ));
    }
    let allow = src
        .get("sip.allow")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|n| n.parse::<IpNet>().map_err(|e| invalid("sip.allow", e)))
        .collect::<Result<Vec<_>, _>>()?;
    let registration = match src.get("sip.registrar") {
        None => None,
        Some(r) => {
            let addr: SocketAddr = r
                .parse()
                .or_else(|_| format!("{r}:5060").parse())
                .map_err(|_| invalid("sip.registrar", format!("`{r}` is not an IP address with an optional port (host names are not resolved)")))?;
            let username = src
                .get("sip.username")
                .ok_or_else(|| invalid("sip.username", "required when sip.registrar is set"))?
                .to_string();
            let password =
                Secret::new(src.get("sip.password").ok_or_else(|| {
                    invalid("sip.password", "required when sip.registrar is set")
                })?);
            let expires: u32 = parse(src, "sip.register_expires", "a whole number of seconds")?
                .expect("has a default");
            if !(60..=86_400).contains(&expires) {
                return Err(invalid(
                    "sip.register_expires",
                    format!("{expires} s is outside 60..=86400"),
                ));
            }
            let domain = src
                .get("sip.domain")
                .map(str::to_string)
                .unwrap_or_else(|| addr.ip().to_string());
            Some(Registrar {
                addr,
                domain,
                username,
                password,
                expires,
            })
        }
    };
    Ok(SipConfig {
        addr,
        rtp_addr,
        rtp_ports: lo..=hi,
        allow,
        ring: millis(src, "sip.ring_ms", 0, 60_000)?,
        registration,
    })
}

/// The effective configuration as `key = value` lines, secrets redacted.
pub fn render_effective(src: &Sources) -> String {
    let mut out = String::new();
    for k in KEYS {
        let shown = match src.get(k.name) {
            None => "(unset)".to_string(),
            Some(_) if k.secret => "[redacted]".to_string(),
            Some(v) => format!("{v:?}"),
        };
        out.push_str(&format!("{:<32} {:<34} {}\n", k.name, k.env, shown));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_valid() {
        let c = Config::defaults();
        assert_eq!(c.http_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(c.database_url.expose(), "sqlite://switchboard.db");
        assert_eq!(c.business.categories.len(), 10);
        assert_eq!(c.call.end_of_turn_silence, Duration::from_millis(600));
        assert!(c.business.greeting.contains("Switchboard Home Services"));
    }

    #[test]
    fn environment_overrides_file_and_errors_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.toml");
        std::fs::write(
            &path,
            "http_addr = \"0.0.0.0:9000\"\n[call]\nfiller_after_ms = 900\n",
        )
        .unwrap();
        let src = Sources::load(
            Some(&path),
            env(&[("SWITCHBOARD_HTTP_ADDR", "127.0.0.1:7000")]),
        )
        .unwrap();
        let c = Config::from_sources(&src).unwrap();
        assert_eq!(c.http_addr.port(), 7000);
        assert_eq!(c.call.filler_after, Duration::from_millis(900));

        let src = Sources::load(None, env(&[("SWITCHBOARD_FILLER_MS", "soon")])).unwrap();
        let err = Config::from_sources(&src).unwrap_err().to_string();
        assert!(
            err.contains("call.filler_after_ms") && err.contains("SWITCHBOARD_FILLER_MS"),
            "{err}"
        );

        std::fs::write(&path, "htp_addr = \"x\"\n").unwrap();
        let err = Sources::load(Some(&path), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown config key `htp_addr`"), "{err}");
    }

    #[test]
    fn secrets_are_redacted() {
        let src = Sources::load(
            None,
            env(&[
                ("SWITCHBOARD_TWILIO_AUTH_TOKEN", "hunter2"),
                ("SWITCHBOARD_TWILIO_ACCOUNT_SID", "AC123"),
            ]),
        )
        .unwrap();
        let c = Config::from_sources(&src).unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(!render_effective(&src).contains("hunter2"));
        assert!(render_effective(&src).contains("[redacted]"));
    }

    #[test]
    fn sip_settings_parse_and_validate() {
        let c = Config::defaults();
        assert_eq!(c.sip.addr.unwrap().port(), 5060);
        assert_eq!(c.sip.rtp_ports, 10000..=20000);
        assert!(c
            .sip
            .allow
            .iter()
            .any(|n| n.contains("127.0.0.1".parse().unwrap())));
        assert!(!c
            .sip
            .allow
            .iter()
            .any(|n| n.contains("192.168.1.1".parse().unwrap())));
        assert!(c
            .sip
            .allow
            .iter()
            .any(|n| n.contains("::ffff:127.0.0.5".parse().unwrap())));
        let src = Sources::load(None, env(&[("SWITCHBOARD_SIP_ADDR", "")])).unwrap();
        assert!(
            Config::from_sources(&src).unwrap().sip.addr.is_none(),
            "empty disables SIP"
        );
        let src = Sources::load(None, env(&[("SWITCHBOARD_SIP_ADDR", "0.0.0.0:5060")])).unwrap();
        assert!(Config::from_sources(&src)
            .unwrap_err()
            .to_string()
            .contains("0.0.0.0"));
        let src = Sources::load(
            None,
            env(&[
                ("SWITCHBOARD_SIP_ADDR", "0.0.0.0:5060"),
                ("SWITCHBOARD_RTP_ADDR", "192.0.2.7"),
            ]),
        )
        .unwrap();
        assert_eq!(
            Config::from_sources(&src).unwrap().sip.rtp_addr.to_string(),
            "192.0.2.7"
        );
        let src = Sources::load(None, env(&[("SWITCHBOARD_RTP_PORTS", "20000-10000")])).unwrap();
        assert!(Config::from_sources(&src)
            .unwrap_err()
            .to_string()
            .contains("sip.rtp_ports"));
        let src = Sources::load(None, env(&[("SWITCHBOARD_SIP_ALLOW", "10.0.0.0/33")])).unwrap();
        assert!(Config::from_sources(&src)
            .unwrap_err()
            .to_string()
            .contains("sip.allow"));
        assert!("10.1.0.0/16"
            .parse::<IpNet>()
            .unwrap()
            .contains("10.1.200.3".parse().unwrap()));
        let src = Sources::load(None, env(&[("SWITCHBOARD_SIP_REGISTRAR", "127.0.0.1")])).unwrap();
        assert!(Config::from_sources(&src)
            .unwrap_err()
            .to_string()
            .contains("sip.username"));
        let src = Sources::load(
            None,
            env(&[
                ("SWITCHBOARD_SIP_REGISTRAR", "127.0.0.1"),
                ("SWITCHBOARD_SIP_USERNAME", "1001"),
                ("SWITCHBOARD_SIP_PASSWORD", "pw"),
            ]),
        )
        .unwrap();
        let reg = Config::from_sources(&src)
            .unwrap()
            .sip
            .registration
            .unwrap();
        assert_eq!(
            (reg.addr.port(), reg.domain.as_str(), reg.expires),
            (5060, "127.0.0.1", 3600)
        );
        assert!(!format!("{reg:?}").contains("pw\""));
    }

    #[test]
    fn bad_timezone_and_url_are_refused() {
        let src = Sources::load(None, env(&[("SWITCHBOARD_TIMEZONE", "Mars/Olympus")])).unwrap();
        assert!(Config::from_sources(&src)
            .unwrap_err()
            .to_string()
            .contains("business.timezone"));
        let src = Sources::load(None, env(&[("SWITCHBOARD_PUBLIC_URL", "ftp://x")])).unwrap();
        assert!(Config::from_sources(&src)
            .unwrap_err()
            .to_string()
            .contains("public_url"));
    }
}
