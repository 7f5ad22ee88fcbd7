//! A checked view of one SIP request or response, and the printers for the
//! messages we send. rsip splits the start line, headers and body; this module
//! expands compact header names (RFC 3261 §7.3.3), checks the mandatory
//! headers, and pulls out what transactions and dialogs need. Pure.

use std::fmt::Write as _;

use rsip::headers::Header;
use rsip::prelude::*;

/// Why a datagram is not a usable SIP message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("not a SIP message: {0}")]
    Unparsable(String),
    #[error("missing {0} header")]
    Missing(&'static str),
    #[error("malformed {0} header")]
    Malformed(&'static str),
    #[error("CSeq method {cseq} does not match request method {method}")]
    CSeqMismatch { cseq: String, method: String },
    #[error("Content-Length {declared} exceeds the {actual} body bytes received")]
    Truncated { declared: usize, actual: usize },
}

/// The header fields every transaction and dialog needs, as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Core {
    pub call_id: String,
    /// Every Via value, top first.
    pub vias: Vec<String>,
    pub branch: String,
    pub from: String,
    pub from_tag: Option<String>,
    pub to: String,
    pub to_tag: Option<String>,
    pub cseq: u32,
    pub cseq_method: String,
}

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub uri: String,
    pub core: Core,
    pub contact: Option<String>,
    pub record_route: Vec<String>,
    pub max_forwards: Option<u32>,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
    /// Headers we do not interpret, kept for the application (e.g. Referred-By).
    pub other: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct Response {
    pub code: u16,
    pub reason: String,
    pub core: Core,
    pub contact: Option<String>,
    pub record_route: Vec<String>,
    pub body: Vec<u8>,
    pub other: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub enum Message {
    Request(Request),
    Response(Response),
}

fn compact(name: &str) -> Option<&'static str> {
    Some(match name.to_ascii_lowercase().as_str() {
        "i" => "Call-ID",
        "v" => "Via",
        "f" => "From",
        "t" => "To",
        "m" => "Contact",
        "l" => "Content-Length",
        "c" => "Content-Type",
        "k" => "Supported",
        "s" => "Subject",
        "r" => "Refer-To",
        "b" => "Referred-By",
        "o" => "Event",
        "e" => "Content-Encoding",
        _ => return None,
    })
}

