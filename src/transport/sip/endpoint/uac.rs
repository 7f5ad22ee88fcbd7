//! The client half of the endpoint: our own INVITE for an outbound call
//! (RFC 3261 §17.1.1). Timer A retransmits it (T1, doubling) until a
//! provisional answer; Timer B gives up after 64·T1 without one; a 2xx is
//! acknowledged with its own ACK (§13.2.2.4) and becomes a dialog; a 3xx–6xx
//! is acknowledged within the transaction (§17.1.1.3) and ends the call,
//! except a 401/407 challenge, answered once by resending the INVITE with
//! digest credentials (§22.2). An unanswered call is CANCELled (§9.1) when
//! its answer time runs out. A child of `endpoint`, so it shares its state.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{Dialog, EndReason, Endpoint, EndpointError, Event, Retransmit, State, ALLOW};
use crate::transport::sip::digest::Challenge;
use crate::transport::sip::message::{self, Message, Response};

/// An outbound call to place.
#[derive(Debug, Clone)]
pub struct Dial {
    /// The new call's Call-ID (the caller picks it, so it can admit the call first).
    pub call_id: String,
    /// The Request-URI: who we call (`sip:bob@192.0.2.9:5060`).
    pub target: String,
    /// Our address of record for From (`sip:switchboard@192.0.2.1:5060`).
    pub from: String,
    /// Where the INVITE goes: the target's host, or the registrar that routes it.
    pub next_hop: SocketAddr,
    pub sdp: Vec<u8>,
    /// User and password for a digest challenge.
    pub credentials: Option<(String, String)>,
    /// CANCEL when not answered by then.
    pub ring_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Sent, no answer yet: Timer A and Timer B run.
    Calling,
    /// A provisional answer came: waiting for the final one.
    Proceeding,
    /// CANCEL sent: waiting for the 487 (or a 2xx that crossed it).
    Cancelling,
}

#[derive(Debug)]
pub(super) struct Outgoing {
    dial: Dial,
    from_tag: String,
    cseq: u32,
    branch: String,
    data: Vec<u8>,
    phase: Phase,
    timer: Retransmit,
    answer_by: Instant,
    challenged: bool,
}

impl Outgoing {
    pub(super) fn next_deadline(&self) -> Instant {
        match self.phase {
            Phase::Calling => self.timer.next.min(self.timer.deadline),
            Phase::Proceeding => self.answer_by,
            Phase::Cancelling => self.timer.deadline,
        }
    }
}

impl Endpoint {
    /// Sends an INVITE for `dial.call_id`. Progress comes back as
    /// [`Event::Answered`] or [`Event::Ended`].
    pub fn invite(&mut self, now: Instant, dial: Dial) {
        let call = dial.call_id.clone();
        let from_tag = self.token();
        let mut out = Outgoing {
            dial,
            from_tag,
            cseq: 0,
            branch: String::new(),
            data: Vec::new(),
            phase: Phase::Calling,
            timer: self.timer(now),
            answer_by: now,
            challenged: false,
        };
        out.answer_by = now + out.dial.ring_timeout;
        self.send_invite(now, &call, &mut out, None);
        self.outgoing.insert(call, out);
    }

