//! The SIP I/O shell: one UDP socket, the sans-IO [`Endpoint`], and one
//! [`MediaTask`] per answered call. It applies the source allow-list, admits
//! calls against the server-wide call registry shared with every transport
//! (503 + Retry-After when it is full; the slot taken at the INVITE goes to
//! the session with the leg, so the call counts once until it ends), negotiates SDP (488 when nothing fits), rings for the configured time,
//! answers, and hands each call to the session as a [`CallLeg`].

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::dialing::Dialing;
use super::endpoint::{EndReason, Endpoint, EndpointConfig, Event};
use super::media::{MediaControl, MediaTask, SignalRequest};
use super::message;
use super::message::Message;
use super::outbound::DialRequest;
use super::register::{RegisterConfig, Registration, Snapshot};
use super::sdp::{self, Negotiated, SessionDescription};
use super::status::{RegistrationState, RegistrationStatus};
use crate::config::{IpNet, SipConfig};
use crate::session::{Admission, AdmittedLeg, Registry};
use crate::store::Transport;
use crate::transport::{CallLeg, HangupReason, LegInfo};

/// Everything the SIP server needs from the application.
pub struct SipServer {
    pub config: SipConfig,
    /// The live calls of this node; its limit is shared with the other transports.
    pub registry: Registry,
    /// Where answered calls go, with their slot (the session runner).
    pub calls: mpsc::Sender<AdmittedLeg>,
    /// The SIP URI transfers go to when the session gives no target.
    pub agent_uri: Option<String>,
    /// Registration state, for `/readyz` and the dashboard.
    pub registration_status: RegistrationStatus,
    /// Outbound calls to place (the API's [`super::outbound::SipDialer`]); None: inbound only.
    pub dials: Option<mpsc::Receiver<DialRequest>>,
}

struct Pending {
    answer_at: Instant,
    negotiated: Negotiated,
    offer: SessionDescription,
    media_index: usize,
    from: String,
    to: String,
    admission: Admission,
    socket: UdpSocket,
}

/// An established call's media: its RTP socket, the codec agreed, and our SDP.
pub(super) struct Media {
    pub socket: UdpSocket,
    pub negotiated: Negotiated,
    pub local_port: u16,
    pub sdp: String,
    pub session_id: u64,
}

pub(super) struct Live {
    control: mpsc::Sender<MediaControl>,
    offer_version: u64,
    local_port: u16,
    /// Our current SDP, re-sent for an offer-less re-INVITE.
    answer: String,
    session_id: u64,
}

pub(super) struct Ports {
    range: std::ops::RangeInclusive<u16>,
    next: u16,
}

impl Ports {
    /// Binds the next free port of the range (even ports first, as RTP customarily uses).
    pub(super) async fn bind(&mut self, ip: IpAddr) -> std::io::Result<UdpSocket> {
        let (lo, hi) = (*self.range.start(), *self.range.end());
        let span = u32::from(hi - lo) + 1;
        for _ in 0..span.min(2000) {
            let port = self.next;
            self.next = if port >= hi { lo } else { port + 1 };
            if let Ok(s) = UdpSocket::bind(SocketAddr::new(ip, port)).await {
                return Ok(s);
            }
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            format!("no free RTP port in {lo}-{hi}"),
        ))
    }
}

fn allowed(allow: &[IpNet], ip: IpAddr) -> bool {
    allow.iter().any(|n| n.contains(ip))
}

