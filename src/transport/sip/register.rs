//! Registering Switchboard as an extension with a registrar (RFC 3261 §10):
//! a sans-IO client that sends REGISTER, answers digest challenges (MD5 or
//! SHA-256), refreshes before expiry, retransmits over UDP, and retries with
//! exponential backoff when the registrar is down or refuses.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::digest::Challenge;
use super::message::{self, Response};

#[derive(Debug, Clone)]
pub struct RegisterConfig {
    pub registrar: SocketAddr,
    /// The registrar's domain, used in the Request-URI and address of record.
    pub domain: String,
    pub user: String,
    pub password: String,
    pub expires: u32,
    /// Our Contact, e.g. `<sip:switchboard@192.0.2.1:5060>`.
    pub contact: String,
    pub via_host: String,
}

/// What operators need to know about the registration at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Until when the registrar holds our binding (it may be being refreshed).
    pub registered_until: Option<Instant>,
    pub last_success: Option<Instant>,
    /// Why the latest attempt failed; cleared by the next success.
    pub last_error: Option<String>,
    /// When the next attempt after a failure goes out.
    pub retry_at: Option<Instant>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Registering,
    Registered { expires_in: Duration },
    Failed { reason: String, retry_in: Duration },
}

const T1: Duration = Duration::from_millis(500);
const T2: Duration = Duration::from_secs(4);
const MAX_BACKOFF: Duration = Duration::from_secs(300);

#[derive(Debug)]
enum Phase {
    /// Send a REGISTER at this time.
    Due(Instant),
    /// A REGISTER is out: retransmit at `next`, give up at `deadline`.
    Waiting {
        branch: String,
        data: Vec<u8>,
        next: Instant,
        interval: Duration,
        deadline: Instant,
    },
    Registered {
        refresh_at: Instant,
        until: Instant,
    },
    Failed {
        reason: String,
        retry_at: Instant,
    },
}

#[derive(Debug)]
pub struct Registration {
    cfg: RegisterConfig,
    phase: Phase,
    call_id: String,
    from_tag: String,
    cseq: u32,
    challenge: Option<Challenge>,
    /// Whether the current challenge has been answered once already.
    answered_challenge: bool,
    nc: u32,
    failures: u32,
    expires: u32,
    outbox: Vec<Vec<u8>>,
    rng: u64,
    registered_until: Option<Instant>,
    last_success: Option<Instant>,
    last_error: Option<String>,
}

impl Registration {
    pub fn new(cfg: RegisterConfig, now: Instant, seed: u64) -> Registration {
        let mut r = Registration {
            expires: cfg.expires,
            cfg,
            phase: Phase::Due(now),
            call_id: String::new(),
            from_tag: String::new(),
            cseq: 0,
            challenge: None,
            answered_challenge: false,
            nc: 0,
            failures: 0,
            outbox: Vec::new(),
            rng: seed | 1,
            registered_until: None,
            last_success: None,
            last_error: None,
        };
        r.call_id = format!("{}@switchboard", r.token());
        r.from_tag = r.token();
        r
    }

    fn token(&mut self) -> String {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        format!("{:016x}", self.rng)
    }

    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    pub fn registrar(&self) -> SocketAddr {
        self.cfg.registrar
    }

    pub fn status(&self, now: Instant) -> Status {
        match &self.phase {
            Phase::Due(_) | Phase::Waiting { .. } => Status::Registering,
            Phase::Registered { until, .. } => Status::Registered {
                expires_in: until.saturating_duration_since(now),
            },
            Phase::Failed { reason, retry_at } => Status::Failed {
                reason: reason.clone(),
                retry_in: retry_at.saturating_duration_since(now),
            },
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            registered_until: self.registered_until,
            last_success: self.last_success,
            last_error: self.last_error.clone(),
            retry_at: match &self.phase {
                Phase::Failed { retry_at, .. } => Some(*retry_at),
                _ => None,
            },
        }
    }

