//! Calls, their transcripts and their decision events.

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::Row;

use super::{
    from_ms, opt_from_ms, to_ms, Call, CallFilter, NewCall, NewTurn, Result, Store, StoreError,
    TranscriptTurn, Transport,
};
use crate::domain::Speaker;
use crate::events::Event;

const CALL_COLUMNS: &str = "id, transport, external_id, from_number, to_number, started_at, answered_at, ended_at, end_reason, carrier_status, node, direction";

fn call_from_row(row: &AnyRow) -> Result<Call> {
    let transport: String = row.try_get("transport")?;
    Ok(Call {
        id: row.try_get("id")?,
        transport: Transport::parse(&transport).ok_or_else(|| {
            StoreError::Db(sqlx::Error::Decode(
                format!("bad transport `{transport}`").into(),
            ))
        })?,
        external_id: row.try_get("external_id")?,
        from_number: row.try_get("from_number")?,
        to_number: row.try_get("to_number")?,
        started_at: from_ms(row.try_get("started_at")?),
        answered_at: opt_from_ms(row.try_get("answered_at")?),
        ended_at: opt_from_ms(row.try_get("ended_at")?),
        end_reason: row.try_get("end_reason")?,
        carrier_status: row.try_get("carrier_status")?,
        node: row.try_get("node")?,
        direction: row.try_get("direction")?,
    })
}

fn turn_from_row(row: &AnyRow) -> Result<TranscriptTurn> {
    let speaker: String = row.try_get("speaker")?;
    Ok(TranscriptTurn {
        call_id: row.try_get("call_id")?,
        seq: row.try_get("seq")?,
        speaker: Speaker::parse(&speaker).ok_or_else(|| {
            StoreError::Db(sqlx::Error::Decode(
                format!("bad speaker `{speaker}`").into(),
            ))
        })?,
        text: row.try_get("text")?,
        at: from_ms(row.try_get("at")?),
        start_ms: row.try_get("start_ms")?,
        end_ms: row.try_get("end_ms")?,
        confidence: row
            .try_get::<Option<f64>, _>("confidence")?
            .map(|c| c as f32),
        heard_chars: row.try_get("heard_chars")?,
    })
}

impl Store {
    pub async fn create_call(&self, new: NewCall) -> Result<Call> {
        let row = sqlx::query(&format!(
            "INSERT INTO calls (transport, external_id, from_number, to_number, started_at, node) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {CALL_COLUMNS}"
        ))
        .bind(new.transport.as_str())
        .bind(&new.external_id)
        .bind(&new.from_number)
        .bind(&new.to_number)
        .bind(to_ms(new.started_at))
        .bind(&self.node)
        .fetch_one(&self.pool)
        .await?;
        let call = call_from_row(&row)?;
        self.publish(Event::CallStarted { call_id: call.id });
        Ok(call)
    }

