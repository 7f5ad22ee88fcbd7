//! The sans-IO SIP user agent: server transactions (RFC 3261 §17.2),
//! the 2xx retransmission of §13.3.1.4, dialogs (§12), CANCEL (§9), BYE
//! (§15), OPTIONS, re-INVITE, our own in-dialog requests (BYE, REFER), and
//! the client INVITE of outbound calls (§17.1.1).
//!
//! Datagrams and the clock come in (`handle_datagram`, `handle_timeout`, each
//! with `now`); datagrams to send and call events go out (`poll_event`), and
//! `poll_timeout` says when to wake next. One call is one dialog, keyed by Call-ID.
//!
//! Here: the types, the datagram and timer entry points. Children: `uas`
//! (requests that arrive and our answers to an INVITE), `dialog` (requests
//! we send inside a dialog), `uac` (our own INVITE for outbound calls).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::message::{self, Core, Message, Request};

mod dialog;
mod uac;
mod uas;
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

/// A non-INVITE server transaction: (Call-ID, branch, method).
type TxnKey = (String, String, String);

#[derive(Debug)]
pub struct Endpoint {
    cfg: EndpointConfig,
    dialogs: HashMap<String, Dialog>,
    /// Responses to non-INVITE requests, by (Call-ID, branch, method), to answer retransmissions.
    answered: HashMap<TxnKey, (Vec<u8>, SocketAddr, Instant)>,
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
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