    /// (Re)sends the INVITE with the next CSeq and a fresh branch.
    fn send_invite(
        &mut self,
        now: Instant,
        call: &str,
        out: &mut Outgoing,
        authorization: Option<(&'static str, String)>,
    ) {
        out.cseq += 1;
        out.branch = format!("z9hG4bK{}", self.token());
        let via = format!(
            "SIP/2.0/UDP {};branch={};rport",
            self.cfg.via_host, out.branch
        );
        let mut headers = vec![
            ("Contact", self.cfg.contact.clone()),
            ("Allow", ALLOW.to_string()),
            ("User-Agent", self.cfg.user_agent.clone()),
        ];
        headers.extend(authorization);
        out.data = message::request(
            "INVITE",
            &out.dial.target,
            &via,
            &format!("<{}>;tag={}", out.dial.from, out.from_tag),
            &format!("<{}>", out.dial.target),
            call,
            out.cseq,
            &[],
            &headers,
            Some(("application/sdp", &out.dial.sdp)),
        );
        out.phase = Phase::Calling;
        out.timer = self.timer(now);
        self.send(out.dial.next_hop, out.data.clone());
    }

    /// A response to one of our INVITEs (or to its CANCEL); false when it is not ours.
    pub(super) fn on_invite_response(&mut self, now: Instant, resp: &Response) -> bool {
        let call = resp.core.call_id.clone();
        if resp.core.cseq_method == "CANCEL" && self.outgoing.contains_key(&call) {
            return true; // 200 to our CANCEL: the 487 that follows ends the call.
        }
        if resp.core.cseq_method != "INVITE" {
            return false;
        }
        if let Some(d) = self.dialogs.get(&call) {
            // A retransmitted 2xx: our ACK was lost (§13.2.2.4).
            if let (true, Some(ack)) = ((200..300).contains(&resp.code), d.ack.clone()) {
                let to = d.source;
                self.send(to, ack);
                return true;
            }
        }
        let Some(mut out) = self.outgoing.remove(&call) else {
            return false;
        };
        if resp.core.branch != out.branch {
            self.outgoing.insert(call, out); // an answer to a superseded INVITE
            return true;
        }
        match resp.code {
            100..=199 => {
                if out.phase == Phase::Calling {
                    out.phase = Phase::Proceeding;
                }
                self.outgoing.insert(call, out);
            }
            200..=299 => self.on_answered(now, &call, out, resp),
            401 | 407 if !out.challenged && out.dial.credentials.is_some() => {
                self.ack_failure(&call, &out, resp);
                match self.authorization(&out, resp) {
                    Some(auth) => {
                        out.challenged = true;
                        self.send_invite(now, &call, &mut out, Some(auth));
                        self.outgoing.insert(call, out);
                    }
                    None => self.end_outgoing(call, EndReason::Rejected(resp.code)),
                }
            }
            code => {
                self.ack_failure(&call, &out, resp);
                let reason = if out.phase == Phase::Cancelling && code == 487 {
                    EndReason::NoAnswer
                } else {
                    EndReason::Rejected(code)
                };
                self.end_outgoing(call, reason);
            }
        }
        true
    }

    /// The `Authorization`/`Proxy-Authorization` answering a 401/407.
    fn authorization(&mut self, out: &Outgoing, resp: &Response) -> Option<(&'static str, String)> {
        let (challenge_header, answer_header) = if resp.code == 401 {
            ("WWW-Authenticate", "Authorization")
        } else {
            ("Proxy-Authenticate", "Proxy-Authorization")
        };
        let challenge = resp
            .other
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(challenge_header))
            .and_then(|(_, v)| Challenge::parse(v).ok())?;
        let (user, password) = out.dial.credentials.clone()?;
        let cnonce = self.token();
        let value = challenge.authorize(&user, &password, "INVITE", &out.dial.target, 1, &cnonce);
        Some((answer_header, value))
    }

    /// The ACK of a non-2xx final answer: same branch, the answer's To (§17.1.1.3).
    fn ack_failure(&mut self, call: &str, out: &Outgoing, resp: &Response) {
        let via = format!(
            "SIP/2.0/UDP {};branch={};rport",
            self.cfg.via_host, out.branch
        );
        let ack = message::request(
            "ACK",
            &out.dial.target,
            &via,
            &format!("<{}>;tag={}", out.dial.from, out.from_tag),
            &resp.core.to,
            call,
            out.cseq,
            &[],
            &[],
            None,
        );
        self.send(out.dial.next_hop, ack);
    }