    /// Records that we placed this call (a callback) rather than answered it.
    pub async fn mark_call_outbound(&self, call_id: i64) -> Result<()> {
        sqlx::query("UPDATE calls SET direction = 'outbound' WHERE id = $1")
            .bind(call_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn mark_call_answered(&self, call_id: i64, at: DateTime<Utc>) -> Result<()> {
        let done =
            sqlx::query("UPDATE calls SET answered_at = $1 WHERE id = $2 AND answered_at IS NULL")
                .bind(to_ms(at))
                .bind(call_id)
                .execute(&self.pool)
                .await?;
        if done.rows_affected() == 0 {
            self.call(call_id).await?;
        }
        Ok(())
    }

    /// Records the end of a call. The first end wins: a later one (say a
    /// status callback after the socket closed) does not overwrite the reason.
    pub async fn end_call(&self, call_id: i64, at: DateTime<Utc>, reason: &str) -> Result<()> {
        let done = sqlx::query(
            "UPDATE calls SET ended_at = $1, end_reason = $2 WHERE id = $3 AND ended_at IS NULL",
        )
        .bind(to_ms(at))
        .bind(reason)
        .bind(call_id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() > 0 {
            self.publish(Event::CallEnded {
                call_id,
                reason: reason.to_string(),
            });
        } else {
            self.call(call_id).await?;
        }
        Ok(())
    }

    /// Stores the carrier's status for the call with this external id; returns the call if known.
    pub async fn set_carrier_status(
        &self,
        external_id: &str,
        status: &str,
    ) -> Result<Option<Call>> {
        sqlx::query("UPDATE calls SET carrier_status = $1 WHERE external_id = $2")
            .bind(status)
            .bind(external_id)
            .execute(&self.pool)
            .await?;
        self.call_by_external_id(external_id).await
    }

    pub async fn call(&self, id: i64) -> Result<Call> {
        let row = sqlx::query(&format!("SELECT {CALL_COLUMNS} FROM calls WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("call {id}")))?;
        call_from_row(&row)
    }

    /// The newest call with this carrier id (Twilio CallSid or SIP Call-ID).
    pub async fn call_by_external_id(&self, external_id: &str) -> Result<Option<Call>> {
        let row = sqlx::query(&format!(
            "SELECT {CALL_COLUMNS} FROM calls WHERE external_id = $1 ORDER BY id DESC LIMIT 1"
        ))
        .bind(external_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(call_from_row).transpose()
    }

    /// Newest first.
    pub async fn list_calls(&self, filter: &CallFilter) -> Result<Vec<Call>> {
        let limit = if filter.limit > 0 {
            filter.limit
        } else {
            i64::MAX
        };
        let rows = match &filter.external_id {
            Some(ext) => {
                sqlx::query(&format!("SELECT {CALL_COLUMNS} FROM calls WHERE external_id = $1 ORDER BY id DESC LIMIT $2 OFFSET $3"))
                    .bind(ext.clone())
                    .bind(limit)
                    .bind(filter.offset)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                sqlx::query(&format!("SELECT {CALL_COLUMNS} FROM calls ORDER BY id DESC LIMIT $1 OFFSET $2"))
                    .bind(limit)
                    .bind(filter.offset)
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter().map(call_from_row).collect()
    }

    pub async fn count_calls(&self) -> Result<i64> {
        Ok(sqlx::query("SELECT COUNT(*) AS n FROM calls")
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?)
    }

    /// Appends a transcript turn with the next sequence number; returns it.
    pub async fn append_turn(
        &self,
        call_id: i64,
        at: DateTime<Utc>,
        turn: NewTurn,
    ) -> Result<TranscriptTurn> {
        let mut tx = self.pool.begin().await?;
        let next: i64 = sqlx::query("SELECT CAST(COALESCE(MAX(seq), 0) + 1 AS BIGINT) AS n FROM transcript_turns WHERE call_id = $1")
            .bind(call_id)
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
        let row = sqlx::query(
            "INSERT INTO transcript_turns (call_id, seq, speaker, text, at, start_ms, end_ms, confidence, heard_chars) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             RETURNING call_id, seq, speaker, text, at, start_ms, end_ms, confidence, heard_chars",
        )
        .bind(call_id)
        .bind(next)
        .bind(turn.speaker.as_str())
        .bind(&turn.text)
        .bind(to_ms(at))
        .bind(turn.start_ms)
        .bind(turn.end_ms)
        .bind(turn.confidence.map(f64::from))
        .bind(turn.heard_chars)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::NotFound(format!("call {call_id}")),
            _ => StoreError::Db(e),
        })?;
        tx.commit().await?;
        let turn = turn_from_row(&row)?;
        self.publish(Event::TranscriptAppended {
            call_id,
            seq: turn.seq,
        });
        Ok(turn)
    }

    pub async fn transcript(&self, call_id: i64) -> Result<Vec<TranscriptTurn>> {
        let rows = sqlx::query(
            "SELECT call_id, seq, speaker, text, at, start_ms, end_ms, confidence, heard_chars \
             FROM transcript_turns WHERE call_id = $1 ORDER BY seq",
        )
        .bind(call_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(turn_from_row).collect()
    }

    /// Records one decision of the call core (why a turn ended, a barge-in, a fallback…).
    pub async fn append_call_event(
        &self,
        call_id: i64,
        at: DateTime<Utc>,
        kind: &str,
        detail: &serde_json::Value,
    ) -> Result<()> {
        sqlx::query("INSERT INTO call_events (call_id, at, kind, detail) VALUES ($1, $2, $3, $4)")
            .bind(call_id)
            .bind(to_ms(at))
            .bind(kind)
            .bind(detail.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// `(at, kind, detail)` in order.
    pub async fn call_events(
        &self,
        call_id: i64,
    ) -> Result<Vec<(DateTime<Utc>, String, serde_json::Value)>> {
        let rows =
            sqlx::query("SELECT at, kind, detail FROM call_events WHERE call_id = $1 ORDER BY id")
                .bind(call_id)
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| {
                let detail: String = r.try_get("detail")?;
                Ok((
                    from_ms(r.try_get("at")?),
                    r.try_get("kind")?,
                    serde_json::from_str(&detail).unwrap_or(serde_json::Value::String(detail)),
                ))
            })
            .collect()
    }

    /// Calls started since `since`, as start times (for statistics).
    pub(crate) async fn call_start_times(&self, since: DateTime<Utc>) -> Result<Vec<i64>> {
        let rows = sqlx::query("SELECT started_at FROM calls WHERE started_at >= $1")
            .bind(to_ms(since))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get("started_at")?)).collect()
    }
}
