//! The SMS outbox: texts are written to the `outbox` table first and sent by
//! a worker, so none is lost to a provider outage or a restart. The worker
//! wakes when a text is queued or every few seconds, claims due rows one at
//! a time (safe with several nodes on one database, see
//! `store::outbox`), sends them through Twilio's REST API and records the
//! outcome: sent; failed and due again after an exponential backoff with
//! jitter (or after Twilio's `Retry-After`, which also pauses the worker);
//! or dead at once when Twilio refuses the message for good, and after
//! `max_attempts` otherwise. Without Twilio credentials and a sender the
//! texts stay queued. The worker owns no SQL and no wire format: those are
//! `store::outbox` and `transport::twilio::rest`.

pub mod gsm7;
pub mod text;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::store::{OutboxMessage, OutboxStatus, Store, StoreError, Task};
use crate::transport::twilio::rest::{RestClient, SmsFailure, SmsSender};

/// The outbox `kind` of a text message.
pub const SMS_KIND: &str = "sms";

/// Twilio's limit on a message body, in characters.
const MAX_BODY_CHARS: usize = 1600;

/// When to try a failed text again.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// The wait after the first failure; it doubles with each one after.
    pub first: Duration,
    /// The longest wait between attempts.
    pub max: Duration,
    /// Attempts before a text is given up.
    pub max_attempts: u32,
    /// The longest `Retry-After` obeyed; a longer one is cut to this.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        // 5 s doubling to 10 min: twelve attempts span about an hour.
        RetryPolicy {
            first: Duration::from_secs(5),
            max: Duration::from_secs(600),
            max_attempts: 12,
            max_retry_after: Duration::from_secs(3600),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt number `attempt` (1-based): the doubled
    /// delay capped at `max`, of which a random half is kept ("equal
    /// jitter") so that nodes that failed together do not retry together.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let doubled = self
            .first
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)));
        let capped = doubled.min(self.max);
        let half = capped / 2;
        half + half.mul_f64(rand::thread_rng().gen_range(0.0..=1.0))
    }
}

#[derive(Debug, Clone)]
pub struct OutboxConfig {
    /// `twilio.from_number`: a Twilio number or a Messaging Service SID
    /// (`MG…`). Without it texts stay queued.
    pub from: Option<String>,
    /// Signs the texts.
    pub business_name: String,
    /// `escalation.oncall_sms`: who is texted about escalations.
    pub oncall_sms: Option<String>,
    pub retry: RetryPolicy,
    /// How often to look for due rows without being woken (rows queued by
    /// other nodes, retries that fell due).
    pub poll_every: Duration,
    /// The longest one request to Twilio may take.
    pub request_timeout: Duration,
    /// How long a claimed row stays this worker's; longer than a request.
    pub lease: Duration,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            from: None,
            business_name: String::new(),
            oncall_sms: None,
            retry: RetryPolicy::default(),
            poll_every: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            lease: Duration::from_secs(60),
        }
    }
}

impl OutboxConfig {
    pub fn from_config(config: &Config) -> OutboxConfig {
        OutboxConfig {
            from: config.twilio.from_number.clone(),
            business_name: config.business.name.clone(),
            oncall_sms: config.escalation.oncall_sms.clone(),
            ..OutboxConfig::default()
        }
    }
}

/// What this worker has done since it started, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct OutboxCounts {
    pub sent: u64,
    /// Failed attempts that will be retried.
    pub failed: u64,
    /// Texts given up.
    pub dead: u64,
}

/// The payload of an `sms` row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SmsPayload {
    pub to: String,
    pub body: String,
}

struct Shared {
    store: Store,
    rest: Option<RestClient>,
    config: OutboxConfig,
    wake: Notify,
    sent: AtomicU64,
    failed: AtomicU64,
    dead: AtomicU64,
    progress: watch::Sender<OutboxCounts>,
}

/// A handle on the outbox: cheap to clone; [`Outbox::run`] is the worker.
#[derive(Clone)]
pub struct Outbox {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("configured", &self.is_configured())
            .field("counts", &self.snapshot())
            .finish()
    }
}

