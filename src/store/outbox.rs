//! The outbox: notifications (SMS today) that must survive restarts and
//! provider outages. A row is pending until it is sent (`sent_at`) or given up
//! (`dead_at`). Workers on several nodes share the table safely: claiming a
//! row leases it by moving `next_attempt_at` past the lease and counting the
//! attempt, so no two workers hold the same row, and every later write is
//! fenced by the attempt number the claim returned — a worker whose lease ran
//! out cannot overwrite the outcome of the worker that took the row over.
//! Sending belongs to `crate::outbox`; this module only keeps the rows.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::{from_ms, opt_from_ms, to_ms, Backend, Result, Store, StoreError};

/// Where an outbox row stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxStatus {
    Pending,
    Sent,
    /// Given up: a permanent refusal or too many failed attempts. Kept for
    /// the operator to see (and requeue).
    Dead,
}

impl OutboxStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxStatus::Pending => "pending",
            OutboxStatus::Sent => "sent",
            OutboxStatus::Dead => "dead",
        }
    }
}

/// One outbox row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutboxMessage {
    pub id: i64,
    pub kind: String,
    /// JSON text; its shape belongs to the kind.
    pub payload: String,
    /// Attempts started so far, including one in flight.
    pub attempts: i64,
    /// When the row is next due; while claimed, when the lease runs out.
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub dead_at: Option<DateTime<Utc>>,
    /// The provider's id for the sent message (Twilio's `SM…` SID).
    pub provider_ref: Option<String>,
}

impl OutboxMessage {
    pub fn status(&self) -> OutboxStatus {
        if self.sent_at.is_some() {
            OutboxStatus::Sent
        } else if self.dead_at.is_some() {
            OutboxStatus::Dead
        } else {
            OutboxStatus::Pending
        }
    }
}

/// How many rows stand where, for gauges and the dashboard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct OutboxTotals {
    pub pending: i64,
    pub sent: i64,
    pub dead: i64,
}

const COLUMNS: &str = "id, kind, payload, attempts, next_attempt_at, last_error, created_at, sent_at, dead_at, provider_ref";

/// A row still waiting to be sent.
const PENDING: &str = "sent_at IS NULL AND dead_at IS NULL";

fn message_from_row(row: &AnyRow) -> Result<OutboxMessage> {
    Ok(OutboxMessage {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        payload: row.try_get("payload")?,
        attempts: row.try_get("attempts")?,
        next_attempt_at: from_ms(row.try_get("next_attempt_at")?),
        last_error: row.try_get("last_error")?,
        created_at: from_ms(row.try_get("created_at")?),
        sent_at: opt_from_ms(row.try_get("sent_at")?),
        dead_at: opt_from_ms(row.try_get("dead_at")?),
        provider_ref: row.try_get("provider_ref")?,
    })
}

/// Errors are kept short in the table; the log has the rest.
fn clip(error: &str) -> String {
    const MAX: usize = 500;
    match error.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &error[..cut]),
        None => error.to_string(),
    }
}

