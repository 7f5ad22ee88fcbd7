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
        dialog.source = super::destination(&dialog);
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
mod tests {
    //! Our INVITE in virtual time against a scripted callee; no sockets.

    use super::super::EndpointConfig;
    use super::*;
    use md5::{Digest, Md5};

    const CALLEE: &str = "192.0.2.9:5080";

    struct Harness {
        ep: Endpoint,
        t0: Instant,
        call: String,
    }

    fn dial(credentials: bool) -> Dial {
        Dial {
            call_id: "out-1@switchboard".into(),
            target: "sip:bob@192.0.2.9:5080".into(),
            from: "sip:switchboard@127.0.0.1:5060".into(),
            next_hop: CALLEE.parse().unwrap(),
            sdp: b"v=0\r\n".to_vec(),
            credentials: credentials.then(|| ("1001".to_string(), "s3cret".to_string())),
            ring_timeout: Duration::from_secs(30),
        }
    }

    impl Harness {
        fn start(credentials: bool) -> (Harness, String) {
            let t0 = Instant::now();
            let mut ep = Endpoint::new(EndpointConfig::new("127.0.0.1:5060".parse().unwrap()), 7);
            let d = dial(credentials);
            let call = d.call_id.clone();
            ep.invite(t0, d);
            let mut h = Harness { ep, t0, call };
            let sent = h.sent();
            assert_eq!(sent.len(), 1);
            (h, sent[0].clone())
        }

        fn events(&mut self) -> Vec<Event> {
            std::iter::from_fn(|| self.ep.poll_event()).collect()
        }

        /// What the endpoint transmitted since the last look, as text.
        fn sent(&mut self) -> Vec<String> {
            self.events()
                .into_iter()
                .filter_map(|e| match e {
                    Event::Transmit { data, .. } => Some(String::from_utf8(data).unwrap()),
                    _ => None,
                })
                .collect()
        }

        fn at(&mut self, ms: u64) {
            self.ep.handle_timeout(self.t0 + Duration::from_millis(ms));
        }

        /// The callee's answer to `request` (one of our INVITEs), given at `ms`.
        fn answer(&mut self, ms: u64, request: &str, code: u16, extra: &str, body: &str) {
            let Message::Request(req) = Message::parse(request.as_bytes()).unwrap() else {
                panic!("a request")
            };
            let vias: String = req
                .core
                .vias
                .iter()
                .map(|v| format!("Via: {v}\r\n"))
                .collect();
            let tag = if code > 100 { ";tag=bob1" } else { "" };
            let text = format!(
                "SIP/2.0 {code} X\r\n{vias}From: {}\r\nTo: {}{tag}\r\nCall-ID: {}\r\nCSeq: {} {}\r\n{extra}Content-Length: {}\r\n\r\n{body}",
                req.core.from, req.core.to, req.core.call_id, req.core.cseq, req.core.cseq_method, body.len()
            );
            self.ep.handle_datagram(
                self.t0 + Duration::from_millis(ms),
                CALLEE.parse().unwrap(),
                text.as_bytes(),
            );
        }
    }