/// What became of one claimed row.
enum Outcome {
    Sent,
    Retrying,
    Dead,
    /// Another worker took the row over; nothing was recorded.
    Lost,
}

impl Outbox {
    pub fn new(store: Store, rest: Option<RestClient>, mut config: OutboxConfig) -> Outbox {
        // A lease shorter than a request would let another node take a row
        // that is still being sent.
        config.lease = config.lease.max(config.request_timeout * 2);
        Outbox {
            shared: Arc::new(Shared {
                store,
                rest,
                config,
                wake: Notify::new(),
                sent: AtomicU64::new(0),
                failed: AtomicU64::new(0),
                dead: AtomicU64::new(0),
                progress: watch::channel(OutboxCounts::default()).0,
            }),
        }
    }

    /// Whether texts can be sent (credentials and a sender are configured).
    pub fn is_configured(&self) -> bool {
        self.sender().is_some()
    }

    fn sender(&self) -> Option<(&RestClient, SmsSender)> {
        let rest = self.shared.rest.as_ref()?;
        let from = self.shared.config.from.as_deref()?.trim();
        (!from.is_empty()).then(|| (rest, SmsSender::from_setting(from)))
    }

    /// Queues a text to `to` (E.164) and wakes the worker. The text is in the
    /// database when this returns.
    pub async fn enqueue_sms(&self, to: &str, body: &str) -> Result<OutboxMessage, StoreError> {
        let to = to.trim();
        if !is_e164(to) {
            return Err(StoreError::Invalid(format!(
                "cannot text `{to}`: not an E.164 phone number"
            )));
        }
        let body = body.trim();
        if body.is_empty() || body.chars().count() > MAX_BODY_CHARS {
            return Err(StoreError::Invalid(format!(
                "an SMS body must have 1 to {MAX_BODY_CHARS} characters"
            )));
        }
        let payload = SmsPayload {
            to: to.to_string(),
            body: body.to_string(),
        };
        let payload = serde_json::to_value(&payload)
            .map_err(|e| StoreError::Invalid(format!("SMS payload: {e}")))?;
        let row = self
            .shared
            .store
            .outbox_enqueue(SMS_KIND, &payload, Utc::now())
            .await?;
        tracing::info!(outbox_id = row.id, to = %masked(to), "SMS queued");
        self.shared.wake.notify_one();
        Ok(row)
    }

    /// Texts the caller their task reference; `None` when the task has no
    /// number that can take a text.
    pub async fn text_caller_reference(
        &self,
        task: &Task,
    ) -> Result<Option<OutboxMessage>, StoreError> {
        let Some(to) = task.caller_number.as_deref().filter(|n| is_e164(n.trim())) else {
            return Ok(None);
        };
        let body = text::caller_reference(&self.shared.config.business_name, &task.reference);
        self.enqueue_sms(to, &body).await.map(Some)
    }

    /// Texts the on-call person the escalated task's summary; `None` when no
    /// on-call number is configured.
    pub async fn text_oncall_escalation(
        &self,
        task: &Task,
    ) -> Result<Option<OutboxMessage>, StoreError> {
        let Some(to) = self.shared.config.oncall_sms.as_deref() else {
            return Ok(None);
        };
        let body = text::escalation_summary(&self.shared.config.business_name, task);
        self.enqueue_sms(to, &body).await.map(Some)
    }

    pub fn snapshot(&self) -> OutboxCounts {
        OutboxCounts {
            sent: self.shared.sent.load(Ordering::Relaxed),
            failed: self.shared.failed.load(Ordering::Relaxed),
            dead: self.shared.dead.load(Ordering::Relaxed),
        }
    }

    /// The counts, updated after every row the worker handles.
    pub fn watch(&self) -> watch::Receiver<OutboxCounts> {
        self.shared.progress.subscribe()
    }

