//! Per-turn latency records (end of caller speech → STT final → intent →
//! first TTS audio → first frame sent), their percentiles, and the voice
//! message a task may carry.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::{from_ms, to_ms, Result, Store, StoreError};

/// One answered caller turn. Every duration counts from the end of the
/// caller's speech; `None` where the stage did not happen or was not seen.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TurnLatency {
    pub call_id: i64,
    pub turn: i64,
    /// When the caller stopped speaking.
    pub at: DateTime<Utc>,
    pub stt_ms: Option<i64>,
    pub intent_ms: Option<i64>,
    pub tts_ms: Option<i64>,
    pub first_frame_ms: Option<i64>,
    pub stt_engine: Option<String>,
    pub intent_engine: Option<String>,
    pub tts_engine: Option<String>,
}

const COLUMNS: &str = "call_id, turn, at, stt_ms, intent_ms, tts_ms, first_frame_ms, stt_engine, intent_engine, tts_engine";

fn from_row(r: &AnyRow) -> Result<TurnLatency> {
    Ok(TurnLatency {
        call_id: r.try_get("call_id")?,
        turn: r.try_get("turn")?,
        at: from_ms(r.try_get("at")?),
        stt_ms: r.try_get("stt_ms")?,
        intent_ms: r.try_get("intent_ms")?,
        tts_ms: r.try_get("tts_ms")?,
        first_frame_ms: r.try_get("first_frame_ms")?,
        stt_engine: r.try_get("stt_engine")?,
        intent_engine: r.try_get("intent_engine")?,
        tts_engine: r.try_get("tts_engine")?,
    })
}

/// p50 and p95 of each stage over a set of turns, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    pub turns: usize,
    pub stt: Percentiles,
    pub intent: Percentiles,
    pub tts: Percentiles,
    pub first_frame: Percentiles,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub p50: Option<i64>,
    pub p95: Option<i64>,
}

impl Percentiles {
    /// Nearest-rank percentiles of the values present.
    pub fn of(values: impl Iterator<Item = Option<i64>>) -> Percentiles {
        let mut v: Vec<i64> = values.flatten().collect();
        if v.is_empty() {
            return Percentiles::default();
        }
        v.sort_unstable();
        let rank = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        Percentiles {
            p50: Some(rank(0.50)),
            p95: Some(rank(0.95)),
        }
    }
}

impl LatencySummary {
    pub fn of(turns: &[TurnLatency]) -> LatencySummary {
        LatencySummary {
            turns: turns.len(),
            stt: Percentiles::of(turns.iter().map(|t| t.stt_ms)),
            intent: Percentiles::of(turns.iter().map(|t| t.intent_ms)),
            tts: Percentiles::of(turns.iter().map(|t| t.tts_ms)),
            first_frame: Percentiles::of(turns.iter().map(|t| t.first_frame_ms)),
        }
    }
}

impl Store {
    pub async fn record_turn_latency(&self, t: &TurnLatency) -> Result<()> {
        let sql = format!(
            "INSERT INTO turn_latencies ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        );
        sqlx::query(&sql)
            .bind(t.call_id)
            .bind(t.turn)
            .bind(to_ms(t.at))
            .bind(t.stt_ms)
            .bind(t.intent_ms)
            .bind(t.tts_ms)
            .bind(t.first_frame_ms)
            .bind(t.stt_engine.clone())
            .bind(t.intent_engine.clone())
            .bind(t.tts_engine.clone())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A call's turns in order.
    pub async fn turn_latencies(&self, call_id: i64) -> Result<Vec<TurnLatency>> {
        let sql = format!("SELECT {COLUMNS} FROM turn_latencies WHERE call_id = $1 ORDER BY turn");
        let rows = sqlx::query(&sql)
            .bind(call_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(from_row).collect()
    }

    /// Every turn since `since`, oldest first (for per-day figures).
    pub async fn turn_latencies_since(&self, since: DateTime<Utc>) -> Result<Vec<TurnLatency>> {
        let sql = format!("SELECT {COLUMNS} FROM turn_latencies WHERE at >= $1 ORDER BY at");
        let rows = sqlx::query(&sql)
            .bind(to_ms(since))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(from_row).collect()
    }

    /// Attaches a voice message (a path under the recordings directory).
    pub async fn set_task_recording(&self, reference: &str, path: &str) -> Result<()> {
        let done = sqlx::query("UPDATE tasks SET recording = $1 WHERE reference = $2")
            .bind(path)
            .bind(reference)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("task {reference}")));
        }
        Ok(())
    }

    pub async fn task_recording(&self, reference: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT recording FROM tasks WHERE reference = $1")
            .bind(reference)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("task {reference}")))?;
        Ok(row.try_get("recording")?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles_skip_missing_stages() {
        let p = Percentiles::of((1..=20).map(|v| Some(v * 100)).chain([None, None]));
        assert_eq!((p.p50, p.p95), (Some(1000), Some(1900)));
        assert_eq!(Percentiles::of([None].into_iter()), Percentiles::default());
        let one = Percentiles::of([Some(42)].into_iter());
        assert_eq!((one.p50, one.p95), (Some(42), Some(42)));
    }
}
