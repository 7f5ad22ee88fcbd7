//! The Twilio Media Streams WebSocket messages as a pure codec: [`parse`]
//! turns one text frame from Twilio into an [`Inbound`], [`print`] turns an
//! [`Outbound`] into the text frame Twilio expects. No socket, no side effect;
//! a malformed frame is a [`WireError`], never a panic.
//!
//! Shapes (Twilio's "Media Streams - WebSocket Messages"): every message has
//! `event`; `start` carries `start.{streamSid, accountSid, callSid, tracks,
//! customParameters, mediaFormat}`; `media` carries `media.{track, chunk,
//! timestamp, payload}` with chunk and timestamp as decimal strings and the
//! payload base64 μ-law 8 kHz; `dtmf.{track, digit}`; `mark.name`;
//! `stop.{accountSid, callSid}`. Outbound `media` carries only
//! `media.payload`; `mark` and `clear` carry the `streamSid`.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("not a JSON message: {0}")]
    Json(String),
    #[error("`{event}` message lacks `{field}`")]
    Missing {
        event: &'static str,
        field: &'static str,
    },
    #[error("media payload is not base64: {0}")]
    Base64(String),
    #[error("`{0}` is not a DTMF digit")]
    Digit(String),
    #[error("`{field}` is not a number: {value}")]
    Number { field: &'static str, value: String },
}

/// The stream's audio format as announced in `start`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaFormat {
    pub encoding: String,
    pub sample_rate: u32,
    pub channels: u32,
}

impl MediaFormat {
    /// The only format Media Streams delivers: μ-law, 8 kHz, mono.
    pub fn is_mulaw_8k_mono(&self) -> bool {
        self.encoding == "audio/x-mulaw" && self.sample_rate == 8000 && self.channels == 1
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Start {
    pub stream_sid: String,
    pub account_sid: String,
    pub call_sid: String,
    pub tracks: Vec<String>,
    pub custom_parameters: BTreeMap<String, String>,
    pub media_format: Option<MediaFormat>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Media {
    /// `inbound` (the caller) or `outbound`.
    pub track: Option<String>,
    pub chunk: Option<u64>,
    /// Milliseconds since the stream started.
    pub timestamp_ms: Option<u64>,
    /// Raw μ-law bytes, base64-decoded.
    pub payload: Vec<u8>,
}

/// A message from Twilio.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    Connected {
        protocol: String,
        version: String,
    },
    Start(Start),
    Media(Media),
    Dtmf {
        digit: char,
    },
    Mark {
        name: String,
    },
    Stop {
        call_sid: Option<String>,
    },
    /// An event this codec does not know; safe to ignore.
    Other {
        event: String,
    },
}

/// A message to Twilio.
#[derive(Debug, Clone, PartialEq)]
pub enum Outbound<'a> {
    /// Raw μ-law 8 kHz bytes (no file header), base64-encoded on print.
    Media {
        stream_sid: &'a str,
        payload: &'a [u8],
    },
    Mark {
        stream_sid: &'a str,
        name: &'a str,
    },
    Clear {
        stream_sid: &'a str,
    },
}

#[derive(Deserialize)]
struct RawMessage {
    event: String,
    #[serde(default)]
    protocol: Option<String>,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    start: Option<RawStart>,
    #[serde(default)]
    media: Option<RawMedia>,
    #[serde(default)]
    dtmf: Option<RawDtmf>,
    #[serde(default)]
    mark: Option<RawMark>,
    #[serde(default)]
    stop: Option<RawStop>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawStart {
    stream_sid: Option<String>,
    #[serde(default)]
    account_sid: String,
    call_sid: Option<String>,
    #[serde(default)]
    tracks: Vec<String>,
    #[serde(default)]
    custom_parameters: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    media_format: Option<MediaFormat>,
}

#[derive(Deserialize)]
struct RawMedia {
    #[serde(default)]
    track: Option<String>,
    #[serde(default)]
    chunk: Option<serde_json::Value>,
    #[serde(default)]
    timestamp: Option<serde_json::Value>,
    payload: Option<String>,
}

#[derive(Deserialize)]
struct RawDtmf {
    digit: Option<String>,
}

#[derive(Deserialize)]
struct RawMark {
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawStop {
    #[serde(default)]
    call_sid: Option<String>,
}

/// Parses one text frame from Twilio.
pub fn parse(text: &str) -> Result<Inbound, WireError> {
    let raw: RawMessage = serde_json::from_str(text).map_err(|e| WireError::Json(e.to_string()))?;
    match raw.event.as_str() {
        "connected" => Ok(Inbound::Connected {
            protocol: raw.protocol.unwrap_or_default(),
            version: raw.version.unwrap_or_default(),
        }),
        "start" => parse_start(raw.start),
        "media" => parse_media(raw.media),
        "dtmf" => parse_dtmf(raw.dtmf),
        "mark" => {
            let name = raw.mark.and_then(|m| m.name).ok_or(WireError::Missing {
                event: "mark",
                field: "mark.name",
            })?;
            Ok(Inbound::Mark { name })
        }
        "stop" => Ok(Inbound::Stop {
            call_sid: raw.stop.and_then(|s| s.call_sid),
        }),
        _ => Ok(Inbound::Other { event: raw.event }),
    }
}

fn parse_start(start: Option<RawStart>) -> Result<Inbound, WireError> {
    let missing = |field| WireError::Missing {
        event: "start",
        field,
    };
    let s = start.ok_or(missing("start"))?;
    let custom_parameters = s
        .custom_parameters
        .into_iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => (k, s),
            other => (k, other.to_string()),
        })
        .collect();
    Ok(Inbound::Start(Start {
        stream_sid: s.stream_sid.ok_or(missing("start.streamSid"))?,
        account_sid: s.account_sid,
        call_sid: s.call_sid.ok_or(missing("start.callSid"))?,
        tracks: s.tracks,
        custom_parameters,
        media_format: s.media_format,
    }))
}