    fn count(&self, outcome: &Outcome) {
        let counter = match outcome {
            Outcome::Sent => &self.shared.sent,
            Outcome::Retrying => &self.shared.failed,
            Outcome::Dead => &self.shared.dead,
            Outcome::Lost => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.shared.progress.send_replace(self.snapshot());
    }

    /// Sends due texts until `stop` is cancelled. A request in flight is
    /// finished (it is bounded by `request_timeout`) before returning.
    pub async fn run(&self, stop: CancellationToken) {
        let Some((rest, sender)) = self.sender() else {
            let queued = self.shared.store.outbox_totals().await.map(|t| t.pending);
            tracing::warn!(
                queued = ?queued.ok(),
                "SMS outbox: Twilio is not configured (twilio.account_sid, SWITCHBOARD_TWILIO_AUTH_TOKEN and twilio.from_number are all needed); texts stay queued until it is"
            );
            stop.cancelled().await;
            return;
        };
        tracing::info!("SMS outbox worker started");
        let mut paused_until: Option<Instant> = None;
        while !stop.is_cancelled() {
            let next = match paused_until.filter(|t| *t > Instant::now()) {
                Some(until) => until,
                None => self.drain(rest, &sender, &stop, &mut paused_until).await,
            };
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = self.shared.wake.notified() => {}
                _ = tokio::time::sleep_until(next) => {}
            }
        }
        tracing::info!("SMS outbox worker stopped");
    }

    /// Sends due rows one by one; returns when to look again.
    async fn drain(
        &self,
        rest: &RestClient,
        sender: &SmsSender,
        stop: &CancellationToken,
        paused_until: &mut Option<Instant>,
    ) -> Instant {
        let config = &self.shared.config;
        let store = &self.shared.store;
        let lease = to_chrono(config.lease);
        loop {
            if stop.is_cancelled() {
                return Instant::now();
            }
            if let Some(until) = paused_until.filter(|t| *t > Instant::now()) {
                return until;
            }
            let claimed = match store.outbox_claim(SMS_KIND, Utc::now(), lease, 1).await {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(error = %e, "SMS outbox: cannot read the queue");
                    return Instant::now() + config.poll_every;
                }
            };
            let Some(row) = claimed.into_iter().next() else {
                return self.next_look().await;
            };
            let outcome = match self.send_one(rest, sender, &row, paused_until).await {
                Ok(outcome) => outcome,
                Err(e) => {
                    // The lease runs out and the row is tried again.
                    tracing::warn!(outbox_id = row.id, error = %e, "SMS outbox: cannot record an outcome");
                    return Instant::now() + config.poll_every;
                }
            };
            if let Outcome::Lost = outcome {
                tracing::warn!(
                    outbox_id = row.id,
                    "SMS outbox: the row's lease ran out and another worker took it over"
                );
            }
            self.count(&outcome);
        }
    }

    /// When the next row falls due, but no later than one poll interval.
    async fn next_look(&self) -> Instant {
        let poll = Instant::now() + self.shared.config.poll_every;
        match self.shared.store.outbox_next_due(SMS_KIND).await {
            Ok(Some(due)) => {
                let wait = (due - Utc::now()).to_std().unwrap_or_default();
                poll.min(Instant::now() + wait)
            }
            Ok(None) => poll,
            Err(e) => {
                tracing::warn!(error = %e, "SMS outbox: cannot read the queue");
                poll
            }
        }
    }

    async fn send_one(
        &self,
        rest: &RestClient,
        sender: &SmsSender,
        row: &OutboxMessage,
        paused_until: &mut Option<Instant>,
    ) -> Result<Outcome, StoreError> {
        let store = &self.shared.store;
        let config = &self.shared.config;
        let payload = match serde_json::from_str::<SmsPayload>(&row.payload) {
            Ok(p) => p,
            Err(e) => {
                let error = format!("unreadable SMS payload: {e}");
                tracing::error!(outbox_id = row.id, %error, "SMS given up");
                let kept = store.outbox_mark_dead(row, &error, Utc::now()).await?;
                return Ok(if kept { Outcome::Dead } else { Outcome::Lost });
            }
        };
        let to = masked(&payload.to);
        let result = rest
            .send_sms(&payload.to, sender, &payload.body, config.request_timeout)
            .await;
        let failure = match result {
            Ok(accepted) => {
                let kept = store
                    .outbox_mark_sent(row, accepted.sid.as_deref(), Utc::now())
                    .await?;
                tracing::info!(
                    outbox_id = row.id,
                    %to,
                    sid = accepted.sid.as_deref().unwrap_or("?"),
                    attempts = row.attempts,
                    "SMS sent"
                );
                return Ok(if kept { Outcome::Sent } else { Outcome::Lost });
            }
            Err(failure) => failure,
        };
        if let SmsFailure::Rejected { code, error } = &failure {
            tracing::error!(outbox_id = row.id, %to, code = ?code, %error, "SMS refused by Twilio for good; given up");
            let kept = store
                .outbox_mark_dead(row, &error.to_string(), Utc::now())
                .await?;
            return Ok(if kept { Outcome::Dead } else { Outcome::Lost });
        }
        let attempt = u32::try_from(row.attempts).unwrap_or(u32::MAX);
        let mut wait = config.retry.backoff(attempt);
        if let Some(asked) = failure.error().retry_after {
            // Twilio asked every request to wait, not only this one.
            let asked = asked.min(config.retry.max_retry_after);
            *paused_until = Some(Instant::now() + asked);
            wait = wait.max(asked);
        }
        if let SmsFailure::Misconfigured { code, error } = &failure {
            tracing::error!(outbox_id = row.id, code = ?code, %error, "SMS not sent: Twilio refused our credentials or sender; check the Twilio settings");
            // Every text would fail the same way until the settings change.
            *paused_until = Some(Instant::now() + wait);
        }
        let retry_at = Utc::now() + to_chrono(wait);
        let status = store
            .outbox_record_failure(
                row,
                &failure.to_string(),
                retry_at,
                i64::from(config.retry.max_attempts),
                Utc::now(),
            )
            .await?;
        Ok(match status {
            Some(OutboxStatus::Dead) => {
                tracing::error!(outbox_id = row.id, %to, attempts = row.attempts, error = %failure, "SMS given up after too many attempts");
                Outcome::Dead
            }
            Some(_) => {
                tracing::warn!(outbox_id = row.id, %to, attempts = row.attempts, retry_in_ms = wait.as_millis() as u64, error = %failure, "SMS not sent; will retry");
                Outcome::Retrying
            }
            None => Outcome::Lost,
        })
    }
}