impl Store {
    /// Queues a message of `kind`, due at once.
    pub async fn outbox_enqueue(
        &self,
        kind: &str,
        payload: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<OutboxMessage> {
        if kind.trim().is_empty() {
            return Err(StoreError::Invalid("an outbox message needs a kind".into()));
        }
        let sql = format!(
            "INSERT INTO outbox (kind, payload, attempts, next_attempt_at, created_at) \
             VALUES ($1, $2, 0, $3, $3) RETURNING {COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(kind)
            .bind(payload.to_string())
            .bind(to_ms(now))
            .fetch_one(&self.pool)
            .await?;
        message_from_row(&row)
    }

    /// Claims up to `limit` due rows of `kind`, oldest due first: each one's
    /// attempt count goes up by one and it is leased until `now + lease`.
    /// A row is never handed to two claimers while its lease runs.
    pub async fn outbox_claim(
        &self,
        kind: &str,
        now: DateTime<Utc>,
        lease: Duration,
        limit: i64,
    ) -> Result<Vec<OutboxMessage>> {
        let sql = match self.backend {
            // Rows another transaction is claiming are skipped, not waited
            // for. The CTE is materialized so that the locking, limited
            // select runs once (inside `IN (…)` PostgreSQL may re-run it per
            // row and claim more than `limit`).
            Backend::Postgres => {
                let returning = COLUMNS
                    .split(", ")
                    .map(|c| format!("outbox.{c}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                format!(
                    "WITH due AS MATERIALIZED (SELECT id FROM outbox WHERE kind = $2 AND {PENDING} \
                       AND next_attempt_at <= $3 ORDER BY next_attempt_at, id LIMIT $4 \
                       FOR UPDATE SKIP LOCKED) \
                     UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $1 \
                     FROM due WHERE outbox.id = due.id RETURNING {returning}"
                )
            }
            // A single writer: the statement is atomic, and the outer
            // `next_attempt_at <= now` is checked against the row as updated.
            Backend::Sqlite => format!(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $1 \
                 WHERE id IN (SELECT id FROM outbox WHERE kind = $2 AND {PENDING} \
                              AND next_attempt_at <= $3 ORDER BY next_attempt_at, id LIMIT $4) \
                 AND {PENDING} AND next_attempt_at <= $3 \
                 RETURNING {COLUMNS}"
            ),
        };
        let rows = sqlx::query(&sql)
            .bind(to_ms(now + lease))
            .bind(kind)
            .bind(to_ms(now))
            .bind(limit.max(1))
            .fetch_all(&self.pool)
            .await?;
        let mut claimed = rows
            .iter()
            .map(message_from_row)
            .collect::<Result<Vec<_>>>()?;
        claimed.sort_by_key(|m| m.id);
        Ok(claimed)
    }

    /// Records that the claimed attempt delivered the message. `false` when
    /// the claim was lost (another worker took the row over).
    pub async fn outbox_mark_sent(
        &self,
        claimed: &OutboxMessage,
        provider_ref: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let done = sqlx::query(&format!(
            "UPDATE outbox SET sent_at = $1, provider_ref = $2, last_error = NULL \
             WHERE id = $3 AND attempts = $4 AND {PENDING}"
        ))
        .bind(to_ms(now))
        .bind(provider_ref)
        .bind(claimed.id)
        .bind(claimed.attempts)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records a failed attempt. The row is due again at `retry_at`, unless it
    /// has used `max_attempts`, in which case it is given up. Returns where
    /// the row now stands, or `None` when the claim was lost.
    pub async fn outbox_record_failure(
        &self,
        claimed: &OutboxMessage,
        error: &str,
        retry_at: DateTime<Utc>,
        max_attempts: i64,
        now: DateTime<Utc>,
    ) -> Result<Option<OutboxStatus>> {
        if claimed.attempts >= max_attempts {
            let error = format!("gave up after {} attempts: {error}", claimed.attempts);
            return self
                .outbox_mark_dead(claimed, &error, now)
                .await
                .map(|kept| kept.then_some(OutboxStatus::Dead));
        }
        let done = sqlx::query(&format!(
            "UPDATE outbox SET last_error = $1, next_attempt_at = $2 \
             WHERE id = $3 AND attempts = $4 AND {PENDING}"
        ))
        .bind(clip(error))
        .bind(to_ms(retry_at))
        .bind(claimed.id)
        .bind(claimed.attempts)
        .execute(&self.pool)
        .await?;
        Ok((done.rows_affected() == 1).then_some(OutboxStatus::Pending))
    }

    /// Gives the claimed row up for good (a permanent refusal). `false` when
    /// the claim was lost.
    pub async fn outbox_mark_dead(
        &self,
        claimed: &OutboxMessage,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let done = sqlx::query(&format!(
            "UPDATE outbox SET dead_at = $1, last_error = $2 \
             WHERE id = $3 AND attempts = $4 AND {PENDING}"
        ))
        .bind(to_ms(now))
        .bind(clip(error))
        .bind(claimed.id)
        .bind(claimed.attempts)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Puts a dead row back in the queue with a fresh attempt count (an
    /// operator fixed the cause). Sent rows stay sent.
    pub async fn outbox_requeue(&self, id: i64, now: DateTime<Utc>) -> Result<OutboxMessage> {
        let sql = format!(
            "UPDATE outbox SET dead_at = NULL, attempts = 0, next_attempt_at = $1 \
             WHERE id = $2 AND dead_at IS NOT NULL RETURNING {COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(to_ms(now))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => message_from_row(&row),
            None => match self.outbox_message(id).await? {
                Some(_) => Err(StoreError::Conflict(format!(
                    "outbox message {id} is not dead"
                ))),
                None => Err(StoreError::NotFound(format!("outbox message {id}"))),
            },
        }
    }

    pub async fn outbox_message(&self, id: i64) -> Result<Option<OutboxMessage>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM outbox WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(message_from_row).transpose()
    }

    /// The newest rows first, for the dashboard.
    pub async fn outbox_recent(&self, limit: i64) -> Result<Vec<OutboxMessage>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM outbox ORDER BY id DESC LIMIT $1"
        ))
        .bind(limit.max(0))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(message_from_row).collect()
    }

    /// When the next pending row of `kind` falls due (or its lease runs out).
    pub async fn outbox_next_due(&self, kind: &str) -> Result<Option<DateTime<Utc>>> {
        let row = sqlx::query(&format!(
            "SELECT MIN(next_attempt_at) AS due FROM outbox WHERE kind = $1 AND {PENDING}"
        ))
        .bind(kind)
        .fetch_one(&self.pool)
        .await?;
        Ok(opt_from_ms(row.try_get("due")?))
    }

    pub async fn outbox_totals(&self) -> Result<OutboxTotals> {
        let row = sqlx::query(
            "SELECT \
               COALESCE(SUM(CASE WHEN sent_at IS NULL AND dead_at IS NULL THEN 1 ELSE 0 END), 0) AS pending, \
               COALESCE(SUM(CASE WHEN sent_at IS NOT NULL THEN 1 ELSE 0 END), 0) AS sent, \
               COALESCE(SUM(CASE WHEN sent_at IS NULL AND dead_at IS NOT NULL THEN 1 ELSE 0 END), 0) AS dead \
             FROM outbox",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(OutboxTotals {
            pending: row.try_get("pending")?,
            sent: row.try_get("sent")?,
            dead: row.try_get("dead")?,
        })
    }
}
