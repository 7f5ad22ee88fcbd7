//! Which speech and language engines a call uses, in fallback order, and each
//! cloud engine's settings. A chain names engines in the order they are tried;
//! an engine named in a chain must have what it needs (its key), checked here
//! so a missing key stops start-up instead of failing the first call.

use std::time::Duration;

use url::Url;

use super::{invalid, millis, parse, ConfigError, Secret, Sources};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SttEngine {
    Deepgram,
    /// An OpenAI-compatible `/audio/transcriptions` endpoint.
    Transcribe,
    Offline,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TtsEngine {
    ElevenLabs,
    OpenAi,
    Deepgram,
    Offline,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntentEngine {
    /// An OpenAI-compatible `/chat/completions` endpoint.
    Chat,
    Rules,
}

/// How the chat model is asked for structured output; a server that refuses
/// one form is asked with the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatFormat {
    JsonSchema,
    Tools,
    Json,
}

#[derive(Debug, Clone)]
pub struct DeepgramConfig {
    pub api_key: Option<Secret>,
    pub base_url: Url,
    pub model: String,
    pub language: String,
    pub endpointing_ms: u32,
    pub utterance_end_ms: u32,
    /// Words to boost: the configured ones plus the business name and area.
    pub keyterms: Vec<String>,
    pub tts_model: String,
}

#[derive(Debug, Clone)]
pub struct TranscribeConfig {
    pub api_key: Option<Secret>,
    pub base_url: Url,
    pub model: String,
    /// ISO 639-1 code sent as `language`.
    pub language: String,
}

#[derive(Debug, Clone)]
pub struct ChatConfig {
    pub api_key: Option<Secret>,
    pub base_url: Url,
    pub model: String,
    pub timeout: Duration,
    pub format: ChatFormat,
}

#[derive(Debug, Clone)]
pub struct OpenAiTtsConfig {
    pub api_key: Option<Secret>,
    pub base_url: Url,
    pub model: String,
    pub voice: String,
}

#[derive(Debug, Clone)]
pub struct ElevenLabsConfig {
    pub api_key: Option<Secret>,
    pub base_url: Url,
    pub voice_id: String,
    pub model: String,
    pub optimize_streaming_latency: u8,
}

#[derive(Debug, Clone)]
pub struct EnginesConfig {
    pub stt: Vec<SttEngine>,
    pub tts: Vec<TtsEngine>,
    pub intent: Vec<IntentEngine>,
    /// Connect / first-byte limit for cloud engines.
    pub timeout: Duration,
    pub deepgram: DeepgramConfig,
    pub transcribe: TranscribeConfig,
    pub chat: ChatConfig,
    pub openai_tts: OpenAiTtsConfig,
    pub elevenlabs: ElevenLabsConfig,
}

impl Default for EnginesConfig {
    /// The offline engines only, with every cloud setting at its default.
    fn default() -> Self {
        engines_config(&Sources::default(), "", None).expect("defaults are valid")
    }
}

fn url(src: &Sources, name: &str) -> Result<Url, ConfigError> {
    let text = src.get(name).unwrap_or_default();
    let u = Url::parse(text).map_err(|e| invalid(name, format!("`{text}` is not a URL: {e}")))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(invalid(
            name,
            format!("scheme `{}` must be http or https", u.scheme()),
        ));
    }
    Ok(u)
}

fn text(src: &Sources, name: &str) -> String {
    src.get(name).unwrap_or_default().trim().to_string()
}

/// The engine's own key, else the shared OpenAI key.
fn openai_key(src: &Sources, name: &str) -> Option<Secret> {
    src.get(name)
        .or_else(|| src.get("openai.api_key"))
        .map(|k| Secret::new(k.trim()))
}

fn chain<T: Copy + PartialEq>(
    src: &Sources,
    name: &str,
    names: &[(&str, T)],
    default: Vec<T>,
) -> Result<Vec<T>, ConfigError> {
    let Some(list) = src.get(name) else {
        return Ok(default);
    };
    let mut out = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let engine = names
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(item))
            .map(|(_, e)| *e)
            .ok_or_else(|| {
                let known: Vec<&str> = names.iter().map(|(n, _)| *n).collect();
                invalid(
                    name,
                    format!("`{item}` is not an engine (known: {})", known.join(", ")),
                )
            })?;
        if out.contains(&engine) {
            return Err(invalid(name, format!("`{item}` is listed twice")));
        }
        out.push(engine);
    }
    if out.is_empty() {
        return Err(invalid(name, "names no engine"));
    }
    Ok(out)
}

fn require_key(
    present: bool,
    chain_key: &str,
    engine: &str,
    key_name: &str,
) -> Result<(), ConfigError> {
    if present {
        return Ok(());
    }
    let k = super::spec(key_name);
    Err(invalid(
        chain_key,
        format!("`{engine}` needs {} ({})", k.name, k.env),
    ))
}

