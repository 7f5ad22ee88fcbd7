//! What the engine chains observe: per-call reports (first-result latency,
//! errors, fallbacks) for the call's record, and process-wide counters and
//! health for `/metrics` and for skipping an engine that is failing.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::ProviderError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    Stt,
    Tts,
    Intent,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Stt => "stt",
            Stage::Tts => "tts",
            Stage::Intent => "intent",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ReportKind {
    /// Time to the engine's first result: first audio frame, or the
    /// extraction.
    FirstResult(Duration),
    /// The engine produced a result (a recogniser's final transcript); its
    /// latency is measured by the session, from the end of speech.
    Used,
    Error {
        message: String,
        retryable: bool,
    },
    /// The chain moved on from this engine to `to`.
    Fallback {
        to: &'static str,
    },
    /// Every engine of the stage failed.
    Exhausted,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EngineReport {
    pub stage: Stage,
    pub engine: &'static str,
    pub kind: ReportKind,
}

/// Upper bounds (seconds) of the first-result histogram.
const BUCKETS: [f64; 10] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0];

/// A failing engine is skipped for this long, doubling per failure in a row.
const COOLDOWN_BASE: Duration = Duration::from_secs(5);
const COOLDOWN_MAX: Duration = Duration::from_secs(120);

#[derive(Debug, Default, Clone)]
struct Counters {
    results: u64,
    errors: u64,
    fallbacks: u64,
    exhausted: u64,
    latency_buckets: [u64; BUCKETS.len()],
    latency_sum: f64,
    failures_in_row: u32,
    down_until: Option<Instant>,
}

/// Process-wide engine counters and health. Cheap to share.
#[derive(Debug, Default)]
pub struct EngineStats {
    engines: Mutex<BTreeMap<(Stage, &'static str), Counters>>,
}

impl EngineStats {
    pub fn new() -> Arc<EngineStats> {
        Arc::new(EngineStats::default())
    }

    fn with<R>(&self, stage: Stage, engine: &'static str, f: impl FnOnce(&mut Counters) -> R) -> R {
        let mut map = self.engines.lock().unwrap_or_else(|p| p.into_inner());
        f(map.entry((stage, engine)).or_default())
    }

    /// True while a recent failure keeps the engine out of rotation.
    pub fn is_down(&self, stage: Stage, engine: &'static str, now: Instant) -> bool {
        self.with(stage, engine, |c| c.down_until.is_some_and(|t| now < t))
    }

    fn failed(&self, stage: Stage, engine: &'static str, error: &ProviderError) {
        let now = Instant::now();
        self.with(stage, engine, |c| {
            c.errors += 1;
            c.failures_in_row = c.failures_in_row.saturating_add(1);
            let backoff = COOLDOWN_BASE
                .saturating_mul(1 << (c.failures_in_row - 1).min(5))
                .min(COOLDOWN_MAX);
            // A fatal error (bad key) will not heal by itself: keep it out longest.
            let wait = match (error.retry_after, error.retryable) {
                (Some(d), _) => d.max(backoff),
                (None, true) => backoff,
                (None, false) => COOLDOWN_MAX,
            };
            c.down_until = Some(now + wait);
        });
    }

    fn succeeded(&self, stage: Stage, engine: &'static str, latency: Duration) {
        self.with(stage, engine, |c| {
            c.results += 1;
            c.failures_in_row = 0;
            c.down_until = None;
            let secs = latency.as_secs_f64();
            if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
                c.latency_buckets[i] += 1;
            }
            c.latency_sum += secs;
        });
    }

    /// Appends the Prometheus series for every engine seen so far.
    pub fn render(&self, out: &mut String) {
        let map = self
            .engines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        type Get = fn(&Counters) -> u64;
        let series: [(&str, &str, Get); 3] = [
            (
                "switchboard_engine_errors_total",
                "Engine failures (each attempt).",
                |c| c.errors,
            ),
            (
                "switchboard_engine_fallbacks_total",
                "Times a chain moved on from this engine.",
                |c| c.fallbacks,
            ),
            (
                "switchboard_engine_exhausted_total",
                "Times every engine of a stage failed (reported on the last).",
                |c| c.exhausted,
            ),
        ];
        for (name, help, get) in series {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for ((stage, engine), c) in &map {
                let _ = writeln!(
                    out,
                    "{name}{{stage=\"{}\",engine=\"{engine}\"}} {}",
                    stage.as_str(),
                    get(c)
                );
            }
        }
        let name = "switchboard_engine_first_result_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time to an engine's first result (transcript, audio, extraction).\n# TYPE {name} histogram"
        );
        for ((stage, engine), c) in &map {
            let labels = format!("stage=\"{}\",engine=\"{engine}\"", stage.as_str());
            let mut cumulative = 0;
            for (bound, n) in BUCKETS.iter().zip(c.latency_buckets) {
                cumulative += n;
                let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
            }
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", c.results);
            let _ = writeln!(out, "{name}_sum{{{labels}}} {}", c.latency_sum);
            let _ = writeln!(out, "{name}_count{{{labels}}} {}", c.results);
        }
        let name = "switchboard_engine_up";
        let _ = writeln!(
            out,
            "# HELP {name} 1 when the engine is in rotation, 0 while a failure keeps it out.\n# TYPE {name} gauge"
        );
        let now = Instant::now();
        for ((stage, engine), c) in &map {
            let up = c.down_until.is_none_or(|t| now >= t);
            let _ = writeln!(
                out,
                "{name}{{stage=\"{}\",engine=\"{engine}\"}} {}",
                stage.as_str(),
                u8::from(up)
            );
        }
    }
}

