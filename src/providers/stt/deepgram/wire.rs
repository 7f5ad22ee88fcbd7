//! Deepgram live-transcription wire format (`/v1/listen`): the JSON messages
//! the server sends and the control messages we send. Pure: no socket, no
//! clock. [`parse`] keeps the timing the session needs to know which audio
//! is finalized; [`map_message`] is the event mapping alone.
//!
//! Server messages, by `type`:
//! - `Results`: `start` and `duration` (seconds since the connection's first
//!   audio), `is_final` (this span will not be revised), `speech_final`
//!   (endpointing judged the speaker paused), and `channel.alternatives[]`
//!   with `transcript` and `confidence`.
//! - `SpeechStarted` (with `vad_events=true`): `timestamp`.
//! - `UtteranceEnd` (with `utterance_end_ms`): `last_word_end`.
//! - `Metadata`: request id and totals, sent when the stream closes.

use serde::Deserialize;
use serde_json::Value;

use crate::providers::SttEvent;

/// Keeps the connection open while no audio flows (the server closes it
/// after about 10 s of silence from the client otherwise).
pub const KEEP_ALIVE: &str = r#"{"type":"KeepAlive"}"#;
/// Asks the server to finalize what it has, send `Metadata` and close.
pub const CLOSE_STREAM: &str = r#"{"type":"CloseStream"}"#;

/// A server message that is not JSON or lacks a field its type requires.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("malformed Deepgram message: {0}")]
pub struct MalformedMessage(pub String);

/// One transcription result for a span of audio.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcript {
    /// Seconds from the connection's first audio sample to the span's start.
    pub start: f64,
    /// Length of the span in seconds.
    pub duration: f64,
    pub is_final: bool,
    pub speech_final: bool,
    /// The best alternative's text, trimmed; empty for silence.
    pub text: String,
    pub confidence: f32,
}

impl Transcript {
    /// Seconds from the connection's first audio sample to the span's end.
    pub fn end(&self) -> f64 {
        self.start + self.duration
    }
}

/// What the server said, with the fields we use.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerMessage {
    Results(Transcript),
    SpeechStarted,
    UtteranceEnd,
    Metadata {
        request_id: Option<String>,
    },
    /// An in-band error report; the stream may go on.
    Error {
        description: String,
    },
    /// A message type this client does not use.
    Other {
        kind: String,
    },
}

impl ServerMessage {
    /// The recognition events this message stands for. Results with an
    /// empty transcript (silence) give none.
    pub fn events(&self) -> Vec<SttEvent> {
        match self {
            ServerMessage::Results(t) if t.text.is_empty() => Vec::new(),
            ServerMessage::Results(t) if t.is_final => vec![SttEvent::Final {
                text: t.text.clone(),
                confidence: t.confidence,
                end_of_turn: t.speech_final,
            }],
            ServerMessage::Results(t) => vec![SttEvent::Interim {
                text: t.text.clone(),
            }],
            ServerMessage::SpeechStarted => vec![SttEvent::SpeechStarted],
            ServerMessage::UtteranceEnd => vec![SttEvent::UtteranceEnd],
            ServerMessage::Metadata { .. }
            | ServerMessage::Error { .. }
            | ServerMessage::Other { .. } => Vec::new(),
        }
    }
}

/// Maps one server text message to recognition events.
pub fn map_message(json: &str) -> Result<Vec<SttEvent>, MalformedMessage> {
    parse(json).map(|m| m.events())
}

#[derive(Deserialize)]
struct RawResults {
    start: f64,
    duration: f64,
    #[serde(default)]
    is_final: bool,
    #[serde(default)]
    speech_final: bool,
    channel: RawChannel,
}

#[derive(Deserialize)]
struct RawChannel {
    alternatives: Vec<RawAlternative>,
}

#[derive(Deserialize)]
struct RawAlternative {
    transcript: String,
    #[serde(default)]
    confidence: f32,
}

/// Parses one server text message.
pub fn parse(json: &str) -> Result<ServerMessage, MalformedMessage> {
    let value: Value = serde_json::from_str(json).map_err(|e| MalformedMessage(e.to_string()))?;
    let kind = value
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| MalformedMessage("no `type`".into()))?
        .to_string();
    match kind.as_str() {
        "Results" => results(value),
        "SpeechStarted" => Ok(ServerMessage::SpeechStarted),
        "UtteranceEnd" => Ok(ServerMessage::UtteranceEnd),
        "Metadata" => Ok(ServerMessage::Metadata {
            request_id: value
                .get("request_id")
                .and_then(Value::as_str)
                .map(str::to_string),
        }),
        "Error" => {
            let text = |k: &str| value.get(k).and_then(Value::as_str).unwrap_or_default();
            let description = [text("description"), text("message"), text("variant")]
                .into_iter()
                .find(|s| !s.is_empty())
                .unwrap_or("(no description)")
                .to_string();
            Ok(ServerMessage::Error { description })
        }
        _ => Ok(ServerMessage::Other { kind }),
    }
}

