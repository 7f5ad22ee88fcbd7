//! The sans-IO SIP user agent server: server transactions (RFC 3261 §17.2),
//! the 2xx retransmission of §13.3.1.4, dialogs (§12), CANCEL (§9), BYE
//! (§15), OPTIONS, re-INVITE, and our own in-dialog requests (BYE, REFER).
//! The client side of outbound calls (our INVITE) lives in the child `uac`.
//!
//! Datagrams and the clock come in (`handle_datagram`, `handle_timeout`, each
//! with `now`); datagrams to send and call events go out (`poll_event`), and
//! `poll_timeout` says when to wake next. One call is one dialog, keyed by Call-ID.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::message::{self, Core, Message, Request, Response};

#[path = "uac.rs"]
mod uac;
pub use uac::Dial;

/// Methods we answer.
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, NOTIFY";
/// Methods we know but do not take from a caller.
const NOT_ALLOWED: [&str; 8] = [
    "REFER",
    "SUBSCRIBE",
    "MESSAGE",
    "INFO",
    "UPDATE",
    "PRACK",
    "PUBLISH",
    "REGISTER",
];

#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// Our Contact, e.g. `<sip:switchboard@127.0.0.1:5060>`.
    pub contact: String,
    /// The sent-by of our Via, e.g. `127.0.0.1:5060`.
    pub via_host: String,
    pub user_agent: String,
    pub t1: Duration,
    pub t2: Duration,
}