pub(super) fn engines_config(
    src: &Sources,
    business: &str,
    service_area: Option<&str>,
) -> Result<EnginesConfig, ConfigError> {
    let mut keyterms: Vec<String> = src
        .get("deepgram.keyterms")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    for extra in [Some(business), service_area].into_iter().flatten() {
        let extra = extra.trim();
        if !extra.is_empty() && !keyterms.iter().any(|k| k.eq_ignore_ascii_case(extra)) {
            keyterms.push(extra.to_string());
        }
    }
    let endpointing_ms: u32 =
        parse(src, "deepgram.endpointing_ms", "a whole number")?.expect("has a default");
    if !(10..=10_000).contains(&endpointing_ms) {
        return Err(invalid(
            "deepgram.endpointing_ms",
            format!("{endpointing_ms} ms is outside 10..=10000"),
        ));
    }
    let utterance_end_ms: u32 =
        parse(src, "deepgram.utterance_end_ms", "a whole number")?.expect("has a default");
    if !(1000..=5000).contains(&utterance_end_ms) {
        return Err(invalid(
            "deepgram.utterance_end_ms",
            format!("{utterance_end_ms} ms is outside 1000..=5000 (Deepgram's minimum is 1000)"),
        ));
    }
    let deepgram = DeepgramConfig {
        api_key: src.get("deepgram.api_key").map(|k| Secret::new(k.trim())),
        base_url: url(src, "deepgram.base_url")?,
        model: text(src, "deepgram.model"),
        language: text(src, "deepgram.language"),
        endpointing_ms,
        utterance_end_ms,
        keyterms,
        tts_model: text(src, "deepgram.tts_model"),
    };
    let language = text(src, "transcribe.language");
    if !(2..=3).contains(&language.len()) || !language.bytes().all(|b| b.is_ascii_lowercase()) {
        return Err(invalid(
            "transcribe.language",
            format!("`{language}` is not a language code like en or de"),
        ));
    }
    let transcribe = TranscribeConfig {
        api_key: openai_key(src, "transcribe.api_key"),
        base_url: url(src, "transcribe.base_url")?,
        model: text(src, "transcribe.model"),
        language,
    };
    let format = match src.get("chat.response_format").unwrap_or_default().trim() {
        "json_schema" => ChatFormat::JsonSchema,
        "tools" => ChatFormat::Tools,
        "json" => ChatFormat::Json,
        other => {
            return Err(invalid(
                "chat.response_format",
                format!("`{other}` is not json_schema, tools or json"),
            ))
        }
    };
    let chat = ChatConfig {
        api_key: openai_key(src, "chat.api_key"),
        base_url: url(src, "chat.base_url")?,
        model: text(src, "chat.model"),
        timeout: millis(src, "chat.timeout_ms", 100, 60_000)?,
        format,
    };
    let openai_tts = OpenAiTtsConfig {
        api_key: openai_key(src, "openai_tts.api_key"),
        base_url: url(src, "openai_tts.base_url")?,
        model: text(src, "openai_tts.model"),
        voice: text(src, "openai_tts.voice"),
    };
    let latency: u8 = parse(src, "elevenlabs.optimize_streaming_latency", "a number 0-4")?
        .expect("has a default");
    if latency > 4 {
        return Err(invalid(
            "elevenlabs.optimize_streaming_latency",
            format!("{latency} is outside 0..=4"),
        ));
    }
    let elevenlabs = ElevenLabsConfig {
        api_key: src.get("elevenlabs.api_key").map(|k| Secret::new(k.trim())),
        base_url: url(src, "elevenlabs.base_url")?,
        voice_id: text(src, "elevenlabs.voice_id"),
        model: text(src, "elevenlabs.model"),
        optimize_streaming_latency: latency,
    };

    let mut default_stt = Vec::new();
    if deepgram.api_key.is_some() {
        default_stt.push(SttEngine::Deepgram);
    }
    if transcribe.api_key.is_some() {
        default_stt.push(SttEngine::Transcribe);
    }
    default_stt.push(SttEngine::Offline);
    let stt = chain(
        src,
        "stt.engines",
        &[
            ("deepgram", SttEngine::Deepgram),
            ("transcribe", SttEngine::Transcribe),
            ("offline", SttEngine::Offline),
        ],
        default_stt,
    )?;
    for e in &stt {
        match e {
            SttEngine::Deepgram => require_key(
                deepgram.api_key.is_some(),
                "stt.engines",
                "deepgram",
                "deepgram.api_key",
            )?,
            SttEngine::Transcribe => require_key(
                transcribe.api_key.is_some(),
                "stt.engines",
                "transcribe",
                "transcribe.api_key",
            )?,
            SttEngine::Offline => {}
        }
    }

    let mut default_tts = Vec::new();
    if elevenlabs.api_key.is_some() {
        default_tts.push(TtsEngine::ElevenLabs);
    }
    if openai_tts.api_key.is_some() {
        default_tts.push(TtsEngine::OpenAi);
    }
    if deepgram.api_key.is_some() {
        default_tts.push(TtsEngine::Deepgram);
    }
    default_tts.push(TtsEngine::Offline);
    let tts = chain(
        src,
        "tts.engines",
        &[
            ("elevenlabs", TtsEngine::ElevenLabs),
            ("openai", TtsEngine::OpenAi),
            ("deepgram", TtsEngine::Deepgram),
            ("offline", TtsEngine::Offline),
        ],
        default_tts,
    )?;
    for e in &tts {
        match e {
            TtsEngine::ElevenLabs => require_key(
                elevenlabs.api_key.is_some(),
                "tts.engines",
                "elevenlabs",
                "elevenlabs.api_key",
            )?,
            TtsEngine::OpenAi => require_key(
                openai_tts.api_key.is_some(),
                "tts.engines",
                "openai",
                "openai_tts.api_key",
            )?,
            TtsEngine::Deepgram => require_key(
                deepgram.api_key.is_some(),
                "tts.engines",
                "deepgram",
                "deepgram.api_key",
            )?,
            TtsEngine::Offline => {}
        }
    }

    // A chat server may need no key (a local Ollama), so naming it is enough.
    let mut default_intent = Vec::new();
    if chat.api_key.is_some() {
        default_intent.push(IntentEngine::Chat);
    }
    default_intent.push(IntentEngine::Rules);
    let intent = chain(
        src,
        "intent.engines",
        &[("chat", IntentEngine::Chat), ("rules", IntentEngine::Rules)],
        default_intent,
    )?;

    Ok(EnginesConfig {
        stt,
        tts,
        intent,
        timeout: millis(src, "engines.timeout_ms", 100, 60_000)?,
        deepgram,
        transcribe,
        chat,
        openai_tts,
        elevenlabs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Sources};

    fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env = pairs.iter().map(|(a, b)| (a.to_string(), b.to_string()));
        Config::from_sources(&Sources::load(None, env).unwrap())
    }

    #[test]
    fn no_keys_means_offline_engines() {
        let c = load(&[]).unwrap();
        assert_eq!(c.engines.stt, [SttEngine::Offline]);
        assert_eq!(c.engines.tts, [TtsEngine::Offline]);
        assert_eq!(c.engines.intent, [IntentEngine::Rules]);
        assert_eq!(c.engines.deepgram.model, "nova-3");
        assert_eq!(c.engines.chat.timeout, Duration::from_millis(2500));
        assert!(c
            .engines
            .deepgram
            .keyterms
            .contains(&"Switchboard Home Services".to_string()));
    }

    #[test]
    fn keys_put_cloud_engines_first() {
        let c = load(&[
            ("SWITCHBOARD_DEEPGRAM_API_KEY", "dg"),
            ("SWITCHBOARD_OPENAI_API_KEY", "sk"),
        ])
        .unwrap();
        assert_eq!(
            c.engines.stt,
            [
                SttEngine::Deepgram,
                SttEngine::Transcribe,
                SttEngine::Offline
            ]
        );
        assert_eq!(
            c.engines.tts,
            [TtsEngine::OpenAi, TtsEngine::Deepgram, TtsEngine::Offline]
        );
        assert_eq!(c.engines.intent, [IntentEngine::Chat, IntentEngine::Rules]);
        assert_eq!(c.engines.chat.api_key.as_ref().unwrap().expose(), "sk");
        assert!(!format!("{c:?}").contains("\"sk\""));
    }

    #[test]
    fn chains_are_validated() {
        let err = load(&[("SWITCHBOARD_STT_ENGINES", "deepgram,offline")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("SWITCHBOARD_DEEPGRAM_API_KEY"), "{err}");
        let err = load(&[("SWITCHBOARD_TTS_ENGINES", "offline,espeak")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("`espeak` is not an engine"), "{err}");
        let err = load(&[("SWITCHBOARD_INTENT_ENGINES", "rules,rules")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("twice"), "{err}");
        // A keyless local chat server is allowed when named.
        let c = load(&[
            ("SWITCHBOARD_INTENT_ENGINES", "chat,rules"),
            ("SWITCHBOARD_CHAT_BASE_URL", "http://127.0.0.1:11434/v1"),
        ])
        .unwrap();
        assert_eq!(c.engines.intent, [IntentEngine::Chat, IntentEngine::Rules]);
        let err = load(&[("SWITCHBOARD_TRANSCRIBE_LANGUAGE", "English")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("transcribe.language"), "{err}");
        let err = load(&[("SWITCHBOARD_DEEPGRAM_UTTERANCE_END_MS", "500")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("deepgram.utterance_end_ms"), "{err}");
    }

    #[test]
    fn api_keys_are_refused_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.toml");
        std::fs::write(&path, "[deepgram]\napi_key = \"dg\"\n").unwrap();
        let err = Sources::load(Some(&path), Vec::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("SWITCHBOARD_DEEPGRAM_API_KEY"), "{err}");
    }
}
