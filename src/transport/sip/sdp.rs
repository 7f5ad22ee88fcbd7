//! SDP (RFC 4566) parsing of a caller's offer and building of our answer
//! (RFC 3264 offer/answer). Pure: text in, text out.
//!
//! We answer the first audio stream with the first codec in the caller's order
//! that we support (PCMU, PCMA, Opus) plus telephone-event at the payload type
//! the caller offered; other streams are refused with port 0.

use std::fmt::Write as _;
use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Pcmu,
    Pcma,
    Opus,
}

impl Codec {
    pub fn encoding_name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
            Codec::Opus => "opus",
        }
    }

    pub fn clock_rate(self) -> u32 {
        match self {
            Codec::Pcmu | Codec::Pcma => 8000,
            Codec::Opus => 48000,
        }
    }

    /// RTP timestamp units per 20 ms packet.
    pub fn samples_per_packet(self) -> u32 {
        self.clock_rate() / 50
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    fn attr(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// The direction we answer with (RFC 3264 §6.1).
    pub fn answer(self) -> Direction {
        match self {
            Direction::SendRecv => Direction::SendRecv,
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            Direction::Inactive => Direction::Inactive,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    pub payload_type: u8,
    pub encoding: String,
    pub clock_rate: u32,
    pub channels: Option<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    pub media: String,
    pub port: u16,
    pub proto: String,
    pub formats: Vec<String>,
    pub connection: Option<IpAddr>,
    pub rtpmaps: Vec<RtpMap>,
    pub direction: Option<Direction>,
    pub ptime: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    pub origin_session: String,
    pub connection: Option<IpAddr>,
    pub direction: Option<Direction>,
    pub media: Vec<MediaDescription>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("SDP line {line}: {reason}")]
    Syntax { line: usize, reason: String },
    #[error("SDP has no audio stream")]
    NoAudio,
    #[error("none of the offered codecs is supported (we take PCMU, PCMA, opus)")]
    NoCommonCodec,
}

fn syntax(line: usize, reason: impl Into<String>) -> SdpError {
    SdpError::Syntax {
        line,
        reason: reason.into(),
    }
}

fn parse_connection(value: &str, line: usize) -> Result<IpAddr, SdpError> {
    // c=IN IP4 192.0.2.1[/ttl]
    let mut parts = value.split_whitespace();
    let (net, _addrtype, addr) = (parts.next(), parts.next(), parts.next());
    if net != Some("IN") {
        return Err(syntax(line, "connection network type must be IN"));
    }
    let addr = addr.ok_or_else(|| syntax(line, "connection line has no address"))?;
    let addr = addr.split('/').next().unwrap_or(addr);
    addr.parse()
        .map_err(|_| syntax(line, format!("`{addr}` is not an IP address")))
}

fn parse_direction(attr: &str) -> Option<Direction> {
    match attr {
        "sendrecv" => Some(Direction::SendRecv),
        "sendonly" => Some(Direction::SendOnly),
        "recvonly" => Some(Direction::RecvOnly),
        "inactive" => Some(Direction::Inactive),
        _ => None,
    }
}

fn parse_rtpmap(value: &str, line: usize) -> Result<RtpMap, SdpError> {
    // a=rtpmap:<pt> <name>/<rate>[/<channels>]
    let (pt, rest) = value
        .split_once(' ')
        .ok_or_else(|| syntax(line, "rtpmap needs a payload type and an encoding"))?;
    let payload_type = pt
        .trim()
        .parse()
        .map_err(|_| syntax(line, format!("bad payload type `{pt}`")))?;
    let mut enc = rest.trim().split('/');
    let encoding = enc.next().unwrap_or_default().to_string();
    let clock_rate = enc
        .next()
        .and_then(|r| r.parse().ok())
        .ok_or_else(|| syntax(line, "rtpmap needs a clock rate"))?;
    let channels = enc.next().and_then(|c| c.parse().ok());
    Ok(RtpMap {
        payload_type,
        encoding,
        clock_rate,
        channels,
    })
}

impl SessionDescription {
    pub fn parse(text: &str) -> Result<SessionDescription, SdpError> {
        let mut sd = SessionDescription {
            origin_session: String::new(),
            connection: None,
            direction: None,
            media: Vec::new(),
        };
        let mut saw_version = false;
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let raw = raw.trim_end_matches('\r');
            if raw.is_empty() {
                continue;
            }
            let (kind, value) = raw
                .split_once('=')
                .ok_or_else(|| syntax(line, "expected `<type>=<value>`"))?;
            if kind.len() != 1 {
                return Err(syntax(line, format!("bad line type `{kind}`")));
            }
            match (kind, sd.media.last_mut()) {
                ("v", _) => {
                    if value != "0" {
                        return Err(syntax(line, "only SDP version 0 exists"));
                    }
                    saw_version = true;
                }
                ("o", _) => {
                    sd.origin_session = value
                        .split_whitespace()
                        .nth(1)
                        .unwrap_or_default()
                        .to_string()
                }
                ("c", None) => sd.connection = Some(parse_connection(value, line)?),
                ("c", Some(m)) => m.connection = Some(parse_connection(value, line)?),
                ("m", _) => sd.media.push(parse_media(value, line)?),
                ("a", m) => {
                    let (name, val) = value.split_once(':').unwrap_or((value, ""));
                    match (name, m) {
                        ("rtpmap", Some(m)) => m.rtpmaps.push(parse_rtpmap(val, line)?),
                        ("ptime", Some(m)) => m.ptime = val.trim().parse().ok(),
                        (d, Some(m)) if parse_direction(d).is_some() => {
                            m.direction = parse_direction(d)
                        }
                        (d, None) if parse_direction(d).is_some() => {
                            sd.direction = parse_direction(d)
                        }
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        if !saw_version {
            return Err(syntax(1, "SDP must start with v=0"));
        }
        Ok(sd)
    }

    /// The first audio stream with a non-zero port.
    pub fn audio(&self) -> Option<(usize, &MediaDescription)> {
        self.media
            .iter()
            .enumerate()
            .find(|(_, m)| m.media == "audio" && m.port != 0)
    }
}

fn parse_media(value: &str, line: usize) -> Result<MediaDescription, SdpError> {
    // m=<media> <port>[/<n>] <proto> <fmt> ...
    let mut parts = value.split_whitespace();
    let media = parts
        .next()
        .ok_or_else(|| syntax(line, "media line is empty"))?
        .to_string();
    let port_text = parts
        .next()
        .ok_or_else(|| syntax(line, "media line has no port"))?;
    let port = port_text
        .split('/')
        .next()
        .unwrap_or_default()
        .parse()
        .map_err(|_| syntax(line, format!("bad port `{port_text}`")))?;
    let proto = parts
        .next()
        .ok_or_else(|| syntax(line, "media line has no protocol"))?
        .to_string();
    let formats: Vec<String> = parts.map(str::to_string).collect();
    Ok(MediaDescription {
        media,
        port,
        proto,
        formats,
        connection: None,
        rtpmaps: Vec::new(),
        direction: None,
        ptime: None,
    })
}

/// What we agreed to for the audio stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub codec: Codec,
    pub payload_type: u8,
    /// The caller's telephone-event payload type, when offered at 8000 Hz (or 48000 with Opus).
    pub dtmf_payload_type: Option<u8>,
    /// Where the caller wants RTP (before symmetric-RTP learning).
    pub remote_addr: Option<IpAddr>,
    pub remote_port: u16,
    pub direction: Direction,
    /// The caller put us on hold (sendonly/inactive or a zero address).
    pub on_hold: bool,
}

/// Whether the media path carries Opus (see `opus.rs`).
const OPUS_MEDIA: bool = true;

fn codec_of(m: &MediaDescription, fmt: &str) -> Option<(Codec, u8)> {
    let pt: u8 = fmt.parse().ok()?;
    let map = m.rtpmaps.iter().find(|r| r.payload_type == pt);
    let codec = match map {
        Some(r) if r.encoding.eq_ignore_ascii_case("PCMU") && r.clock_rate == 8000 => Codec::Pcmu,
        Some(r) if r.encoding.eq_ignore_ascii_case("PCMA") && r.clock_rate == 8000 => Codec::Pcma,
        Some(r)
            if r.encoding.eq_ignore_ascii_case("opus") && r.clock_rate == 48000 && OPUS_MEDIA =>
        {
            Codec::Opus
        }
        Some(_) => return None,
        // Static payload types need no rtpmap (RFC 3551).
        None if pt == 0 => Codec::Pcmu,
        None if pt == 8 => Codec::Pcma,
        None => return None,
    };
    Some((codec, pt))
}

/// Chooses the codec and DTMF payload type for an offer.
pub fn negotiate(offer: &SessionDescription) -> Result<(usize, Negotiated), SdpError> {
    let (index, m) = offer.audio().ok_or(SdpError::NoAudio)?;
    let (codec, payload_type) = m
        .formats
        .iter()
        .find_map(|f| codec_of(m, f))
        .ok_or(SdpError::NoCommonCodec)?;
    let dtmf_payload_type = m
        .rtpmaps
        .iter()
        .find(|r| {
            r.encoding.eq_ignore_ascii_case("telephone-event") && r.clock_rate == codec.clock_rate()
        })
        .or_else(|| {
            m.rtpmaps.iter().find(|r| {
                r.encoding.eq_ignore_ascii_case("telephone-event") && r.clock_rate == 8000
            })
        })
        .map(|r| r.payload_type)
        .filter(|pt| m.formats.iter().any(|f| f == &pt.to_string()));
    let remote_addr = m.connection.or(offer.connection);
    let direction = m
        .direction
        .or(offer.direction)
        .unwrap_or(Direction::SendRecv);
    let zero_addr = remote_addr.is_some_and(|a| a.is_unspecified());
    let on_hold = zero_addr || matches!(direction, Direction::SendOnly | Direction::Inactive);
    Ok((
        index,
        Negotiated {
            codec,
            payload_type,
            dtmf_payload_type,
            remote_addr,
            remote_port: m.port,
            direction,
            on_hold,
        },
    ))
}

/// Our offer for an outbound call: PCMU, PCMA and telephone-event (101), 20 ms.
pub fn offer(local_addr: IpAddr, local_port: u16, session_id: u64) -> String {
    let ip = if local_addr.is_ipv4() { "IP4" } else { "IP6" };
    format!(
        "v=0\r\no=switchboard {session_id} 1 IN {ip} {local_addr}\r\ns=Switchboard\r\nc=IN {ip} {local_addr}\r\nt=0 0\r\n\
m=audio {local_port} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n"
    )
}

/// Our answer: the chosen codec (and telephone-event) on the accepted stream, port 0 on the others.
pub fn answer(
    offer: &SessionDescription,
    chosen: &Negotiated,
    index: usize,
    local_addr: IpAddr,
    local_port: u16,
    session_id: u64,
    version: u64,
) -> String {
    let ip = if local_addr.is_ipv4() { "IP4" } else { "IP6" };
    let mut s = String::new();
    let _ = write!(s, "v=0\r\no=switchboard {session_id} {version} IN {ip} {local_addr}\r\ns=Switchboard\r\nc=IN {ip} {local_addr}\r\nt=0 0\r\n");
    for (i, m) in offer.media.iter().enumerate() {
        if i != index {
            let fmt = m.formats.first().map(String::as_str).unwrap_or("0");
            let _ = write!(s, "m={} 0 {} {}\r\n", m.media, m.proto, fmt);
            continue;
        }
        let _ = write!(
            s,
            "m=audio {local_port} {} {}",
            m.proto, chosen.payload_type
        );
        if let Some(te) = chosen.dtmf_payload_type {
            let _ = write!(s, " {te}");
        }
        s.push_str("\r\n");
        let c = chosen.codec;
        match c {
            Codec::Opus => {
                let _ = write!(s, "a=rtpmap:{} opus/48000/2\r\n", chosen.payload_type);
            }
            _ => {
                let _ = write!(
                    s,
                    "a=rtpmap:{} {}/{}\r\n",
                    chosen.payload_type,
                    c.encoding_name(),
                    c.clock_rate()
                );
            }
        }
        if let Some(te) = chosen.dtmf_payload_type {
            let rate = m
                .rtpmaps
                .iter()
                .find(|r| r.payload_type == te)
                .map(|r| r.clock_rate)
                .unwrap_or(8000);
            let _ = write!(
                s,
                "a=rtpmap:{te} telephone-event/{rate}\r\na=fmtp:{te} 0-16\r\n"
            );
        }
        let _ = write!(
            s,
            "a=ptime:20\r\na={}\r\n",
            chosen.direction.answer().attr()
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
m=audio 49170 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=sendrecv\r\n\
m=video 51372 RTP/AVP 31\r\na=rtpmap:31 H261/90000\r\n";

    #[test]
    fn picks_the_callers_first_supported_codec_and_their_dtmf_type() {
        let offer = SessionDescription::parse(OFFER).unwrap();
        let (idx, n) = negotiate(&offer).unwrap();
        assert_eq!(idx, 0);
        assert_eq!(
            (n.codec, n.payload_type, n.dtmf_payload_type),
            (Codec::Pcma, 8, Some(101))
        );
        assert_eq!(n.remote_addr, Some("192.0.2.10".parse().unwrap()));
        assert_eq!(n.remote_port, 49170);
        assert!(!n.on_hold);
    }

    #[test]
    fn answer_refuses_other_streams_and_never_says_zero_address() {
        let offer = SessionDescription::parse(OFFER).unwrap();
        let (idx, n) = negotiate(&offer).unwrap();
        let a = answer(&offer, &n, idx, "127.0.0.1".parse().unwrap(), 10000, 7, 1);
        assert!(a.contains("c=IN IP4 127.0.0.1\r\n"), "{a}");
        assert!(a.contains("m=audio 10000 RTP/AVP 8 101\r\n"), "{a}");
        assert!(a.contains("a=rtpmap:101 telephone-event/8000\r\n"));
        assert!(a.contains("m=video 0 RTP/AVP 31\r\n"), "{a}");
        assert!(a.contains("a=sendrecv"));
        assert!(!a.contains("0.0.0.0"));
        // Our answer parses as SDP too.
        let back = SessionDescription::parse(&a).unwrap();
        assert_eq!(back.media.len(), 2);
    }

    #[test]
    fn static_payload_types_need_no_rtpmap_and_opus_is_understood() {
        let o = SessionDescription::parse("v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 0\r\n")
            .unwrap();
        assert_eq!(negotiate(&o).unwrap().1.codec, Codec::Pcmu);
        let o = SessionDescription::parse("v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 111 0\r\na=rtpmap:111 opus/48000/2\r\n").unwrap();
        let n = negotiate(&o).unwrap().1;
        let expected = if OPUS_MEDIA {
            (Codec::Opus, 111)
        } else {
            (Codec::Pcmu, 0)
        };
        assert_eq!((n.codec, n.payload_type), expected);
    }

    #[test]
    fn hold_is_detected_and_answered() {
        let o = SessionDescription::parse(
            "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 0\r\na=sendonly\r\n",
        )
        .unwrap();
        let (i, n) = negotiate(&o).unwrap();
        assert!(n.on_hold);
        assert!(answer(&o, &n, i, "127.0.0.1".parse().unwrap(), 1, 1, 2).contains("a=recvonly"));
        let o = SessionDescription::parse("v=0\r\nc=IN IP4 0.0.0.0\r\nm=audio 4000 RTP/AVP 0\r\n")
            .unwrap();
        assert!(negotiate(&o).unwrap().1.on_hold);
    }

    #[test]
    fn unsupported_and_malformed_offers_get_specific_errors() {
        let o = SessionDescription::parse(
            "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n",
        )
        .unwrap();
        assert_eq!(negotiate(&o).unwrap_err(), SdpError::NoCommonCodec);
        let o = SessionDescription::parse("v=0\r\nm=video 4000 RTP/AVP 31\r\n").unwrap();
        assert_eq!(negotiate(&o).unwrap_err(), SdpError::NoAudio);
        assert!(matches!(
            SessionDescription::parse("hello"),
            Err(SdpError::Syntax { line: 1, .. })
        ));
        assert!(matches!(
            SessionDescription::parse("v=0\r\nm=audio x RTP/AVP 0\r\n"),
            Err(SdpError::Syntax { line: 2, .. })
        ));
        assert!(matches!(
            SessionDescription::parse("v=0\r\nc=IN IP4 nowhere\r\n"),
            Err(SdpError::Syntax { line: 2, .. })
        ));
        assert!(matches!(
            SessionDescription::parse("v=0\r\nm=audio 1 RTP/AVP 0\r\na=rtpmap:x\r\n"),
            Err(SdpError::Syntax { line: 3, .. })
        ));
    }
}