/// Splits a header value list on commas outside `<…>` and quotes (Via, Record-Route, Contact).
pub fn split_list(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut depth, mut quoted, mut cur) = (0i32, false, String::new());
    for ch in value.chars() {
        match ch {
            '"' => quoted = !quoted,
            '<' if !quoted => depth += 1,
            '>' if !quoted => depth -= 1,
            ',' if !quoted && depth <= 0 => {
                out.push(cur.trim().to_string());
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(ch);
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// The value of `;name=` in a header's parameters (outside `<…>`), case-insensitive name.
pub fn param(value: &str, name: &str) -> Option<String> {
    let after = match value.rfind('>') {
        Some(i) => &value[i + 1..],
        None => value,
    };
    after.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

/// The URI inside a name-addr (`"Bob" <sip:bob@host>;tag=x` → `sip:bob@host`) or a bare addr-spec.
pub fn uri_of(value: &str) -> String {
    match (value.find('<'), value.find('>')) {
        (Some(a), Some(b)) if b > a => value[a + 1..b].trim().to_string(),
        _ => value.split(';').next().unwrap_or(value).trim().to_string(),
    }
}

/// The user part of a SIP URI (`sip:+15551234567@host` → `+15551234567`), else the whole URI.
pub fn user_of(uri: &str) -> String {
    let rest = uri.split_once(':').map(|(_, r)| r).unwrap_or(uri);
    match rest.split_once('@') {
        Some((user, _)) => user.split(';').next().unwrap_or(user).to_string(),
        None => rest.split(';').next().unwrap_or(rest).to_string(),
    }
}

struct Headers {
    all: Vec<(String, String)>,
}

impl Headers {
    fn from_rsip(headers: &rsip::Headers) -> Headers {
        let mut all = Vec::new();
        for h in headers.iter() {
            let text = h.to_string();
            let (name, value) = match h {
                Header::Other(n, v) => (
                    compact(n).map(str::to_string).unwrap_or_else(|| n.clone()),
                    v.clone(),
                ),
                _ => match text.split_once(':') {
                    Some((n, v)) => (n.trim().to_string(), v.trim().to_string()),
                    None => continue,
                },
            };
            all.push((name, value));
        }
        Headers { all }
    }

    fn values(&self, name: &str) -> Vec<&str> {
        self.all
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn one(&self, name: &str) -> Option<&str> {
        self.values(name).into_iter().next()
    }

    fn list(&self, name: &str) -> Vec<String> {
        self.values(name).into_iter().flat_map(split_list).collect()
    }
}

const KNOWN: [&str; 11] = [
    "via",
    "from",
    "to",
    "call-id",
    "cseq",
    "contact",
    "record-route",
    "max-forwards",
    "content-type",
    "content-length",
    "route",
];

fn core(h: &Headers) -> Result<Core, MessageError> {
    let vias = h.list("Via");
    let top = vias.first().ok_or(MessageError::Missing("Via"))?;
    let branch = param(top, "branch").unwrap_or_default();
    let from = h
        .one("From")
        .ok_or(MessageError::Missing("From"))?
        .to_string();
    let to = h.one("To").ok_or(MessageError::Missing("To"))?.to_string();
    let call_id = h
        .one("Call-ID")
        .ok_or(MessageError::Missing("Call-ID"))?
        .trim()
        .to_string();
    if call_id.is_empty() {
        return Err(MessageError::Malformed("Call-ID"));
    }
    let cseq_text = h.one("CSeq").ok_or(MessageError::Missing("CSeq"))?;
    let mut parts = cseq_text.split_whitespace();
    let cseq = parts
        .next()
        .and_then(|n| n.parse().ok())
        .ok_or(MessageError::Malformed("CSeq"))?;
    let cseq_method = parts
        .next()
        .ok_or(MessageError::Malformed("CSeq"))?
        .to_string();
    if uri_of(&from).is_empty() {
        return Err(MessageError::Malformed("From"));
    }
    if uri_of(&to).is_empty() {
        return Err(MessageError::Malformed("To"));
    }
    Ok(Core {
        from_tag: param(&from, "tag"),
        to_tag: param(&to, "tag"),
        call_id,
        vias,
        branch,
        from,
        to,
        cseq,
        cseq_method,
    })
}

fn check_length(h: &Headers, body: &[u8]) -> Result<(), MessageError> {
    if let Some(len) = h.one("Content-Length") {
        let declared: usize = len
            .trim()
            .parse()
            .map_err(|_| MessageError::Malformed("Content-Length"))?;
        if declared > body.len() {
            return Err(MessageError::Truncated {
                declared,
                actual: body.len(),
            });
        }
    }
    Ok(())
}

fn others(h: &Headers) -> Vec<(String, String)> {
    h.all
        .iter()
        .filter(|(n, _)| !KNOWN.iter().any(|k| n.eq_ignore_ascii_case(k)))
        .cloned()
        .collect()
}

impl Message {
    /// Parses and checks one datagram. rsip is shielded: a panic inside it is an error here.
    pub fn parse(data: &[u8]) -> Result<Message, MessageError> {
        let parsed = std::panic::catch_unwind(|| rsip::SipMessage::try_from(data))
            .map_err(|_| MessageError::Unparsable("the parser gave up".into()))?
            .map_err(|e| MessageError::Unparsable(e.to_string()))?;
        match parsed {
            rsip::SipMessage::Request(r) => {
                let h = Headers::from_rsip(r.headers());
                let core = core(&h)?;
                let method = r.method().to_string();
                if !core.cseq_method.eq_ignore_ascii_case(&method)
                    && method != "ACK"
                    && method != "CANCEL"
                {
                    return Err(MessageError::CSeqMismatch {
                        cseq: core.cseq_method.clone(),
                        method,
                    });
                }
                let body = r.body().clone();
                check_length(&h, &body)?;
                let max_forwards = match h.one("Max-Forwards") {
                    Some(v) => Some(
                        v.trim()
                            .parse()
                            .map_err(|_| MessageError::Malformed("Max-Forwards"))?,
                    ),
                    None => None,
                };
                Ok(Message::Request(Request {
                    uri: r.uri().to_string(),
                    method,
                    contact: h.list("Contact").first().cloned(),
                    record_route: h.list("Record-Route"),
                    max_forwards,
                    content_type: h.one("Content-Type").map(str::to_string),
                    other: others(&h),
                    core,
                    body,
                }))
            }
            rsip::SipMessage::Response(r) => {
                let h = Headers::from_rsip(r.headers());
                let core = core(&h)?;
                let body = r.body().clone();
                check_length(&h, &body)?;
                let code: u16 = r.status_code().code();
                Ok(Message::Response(Response {
                    code,
                    reason: r.status_code().to_string(),
                    contact: h.list("Contact").first().cloned(),
                    record_route: h.list("Record-Route"),
                    other: others(&h),
                    core,
                    body,
                }))
            }
        }
    }
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.other
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The reason phrase we use for a status code.
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        416 => "Unsupported URI Scheme",
        481 => "Call/Transaction Does Not Exist",
        483 => "Too Many Hops",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// Builds a response to `core` (Via, From, To, Call-ID, CSeq copied; our To-tag added when given).
pub fn response(
    core: &Core,
    code: u16,
    reason: &str,
    to_tag: Option<&str>,
    extra: &[(&str, String)],
    body: Option<(&str, &[u8])>,
) -> Vec<u8> {
    let mut s = format!("SIP/2.0 {code} {reason}\r\n");
    for v in &core.vias {
        let _ = write!(s, "Via: {v}\r\n");
    }
    let _ = write!(s, "From: {}\r\n", core.from);
    match (to_tag, &core.to_tag) {
        (Some(tag), None) => {
            let _ = write!(s, "To: {};tag={tag}\r\n", core.to);
        }
        _ => {
            let _ = write!(s, "To: {}\r\n", core.to);
        }
    }
    let _ = write!(
        s,
        "Call-ID: {}\r\nCSeq: {} {}\r\n",
        core.call_id, core.cseq, core.cseq_method
    );
    for (name, value) in extra {
        let _ = write!(s, "{name}: {value}\r\n");
    }
    finish(s, body)
}

fn finish(mut s: String, body: Option<(&str, &[u8])>) -> Vec<u8> {
    match body {
        Some((ctype, bytes)) => {
            let _ = write!(
                s,
                "Content-Type: {ctype}\r\nContent-Length: {}\r\n\r\n",
                bytes.len()
            );
            let mut out = s.into_bytes();
            out.extend_from_slice(bytes);
            out
        }
        None => {
            s.push_str("Content-Length: 0\r\n\r\n");
            s.into_bytes()
        }
    }
}

/// Builds an in-dialog request of ours (BYE, REFER, ACK, NOTIFY).
#[allow(clippy::too_many_arguments)] // a request really has this many parts
pub fn request(
    method: &str,
    uri: &str,
    via: &str,
    from: &str,
    to: &str,
    call_id: &str,
    cseq: u32,
    routes: &[String],
    extra: &[(&str, String)],
    body: Option<(&str, &[u8])>,
) -> Vec<u8> {
    let mut s = format!("{method} {uri} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n");
    for r in routes {
        let _ = write!(s, "Route: {r}\r\n");
    }
    for (name, value) in extra {
        let _ = write!(s, "{name}: {value}\r\n");
    }
    finish(s, body)
}

/// A 400 for a datagram that rsip could not parse but whose mandatory headers
/// can still be found line by line; `None` when no response can be formed.
pub fn salvage_bad_request(data: &[u8], why: &str) -> Option<Vec<u8>> {
    salvage_response(data, 400, why)
}

/// Methods rsip knows; any other well-formed method token is answered 501.
const RSIP_METHODS: [&str; 14] = [
    "ACK",
    "BYE",
    "CANCEL",
    "INFO",
    "INVITE",
    "MESSAGE",
    "NOTIFY",
    "OPTIONS",
    "PRACK",
    "PUBLISH",
    "REFER",
    "REGISTER",
    "SUBSCRIBE",
    "UPDATE",
];

/// The method of a request start line that is well-formed but names a method we do not know.
pub fn unknown_method(data: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(data.get(..data.len().min(200))?);
    let start = text.lines().next()?;
    let mut parts = start.split_whitespace();
    let method = parts.next()?;
    let token = method
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-.!%*_+`'~".contains(c));
    (token
        && parts.nth(1) == Some("SIP/2.0")
        && !RSIP_METHODS.contains(&method.to_ascii_uppercase().as_str()))
    .then(|| method.to_string())
}

/// A response with `code` to a request rsip could not take, formed from its raw header lines.
pub fn salvage_response(data: &[u8], code: u16, why: &str) -> Option<Vec<u8>> {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split("\r\n").flat_map(|l| l.split('\n'));
    let start = lines.next()?;
    if start.starts_with("SIP/2.0") || start.split_whitespace().nth(2) != Some("SIP/2.0") {
        return None; // a response, or not SIP at all: never answer.
    }
    let get = |names: &[&str]| -> Option<String> {
        text.split('\n').find_map(|l| {
            let (n, v) = l.split_once(':')?;
            names
                .iter()
                .any(|x| n.trim().eq_ignore_ascii_case(x))
                .then(|| v.trim().to_string())
        })
    };
    let via = get(&["Via", "v"])?;
    let from = get(&["From", "f"])?;
    let to = get(&["To", "t"])?;
    let call_id = get(&["Call-ID", "i"])?;
    let cseq = get(&["CSeq"])?;
    let _ = lines.next();
    let reason: String = why.chars().filter(|c| !c.is_control()).take(100).collect();
    let allow = if code == 501 {
        "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, NOTIFY\r\n"
    } else {
        ""
    };
    let s = format!("SIP/2.0 {code} {reason}\r\n{allow}Via: {via}\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq}\r\nContent-Length: 0\r\n\r\n");
    Some(s.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:switchboard@127.0.0.1:5060 SIP/2.0\r\n\
v: SIP/2.0/UDP 192.0.2.5:5070;branch=z9hG4bK776asdhds;rport\r\n\
Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp1, SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKx\r\n\
Max-Forwards: 70\r\nf: \"Alice\" <sip:+15551234567@192.0.2.5>;tag=1928301774\r\nt: <sip:switchboard@127.0.0.1>\r\n\
i: a84b4c76e66710@pc33\r\nCSeq: 314159 INVITE\r\nm: <sip:alice@192.0.2.5:5070>\r\n\
Record-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\nc: application/sdp\r\nl: 4\r\n\r\nv=0\n";

    #[test]
    fn compact_headers_and_lists_are_understood() {
        let Message::Request(r) = Message::parse(INVITE.as_bytes()).unwrap() else {
            panic!("a request")
        };
        assert_eq!(r.method, "INVITE");
        assert_eq!(r.core.call_id, "a84b4c76e66710@pc33");
        assert_eq!(r.core.vias.len(), 3);
        assert_eq!(r.core.branch, "z9hG4bK776asdhds");
        assert_eq!(r.core.from_tag.as_deref(), Some("1928301774"));
        assert_eq!(r.core.to_tag, None);
        assert_eq!(
            (r.core.cseq, r.core.cseq_method.as_str()),
            (314159, "INVITE")
        );
        assert_eq!(
            r.record_route,
            vec!["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
        );
        assert_eq!(
            uri_of(r.contact.as_deref().unwrap()),
            "sip:alice@192.0.2.5:5070"
        );
        assert_eq!(user_of(&uri_of(&r.core.from)), "+15551234567");
        assert_eq!(r.body, b"v=0\n");
    }

    #[test]
    fn responses_copy_vias_in_order_and_add_our_tag() {
        let Message::Request(r) = Message::parse(INVITE.as_bytes()).unwrap() else {
            panic!()
        };
        let resp =
            String::from_utf8(response(&r.core, 180, "Ringing", Some("abc"), &[], None)).unwrap();
        let vias: Vec<&str> = resp.lines().filter(|l| l.starts_with("Via:")).collect();
        assert_eq!(vias.len(), 3);
        assert!(vias[0].contains("z9hG4bK776asdhds"));
        assert!(resp.contains("To: <sip:switchboard@127.0.0.1>;tag=abc\r\n"));
        let Message::Response(back) = Message::parse(resp.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!((back.code, back.core.to_tag.as_deref()), (180, Some("abc")));
    }

    #[test]
    fn missing_and_malformed_headers_are_named() {
        let no_callid = INVITE.replace("i: a84b4c76e66710@pc33\r\n", "");
        assert_eq!(
            Message::parse(no_callid.as_bytes()).unwrap_err(),
            MessageError::Missing("Call-ID")
        );
        let bad_cseq = INVITE.replace("CSeq: 314159 INVITE", "CSeq: x INVITE");
        assert_eq!(
            Message::parse(bad_cseq.as_bytes()).unwrap_err(),
            MessageError::Malformed("CSeq")
        );
        let mismatch = INVITE.replace("CSeq: 314159 INVITE", "CSeq: 1 BYE");
        assert!(matches!(
            Message::parse(mismatch.as_bytes()).unwrap_err(),
            MessageError::CSeqMismatch { .. }
        ));
        let long = INVITE.replace("l: 4", "l: 400");
        assert!(matches!(
            Message::parse(long.as_bytes()).unwrap_err(),
            MessageError::Truncated { declared: 400, .. }
        ));
        assert!(Message::parse(b"\x00\xff garbage").is_err());
    }

    #[test]
    fn salvage_answers_requests_only() {
        let broken = "INVITE sip:x SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nMax-Forwards: lots\r\n\r\n";
        let out = String::from_utf8(
            salvage_bad_request(broken.as_bytes(), "Malformed Max-Forwards header").unwrap(),
        )
        .unwrap();
        assert!(
            out.starts_with("SIP/2.0 400 Malformed Max-Forwards header\r\n"),
            "{out}"
        );
        assert!(out.contains("Call-ID: c1"));
        assert!(salvage_bad_request(b"SIP/2.0 200 OK\r\n\r\n", "x").is_none());
        assert!(salvage_bad_request(b"hello", "x").is_none());
    }
}