    /// A 2xx: the dialog starts; ACK it on its own transaction (§13.2.2.4).
    fn on_answered(&mut self, now: Instant, call: &str, out: Outgoing, resp: &Response) {
        let remote_target = resp
            .contact
            .as_deref()
            .map(message::uri_of)
            .unwrap_or_else(|| out.dial.target.clone());
        // The route set of a UAC is the Record-Route of the 2xx, reversed (§12.1.2).
        let route_set: Vec<String> = resp.record_route.iter().rev().cloned().collect();
        let Ok(Message::Request(invite)) = Message::parse(&out.data) else {
            self.end_outgoing(call.to_string(), EndReason::Rejected(500));
            return;
        };
        let local = format!("<{}>;tag={}", out.dial.from, out.from_tag);
        let branch = format!("z9hG4bK{}", self.token());
        let via = format!("SIP/2.0/UDP {};branch={branch};rport", self.cfg.via_host);
        let ack = message::request(
            "ACK",
            &remote_target,
            &via,
            &local,
            &resp.core.to,
            call,
            out.cseq,
            &route_set,
            &[],
            None,
        );
        let mut dialog = Dialog {
            source: out.dial.next_hop,
            initial_branch: out.branch.clone(),
            invite,
            local_tag: out.from_tag.clone(),
            local,
            remote: resp.core.to.clone(),
            state: State::Confirmed,
            last_response: None,
            ack: Some(ack.clone()),
            retransmit: None,
            local_cseq: out.cseq,
            remote_target,
            route_set,
            reoffer_pending: false,
            forget_at: None,
        };
        dialog.source = super::dialog::destination(&dialog);
        let to = dialog.source;
        self.dialogs.insert(call.to_string(), dialog);
        self.send(to, ack);
        if out.phase == Phase::Cancelling {
            // The answer crossed our CANCEL: the call is not wanted any more.
            let _ = self.send_bye(now, call);
            self.events.push_back(Event::Ended {
                call: call.to_string(),
                reason: EndReason::NoAnswer,
            });
            return;
        }
        self.events.push_back(Event::Answered {
            call: call.to_string(),
            sdp: resp.body.clone(),
        });
    }

    fn end_outgoing(&mut self, call: String, reason: EndReason) {
        self.outgoing.remove(&call);
        self.events.push_back(Event::Ended { call, reason });
    }

    /// Gives up on an unanswered outbound call: CANCEL once it has rung,
    /// else stop retransmitting and end it.
    pub(super) fn cancel_outgoing(
        &mut self,
        now: Instant,
        call: &str,
    ) -> Result<(), EndpointError> {
        let Some(mut out) = self.outgoing.remove(call) else {
            return Err(EndpointError::NoSuchCall(call.to_string()));
        };
        match out.phase {
            Phase::Calling => self.end_outgoing(call.to_string(), EndReason::LocalHangup),
            Phase::Cancelling => {
                self.outgoing.insert(call.to_string(), out);
            }
            Phase::Proceeding => {
                self.send_cancel(now, call, &mut out);
                self.outgoing.insert(call.to_string(), out);
            }
        }
        Ok(())
    }

    /// CANCEL matches the INVITE: same Request-URI, branch, From, To and CSeq number (§9.1).
    fn send_cancel(&mut self, now: Instant, call: &str, out: &mut Outgoing) {
        let via = format!(
            "SIP/2.0/UDP {};branch={};rport",
            self.cfg.via_host, out.branch
        );
        let cancel = message::request(
            "CANCEL",
            &out.dial.target,
            &via,
            &format!("<{}>;tag={}", out.dial.from, out.from_tag),
            &format!("<{}>", out.dial.target),
            call,
            out.cseq,
            &[],
            &[],
            None,
        );
        out.phase = Phase::Cancelling;
        out.timer = self.timer(now);
        self.send(out.dial.next_hop, cancel);
    }

    /// Timer A, Timer B and the answer time of every outbound INVITE.
    pub(super) fn outgoing_timeouts(&mut self, now: Instant) {
        let due: Vec<String> = self
            .outgoing
            .iter()
            .filter(|(_, o)| o.next_deadline() <= now)
            .map(|(c, _)| c.clone())
            .collect();
        for call in due {
            let Some(mut out) = self.outgoing.remove(&call) else {
                continue;
            };
            match out.phase {
                Phase::Calling if now >= out.timer.deadline => {
                    self.end_outgoing(call, EndReason::NoResponse);
                }
                Phase::Calling => {
                    // Timer A doubles without the T2 cap of non-INVITE requests.
                    out.timer.interval *= 2;
                    out.timer.next = now + out.timer.interval;
                    self.send(out.dial.next_hop, out.data.clone());
                    self.outgoing.insert(call, out);
                }
                Phase::Proceeding => {
                    self.send_cancel(now, &call, &mut out);
                    self.outgoing.insert(call, out);
                }
                Phase::Cancelling => self.end_outgoing(call, EndReason::NoAnswer),
            }
        }
    }
}

#[cfg(test)]
#[path = "uac_tests.rs"]
mod tests;
