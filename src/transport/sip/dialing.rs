//! The SIP server's side of outbound calls: a [`DialRequest`] is admitted
//! against the registry, gets an RTP port and our SDP offer, and goes out as
//! an INVITE — to the registrar with its credentials when one is configured
//! (so the PBX routes it and may challenge it), else straight to the target.
//! The answer's SDP picks the codec and the call is handed to the session
//! like an answered inbound one, with the task it calls back about.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::endpoint::{Dial, Endpoint};
use super::media::SignalRequest;
use super::outbound::{DialError, DialRequest, CALLBACK_TASK};
use super::sdp::{self, SessionDescription};
use super::server::{Live, Media, Ports, SipServer};
use crate::session::Admission;
use crate::store::Transport;
use crate::transport::LegInfo;

/// How long an outbound call may ring before it is cancelled.
const RING_TIMEOUT: Duration = Duration::from_secs(45);

/// An outbound call between its INVITE and its answer.
pub(super) struct Dialing {
    admission: Admission,
    socket: UdpSocket,
    local_port: u16,
    session_id: u64,
    offer: String,
    info: LegInfo,
}

impl SipServer {
    /// Our From for outbound calls: the extension when registered, else us.
    fn caller_uri(&self, advertised: SocketAddr) -> String {
        match &self.config.registration {
            Some(r) => format!("sip:{}@{}", r.username, r.domain),
            None => format!("sip:switchboard@{advertised}"),
        }
    }

    pub(super) async fn on_dial(
        &self,
        ep: &mut Endpoint,
        ports: &mut Ports,
        (media_ip, advertised): (IpAddr, SocketAddr),
        dialing: &mut HashMap<String, Dialing>,
        req: DialRequest,
    ) {
        let call = format!(
            "{:016x}{:08x}@switchboard",
            rand::random::<u64>(),
            rand::random::<u32>()
        );
        let info = LegInfo {
            transport: Transport::Sip,
            external_id: call.clone(),
            from: self
                .config
                .registration
                .as_ref()
                .map(|r| r.username.clone())
                .unwrap_or_else(|| "switchboard".into()),
            to: req.target.user.clone(),
            params: BTreeMap::from([
                (CALLBACK_TASK.to_string(), req.task.clone()),
                ("direction".to_string(), "outbound".to_string()),
            ]),
            can_transfer: self.agent_uri.is_some(),
        };
        let Some(admission) = self.registry.try_admit(&info) else {
            let _ = req.reply.send(Err(DialError::AtCapacity));
            return;
        };
        let socket = match ports.bind(media_ip).await {
            Ok(s) => s,
            Err(e) => {
                let _ = req.reply.send(Err(DialError::NoMediaPort(e.to_string())));
                return;
            }
        };
        let local_port = socket.local_addr().map(|a| a.port()).unwrap_or_default();
        let session_id: u64 = rand::random::<u32>().into();
        let offer = sdp::offer(self.config.rtp_addr, local_port, session_id);
        let (next_hop, credentials) = match &self.config.registration {
            Some(r) => (
                r.addr,
                Some((r.username.clone(), r.password.expose().to_string())),
            ),
            None => (req.target.addr, None),
        };
        ep.invite(
            Instant::now().into_std(),
            Dial {
                call_id: call.clone(),
                target: req.target.uri.clone(),
                from: self.caller_uri(advertised),
                next_hop,
                sdp: offer.clone().into_bytes(),
                credentials,
                ring_timeout: RING_TIMEOUT,
            },
        );
        tracing::info!(%call, target = %req.target.uri, task = %req.task, %next_hop, "placing outbound call");
        dialing.insert(
            call.clone(),
            Dialing {
                admission,
                socket,
                local_port,
                session_id,
                offer,
                info,
            },
        );
        let _ = req.reply.send(Ok(call));
    }

    /// The callee answered: agree on the codec and start the call.
    pub(super) async fn on_answered(
        &self,
        ep: &mut Endpoint,
        dialing: &mut HashMap<String, Dialing>,
        live: &mut HashMap<String, Live>,
        signal: &mpsc::Sender<SignalRequest>,
        call: &str,
        answer: &[u8],
    ) {
        let Some(d) = dialing.remove(call) else {
            return;
        };
        let negotiated = SessionDescription::parse(&String::from_utf8_lossy(answer))
            .map_err(|e| e.to_string())
            .and_then(|a| sdp::negotiate(&a).map_err(|e| e.to_string()));
        let negotiated = match negotiated {
            Ok((_, n)) => n,
            Err(e) => {
                tracing::warn!(%call, error = %e, "outbound call answered with unusable SDP; hanging up");
                let _ = ep.hangup(Instant::now().into_std(), call);
                return;
            }
        };
        tracing::info!(%call, codec = negotiated.codec.encoding_name(), "outbound call answered");
        let media = Media {
            socket: d.socket,
            negotiated,
            local_port: d.local_port,
            sdp: d.offer,
            session_id: d.session_id,
        };
        self.hand_over(ep, live, signal, call, media, d.info, d.admission)
            .await;
    }
}