fn parse_media(media: Option<RawMedia>) -> Result<Inbound, WireError> {
    let m = media.ok_or(WireError::Missing {
        event: "media",
        field: "media",
    })?;
    let payload = m.payload.ok_or(WireError::Missing {
        event: "media",
        field: "media.payload",
    })?;
    let payload = B64
        .decode(payload.as_bytes())
        .map_err(|e| WireError::Base64(e.to_string()))?;
    Ok(Inbound::Media(Media {
        track: m.track,
        chunk: number("media.chunk", m.chunk)?,
        timestamp_ms: number("media.timestamp", m.timestamp)?,
        payload,
    }))
}

/// Twilio sends counters as decimal strings; a bare number is accepted too.
fn number(field: &'static str, v: Option<serde_json::Value>) -> Result<Option<u64>, WireError> {
    match v {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| WireError::Number { field, value: s }),
        Some(serde_json::Value::Number(n)) => n.as_u64().map(Some).ok_or(WireError::Number {
            field,
            value: n.to_string(),
        }),
        Some(other) => Err(WireError::Number {
            field,
            value: other.to_string(),
        }),
    }
}

fn parse_dtmf(dtmf: Option<RawDtmf>) -> Result<Inbound, WireError> {
    let digit = dtmf.and_then(|d| d.digit).ok_or(WireError::Missing {
        event: "dtmf",
        field: "dtmf.digit",
    })?;
    let mut chars = digit.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D') => {
            Ok(Inbound::Dtmf { digit: c })
        }
        _ => Err(WireError::Digit(digit)),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OutMessage<'a> {
    event: &'static str,
    stream_sid: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    media: Option<OutMedia>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mark: Option<OutMark<'a>>,
}

#[derive(Serialize)]
struct OutMedia {
    payload: String,
}

#[derive(Serialize)]
struct OutMark<'a> {
    name: &'a str,
}