/// A wait as a chrono span, at most a year so that adding it to now cannot
/// overflow.
fn to_chrono(wait: Duration) -> chrono::Duration {
    const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);
    chrono::Duration::from_std(wait.min(YEAR)).unwrap_or_else(|_| chrono::Duration::days(365))
}

/// `+` and 7 to 15 digits, the first not zero.
pub fn is_e164(number: &str) -> bool {
    let Some(digits) = number.strip_prefix('+') else {
        return false;
    };
    (7..=15).contains(&digits.len())
        && digits.chars().all(|c| c.is_ascii_digit())
        && !digits.starts_with('0')
}

/// A phone number for logs: the country prefix and the last four digits.
fn masked(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    if chars.len() <= 6 {
        return "***".to_string();
    }
    let head: String = chars[..2].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}...{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_equal_jitter_up_to_the_cap() {
        let policy = RetryPolicy {
            first: Duration::from_millis(100),
            max: Duration::from_millis(1000),
            ..RetryPolicy::default()
        };
        for _ in 0..50 {
            for (attempt, full) in [
                (1, 100),
                (2, 200),
                (3, 400),
                (4, 800),
                (5, 1000),
                (40, 1000),
            ] {
                let wait = policy.backoff(attempt).as_millis() as u64;
                assert!(
                    (full / 2..=full).contains(&wait),
                    "attempt {attempt}: {wait} ms not in {}..={full}",
                    full / 2
                );
            }
        }
    }

    #[test]
    fn e164_numbers_only() {
        assert!(is_e164("+15551234567"));
        assert!(is_e164("+447911123456"));
        assert!(!is_e164("15551234567"));
        assert!(!is_e164("+1 555 123 4567"));
        assert!(!is_e164("+0123456789"));
        assert!(!is_e164("+123"));
        assert!(!is_e164("anonymous"));
        assert!(!is_e164("+1234567890123456"));
    }

    #[test]
    fn logs_mask_the_middle_of_a_number() {
        assert_eq!(masked("+15551234567"), "+1...4567");
        assert_eq!(masked("+123"), "***");
    }
}