    /// Datagrams to send to the registrar.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        (!self.outbox.is_empty()).then(|| self.outbox.remove(0))
    }

    pub fn poll_timeout(&self) -> Instant {
        match &self.phase {
            Phase::Due(t) => *t,
            Phase::Waiting { next, deadline, .. } => (*next).min(*deadline),
            Phase::Registered { refresh_at, .. } => *refresh_at,
            Phase::Failed { retry_at, .. } => *retry_at,
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        match &mut self.phase {
            Phase::Due(t)
            | Phase::Registered { refresh_at: t, .. }
            | Phase::Failed { retry_at: t, .. }
                if now >= *t =>
            {
                self.send(now)
            }
            Phase::Waiting { deadline, .. } if now >= *deadline => {
                self.fail(now, "the registrar did not answer".into())
            }
            Phase::Waiting {
                data,
                next,
                interval,
                ..
            } if now >= *next => {
                self.outbox.push(data.clone());
                *interval = (*interval * 2).min(T2);
                *next = now + *interval;
            }
            _ => {}
        }
    }

    fn send(&mut self, now: Instant) {
        self.cseq += 1;
        let branch = format!("z9hG4bK{}", self.token());
        let uri = format!("sip:{}", self.cfg.domain);
        let aor = format!("<sip:{}@{}>", self.cfg.user, self.cfg.domain);
        let via = format!("SIP/2.0/UDP {};branch={branch};rport", self.cfg.via_host);
        let mut extra = vec![
            ("Contact", self.cfg.contact.clone()),
            ("Expires", self.expires.to_string()),
            (
                "User-Agent",
                concat!("Switchboard/", env!("CARGO_PKG_VERSION")).to_string(),
            ),
        ];
        if let Some(ch) = self.challenge.clone() {
            self.nc += 1;
            let cnonce = self.token();
            extra.push((
                "Authorization",
                ch.authorize(
                    &self.cfg.user,
                    &self.cfg.password,
                    "REGISTER",
                    &uri,
                    self.nc,
                    &cnonce,
                ),
            ));
        }
        let data = message::request(
            "REGISTER",
            &uri,
            &via,
            &format!("{aor};tag={}", self.from_tag),
            &aor,
            &self.call_id,
            self.cseq,
            &[],
            &extra,
            None,
        );
        self.outbox.push(data.clone());
        self.phase = Phase::Waiting {
            branch,
            data,
            next: now + T1,
            interval: T1,
            deadline: now + T1 * 64,
        };
    }

    fn fail(&mut self, now: Instant, reason: String) {
        self.failures += 1;
        let backoff = Duration::from_secs(1u64 << self.failures.min(9)).min(MAX_BACKOFF);
        tracing::warn!(registrar = %self.cfg.registrar, %reason, retry_in = ?backoff, "registration failed");
        self.last_error = Some(reason.clone());
        self.phase = Phase::Failed {
            reason,
            retry_at: now + backoff,
        };
    }

    /// Feeds a response whose Call-ID is ours.
    pub fn handle_response(&mut self, now: Instant, resp: &Response) {
        let Phase::Waiting { branch, .. } = &self.phase else {
            return;
        };
        if resp.core.branch != *branch || resp.code < 200 {
            return;
        }
        match resp.code {
            200..=299 => {
                let granted = resp
                    .contact
                    .as_deref()
                    .and_then(|c| message::param(c, "expires"))
                    .or_else(|| {
                        resp.other
                            .iter()
                            .find(|(n, _)| n.eq_ignore_ascii_case("Expires"))
                            .map(|(_, v)| v.clone())
                    })
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(u64::from(self.expires));
                let life = Duration::from_secs(granted.max(1));
                // Refresh halfway, or 30 s early for long registrations.
                let lead = (life / 2).min(Duration::from_secs(30)).max(life / 10);
                self.failures = 0;
                self.answered_challenge = false;
                self.registered_until = Some(now + life);
                self.last_success = Some(now);
                self.last_error = None;
                tracing::info!(registrar = %self.cfg.registrar, expires = granted, "registered");
                self.phase = Phase::Registered {
                    refresh_at: now + life - lead,
                    until: now + life,
                };
            }
            401 | 407 => {
                let header = if resp.code == 401 {
                    "WWW-Authenticate"
                } else {
                    "Proxy-Authenticate"
                };
                let challenge = resp
                    .other
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(header))
                    .map(|(_, v)| Challenge::parse(v));
                match challenge {
                    Some(Ok(ch)) if !self.answered_challenge || ch.stale => {
                        self.answered_challenge = true;
                        self.nc = 0;
                        self.challenge = Some(ch);
                        self.send(now);
                    }
                    Some(Ok(_)) => self.fail(now, "the registrar refused our credentials".into()),
                    Some(Err(e)) => self.fail(now, format!("unusable challenge: {e}")),
                    None => self.fail(now, format!("{} without a {header} header", resp.code)),
                }
            }
            423 => {
                let min = resp
                    .other
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case("Min-Expires"))
                    .and_then(|(_, v)| v.trim().parse().ok());
                match min {
                    Some(m) if m > self.expires => {
                        self.expires = m;
                        self.send(now);
                    }
                    _ => self.fail(
                        now,
                        "423 Interval Too Brief without a usable Min-Expires".into(),
                    ),
                }
            }
            code => self.fail(now, format!("registrar answered {code} {}", resp.reason)),
        }
    }
}

#[cfg(test)]
#[path = "register_tests.rs"]
mod tests;