/// Prints a message for Twilio as one JSON text frame.
pub fn print(msg: &Outbound<'_>) -> String {
    let out = match *msg {
        Outbound::Media {
            stream_sid,
            payload,
        } => OutMessage {
            event: "media",
            stream_sid,
            media: Some(OutMedia {
                payload: B64.encode(payload),
            }),
            mark: None,
        },
        Outbound::Mark { stream_sid, name } => OutMessage {
            event: "mark",
            stream_sid,
            media: None,
            mark: Some(OutMark { name }),
        },
        Outbound::Clear { stream_sid } => OutMessage {
            event: "clear",
            stream_sid,
            media: None,
            mark: None,
        },
    };
    // Serialising plain strings into JSON cannot fail.
    serde_json::to_string(&out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Fixtures in the shapes of Twilio's documented examples.
    const CONNECTED: &str = r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#;
    const START: &str = r#"{
        "event": "start",
        "sequenceNumber": "1",
        "start": {
            "accountSid": "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
            "streamSid": "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
            "callSid": "CAXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
            "tracks": ["inbound"],
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            "customParameters": {"FirstName": "Jane", "LastName": "Doe", "RemoteParty": "Bob"}
        },
        "streamSid": "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
    }"#;
    const MEDIA: &str = r#"{
        "event": "media",
        "sequenceNumber": "3",
        "media": {"track": "inbound", "chunk": "1", "timestamp": "5", "payload": "no+JhoaJjpzSHxAKBgYJDhtEopGKh4aIjZm7JhYOCAYHCg8YKsmjlYyIhoeKkJ3kKxcPCgcHCQ4WJ1L/"},
        "streamSid": "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
    }"#;
    const DTMF: &str = r#"{"event":"dtmf","streamSid":"MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX","sequenceNumber":"5","dtmf":{"track":"inbound_track","digit":"1"}}"#;
    const MARK: &str = r#"{"event":"mark","sequenceNumber":"4","streamSid":"MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX","mark":{"name":"my label"}}"#;
    const STOP: &str = r#"{"event":"stop","sequenceNumber":"5","stop":{"accountSid":"ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX","callSid":"CAXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"},"streamSid":"MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"}"#;

    #[test]
    fn parses_connected_and_start() {
        assert_eq!(
            parse(CONNECTED).unwrap(),
            Inbound::Connected {
                protocol: "Call".into(),
                version: "1.0.0".into()
            }
        );
        let Inbound::Start(s) = parse(START).unwrap() else {
            panic!("not a start")
        };
        assert_eq!(s.stream_sid, "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX");
        assert_eq!(s.call_sid, "CAXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX");
        assert_eq!(s.tracks, vec!["inbound".to_string()]);
        assert_eq!(s.custom_parameters["FirstName"], "Jane");
        assert_eq!(s.custom_parameters.len(), 3);
        assert!(s.media_format.as_ref().unwrap().is_mulaw_8k_mono());
    }

    #[test]
    fn parses_media_dtmf_mark_stop() {
        let Inbound::Media(m) = parse(MEDIA).unwrap() else {
            panic!("not media")
        };
        assert_eq!(m.track.as_deref(), Some("inbound"));
        assert_eq!(m.chunk, Some(1));
        assert_eq!(m.timestamp_ms, Some(5));
        assert_eq!(m.payload.len(), 60);
        assert_eq!(m.payload[0], 0x9e);
        assert_eq!(parse(DTMF).unwrap(), Inbound::Dtmf { digit: '1' });
        assert_eq!(
            parse(MARK).unwrap(),
            Inbound::Mark {
                name: "my label".into()
            }
        );
        assert_eq!(
            parse(STOP).unwrap(),
            Inbound::Stop {
                call_sid: Some("CAXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX".into())
            }
        );
    }

    #[test]
    fn malformed_frames_are_specific_errors() {
        assert!(matches!(parse("{not json"), Err(WireError::Json(_))));
        assert!(matches!(parse("[]"), Err(WireError::Json(_))));
        assert!(matches!(
            parse(r#"{"no":"event"}"#),
            Err(WireError::Json(_))
        ));
        assert_eq!(
            parse(r#"{"event":"start","start":{"streamSid":"MZ1"}}"#),
            Err(WireError::Missing {
                event: "start",
                field: "start.callSid"
            })
        );
        assert_eq!(
            parse(r#"{"event":"media","media":{"chunk":"1"}}"#),
            Err(WireError::Missing {
                event: "media",
                field: "media.payload"
            })
        );
        assert!(matches!(
            parse(r#"{"event":"media","media":{"payload":"!!!"}}"#),
            Err(WireError::Base64(_))
        ));
        assert!(matches!(
            parse(r#"{"event":"media","media":{"payload":"AAAA","chunk":"x1"}}"#),
            Err(WireError::Number { .. })
        ));
        assert_eq!(
            parse(r#"{"event":"dtmf","dtmf":{"digit":"12"}}"#),
            Err(WireError::Digit("12".into()))
        );
        assert_eq!(
            parse(r#"{"event":"later-feature"}"#),
            Ok(Inbound::Other {
                event: "later-feature".into()
            })
        );
    }

    #[test]
    fn prints_outbound_messages() {
        let media = print(&Outbound::Media {
            stream_sid: "MZ1",
            payload: &[0xff, 0x7f, 0x00],
        });
        let v: serde_json::Value = serde_json::from_str(&media).unwrap();
        assert_eq!(v["event"], "media");
        assert_eq!(v["streamSid"], "MZ1");
        assert_eq!(v["media"]["payload"], "/38A");
        assert_eq!(v.as_object().unwrap().len(), 3);
        let mark = print(&Outbound::Mark {
            stream_sid: "MZ1",
            name: "u1-s0",
        });
        assert_eq!(
            mark,
            r#"{"event":"mark","streamSid":"MZ1","mark":{"name":"u1-s0"}}"#
        );
        let clear = print(&Outbound::Clear { stream_sid: "MZ1" });
        assert_eq!(clear, r#"{"event":"clear","streamSid":"MZ1"}"#);
    }
}
