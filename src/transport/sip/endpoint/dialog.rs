//! Requests we send inside a dialog (BYE, REFER; RFC 3261 §12.2.1) as
//! non-INVITE client transactions retransmitted on Timer E, the answers to
//! them, and where they go (route set, remote target).

use std::net::SocketAddr;
use std::time::Instant;

use super::{ClientTxn, Dialog, EndReason, Endpoint, EndpointError, Event, Retransmit, State};
use crate::transport::sip::message::{self, Response};

impl Endpoint {
    pub(super) fn on_response(&mut self, now: Instant, resp: Response) {
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

    pub(super) fn send_bye(&mut self, now: Instant, call: &str) -> Result<(), EndpointError> {
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

    pub(super) fn send_in_dialog(
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
pub(super) fn destination(d: &Dialog) -> SocketAddr {
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
