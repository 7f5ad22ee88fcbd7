//! Turn-latency views: one row per turn on a call's page, p50/p95 per call
//! and per day on the statistics page. Every figure counts from the end of
//! the caller's speech.

use std::collections::BTreeMap;

use crate::store::{LatencySummary, Percentiles, TurnLatency};

/// One turn as shown on the call page.
pub struct TurnRow {
    pub turn: i64,
    pub stt: String,
    pub intent: String,
    pub tts: String,
    pub first_frame: String,
    pub engines: String,
}

/// p50 / p95 of each stage over a set of turns.
pub struct SummaryRow {
    pub label: String,
    pub turns: usize,
    pub stt: String,
    pub intent: String,
    pub tts: String,
    pub first_frame: String,
}

fn ms(v: Option<i64>) -> String {
    v.map(|v| format!("{v} ms")).unwrap_or_else(|| "–".into())
}

fn pair(p: Percentiles) -> String {
    match (p.p50, p.p95) {
        (Some(a), Some(b)) => format!("{a} / {b} ms"),
        _ => "–".into(),
    }
}

pub fn turn_rows(turns: &[TurnLatency]) -> Vec<TurnRow> {
    turns
        .iter()
        .map(|t| TurnRow {
            turn: t.turn,
            stt: ms(t.stt_ms),
            intent: ms(t.intent_ms),
            tts: ms(t.tts_ms),
            first_frame: ms(t.first_frame_ms),
            engines: [&t.stt_engine, &t.intent_engine, &t.tts_engine]
                .iter()
                .map(|e| e.as_deref().unwrap_or("?"))
                .collect::<Vec<_>>()
                .join(" → "),
        })
        .collect()
}

pub fn summary_row(label: impl Into<String>, turns: &[TurnLatency]) -> SummaryRow {
    let s = LatencySummary::of(turns);
    SummaryRow {
        label: label.into(),
        turns: s.turns,
        stt: pair(s.stt),
        intent: pair(s.intent),
        tts: pair(s.tts),
        first_frame: pair(s.first_frame),
    }
}

/// One summary per day (in `tz`), newest first.
pub fn per_day(turns: &[TurnLatency], tz: chrono_tz::Tz) -> Vec<SummaryRow> {
    let mut days: BTreeMap<String, Vec<TurnLatency>> = BTreeMap::new();
    for t in turns {
        let day = t.at.with_timezone(&tz).format("%Y-%m-%d").to_string();
        days.entry(day).or_default().push(t.clone());
    }
    days.iter()
        .rev()
        .map(|(day, turns)| summary_row(day.clone(), turns))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn turn(day: u32, first_frame: i64) -> TurnLatency {
        TurnLatency {
            call_id: 1,
            turn: 1,
            at: Utc.with_ymd_and_hms(2026, 11, day, 12, 0, 0).unwrap(),
            stt_ms: Some(300),
            intent_ms: Some(900),
            tts_ms: None,
            first_frame_ms: Some(first_frame),
            stt_engine: Some("deepgram".into()),
            intent_engine: Some("chat".into()),
            tts_engine: None,
        }
    }

    #[test]
    fn groups_by_local_day_newest_first() {
        let rows = per_day(
            &[turn(20, 1000), turn(21, 1200), turn(21, 2000)],
            chrono_tz::UTC,
        );
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].label, "2026-11-21");
        assert_eq!(rows[0].turns, 2);
        assert_eq!(rows[0].first_frame, "1200 / 2000 ms");
        assert_eq!(rows[0].tts, "–");
        let t = turn_rows(&[turn(20, 1000)]);
        assert_eq!(t[0].engines, "deepgram → chat → ?");
    }
}
