//! A small Prometheus registry for the web layer, written here because it
//! needs four series and no dynamic registration: request counts by
//! (method, route, status), a latency histogram by (method, route), the live
//! call gauge (fed by the session layer through [`Metrics::calls_active`])
//! and task counts read from the store at scrape time. Also the middleware
//! that opens one tracing span per request and records these series.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use super::AppState;
use crate::domain::TaskStatus;
use crate::providers::report::EngineStats;

/// Upper bounds (seconds) of the latency histogram's buckets.
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Default, Clone)]
struct Histogram {
    /// Per bucket (not cumulative); rendered cumulatively.
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, secs: f64) {
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.counts[i] += 1;
        }
        self.count += 1;
        self.sum += secs;
    }
}

type RequestKey = (String, String, u16);
type RouteKey = (String, String);

#[derive(Default)]
struct Series {
    requests: BTreeMap<RequestKey, u64>,
    latency: BTreeMap<RouteKey, Histogram>,
}

pub struct Metrics {
    series: Mutex<Series>,
    calls_active: Arc<AtomicI64>,
    engines: Arc<EngineStats>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics {
            series: Mutex::new(Series::default()),
            calls_active: Arc::new(AtomicI64::new(0)),
            engines: EngineStats::new(),
        }
    }

    /// The engine counters the calls' engine chains write to.
    pub fn engine_stats(&self) -> Arc<EngineStats> {
        self.engines.clone()
    }

    /// The live-call gauge; the session layer increments and decrements it.
    pub fn calls_active(&self) -> Arc<AtomicI64> {
        self.calls_active.clone()
    }

    pub fn observe_request(&self, method: &str, route: &str, status: u16, secs: f64) {
        let method = known_method(method);
        let mut s = self.series.lock().unwrap_or_else(|p| p.into_inner());
        *s.requests
            .entry((method.to_string(), route.to_string(), status))
            .or_insert(0) += 1;
        s.latency
            .entry((method.to_string(), route.to_string()))
            .or_default()
            .observe(secs);
    }

    /// The Prometheus text exposition, with task counts supplied by the caller.
    pub fn render(&self, tasks: &[(TaskStatus, i64)]) -> String {
        let (requests, latency) = {
            let s = self.series.lock().unwrap_or_else(|p| p.into_inner());
            (s.requests.clone(), s.latency.clone())
        };
        let mut out = String::new();
        header(
            &mut out,
            "switchboard_http_requests_total",
            "counter",
            "HTTP requests served.",
        );
        for ((m, r, st), n) in &requests {
            let _ = writeln!(
                out,
                "switchboard_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{st}\"}} {n}",
                esc(m),
                esc(r)
            );
        }
        header(
            &mut out,
            "switchboard_http_request_duration_seconds",
            "histogram",
            "HTTP request latency.",
        );
        for ((m, r), h) in &latency {
            render_histogram(&mut out, &esc(m), &esc(r), h);
        }
        header(&mut out, "switchboard_tasks", "gauge", "Tasks by status.");
        for (status, n) in tasks {
            let _ = writeln!(out, "switchboard_tasks{{status=\"{status}\"}} {n}");
        }
        header(
            &mut out,
            "switchboard_calls_active",
            "gauge",
            "Calls in progress on this node.",
        );
        let _ = writeln!(
            out,
            "switchboard_calls_active {}",
            self.calls_active.load(Ordering::Relaxed)
        );
        self.engines.render(&mut out);
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn render_histogram(out: &mut String, m: &str, r: &str, h: &Histogram) {
    let name = "switchboard_http_request_duration_seconds";
    let mut cumulative = 0;
    for (bound, n) in BUCKETS.iter().zip(h.counts.iter()) {
        cumulative += n;
        let _ = writeln!(
            out,
            "{name}_bucket{{method=\"{m}\",route=\"{r}\",le=\"{bound}\"}} {cumulative}"
        );
    }
    let _ = writeln!(
        out,
        "{name}_bucket{{method=\"{m}\",route=\"{r}\",le=\"+Inf\"}} {}",
        h.count
    );
    let _ = writeln!(out, "{name}_sum{{method=\"{m}\",route=\"{r}\"}} {}", h.sum);
    let _ = writeln!(
        out,
        "{name}_count{{method=\"{m}\",route=\"{r}\"}} {}",
        h.count
    );
}

/// Label values escaped as the text format requires.
fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Keeps the method label bounded: extension methods count as `OTHER`.
fn known_method(m: &str) -> &str {
    match m {
        "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS" => m,
        _ => "OTHER",
    }
}

/// Middleware: one span per request (method, path, status, latency) and the
/// request series. The route label is the matched pattern, never the raw
/// path, so label cardinality stays bounded.
pub async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let span = tracing::info_span!(
        "http",
        method = %method,
        path = %path,
        status = tracing::field::Empty,
        latency_ms = tracing::field::Empty
    );
    let response = next.run(req).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    span.record("status", status);
    span.record("latency_ms", elapsed.as_secs_f64() * 1000.0);
    span.in_scope(|| {
        if route == "/healthz" || route == "/metrics" {
            tracing::debug!("request served");
        } else {
            tracing::info!("request served");
        }
    });
    state
        .metrics()
        .observe_request(&method, &route, status, elapsed.as_secs_f64());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_cumulative_buckets_and_gauges() {
        let m = Metrics::new();
        m.observe_request("GET", "/api/v1/tasks", 200, 0.003);
        m.observe_request("GET", "/api/v1/tasks", 200, 0.2);
        m.observe_request("BREW", "/x\"y", 404, 20.0);
        m.calls_active().fetch_add(2, Ordering::Relaxed);
        let text = m.render(&[(TaskStatus::New, 4), (TaskStatus::Closed, 1)]);
        assert!(text.contains(
            "switchboard_http_requests_total{method=\"GET\",route=\"/api/v1/tasks\",status=\"200\"} 2"
        ));
        assert!(text.contains("method=\"OTHER\",route=\"/x\\\"y\",status=\"404\"} 1"));
        let b = "switchboard_http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/v1/tasks\"";
        assert!(text.contains(&format!("{b},le=\"0.005\"}} 1")));
        assert!(text.contains(&format!("{b},le=\"0.1\"}} 1")));
        assert!(text.contains(&format!("{b},le=\"0.25\"}} 2")));
        assert!(text.contains(&format!("{b},le=\"+Inf\"}} 2")));
        // 20 s is past every finite bucket but still counted.
        assert!(text.contains("route=\"/x\\\"y\",le=\"10\"} 0"));
        assert!(text.contains("route=\"/x\\\"y\",le=\"+Inf\"} 1"));
        assert!(text.contains("switchboard_tasks{status=\"new\"} 4"));
        assert!(text.contains("switchboard_calls_active 2"));
        assert!(text.contains("# TYPE switchboard_http_request_duration_seconds histogram"));
    }
}
