//! The server half of the endpoint: requests that arrive (INVITE with its
//! retransmissions and CANCEL, re-INVITE, ACK, BYE, OPTIONS, NOTIFY, and
//! the methods we refuse) and our answers to an INVITE (180, 200 with SDP
//! retransmitted until ACK, a final refusal). RFC 3261 §13.3, §17.2.

use std::net::SocketAddr;
use std::time::Instant;

use super::{
    Dialog, EndReason, Endpoint, EndpointError, Event, Retransmit, State, ALLOW, NOT_ALLOWED,
};
use crate::transport::sip::message::{self, Request};

impl Endpoint {
    pub(super) fn on_request(&mut self, now: Instant, source: SocketAddr, req: Request) {
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

    pub(super) fn on_invite(&mut self, now: Instant, source: SocketAddr, req: Request) {
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

    pub(super) fn on_reinvite(&mut self, _now: Instant, source: SocketAddr, req: Request) {
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

    pub(super) fn on_ack(&mut self, now: Instant, req: Request) {
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

    pub(super) fn on_cancel(&mut self, now: Instant, source: SocketAddr, req: Request) {
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

    pub(super) fn on_bye(&mut self, now: Instant, source: SocketAddr, req: Request) {
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

    pub(super) fn on_notify(&mut self, now: Instant, source: SocketAddr, req: Request) {
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

    pub(super) fn dialog_headers(&self, call: &str) -> Vec<(&'static str, String)> {
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

    pub(super) fn send_sdp_ok(
        &mut self,
        now: Instant,
        call: &str,
        sdp: &[u8],
    ) -> Result<(), EndpointError> {
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
    pub(super) fn take_reoffer(&mut self, call: &str) -> Result<&mut Dialog, EndpointError> {
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

    pub(super) fn finish_invite(
        &mut self,
        now: Instant,
        call: &str,
        code: u16,
        extra: &[(&str, String)],
    ) {
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
}