fn results(value: Value) -> Result<ServerMessage, MalformedMessage> {
    let raw: RawResults =
        serde_json::from_value(value).map_err(|e| MalformedMessage(format!("Results: {e}")))?;
    let is_time = |t: f64| t.is_finite() && t >= 0.0;
    if !is_time(raw.start) || !is_time(raw.duration) {
        return Err(MalformedMessage(format!(
            "Results: span start {} duration {} is not a time",
            raw.start, raw.duration
        )));
    }
    let (text, confidence) = raw
        .channel
        .alternatives
        .into_iter()
        .next()
        .map(|a| (a.transcript.trim().to_string(), a.confidence))
        .unwrap_or_default();
    Ok(ServerMessage::Results(Transcript {
        start: raw.start,
        duration: raw.duration,
        is_final: raw.is_final,
        speech_final: raw.speech_final,
        text,
        confidence,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `Results` message shaped as the streaming reference documents it.
    fn results_json(is_final: bool, speech_final: bool, transcript: &str) -> String {
        format!(
            r#"{{"type":"Results","channel_index":[0,1],"duration":1.04,"start":2.5,
            "is_final":{is_final},"speech_final":{speech_final},"from_finalize":false,
            "channel":{{"alternatives":[{{"transcript":"{transcript}","confidence":0.9721,
            "words":[{{"word":"leak","start":2.6,"end":2.9,"confidence":0.97,"punctuated_word":"leak"}}]}}]}},
            "metadata":{{"request_id":"5b7e6a0c-0000-4000-8000-000000000001",
            "model_info":{{"name":"general-nova-3","version":"2024-11-18","arch":"nova-3"}},
            "model_uuid":"00000000-0000-4000-8000-00000000000a"}}}}"#
        )
    }

    #[test]
    fn interim_results_become_interim_events() {
        let events = map_message(&results_json(false, false, "my kitchen")).unwrap();
        assert_eq!(
            events,
            [SttEvent::Interim {
                text: "my kitchen".into()
            }]
        );
    }

    #[test]
    fn final_results_carry_confidence_and_end_of_turn() {
        let events = map_message(&results_json(true, false, "my kitchen sink leaks")).unwrap();
        assert_eq!(
            events,
            [SttEvent::Final {
                text: "my kitchen sink leaks".into(),
                confidence: 0.9721,
                end_of_turn: false
            }]
        );
        let events = map_message(&results_json(true, true, "Thanks.")).unwrap();
        assert_eq!(
            events,
            [SttEvent::Final {
                text: "Thanks.".into(),
                confidence: 0.9721,
                end_of_turn: true
            }]
        );
    }

    #[test]
    fn empty_transcripts_give_no_event_but_keep_their_timing() {
        let json = results_json(true, false, "  ");
        assert_eq!(map_message(&json).unwrap(), []);
        let ServerMessage::Results(t) = parse(&json).unwrap() else {
            panic!("not results")
        };
        assert!(t.is_final);
        assert!((t.end() - 3.54).abs() < 1e-9);
    }

    #[test]
    fn results_without_alternatives_are_silence() {
        let json = r#"{"type":"Results","start":0.0,"duration":0.5,"is_final":true,
            "channel":{"alternatives":[]}}"#;
        assert_eq!(map_message(json).unwrap(), []);
    }

    #[test]
    fn vad_and_utterance_messages() {
        let started = r#"{"type":"SpeechStarted","channel":[0,1],"timestamp":9.54}"#;
        assert_eq!(map_message(started).unwrap(), [SttEvent::SpeechStarted]);
        let ended = r#"{"type":"UtteranceEnd","channel":[0,1],"last_word_end":2.395}"#;
        assert_eq!(map_message(ended).unwrap(), [SttEvent::UtteranceEnd]);
    }

    #[test]
    fn metadata_is_no_event() {
        let json = r#"{"type":"Metadata","transaction_key":"deprecated",
            "request_id":"8c8ebea9-dbec-45fa-a035-e4632cb05b5f",
            "sha256":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "created":"2024-08-29T22:37:55.202Z","duration":0.0,"channels":0}"#;
        assert_eq!(map_message(json).unwrap(), []);
        assert_eq!(
            parse(json).unwrap(),
            ServerMessage::Metadata {
                request_id: Some("8c8ebea9-dbec-45fa-a035-e4632cb05b5f".into())
            }
        );
    }

    #[test]
    fn unknown_types_and_errors_are_not_events() {
        let other = r#"{"type":"SomethingNew","x":1}"#;
        assert_eq!(map_message(other).unwrap(), []);
        let err = r#"{"type":"Error","description":"keyterms not supported","variant":"KeytermsNotSupported"}"#;
        assert_eq!(
            parse(err).unwrap(),
            ServerMessage::Error {
                description: "keyterms not supported".into()
            }
        );
    }

    #[test]
    fn malformed_messages_are_errors() {
        for bad in [
            "{not json",
            "[]",
            r#"{"no_type":true}"#,
            r#"{"type":"Results","start":0.0,"duration":1.0}"#,
            r#"{"type":"Results","start":"0","duration":1.0,"channel":{"alternatives":[]}}"#,
            r#"{"type":"Results","start":-1.0,"duration":1.0,"channel":{"alternatives":[]}}"#,
        ] {
            assert!(map_message(bad).is_err(), "{bad}");
        }
    }
}
