//! The registration status as operators see it (`/readyz`, the dashboard):
//! a cheap-to-clone handle the SIP server writes and the web layer reads,
//! with wall-clock times. Pure apart from the watch channel inside.

use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::watch;

use super::register::Snapshot;

/// Where registering as an extension stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum RegistrationState {
    /// No registrar is configured (or SIP is off).
    NotConfigured,
    /// The first REGISTER is on its way.
    Registering { registrar: String },
    Registered {
        registrar: String,
        expires_at: DateTime<Utc>,
        last_success: DateTime<Utc>,
    },
    /// Not registered, and the latest attempt failed.
    Failing {
        registrar: String,
        last_error: String,
        retry_at: Option<DateTime<Utc>>,
        last_success: Option<DateTime<Utc>>,
    },
}

impl RegistrationState {
    /// The state of a registration with `registrar`, from its snapshot at `now`
    /// (`wall` is the wall-clock time at `now`).
    pub fn from_snapshot(
        registrar: &str,
        s: &Snapshot,
        now: Instant,
        wall: DateTime<Utc>,
    ) -> RegistrationState {
        let at = |t: Instant| -> DateTime<Utc> {
            match t.checked_duration_since(now) {
                Some(ahead) => wall + chrono::Duration::from_std(ahead).unwrap_or_default(),
                None => wall - chrono::Duration::from_std(now - t).unwrap_or_default(),
            }
        };
        let registrar = registrar.to_string();
        match (s.registered_until, s.last_success, &s.last_error) {
            (Some(until), Some(success), _) if until > now => RegistrationState::Registered {
                registrar,
                expires_at: at(until),
                last_success: at(success),
            },
            (_, success, Some(error)) => RegistrationState::Failing {
                registrar,
                last_error: error.clone(),
                retry_at: s.retry_at.map(at),
                last_success: success.map(at),
            },
            _ => RegistrationState::Registering { registrar },
        }
    }

    /// One line for the dashboard.
    pub fn summary(&self) -> String {
        let time = |t: &DateTime<Utc>| t.format("%Y-%m-%d %H:%M:%S UTC").to_string();
        match self {
            RegistrationState::NotConfigured => "not configured".into(),
            RegistrationState::Registering { registrar } => {
                format!("registering with {registrar}")
            }
            RegistrationState::Registered {
                registrar,
                expires_at,
                last_success,
            } => format!(
                "registered with {registrar} until {} (last success {})",
                time(expires_at),
                time(last_success)
            ),
            RegistrationState::Failing {
                registrar,
                last_error,
                last_success,
                ..
            } => format!(
                "failing with {registrar}: {last_error} (last success {})",
                last_success
                    .as_ref()
                    .map(time)
                    .unwrap_or_else(|| "never".into())
            ),
        }
    }
}

/// The shared, always-current registration state.
#[derive(Debug, Clone)]
pub struct RegistrationStatus {
    tx: std::sync::Arc<watch::Sender<RegistrationState>>,
}

impl Default for RegistrationStatus {
    fn default() -> Self {
        RegistrationStatus::new()
    }
}

impl RegistrationStatus {
    pub fn new() -> RegistrationStatus {
        RegistrationStatus {
            tx: std::sync::Arc::new(watch::channel(RegistrationState::NotConfigured).0),
        }
    }

    pub fn get(&self) -> RegistrationState {
        self.tx.borrow().clone()
    }

    pub fn set(&self, state: RegistrationState) {
        self.tx.send_if_modified(|s| {
            let changed = *s != state;
            *s = state;
            changed
        });
    }

    /// Follows every change, for tests and watchers.
    pub fn subscribe(&self) -> watch::Receiver<RegistrationState> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn states_follow_the_snapshot() {
        let now = Instant::now();
        let wall = DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut s = Snapshot {
            registered_until: None,
            last_success: None,
            last_error: None,
            retry_at: None,
        };
        let state = |s: &Snapshot| RegistrationState::from_snapshot("10.0.0.1:5060", s, now, wall);
        assert_eq!(
            state(&s),
            RegistrationState::Registering {
                registrar: "10.0.0.1:5060".into()
            }
        );
        s.last_error = Some("the registrar did not answer".into());
        s.retry_at = Some(now + Duration::from_secs(4));
        let failing = state(&s);
        assert!(
            matches!(&failing, RegistrationState::Failing { retry_at: Some(t), last_success: None, .. } if *t == wall + chrono::Duration::seconds(4)),
            "{failing:?}"
        );
        assert!(failing.summary().contains("the registrar did not answer"));
        s.registered_until = Some(now + Duration::from_secs(60));
        s.last_success = Some(now - Duration::from_secs(1));
        s.last_error = None;
        let json = serde_json::to_value(state(&s)).unwrap();
        assert_eq!(json["state"], "registered");
        assert_eq!(json["expires_at"], "2026-11-22T10:01:00Z");
        assert_eq!(json["last_success"], "2026-11-22T09:59:59Z");
    }
}