impl SipServer {
    /// Serves on `socket` until `shutdown` resolves.
    pub async fn run(
        mut self,
        socket: UdpSocket,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> std::io::Result<()> {
        let local = socket.local_addr()?;
        let advertised = SocketAddr::new(self.config.rtp_addr, local.port());
        let mut ep = Endpoint::new(EndpointConfig::new(advertised), rand::random());
        let media_ip = if local.ip().is_unspecified() {
            local.ip()
        } else {
            self.config.rtp_addr
        };
        let mut ports = Ports {
            next: *self.config.rtp_ports.start(),
            range: self.config.rtp_ports.clone(),
        };
        let mut pending: HashMap<String, Pending> = HashMap::new();
        let mut live: HashMap<String, Live> = HashMap::new();
        let mut dialing: HashMap<String, Dialing> = HashMap::new();
        let mut dials = self.dials.take();
        let (signal_tx, mut signal_rx) = mpsc::channel::<SignalRequest>(64);
        let mut buf = vec![0u8; 65_536];
        let mut registration = self.config.registration.as_ref().map(|r| {
            let cfg = RegisterConfig {
                registrar: r.addr,
                domain: r.domain.clone(),
                user: r.username.clone(),
                password: r.password.expose().to_string(),
                expires: r.expires,
                contact: format!("<sip:{}@{advertised}>", r.username),
                via_host: advertised.to_string(),
            };
            Registration::new(cfg, Instant::now().into_std(), rand::random())
        });
        let mut published: Option<Snapshot> = None;
        tokio::pin!(shutdown);
        tracing::info!(%local, "SIP listening on UDP");
        loop {
            if let Some(reg) = registration.as_mut() {
                self.flush_registration(reg, &socket, &mut published).await;
            }
            let deadline = [
                ep.poll_timeout().map(Instant::from_std),
                pending.values().map(|p| p.answer_at).min(),
                registration
                    .as_ref()
                    .map(|r| Instant::from_std(r.poll_timeout())),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                _ = &mut shutdown => break,
                received = socket.recv_from(&mut buf) => {
                    let (n, from) = match received {
                        Ok(r) => r,
                        Err(e) => { tracing::debug!(error = %e, "SIP receive error"); continue; }
                    };
                    let data = &buf[..n];
                    if !allowed(&self.config.allow, from.ip()) {
                        tracing::warn!(%from, "SIP request from a source outside the allow-list refused");
                        if let Some(reply) = message::salvage_response(data, 403, "Forbidden") {
                            let _ = socket.send_to(&reply, from).await;
                        }
                        continue;
                    }
                    if let Some(reg) = registration.as_mut() {
                        if from == reg.registrar() && data.starts_with(b"SIP/2.0 ") {
                            if let Ok(Message::Response(resp)) = Message::parse(data) {
                                if resp.core.call_id == reg.call_id() {
                                    reg.handle_response(Instant::now().into_std(), &resp);
                                    continue;
                                }
                            }
                        }
                    }
                    ep.handle_datagram(Instant::now().into_std(), from, data);
                }
                Some(req) = next_dial(&mut dials) => {
                    self.on_dial(&mut ep, &mut ports, (media_ip, advertised), &mut dialing, req).await;
                }
                Some(req) = signal_rx.recv() => {
                    let now = Instant::now().into_std();
                    let result = match req {
                        SignalRequest::Hangup { call } => ep.hangup(now, &call),
                        SignalRequest::Transfer { call, target } => {
                            let referred_by = format!("sip:switchboard@{advertised}");
                            let target = if target.starts_with("sip:") || target.starts_with("sips:") { target } else { self.agent_uri.clone().unwrap_or(target) };
                            ep.refer(now, &call, &target, &referred_by)
                        }
                    };
                    if let Err(e) = result {
                        tracing::warn!(error = %e, "SIP request from the session could not be sent");
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    ep.handle_timeout(Instant::now().into_std());
                    if let Some(reg) = registration.as_mut() {
                        reg.handle_timeout(Instant::now().into_std());
                    }
                    self.answer_due(&mut ep, &mut pending, &mut live, &signal_tx).await;
                }
            }
            self.drain(
                &mut ep,
                &socket,
                &mut ports,
                media_ip,
                &mut pending,
                &mut live,
                &mut dialing,
                &signal_tx,
            )
            .await;
        }
        for (call, _) in live.drain() {
            let _ = ep.hangup(Instant::now().into_std(), &call);
        }
        self.drain(
            &mut ep,
            &socket,
            &mut ports,
            media_ip,
            &mut pending,
            &mut live,
            &mut dialing,
            &signal_tx,
        )
        .await;
        Ok(())
    }

    /// Sends what the registration client has queued and publishes its state
    /// when it changed.
    async fn flush_registration(
        &self,
        reg: &mut Registration,
        socket: &UdpSocket,
        published: &mut Option<Snapshot>,
    ) {
        while let Some(data) = reg.poll_transmit() {
            if let Err(e) = socket.send_to(&data, reg.registrar()).await {
                tracing::debug!(registrar = %reg.registrar(), error = %e, "REGISTER send failed");
            }
        }
        let snapshot = reg.snapshot();
        if published.as_ref() == Some(&snapshot) {
            return;
        }
        self.registration_status
            .set(RegistrationState::from_snapshot(
                &reg.registrar().to_string(),
                &snapshot,
                Instant::now().into_std(),
                chrono::Utc::now(),
            ));
        *published = Some(snapshot);
    }

    #[allow(clippy::too_many_arguments)] // the loop's state, lent for one pass
    async fn drain(
        &self,
        ep: &mut Endpoint,
        socket: &UdpSocket,
        ports: &mut Ports,
        media_ip: IpAddr,
        pending: &mut HashMap<String, Pending>,
        live: &mut HashMap<String, Live>,
        dialing: &mut HashMap<String, Dialing>,
        signal: &mpsc::Sender<SignalRequest>,
    ) {
        while let Some(event) = ep.poll_event() {
            let now = Instant::now();
            match event {
                Event::Transmit { to, data } => {
                    if let Err(e) = socket.send_to(&data, to).await {
                        tracing::debug!(%to, error = %e, "SIP send failed");
                    }
                }
                Event::IncomingCall {
                    call,
                    from,
                    to,
                    source,
                    sdp,
                } => {
                    self.on_incoming(
                        ep, ports, media_ip, pending, now, call, from, to, source, &sdp,
                    )
                    .await;
                }
                Event::Established { call } => tracing::debug!(%call, "SIP call confirmed by ACK"),
                Event::Answered { call, sdp } => {
                    self.on_answered(ep, dialing, live, signal, &call, &sdp)
                        .await
                }
                Event::Reoffer { call, sdp } => self.on_reoffer(ep, live, &call, &sdp).await,
                Event::Ended { call, reason } => {
                    pending.remove(&call);
                    dialing.remove(&call);
                    if let Some(l) = live.remove(&call) {
                        let why = match reason.clone() {
                            EndReason::RemoteBye | EndReason::Cancelled => HangupReason::Remote,
                            EndReason::NoAck => HangupReason::Lost,
                            other => HangupReason::Error(other.as_str()),
                        };
                        let _ = l.control.send(MediaControl::Ended(why)).await;
                    }
                    tracing::info!(%call, reason = %reason.as_str(), "SIP call ended");
                }
                Event::TransferProgress { call, code } => {
                    if code >= 200 && code != 202 {
                        if let Some(l) = live.get(&call) {
                            let _ = l
                                .control
                                .send(MediaControl::TransferResult {
                                    ok: (200..300).contains(&code),
                                })
                                .await;
                        }
                    }
                    tracing::info!(%call, code, "transfer progress");
                }
                Event::Malformed { source, reason } => {
                    tracing::warn!(%source, %reason, "malformed SIP datagram")
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)] // one incoming call's facts, passed once
    async fn on_incoming(
        &self,
        ep: &mut Endpoint,
        ports: &mut Ports,
        media_ip: IpAddr,
        pending: &mut HashMap<String, Pending>,
        now: Instant,
        call: String,
        from: String,
        to: String,
        source: SocketAddr,
        sdp_body: &[u8],
    ) {
        let std_now = now.into_std();
        let from = message::user_of(&from);
        let to = message::user_of(&to);
        let info = LegInfo {
            transport: Transport::Sip,
            external_id: call.clone(),
            from: from.clone(),
            to: to.clone(),
            params: BTreeMap::new(),
            can_transfer: self.agent_uri.is_some(),
        };
        let Some(admission) = self.registry.try_admit(&info) else {
            tracing::warn!(%call, %source, "call refused: concurrent-call limit reached");
            let _ = ep.reject(std_now, &call, 503, &[("Retry-After", "30".into())]);
            return;
        };
        let offer = match SessionDescription::parse(&String::from_utf8_lossy(sdp_body)) {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(%call, error = %e, "INVITE without a usable SDP offer");
                let _ = ep.reject(
                    std_now,
                    &call,
                    488,
                    &[("Warning", format!("399 switchboard \"{e}\""))],
                );
                return;
            }
        };
        let (media_index, negotiated) = match sdp::negotiate(&offer) {
            Ok(n) => n,
            Err(e) => {
                let _ = ep.reject(
                    std_now,
                    &call,
                    488,
                    &[("Warning", format!("305 switchboard \"{e}\""))],
                );
                return;
            }
        };
        let socket = match ports.bind(media_ip).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(%call, error = %e, "no RTP port for the call");
                let _ = ep.reject(std_now, &call, 503, &[("Retry-After", "5".into())]);
                return;
            }
        };
        let _ = ep.ring(std_now, &call);
        pending.insert(
            call,
            Pending {
                answer_at: now + self.config.ring,
                negotiated,
                offer,
                media_index,
                from,
                to,
                admission,
                socket,
            },
        );
    }

    async fn answer_due(
        &self,
        ep: &mut Endpoint,
        pending: &mut HashMap<String, Pending>,
        live: &mut HashMap<String, Live>,
        signal: &mpsc::Sender<SignalRequest>,
    ) {
        let now = Instant::now();
        let due: Vec<String> = pending
            .iter()
            .filter(|(_, p)| p.answer_at <= now)
            .map(|(c, _)| c.clone())
            .collect();
        for call in due {
            let Some(p) = pending.remove(&call) else {
                continue;
            };
            let local_port = p.socket.local_addr().map(|a| a.port()).unwrap_or_default();
            let session_id: u64 = rand::random::<u32>().into();
            let answer = sdp::answer(
                &p.offer,
                &p.negotiated,
                p.media_index,
                self.config.rtp_addr,
                local_port,
                session_id,
                1,
            );
            if let Err(e) = ep.accept(now.into_std(), &call, answer.as_bytes()) {
                tracing::warn!(%call, error = %e, "could not answer");
                continue;
            }
            let info = LegInfo {
                transport: Transport::Sip,
                external_id: call.clone(),
                from: p.from.clone(),
                to: p.to.clone(),
                params: BTreeMap::new(),
                can_transfer: self.agent_uri.is_some(),
            };
            let media = Media {
                socket: p.socket,
                negotiated: p.negotiated,
                local_port,
                sdp: answer,
                session_id,
            };
            self.hand_over(ep, live, signal, &call, media, info, p.admission)
                .await;
        }
    }

    /// Starts the media task of an established call and hands its leg, with
    /// its slot, to the session.
    #[allow(clippy::too_many_arguments)] // one established call's parts, passed once
    pub(super) async fn hand_over(
        &self,
        ep: &mut Endpoint,
        live: &mut HashMap<String, Live>,
        signal: &mpsc::Sender<SignalRequest>,
        call: &str,
        media: Media,
        mut info: LegInfo,
        admission: Admission,
    ) {
        info.params.insert(
            "codec".to_string(),
            media.negotiated.codec.encoding_name().to_string(),
        );
        let (leg, events, commands) = CallLeg::channel(info);
        let (control_tx, control_rx) = mpsc::channel(16);
        let remote = media
            .negotiated
            .remote_addr
            .filter(|a| !a.is_unspecified())
            .map(|ip| SocketAddr::new(ip, media.negotiated.remote_port));
        let task = MediaTask {
            call: call.to_string(),
            socket: media.socket,
            negotiated: media.negotiated,
            remote,
            events,
            commands,
            control: control_rx,
            signal: signal.clone(),
            seed: rand::random(),
        };
        tokio::spawn(task.run());
        live.insert(
            call.to_string(),
            Live {
                control: control_tx,
                offer_version: 1,
                local_port: media.local_port,
                answer: media.sdp,
                session_id: media.session_id,
            },
        );
        if self
            .calls
            .send(AdmittedLeg { leg, admission })
            .await
            .is_err()
        {
            tracing::error!(%call, "no session runner to take the call");
            let _ = ep.hangup(Instant::now().into_std(), call);
        }
    }

    async fn on_reoffer(
        &self,
        ep: &mut Endpoint,
        live: &mut HashMap<String, Live>,
        call: &str,
        body: &[u8],
    ) {
        let now = Instant::now().into_std();
        let Some(l) = live.get_mut(call) else {
            let _ = ep.reject_reoffer(now, call, 481);
            return;
        };
        if body.iter().all(|b| b.is_ascii_whitespace()) {
            // No offer: ours goes in the 200 and the caller answers in the ACK (RFC 3261 §14.2).
            l.offer_version += 1;
            let again = bump_version(&l.answer, l.offer_version);
            l.answer = again.clone();
            let _ = ep.answer_reoffer(now, call, again.as_bytes());
            return;
        }
        let outcome = SessionDescription::parse(&String::from_utf8_lossy(body))
            .map_err(|e| e.to_string())
            .and_then(|offer| {
                let (index, n) = sdp::negotiate(&offer).map_err(|e| e.to_string())?;
                Ok((offer, index, n))
            });
        match outcome {
            Ok((offer, index, negotiated)) => {
                l.offer_version += 1;
                let answer = sdp::answer(
                    &offer,
                    &negotiated,
                    index,
                    self.config.rtp_addr,
                    l.local_port,
                    l.session_id,
                    l.offer_version,
                );
                l.answer = answer.clone();
                if ep.answer_reoffer(now, call, answer.as_bytes()).is_ok() {
                    tracing::info!(%call, hold = negotiated.on_hold, codec = negotiated.codec.encoding_name(), "call renegotiated");
                    let _ = l.control.send(MediaControl::Renegotiated(negotiated)).await;
                }
            }
            Err(e) => {
                tracing::warn!(%call, error = %e, "re-INVITE offer refused");
                let _ = ep.reject_reoffer(now, call, 488);
            }
        }
    }
}

/// The same SDP with the o= line's version replaced (RFC 3264 §8: a changed offer bumps it).
fn bump_version(sdp: &str, version: u64) -> String {
    sdp.split("\r\n")
        .map(|line| match line.strip_prefix("o=") {
            Some(rest) => {
                let mut parts: Vec<&str> = rest.split(' ').collect();
                let v = version.to_string();
                if parts.len() > 2 {
                    parts[2] = &v;
                }
                format!("o={}", parts.join(" "))
            }
            None => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\r\n")
}

/// The next dial request, or never when outbound calls are off.
async fn next_dial(dials: &mut Option<mpsc::Receiver<DialRequest>>) -> Option<DialRequest> {
    match dials {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