/// Where a chain sends what it observes: the process counters, and the
/// call's own record when there is one.
#[derive(Debug, Clone)]
pub struct Reporter {
    stats: Arc<EngineStats>,
    call: Option<mpsc::UnboundedSender<EngineReport>>,
}

impl Reporter {
    /// Counters only (no call record).
    pub fn detached(stats: Arc<EngineStats>) -> Reporter {
        Reporter { stats, call: None }
    }

    /// Counters plus a per-call channel the session reads.
    pub fn for_call(stats: Arc<EngineStats>) -> (Reporter, mpsc::UnboundedReceiver<EngineReport>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Reporter {
                stats,
                call: Some(tx),
            },
            rx,
        )
    }

    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    fn send(&self, stage: Stage, engine: &'static str, kind: ReportKind) {
        if let Some(tx) = &self.call {
            let _ = tx.send(EngineReport {
                stage,
                engine,
                kind,
            });
        }
    }

    pub fn first_result(&self, stage: Stage, engine: &'static str, latency: Duration) {
        self.stats.succeeded(stage, engine, latency);
        self.send(stage, engine, ReportKind::FirstResult(latency));
    }

    /// A result without a latency of its own (see [`ReportKind::Used`]).
    pub fn used(&self, stage: Stage, engine: &'static str) {
        self.stats.with(stage, engine, |c| {
            c.failures_in_row = 0;
            c.down_until = None;
        });
        self.send(stage, engine, ReportKind::Used);
    }

    /// A latency the session measured for `engine` (end of speech → STT
    /// final): counted in the histogram, not sent back to the call.
    pub fn observed(&self, stage: Stage, engine: &'static str, latency: Duration) {
        self.stats.succeeded(stage, engine, latency);
    }

    pub fn error(&self, stage: Stage, engine: &'static str, error: &ProviderError) {
        self.stats.failed(stage, engine, error);
        tracing::warn!(stage = stage.as_str(), engine, error = %error.message, retryable = error.retryable, "engine failed");
        self.send(
            stage,
            engine,
            ReportKind::Error {
                message: error.message.clone(),
                retryable: error.retryable,
            },
        );
    }

    pub fn fallback(&self, stage: Stage, from: &'static str, to: &'static str) {
        self.stats.with(stage, from, |c| c.fallbacks += 1);
        tracing::info!(stage = stage.as_str(), from, to, "engine fallback");
        self.send(stage, from, ReportKind::Fallback { to });
    }

    pub fn exhausted(&self, stage: Stage, last: &'static str) {
        self.stats.with(stage, last, |c| c.exhausted += 1);
        tracing::error!(stage = stage.as_str(), "every engine failed");
        self.send(stage, last, ReportKind::Exhausted);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_take_an_engine_out_for_a_while_and_success_restores_it() {
        let stats = EngineStats::new();
        let r = Reporter::detached(stats.clone());
        let now = Instant::now();
        assert!(!stats.is_down(Stage::Stt, "deepgram", now));
        r.error(
            Stage::Stt,
            "deepgram",
            &ProviderError::retryable("deepgram", "503"),
        );
        assert!(stats.is_down(Stage::Stt, "deepgram", Instant::now()));
        assert!(!stats.is_down(
            Stage::Stt,
            "deepgram",
            Instant::now() + COOLDOWN_BASE + Duration::from_millis(10)
        ));
        r.error(
            Stage::Stt,
            "deepgram",
            &ProviderError::retryable("deepgram", "429").with_retry_after(Duration::from_secs(60)),
        );
        assert!(stats.is_down(
            Stage::Stt,
            "deepgram",
            Instant::now() + Duration::from_secs(30)
        ));
        r.first_result(Stage::Stt, "deepgram", Duration::from_millis(80));
        assert!(!stats.is_down(Stage::Stt, "deepgram", Instant::now()));
    }

    #[test]
    fn renders_prometheus_series_per_engine() {
        let stats = EngineStats::new();
        let (r, mut rx) = Reporter::for_call(stats.clone());
        r.first_result(Stage::Tts, "openai", Duration::from_millis(300));
        r.error(Stage::Intent, "chat", &ProviderError::fatal("chat", "401"));
        r.fallback(Stage::Intent, "chat", "rules");
        let mut out = String::new();
        stats.render(&mut out);
        assert!(out.contains("switchboard_engine_errors_total{stage=\"intent\",engine=\"chat\"} 1"));
        assert!(
            out.contains("switchboard_engine_fallbacks_total{stage=\"intent\",engine=\"chat\"} 1")
        );
        assert!(out.contains(
            "switchboard_engine_first_result_seconds_bucket{stage=\"tts\",engine=\"openai\",le=\"0.5\"} 1"
        ));
        assert!(out.contains("switchboard_engine_up{stage=\"intent\",engine=\"chat\"} 0"));
        let kinds: Vec<ReportKind> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|r| r.kind)
            .collect();
        assert_eq!(kinds.len(), 3);
        assert_eq!(kinds[2], ReportKind::Fallback { to: "rules" });
    }
}