impl EndpointConfig {
    pub fn new(local: SocketAddr) -> EndpointConfig {
        EndpointConfig {
            contact: format!("<sip:switchboard@{local}>"),
            via_host: local.to_string(),
            user_agent: concat!("Switchboard/", env!("CARGO_PKG_VERSION")).to_string(),
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    RemoteBye,
    Cancelled,
    /// We sent 2xx but the caller's ACK never came (Timer H equivalent).
    NoAck,
    LocalHangup,
    Rejected(u16),
    /// Our outbound call rang out unanswered and was cancelled.
    NoAnswer,
    /// Our outbound INVITE got no answer at all (Timer B).
    NoResponse,
}

impl EndReason {
    pub fn as_str(&self) -> String {
        match self {
            EndReason::RemoteBye => "caller_hung_up".into(),
            EndReason::Cancelled => "caller_cancelled".into(),
            EndReason::NoAck => "no_ack".into(),
            EndReason::LocalHangup => "agent_hung_up".into(),
            EndReason::Rejected(code) => format!("rejected_{code}"),
            EndReason::NoAnswer => "no_answer".into(),
            EndReason::NoResponse => "no_response".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Transmit {
        to: SocketAddr,
        data: Vec<u8>,
    },
    IncomingCall {
        call: String,
        from: String,
        to: String,
        source: SocketAddr,
        sdp: Vec<u8>,
    },
    /// The caller acknowledged our 2xx: media may flow both ways.
    Established {
        call: String,
    },
    /// Our outbound call was answered (and acknowledged); `sdp` is the answer.
    Answered {
        call: String,
        sdp: Vec<u8>,
    },
    /// A re-INVITE with a new offer (possibly empty); answer with [`Endpoint::answer_reoffer`].
    Reoffer {
        call: String,
        sdp: Vec<u8>,
    },
    Ended {
        call: String,
        reason: EndReason,
    },
    /// A final or provisional answer to our REFER, or a NOTIFY sipfrag status.
    TransferProgress {
        call: String,
        code: u16,
    },
    /// A datagram we could not use, for logs and metrics.
    Malformed {
        source: SocketAddr,
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    #[error("no call {0}")]
    NoSuchCall(String),
    #[error("call {call} cannot do that in state {state}")]
    WrongState { call: String, state: &'static str },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Proceeding,
    /// 2xx sent, waiting for ACK.
    Accepted,
    Confirmed,
    /// Non-2xx final sent, waiting for ACK.
    Rejected,
    Terminated,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::Proceeding => "proceeding",
            State::Accepted => "accepted",
            State::Confirmed => "confirmed",
            State::Rejected => "rejected",
            State::Terminated => "terminated",
        }
    }
}

#[derive(Debug, Clone)]
struct Retransmit {
    next: Instant,
    interval: Duration,
    deadline: Instant,
}

#[derive(Debug)]
struct Dialog {
    source: SocketAddr,
    /// The INVITE whose responses are being sent (the initial one or a re-INVITE).
    invite: Request,
    initial_branch: String,
    local_tag: String,
    /// Our From/To value in requests we send (with our tag), and theirs.
    local: String,
    remote: String,
    state: State,
    last_response: Option<Vec<u8>>,
    /// Our ACK of the 2xx on an outbound call, resent if the 2xx is.
    ack: Option<Vec<u8>>,
    retransmit: Option<Retransmit>,
    local_cseq: u32,
    remote_target: String,
    route_set: Vec<String>,
    reoffer_pending: bool,
    forget_at: Option<Instant>,
}

#[derive(Debug)]
struct ClientTxn {
    call: String,
    method: &'static str,
    data: Vec<u8>,
    dest: SocketAddr,
    retransmit: Retransmit,
}

#[derive(Debug)]
pub struct Endpoint {
    cfg: EndpointConfig,
    dialogs: HashMap<String, Dialog>,
    /// Responses to non-INVITE requests, by (Call-ID, branch, method), to answer retransmissions.
    answered: HashMap<(String, String, String), (Vec<u8>, SocketAddr, Instant)>,
    clients: HashMap<String, ClientTxn>,
    /// Our unanswered outbound INVITEs, by Call-ID.
    outgoing: HashMap<String, uac::Outgoing>,
    events: VecDeque<Event>,
    rng: u64,
}

impl Endpoint {
    /// `seed` makes tags and branches unpredictable (give it real randomness) or repeatable in tests.
    pub fn new(cfg: EndpointConfig, seed: u64) -> Endpoint {
        Endpoint {
            cfg,
            dialogs: HashMap::new(),
            answered: HashMap::new(),
            clients: HashMap::new(),
            outgoing: HashMap::new(),
            events: VecDeque::new(),
            rng: seed | 1,
        }
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Calls still known (including ones lingering to absorb retransmissions).
    pub fn active_calls(&self) -> usize {
        self.dialogs
            .values()
            .filter(|d| d.state != State::Terminated)
            .count()
    }

    fn token(&mut self) -> String {
        // xorshift64*: enough for tags and branches given a random seed.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        format!("{:016x}", self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d))
    }

    fn send(&mut self, to: SocketAddr, data: Vec<u8>) {
        self.events.push_back(Event::Transmit { to, data });
    }

    fn respond(
        &mut self,
        to: SocketAddr,
        core: &Core,
        code: u16,
        to_tag: Option<&str>,
        extra: &[(&str, String)],
    ) -> Vec<u8> {
        let mut headers: Vec<(&str, String)> = vec![("Server", self.cfg.user_agent.clone())];
        headers.extend(extra.iter().cloned());
        let data = message::response(
            core,
            code,
            message::reason_phrase(code),
            to_tag,
            &headers,
            None,
        );
        self.send(to, data.clone());
        data
    }

    /// The next instant something is due, if anything is.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let dialogs = self.dialogs.values().flat_map(|d| {
            [
                d.retransmit.as_ref().map(|r| r.next.min(r.deadline)),
                d.forget_at,
            ]
        });
        let clients = self
            .clients
            .values()
            .map(|c| Some(c.retransmit.next.min(c.retransmit.deadline)));
        let answered = self.answered.values().map(|(_, _, t)| Some(*t));
        let outgoing = self.outgoing.values().map(|o| Some(o.next_deadline()));
        dialogs
            .chain(clients)
            .chain(answered)
            .chain(outgoing)
            .flatten()
            .min()
    }

    pub fn handle_datagram(&mut self, now: Instant, source: SocketAddr, data: &[u8]) {
        if data.iter().all(|b| b.is_ascii_whitespace()) {
            return; // RFC 5626 keep-alive (CRLF).
        }
        match Message::parse(data) {
            Ok(Message::Request(req)) => self.on_request(now, source, req),
            Ok(Message::Response(resp)) => self.on_response(now, resp),
            Err(e) => {
                let reason = e.to_string();
                let reply = match message::unknown_method(data) {
                    Some(_) => message::salvage_response(data, 501, "Not Implemented"),
                    None => message::salvage_bad_request(data, &capitalise(&reason)),
                };
                if let Some(reply) = reply {
                    self.send(source, reply);
                }
                self.events.push_back(Event::Malformed { source, reason });
            }
        }
    }

    fn on_request(&mut self, now: Instant, source: SocketAddr, req: Request) {
        if req.method != "ACK" && req.max_forwards == Some(0) {
            self.respond(source, &req.core, 483, None, &[]);
            return;
        }
        let scheme = req
            .uri
            .split(':')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if !matches!(scheme.as_str(), "sip" | "sips" | "tel") {
            if req.method != "ACK" {
                self.respond(source, &req.core, 416, None, &[]);
            }
            return;
        }
        if req.method != "INVITE" && req.method != "ACK" {
            let key = (
                req.core.call_id.clone(),
                req.core.branch.clone(),
                req.method.clone(),
            );
            if let Some((data, to, _)) = self.answered.get(&key) {
                let (data, to) = (data.clone(), *to);
                self.send(to, data);
                return;
            }
        }
        match req.method.as_str() {
            "INVITE" => self.on_invite(now, source, req),
            "ACK" => self.on_ack(now, req),
            "CANCEL" => self.on_cancel(now, source, req),
            "BYE" => self.on_bye(now, source, req),
            "OPTIONS" => {
                let extra = [
                    ("Allow", ALLOW.to_string()),
                    ("Accept", "application/sdp".to_string()),
                ];
                let data = self.respond(source, &req.core, 200, None, &extra);
                self.remember(now, &req, data, source);
            }
            "NOTIFY" => self.on_notify(now, source, req),
            m if NOT_ALLOWED.contains(&m) => {
                let data = self.respond(
                    source,
                    &req.core,
                    405,
                    None,
                    &[("Allow", ALLOW.to_string())],
                );
                self.remember(now, &req, data, source);
            }
            _ => {
                let data = self.respond(
                    source,
                    &req.core,
                    501,
                    None,
                    &[("Allow", ALLOW.to_string())],
                );
                self.remember(now, &req, data, source);
            }
        }
    }

    /// Keeps a non-INVITE response for 64·T1 to answer retransmissions (Timer J).
    fn remember(&mut self, now: Instant, req: &Request, data: Vec<u8>, to: SocketAddr) {
        let key = (
            req.core.call_id.clone(),
            req.core.branch.clone(),
            req.method.clone(),
        );
        self.answered
            .insert(key, (data, to, now + self.cfg.t1 * 64));
    }

    fn on_invite(&mut self, now: Instant, source: SocketAddr, req: Request) {
        let call = req.core.call_id.clone();
        if let Some(d) = self.dialogs.get(&call) {
            if req.core.branch == d.invite.core.branch && req.core.cseq == d.invite.core.cseq {
                // A retransmission: repeat our latest answer, nothing more.
                if let Some(last) = d.last_response.clone() {
                    self.send(source, last);
                }
                return;
            }
            if req.core.to_tag.is_none() || req.core.to_tag.as_deref() != Some(d.local_tag.as_str())
            {
                self.respond(
                    source,
                    &req.core,
                    if req.core.to_tag.is_none() { 482 } else { 481 },
                    None,
                    &[],
                );
                return;
            }
            return self.on_reinvite(now, source, req);
        }
        if req.core.to_tag.is_some() {
            self.respond(source, &req.core, 481, None, &[]);
            return;
        }
        let local_tag = self.token();
        let trying = self.respond(source, &req.core, 100, None, &[]);
        let remote_target = req
            .contact
            .as_deref()
            .map(message::uri_of)
            .unwrap_or_else(|| message::uri_of(&req.core.from));
        let event = Event::IncomingCall {
            call: call.clone(),
            from: message::uri_of(&req.core.from),
            to: message::uri_of(&req.core.to),
            source,
            sdp: req.body.clone(),
        };
        let local = format!(
            "{};tag={local_tag}",
            req.core.to.split(";tag=").next().unwrap_or(&req.core.to)
        );
        let dialog = Dialog {
            source,
            initial_branch: req.core.branch.clone(),
            route_set: req.record_route.clone(),
            local,
            remote: req.core.from.clone(),
            invite: req,
            local_tag,
            state: State::Proceeding,
            last_response: Some(trying),
            ack: None,
            retransmit: None,
            local_cseq: 0,
            remote_target,
            reoffer_pending: false,
            forget_at: None,
        };
        self.dialogs.insert(call, dialog);
        self.events.push_back(event);
    }

    fn on_reinvite(&mut self, _now: Instant, source: SocketAddr, req: Request) {
        let call = req.core.call_id.clone();
        let Some(d) = self.dialogs.get_mut(&call) else {
            return;
        };
        if d.reoffer_pending || d.state != State::Confirmed {
            let core = req.core.clone();
            self.respond(source, &core, 491, None, &[]);
            return;
        }
        if let Some(target) = req.contact.as_deref() {
            d.remote_target = message::uri_of(target);
        }
        d.reoffer_pending = true;
        let sdp = req.body.clone();
        d.invite = req;
        let core = d.invite.core.clone();
        let trying = self.respond(source, &core, 100, None, &[]);
        if let Some(d) = self.dialogs.get_mut(&call) {
            d.last_response = Some(trying);
        }
        self.events.push_back(Event::Reoffer { call, sdp });
    }

    fn on_ack(&mut self, now: Instant, req: Request) {
        let call = req.core.call_id.clone();
        let Some(d) = self.dialogs.get_mut(&call) else {
            return;
        };
        if req.core.cseq != d.invite.core.cseq {
            return;
        }
        match d.state {
            State::Accepted => {
                d.state = State::Confirmed;
                d.retransmit = None;
                self.events.push_back(Event::Established { call });
            }
            State::Confirmed => d.retransmit = None,
            State::Rejected => {
                d.retransmit = None;
                d.state = State::Terminated;
                d.forget_at = Some(now + self.cfg.t1 * 64);
            }
            _ => {}
        }
    }

    fn on_cancel(&mut self, now: Instant, source: SocketAddr, req: Request) {
        let call = req.core.call_id.clone();
        let matched = self.dialogs.get(&call).map(|d| {
            (
                d.initial_branch == req.core.branch,
                d.state,
                d.local_tag.clone(),
            )
        });
        match matched {
            Some((true, state, tag)) => {
                let data = self.respond(source, &req.core, 200, Some(&tag), &[]);
                self.remember(now, &req, data, source);
                if state == State::Proceeding {
                    self.finish_invite(now, &call, 487, &[]);
                    self.events.push_back(Event::Ended {
                        call,
                        reason: EndReason::Cancelled,
                    });
                }
            }
            _ => {
                let data = self.respond(source, &req.core, 481, None, &[]);
                self.remember(now, &req, data, source);
            }
        }
    }

    fn on_bye(&mut self, now: Instant, source: SocketAddr, req: Request) {
        let call = req.core.call_id.clone();
        let known = self.dialogs.get(&call).is_some_and(|d| {
            req.core.to_tag.as_deref() == Some(d.local_tag.as_str()) && d.state != State::Terminated
        });
        if !known {
            let data = self.respond(source, &req.core, 481, None, &[]);
            self.remember(now, &req, data, source);
            return;
        }
        let data = self.respond(source, &req.core, 200, None, &[]);
        self.remember(now, &req, data, source);
        if let Some(d) = self.dialogs.get_mut(&call) {
            d.state = State::Terminated;
            d.retransmit = None;
            d.forget_at = Some(now + self.cfg.t1 * 64);
        }
        self.clients.retain(|_, c| c.call != call);
        self.events.push_back(Event::Ended {
            call,
            reason: EndReason::RemoteBye,
        });
    }

    fn on_notify(&mut self, now: Instant, source: SocketAddr, req: Request) {
        let call = req.core.call_id.clone();
        if !self.dialogs.contains_key(&call) {
            let data = self.respond(source, &req.core, 481, None, &[]);
            self.remember(now, &req, data, source);
            return;
        }
        let data = self.respond(source, &req.core, 200, None, &[]);
        self.remember(now, &req, data, source);
        // message/sipfrag body: "SIP/2.0 200 OK".
        let body = String::from_utf8_lossy(&req.body);
        if let Some(code) = body
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("SIP/2.0 "))
            .and_then(|r| r.get(..3))
            .and_then(|c| c.parse().ok())
        {
            self.events
                .push_back(Event::TransferProgress { call, code });
        }
    }

    fn on_response(&mut self, now: Instant, resp: Response) {
        if self.on_invite_response(now, &resp) {
            return;
        }
        let Some(txn) = self.clients.get(&resp.core.branch) else {
            return;
        };
        let call = txn.call.clone();
        let method = txn.method;
        if resp.code >= 200 {
            self.clients.remove(&resp.core.branch);
        } else if let Some(t) = self.clients.get_mut(&resp.core.branch) {
            // A provisional answer: keep waiting, but stop retransmitting so often (Timer E → T2).
            t.retransmit.interval = self.cfg.t2;
            t.retransmit.next = now + self.cfg.t2;
        }
        if method == "REFER" {
            self.events.push_back(Event::TransferProgress {
                call,
                code: resp.code,
            });
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let mut resend = Vec::new();
        let mut no_ack = Vec::new();
        for (call, d) in self.dialogs.iter_mut() {
            let Some(r) = d.retransmit.as_mut() else {
                continue;
            };
            if now >= r.deadline {
                d.retransmit = None;
                if d.state == State::Accepted {
                    no_ack.push(call.clone());
                } else {
                    d.state = State::Terminated;
                    d.forget_at = Some(now + self.cfg.t1 * 64);
                }
            } else if now >= r.next {
                if let Some(last) = &d.last_response {
                    resend.push((d.source, last.clone()));
                }
                r.interval = (r.interval * 2).min(self.cfg.t2);
                r.next = now + r.interval;
            }
        }
        for (to, data) in resend {
            self.send(to, data);
        }
        for call in no_ack {
            // RFC 3261 §13.3.1.4: no ACK for our 2xx → the session is over; send BYE.
            let _ = self.send_bye(now, &call);
            self.events.push_back(Event::Ended {
                call,
                reason: EndReason::NoAck,
            });
        }
        let mut client_resend = Vec::new();
        let t2 = self.cfg.t2;
        self.clients.retain(|_, c| {
            if now >= c.retransmit.deadline {
                return false;
            }
            if now >= c.retransmit.next {
                client_resend.push((c.dest, c.data.clone()));
                c.retransmit.interval = (c.retransmit.interval * 2).min(t2);
                c.retransmit.next = now + c.retransmit.interval;
            }
            true
        });
        for (to, data) in client_resend {
            self.send(to, data);
        }
        self.outgoing_timeouts(now);
        self.answered.retain(|_, (_, _, until)| *until > now);
        self.dialogs
            .retain(|_, d| d.forget_at.is_none_or(|t| t > now));
    }

    /// A fresh retransmission schedule: T1, doubling to T2, for 64·T1.
    fn timer(&self, now: Instant) -> Retransmit {
        Retransmit {
            next: now + self.cfg.t1,
            interval: self.cfg.t1,
            deadline: now + self.cfg.t1 * 64,
        }
    }

    fn dialog(&mut self, call: &str) -> Result<&mut Dialog, EndpointError> {
        self.dialogs
            .get_mut(call)
            .ok_or_else(|| EndpointError::NoSuchCall(call.to_string()))
    }

    /// Sends 180 Ringing.
    pub fn ring(&mut self, _now: Instant, call: &str) -> Result<(), EndpointError> {
        let d = self.dialog(call)?;
        if d.state != State::Proceeding {
            return Err(EndpointError::WrongState {
                call: call.into(),
                state: d.state.name(),
            });
        }
        let (core, tag, source) = (d.invite.core.clone(), d.local_tag.clone(), d.source);
        let extra = self.dialog_headers(call);
        let data = self.respond(source, &core, 180, Some(&tag), &extra);
        self.dialog(call)?.last_response = Some(data);
        Ok(())
    }

    fn dialog_headers(&self, call: &str) -> Vec<(&'static str, String)> {
        let mut extra = vec![("Contact", self.cfg.contact.clone())];
        if let Some(d) = self.dialogs.get(call) {
            extra.extend(
                d.invite
                    .record_route
                    .iter()
                    .map(|r| ("Record-Route", r.clone())),
            );
        }
        extra
    }

    fn send_sdp_ok(&mut self, now: Instant, call: &str, sdp: &[u8]) -> Result<(), EndpointError> {
        let mut extra = self.dialog_headers(call);
        extra.push(("Allow", ALLOW.to_string()));
        extra.push(("Server", self.cfg.user_agent.clone()));
        let timer = self.timer(now);
        let d = self.dialog(call)?;
        let data = message::response(
            &d.invite.core,
            200,
            "OK",
            Some(&d.local_tag.clone()),
            &extra,
            Some(("application/sdp", sdp)),
        );
        d.last_response = Some(data.clone());
        d.retransmit = Some(timer);
        let to = d.source;
        self.send(to, data);
        Ok(())
    }

    /// Answers the INVITE with 200 OK and our SDP; retransmitted until ACK.
    pub fn accept(&mut self, now: Instant, call: &str, sdp: &[u8]) -> Result<(), EndpointError> {
        let d = self.dialog(call)?;
        if d.state != State::Proceeding {
            return Err(EndpointError::WrongState {
                call: call.into(),
                state: d.state.name(),
            });
        }
        d.state = State::Accepted;
        self.send_sdp_ok(now, call, sdp)
    }

    /// The dialog whose re-INVITE is about to be answered, clearing the pending mark.
    fn take_reoffer(&mut self, call: &str) -> Result<&mut Dialog, EndpointError> {
        let d = self.dialog(call)?;
        if !d.reoffer_pending {
            return Err(EndpointError::WrongState {
                call: call.into(),
                state: "no re-INVITE pending",
            });
        }
        d.reoffer_pending = false;
        Ok(d)
    }

    /// Answers a re-INVITE's offer.
    pub fn answer_reoffer(
        &mut self,
        now: Instant,
        call: &str,
        sdp: &[u8],
    ) -> Result<(), EndpointError> {
        self.take_reoffer(call)?;
        self.send_sdp_ok(now, call, sdp)
    }

    /// Refuses a re-INVITE (488 when its offer is unacceptable); the call goes on.
    pub fn reject_reoffer(
        &mut self,
        now: Instant,
        call: &str,
        code: u16,
    ) -> Result<(), EndpointError> {
        let d = self.take_reoffer(call)?;
        let (core, tag, source) = (d.invite.core.clone(), d.local_tag.clone(), d.source);
        let data = self.respond(source, &core, code, Some(&tag), &[]);
        let timer = self.timer(now);
        let d = self.dialog(call)?;
        d.last_response = Some(data);
        d.retransmit = Some(timer);
        Ok(())
    }

    fn finish_invite(&mut self, now: Instant, call: &str, code: u16, extra: &[(&str, String)]) {
        let Some(d) = self.dialogs.get(call) else {
            return;
        };
        let (core, tag, source) = (d.invite.core.clone(), d.local_tag.clone(), d.source);
        let data = self.respond(source, &core, code, Some(&tag), extra);
        let (t1, d) = (self.cfg.t1, self.dialogs.get_mut(call));
        if let Some(d) = d {
            d.state = State::Rejected;
            d.last_response = Some(data);
            d.retransmit = Some(Retransmit {
                next: now + t1,
                interval: t1,
                deadline: now + t1 * 64,
            });
        }
    }

    /// Refuses an unanswered call with a final status (486, 488, 503 with Retry-After, …).
    pub fn reject(
        &mut self,
        now: Instant,
        call: &str,
        code: u16,
        extra: &[(&str, String)],
    ) -> Result<(), EndpointError> {
        let d = self.dialog(call)?;
        if d.state != State::Proceeding {
            return Err(EndpointError::WrongState {
                call: call.into(),
                state: d.state.name(),
            });
        }
        self.finish_invite(now, call, code, extra);
        self.events.push_back(Event::Ended {
            call: call.into(),
            reason: EndReason::Rejected(code),
        });
        Ok(())
    }

    /// Ends the call from our side: BYE when answered, 480 when not.
    pub fn hangup(&mut self, now: Instant, call: &str) -> Result<(), EndpointError> {
        if self.outgoing.contains_key(call) {
            return self.cancel_outgoing(now, call);
        }
        let state = self.dialog(call)?.state;
        match state {
            State::Proceeding => return self.reject(now, call, 480, &[]),
            State::Accepted | State::Confirmed => self.send_bye(now, call)?,
            State::Rejected | State::Terminated => return Ok(()),
        }
        self.events.push_back(Event::Ended {
            call: call.into(),
            reason: EndReason::LocalHangup,
        });
        Ok(())
    }

    fn send_bye(&mut self, now: Instant, call: &str) -> Result<(), EndpointError> {
        self.send_in_dialog(now, call, "BYE", &[], None)?;
        let t1 = self.cfg.t1;
        let d = self.dialog(call)?;
        d.state = State::Terminated;
        d.retransmit = None;
        d.forget_at = Some(now + t1 * 64);
        Ok(())
    }

    /// Asks the caller to call `target` (RFC 3515), with Referred-By (RFC 3892).
    pub fn refer(
        &mut self,
        now: Instant,
        call: &str,
        target: &str,
        referred_by: &str,
    ) -> Result<(), EndpointError> {
        let state = self.dialog(call)?.state;
        if state != State::Confirmed {
            return Err(EndpointError::WrongState {
                call: call.into(),
                state: state.name(),
            });
        }
        let extra = [
            ("Refer-To", format!("<{target}>")),
            ("Referred-By", format!("<{referred_by}>")),
        ];
        self.send_in_dialog(now, call, "REFER", &extra, None)
    }

    fn send_in_dialog(
        &mut self,
        now: Instant,
        call: &str,
        method: &'static str,
        extra: &[(&str, String)],
        body: Option<(&str, &[u8])>,
    ) -> Result<(), EndpointError> {
        let branch = format!("z9hG4bK{}", self.token());
        let via = format!("SIP/2.0/UDP {};branch={branch};rport", self.cfg.via_host);
        let contact = self.cfg.contact.clone();
        let t1 = self.cfg.t1;
        let d = self.dialog(call)?;
        d.local_cseq += 1;
        let (local, remote) = (d.local.clone(), d.remote.clone());
        let mut headers: Vec<(&str, String)> = vec![("Contact", contact)];
        headers.extend(extra.iter().cloned());
        let data = message::request(
            method,
            &d.remote_target,
            &via,
            &local,
            &remote,
            call,
            d.local_cseq,
            &d.route_set,
            &headers,
            body,
        );
        let dest = destination(d);
        self.clients.insert(
            branch,
            ClientTxn {
                call: call.into(),
                method,
                data: data.clone(),
                dest,
                retransmit: Retransmit {
                    next: now + t1,
                    interval: t1,
                    deadline: now + t1 * 64,
                },
            },
        );
        self.send(dest, data);
        Ok(())
    }
}

/// Where an in-dialog request goes: the first route if it is an IP literal,
/// else the remote target if it is, else back to where the dialog came from.
fn destination(d: &Dialog) -> SocketAddr {
    let first = d
        .route_set
        .first()
        .map(|r| message::uri_of(r))
        .unwrap_or_else(|| d.remote_target.clone());
    host_port(&first).unwrap_or(d.source)
}

fn host_port(uri: &str) -> Option<SocketAddr> {
    let rest = uri.split_once(':')?.1;
    let hostport = rest.rsplit('@').next()?.split(';').next()?;
    if let Ok(addr) = hostport.parse::<SocketAddr>() {
        return Some(addr);
    }
    hostport
        .parse::<std::net::IpAddr>()
        .ok()
        .map(|ip| SocketAddr::new(ip, 5060))
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

#[cfg(test)]
#[path = "endpoint_tests.rs"]
mod tests;
