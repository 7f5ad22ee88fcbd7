//! Health, readiness, metrics, and serving over a real socket: graceful
//! shutdown drains an open event stream and `run` returns.

mod support;

use std::time::Duration;

use axum::http::StatusCode;
use futures::StreamExt;
use support::{app, body_json, body_text};
use switchboard::domain::TaskStatus;
use switchboard::store::TaskFields;

#[tokio::test]
async fn healthz_and_readyz_answer() {
    let t = app().await;
    let resp = t.get("/healthz", None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(body_text(resp).await, "ok");
    let resp = t.get("/readyz", None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(body_json(resp).await["database"], "ok");
}

#[tokio::test]
async fn readyz_is_503_with_a_reason_when_the_database_is_gone() {
    let t = app().await;
    t.store.close().await;
    let resp = t.get("/readyz", None).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let v = body_json(resp).await;
    assert_eq!(v["status"], "unavailable");
    assert!(
        v["reason"]
            .as_str()
            .unwrap()
            .contains("database unreachable"),
        "{v}"
    );
    // Liveness does not depend on the database.
    assert_eq!(t.get("/healthz", None).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn readyz_is_503_while_shutting_down() {
    let t = app().await;
    t.state.shutdown().cancel();
    let resp = t.get("/readyz", None).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body_json(resp).await["reason"], "shutting down");
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_tasks_by_status() {
    let t = app().await;
    for _ in 0..3 {
        t.get("/healthz", None).await;
    }
    t.get("/api/v1/tasks/T-1001", None).await;
    let fields = TaskFields {
        issue: Some("x".into()),
        ..Default::default()
    };
    let task = t
        .store
        .create_task(None, fields.clone(), "system")
        .await
        .unwrap();
    t.store.create_task(None, fields, "system").await.unwrap();
    t.store
        .transition_task(&task.reference, TaskStatus::Escalated, "system", None)
        .await
        .unwrap();
    t.state
        .metrics()
        .calls_active()
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);

    let resp = t.get("/metrics", None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = body_text(resp).await;
    assert!(
        text.contains(
            "switchboard_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 3"
        ),
        "{text}"
    );
    // The route label is the pattern, not the raw path.
    assert!(
        text.contains("route=\"/api/v1/tasks/{reference}\",status=\"401\"} 1"),
        "{text}"
    );
    assert!(text.contains(
        "switchboard_http_request_duration_seconds_count{method=\"GET\",route=\"/healthz\"} 3"
    ));
    assert!(text.contains("switchboard_tasks{status=\"new\"} 1"));
    assert!(text.contains("switchboard_tasks{status=\"escalated\"} 1"));
    assert!(text.contains("switchboard_tasks{status=\"closed\"} 0"));
    assert!(text.contains("switchboard_calls_active 1"));
}

#[tokio::test]
async fn run_serves_then_drains_and_returns_on_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = switchboard::config::Config::defaults();
    let db = format!("sqlite://{}", dir.path().join("s.db").display());
    config.database_url = switchboard::config::Secret::new(db);
    config.api_token = Some(switchboard::config::Secret::new("t0ken"));
    config.sip.addr = None;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(switchboard::run(config, listener, async move {
        let _ = stop_rx.await;
    }));

    let client = reqwest::Client::new();
    let health = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.text().await.unwrap(), "ok");
    // An open event stream is an in-flight request that must end at shutdown.
    let events = client
        .get(format!("{base}/api/v1/events"))
        .bearer_auth("t0ken")
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), reqwest::StatusCode::OK);
    let mut stream = events.bytes_stream();

    stop_tx.send(()).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => panic!("event stream still open 10 s after shutdown"),
            Ok(None) | Ok(Some(Err(_))) => break,
            Ok(Some(Ok(_keepalive))) => continue,
        }
    }
    let result = tokio::time::timeout_at(deadline, server)
        .await
        .expect("run returned before the deadline")
        .expect("run task did not panic");
    assert!(result.is_ok(), "{result:?}");
    // The first start created the admin account.
    let store = switchboard::store::Store::open(
        &format!("sqlite://{}", dir.path().join("s.db").display()),
        switchboard::events::Bus::new(),
        "n",
    )
    .await
    .unwrap();
    assert!(store.user_by_email("admin").await.unwrap().is_some());
}