    fn line<'a>(msg: &'a str, prefix: &str) -> &'a str {
        msg.lines().find(|l| l.starts_with(prefix)).unwrap_or("")
    }

    #[test]
    fn timer_a_until_ringing_then_the_answer_is_acked() {
        let (mut h, invite) = Harness::start(false);
        assert!(invite.starts_with("INVITE sip:bob@192.0.2.9:5080 SIP/2.0\r\n"));
        h.at(499);
        assert!(h.sent().is_empty());
        h.at(500);
        assert_eq!(h.sent(), vec![invite.clone()], "Timer A fires at T1");
        h.at(1499);
        assert!(h.sent().is_empty());
        h.at(1500);
        assert_eq!(h.sent().len(), 1, "then after 2·T1");
        h.answer(1600, &invite, 180, "", "");
        h.at(3600);
        h.at(20_000);
        assert!(h.sent().is_empty(), "no retransmission once it rings");
        let sdp = "v=0\r\nc=IN IP4 192.0.2.9\r\nm=audio 7000 RTP/AVP 0\r\n";
        h.answer(
            2000,
            &invite,
            200,
            "Contact: <sip:bob@192.0.2.9:5081>\r\nContent-Type: application/sdp\r\n",
            sdp,
        );
        let events = h.events();
        let ack = events
            .iter()
            .find_map(|e| match e {
                Event::Transmit { to, data } => {
                    Some((*to, String::from_utf8(data.clone()).unwrap()))
                }
                _ => None,
            })
            .expect("an ACK");
        assert_eq!(ack.0, "192.0.2.9:5081".parse().unwrap(), "to the Contact");
        assert!(
            ack.1.starts_with("ACK sip:bob@192.0.2.9:5081 SIP/2.0"),
            "{}",
            ack.1
        );
        assert!(line(&ack.1, "To:").ends_with(";tag=bob1"));
        assert_eq!(line(&ack.1, "CSeq:"), "CSeq: 1 ACK");
        assert_ne!(
            line(&ack.1, "Via:"),
            line(&invite, "Via:"),
            "a 2xx ACK is its own transaction"
        );
        assert!(events.iter().any(|e| matches!(e, Event::Answered { call, sdp: s } if *call == h.call && s == sdp.as_bytes())));
        // A retransmitted 2xx means our ACK was lost: send it again.
        h.answer(
            2500,
            &invite,
            200,
            "Contact: <sip:bob@192.0.2.9:5081>\r\n",
            "",
        );
        assert_eq!(h.sent(), vec![ack.1.clone()]);
        // The callee hangs up.
        let bye = format!(
            "BYE sip:switchboard@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.9:5081;branch=z9hG4bKb1\r\nFrom: <sip:bob@192.0.2.9:5080>;tag=bob1\r\n{}\r\nCall-ID: {}\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n",
            line(&ack.1, "From:").replacen("From:", "To:", 1),
            h.call
        );
        h.ep.handle_datagram(
            h.t0 + Duration::from_secs(9),
            "192.0.2.9:5081".parse().unwrap(),
            bye.as_bytes(),
        );
        let events = h.events();
        assert!(events.iter().any(
            |e| matches!(e, Event::Transmit { data, .. } if data.starts_with(b"SIP/2.0 200"))
        ));
        assert!(events.iter().any(|e| matches!(
            e,
            Event::Ended {
                reason: EndReason::RemoteBye,
                ..
            }
        )));
    }

    #[test]
    fn a_challenge_is_answered_once_with_digest_credentials() {
        let (mut h, invite) = Harness::start(true);
        let challenge = "WWW-Authenticate: Digest realm=\"pbx\", nonce=\"abc\", qop=\"auth\"\r\n";
        h.answer(100, &invite, 401, challenge, "");
        let sent = h.sent();
        assert_eq!(sent.len(), 2, "{sent:?}");
        assert!(sent[0].starts_with("ACK ") && line(&sent[0], "Via:") == line(&invite, "Via:"));
        let again = &sent[1];
        assert_eq!(line(again, "CSeq:"), "CSeq: 2 INVITE");
        assert_eq!(line(again, "Call-ID:"), line(&invite, "Call-ID:"));
        let auth = line(again, "Authorization:");
        let param = |k: &str| {
            let start = auth.find(&format!("{k}=")).unwrap() + k.len() + 1;
            auth[start..]
                .trim_start_matches('"')
                .split(['"', ','])
                .next()
                .unwrap()
                .to_string()
        };
        let h1 = hex::encode(Md5::digest(b"1001:pbx:s3cret"));
        let h2 = hex::encode(Md5::digest(b"INVITE:sip:bob@192.0.2.9:5080"));
        let expected = hex::encode(Md5::digest(
            format!("{h1}:abc:{}:{}:auth:{h2}", param("nc"), param("cnonce")).as_bytes(),
        ));
        assert_eq!(param("response"), expected, "{auth}");
        assert_eq!(param("uri"), "sip:bob@192.0.2.9:5080");
        // A second challenge means the credentials are wrong: give up.
        h.answer(200, again, 401, challenge, "");
        let events = h.events();
        assert!(
            events.iter().any(|e| matches!(
                e,
                Event::Ended {
                    reason: EndReason::Rejected(401),
                    ..
                }
            )),
            "{events:?}"
        );
    }

    #[test]
    fn busy_is_acked_and_ends_the_call() {
        let (mut h, invite) = Harness::start(false);
        h.answer(100, &invite, 486, "", "");
        let events = h.events();
        assert!(events
            .iter()
            .any(|e| matches!(e, Event::Transmit { data, .. } if data.starts_with(b"ACK "))));
        assert!(events.iter().any(|e| matches!(
            e,
            Event::Ended {
                reason: EndReason::Rejected(486),
                ..
            }
        )));
        assert_eq!(h.ep.poll_timeout(), None, "nothing left to do");
    }

    #[test]
    fn timer_b_ends_a_call_nobody_answers() {
        let (mut h, _) = Harness::start(false);
        for ms in [500, 1500, 3500, 7500, 15_500] {
            h.at(ms);
        }
        assert_eq!(h.sent().len(), 5);
        h.at(32_000);
        assert!(h.events().iter().any(|e| matches!(
            e,
            Event::Ended {
                reason: EndReason::NoResponse,
                ..
            }
        )));
    }

    #[test]
    fn ringing_too_long_is_cancelled() {
        let (mut h, invite) = Harness::start(false);
        h.answer(100, &invite, 180, "", "");
        h.at(30_000);
        let sent = h.sent();
        assert_eq!(sent.len(), 1);
        let cancel = &sent[0];
        assert!(cancel.starts_with("CANCEL sip:bob@192.0.2.9:5080 SIP/2.0"));
        assert_eq!(
            line(cancel, "Via:"),
            line(&invite, "Via:"),
            "same branch as the INVITE"
        );
        assert_eq!(line(cancel, "CSeq:"), "CSeq: 1 CANCEL");
        h.answer(30_100, cancel, 200, "", "");
        h.answer(30_100, &invite, 487, "", "");
        let events = h.events();
        assert!(events
            .iter()
            .any(|e| matches!(e, Event::Transmit { data, .. } if data.starts_with(b"ACK "))));
        assert!(events.iter().any(|e| matches!(
            e,
            Event::Ended {
                reason: EndReason::NoAnswer,
                ..
            }
        )));
    }
}
