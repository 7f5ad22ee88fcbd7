//! A SIP registrar on loopback UDP for tests: it challenges the first
//! REGISTER of a transaction with 401 and a Digest `WWW-Authenticate`
//! (RFC 3261 §22.4, RFC 2617 MD5 with qop=auth), checks the `Authorization`
//! of the retry against the user's password, and answers 200 with the
//! granted expiry, or 403 when the digest is wrong. Knobs: refuse every
//! request with a status, or stay silent.

#![allow(dead_code)] // each test file uses part of the fake

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use md5::{Digest, Md5};
use tokio::net::UdpSocket;

/// One REGISTER as the fake saw it, and what it answered.
#[derive(Debug, Clone)]
pub struct Seen {
    pub text: String,
    pub authorization: Option<String>,
    /// The digest response matched the password (None when there was none).
    pub digest_ok: Option<bool>,
    pub answered: Option<u16>,
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    Normal,
    Refuse(u16),
    Silent,
}

struct Shared {
    seen: Vec<Seen>,
    mode: Mode,
}

pub struct FakeRegistrar {
    addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
}

pub const REALM: &str = "pbx.test";
const NONCE: &str = "5f1c0de4a9";
/// The expiry the fake grants, whatever was asked.
pub const GRANTED: u32 = 90;

pub async fn start(user: &str, password: &str) -> FakeRegistrar {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let shared = Arc::new(Mutex::new(Shared {
        seen: Vec::new(),
        mode: Mode::Normal,
    }));
    let (user, password, state) = (user.to_string(), password.to_string(), shared.clone());
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_536];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            let mode = state.lock().unwrap().mode;
            let (seen, reply) = answer(&text, &user, &password, mode);
            state.lock().unwrap().seen.push(seen);
            if let Some(reply) = reply {
                let _ = socket.send_to(reply.as_bytes(), from).await;
            }
        }
    });
    FakeRegistrar { addr, shared }
}

impl FakeRegistrar {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.shared.lock().unwrap().seen.clone()
    }

    /// Answer every REGISTER from now on with this status.
    pub fn refuse_with(&self, code: u16) {
        self.shared.lock().unwrap().mode = Mode::Refuse(code);
    }

    /// Answer nothing from now on (a registrar that is down).
    pub fn go_silent(&self) {
        self.shared.lock().unwrap().mode = Mode::Silent;
    }
}

fn header<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn digest_param(auth: &str, key: &str) -> Option<String> {
    let start = auth.find(&format!("{key}="))? + key.len() + 1;
    let rest = &auth[start..];
    Some(match rest.strip_prefix('"') {
        Some(q) => q.split('"').next()?.to_string(),
        None => rest.split(',').next()?.trim().to_string(),
    })
}

fn md5_hex(s: &str) -> String {
    hex::encode(Md5::digest(s.as_bytes()))
}

/// RFC 2617 §3.2.2 with qop=auth.
fn digest_ok(auth: &str, user: &str, password: &str) -> bool {
    let get = |k| digest_param(auth, k).unwrap_or_default();
    let ha1 = md5_hex(&format!("{user}:{REALM}:{password}"));
    let ha2 = md5_hex(&format!("REGISTER:{}", get("uri")));
    let expected = md5_hex(&format!(
        "{ha1}:{}:{}:{}:{}:{ha2}",
        get("nonce"),
        get("nc"),
        get("cnonce"),
        get("qop")
    ));
    get("username") == user
        && get("realm") == REALM
        && get("nonce") == NONCE
        && get("response") == expected
}

fn answer(text: &str, user: &str, password: &str, mode: Mode) -> (Seen, Option<String>) {
    let authorization = header(text, "Authorization").map(str::to_string);
    let ok = authorization
        .as_deref()
        .map(|a| digest_ok(a, user, password));
    let mut seen = Seen {
        text: text.to_string(),
        authorization,
        digest_ok: ok,
        answered: None,
    };
    if !text.starts_with("REGISTER ") {
        return (seen, None);
    }
    let (code, reason, extra) = match (mode, ok) {
        (Mode::Silent, _) => return (seen, None),
        (Mode::Refuse(code), _) => (code, "Refused", String::new()),
        (Mode::Normal, None) => (
            401,
            "Unauthorized",
            format!("WWW-Authenticate: Digest realm=\"{REALM}\", nonce=\"{NONCE}\", qop=\"auth\", algorithm=MD5\r\n"),
        ),
        (Mode::Normal, Some(false)) => (403, "Forbidden", String::new()),
        (Mode::Normal, Some(true)) => {
            let contact = header(text, "Contact").unwrap_or("<sip:unknown@127.0.0.1>");
            (200, "OK", format!("Contact: {contact};expires={GRANTED}\r\n"))
        }
    };
    seen.answered = Some(code);
    let vias: String = text
        .lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("via:"))
        .map(|l| format!("{}\r\n", l.trim_end()))
        .collect();
    let reply = format!(
        "SIP/2.0 {code} {reason}\r\n{vias}From: {}\r\nTo: {};tag=registrar\r\nCall-ID: {}\r\nCSeq: {}\r\n{extra}Content-Length: 0\r\n\r\n",
        header(text, "From").unwrap_or_default(),
        header(text, "To").unwrap_or_default(),
        header(text, "Call-ID").unwrap_or_default(),
        header(text, "CSeq").unwrap_or_default(),
    );
    (seen, Some(reply))
}
