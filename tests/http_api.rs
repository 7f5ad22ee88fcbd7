//! The JSON API: bearer auth, tasks (create, filter, edit, transitions,
//! audit trail), calls, JSON errors, and server-sent events.

mod support;

use std::time::Duration;

use axum::http::{header, StatusCode};
use chrono::Utc;
use futures::StreamExt;
use serde_json::{json, Value};
use support::{app, app_with, body_json, TestApp};
use switchboard::domain::Speaker;
use switchboard::store::{NewCall, NewTurn, Role, TaskFields, Transport};

/// A test app and a working API token.
async fn with_token() -> (TestApp, String) {
    let t = app().await;
    let token = t.api_token("ci").await;
    (t, token)
}

async fn create(t: &TestApp, token: &str, body: Value) -> Value {
    let resp = t
        .api(
            "POST",
            "/api/v1/tasks",
            Some(token),
            Some(&body.to_string()),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    body_json(resp).await
}

fn assert_error(v: &Value, code: &str, needle: &str) {
    assert_eq!(v["error"]["code"], code, "{v}");
    let msg = v["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains(needle), "`{msg}` lacks `{needle}`");
}

#[tokio::test]
async fn missing_or_bad_tokens_get_401_json() {
    let (t, _) = with_token().await;
    let resp = t.api("GET", "/api/v1/tasks", None, None).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.headers().contains_key(header::WWW_AUTHENTICATE));
    assert_error(&body_json(resp).await, "unauthorized", "sign in");
    let resp = t
        .api("GET", "/api/v1/tasks", Some("not-a-token"), None)
        .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_error(&body_json(resp).await, "unauthorized", "");
}

#[tokio::test]
async fn created_tokens_and_the_automation_token_work() {
    let t = app_with(|c| c.api_token = Some(switchboard::config::Secret::new("ops-secret"))).await;
    let token = t.api_token("zapier").await;
    let resp = t.api("GET", "/api/v1/tasks", Some(&token), None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let task = create(&t, "ops-secret", json!({"issue": "no heat"})).await;
    let reference = task["reference"].as_str().unwrap();
    // The audit trail names who acted.
    let uri = format!("/api/v1/tasks/{reference}/events");
    let events = body_json(t.api("GET", &uri, Some(&token), None).await).await;
    assert_eq!(events["events"][0]["actor"], "api:automation");
    let resp = t.api("GET", "/api/v1/tasks", Some("ops-secre"), None).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_browser_session_may_read_but_not_write() {
    let t = app().await;
    t.add_user("bo@example.org", "agent password", Role::Agent)
        .await;
    let b = t.sign_in("bo@example.org", "agent password").await;
    let resp = t.get("/api/v1/tasks", Some(&b.cookie)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let req = axum::http::Request::post("/api/v1/tasks")
        .header(header::COOKIE, &b.cookie)
        .header(header::CONTENT_TYPE, "application/json")
        .body(axum::body::Body::from("{}"))
        .unwrap();
    assert_eq!(t.send(req).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn create_validates_category_urgency_and_fields() {
    let (t, tok) = with_token().await;
    let task = create(
        &t,
        &tok,
        json!({"category": "Plumbing", "issue": "leaking tap", "urgency": "high",
               "caller_name": "Ann", "caller_number": "+15550100", "confidence": 0.8,
               "assignee": "bo@example.org"}),
    )
    .await;
    assert!(task["reference"].as_str().unwrap().starts_with("T-"));
    assert_eq!(task["status"], "new");
    assert_eq!(task["category"], "plumbing");
    assert_eq!(task["urgency"], "high");
    assert_eq!(task["assignee"], "bo@example.org");
    for key in [
        "location",
        "requested_time",
        "requested_at",
        "summary",
        "call_id",
        "created_at",
        "updated_at",
    ] {
        assert!(task.get(key).is_some(), "field {key} present");
    }
    let uri = format!("/api/v1/tasks/{}", task["reference"].as_str().unwrap());
    let fetched = body_json(t.api("GET", &uri, Some(&tok), None).await).await;
    assert_eq!(fetched, task, "GET returns what POST created");
    let resp = t
        .api("GET", "/api/v1/tasks/T-424242", Some(&tok), None)
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_error(
        &body_json(resp).await,
        "not_found",
        "task T-424242 not found",
    );

    let cases = [
        (
            json!({"category": "astrology"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown category `astrology`",
        ),
        (
            json!({"urgency": "whenever"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown variant `whenever`",
        ),
        (
            json!({"isue": "typo"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown field `isue`",
        ),
        (
            json!({"confidence": 3.0}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "confidence",
        ),
    ];
    for (body, status, needle) in cases {
        let resp = t
            .api("POST", "/api/v1/tasks", Some(&tok), Some(&body.to_string()))
            .await;
        assert_eq!(resp.status(), status, "{body}");
        assert_error(&body_json(resp).await, "unprocessable", needle);
    }
    let resp = t
        .api("POST", "/api/v1/tasks", Some(&tok), Some("{\"issue\": "))
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_error(&body_json(resp).await, "bad_request", "malformed JSON: EOF");
}

#[tokio::test]
async fn list_filters_sorts_and_pages() {
    let (t, tok) = with_token().await;
    let a = create(
        &t,
        &tok,
        json!({"category": "plumbing", "issue": "burst pipe", "urgency": "emergency"}),
    )
    .await;
    create(
        &t,
        &tok,
        json!({"category": "electrical", "issue": "no power", "urgency": "low"}),
    )
    .await;
    let c = create(
        &t,
        &tok,
        json!({"category": "plumbing", "issue": "slow drain"}),
    )
    .await;
    let c_ref = c["reference"].as_str().unwrap();
    let body = json!({"to": "in_progress"}).to_string();
    let uri = format!("/api/v1/tasks/{c_ref}/transitions");
    assert_eq!(
        t.api("POST", &uri, Some(&tok), Some(&body)).await.status(),
        StatusCode::OK
    );

    let get = |q: &'static str| {
        let t = &t;
        let tok = tok.clone();
        async move {
            body_json(
                t.api("GET", &format!("/api/v1/tasks{q}"), Some(&tok), None)
                    .await,
            )
            .await
        }
    };
    let all = get("").await;
    assert_eq!(all["total"], 3);
    let plumbing = get("?category=plumbing").await;
    assert_eq!(plumbing["total"], 2);
    let started = get("?status=in_progress").await;
    assert_eq!(started["total"], 1);
    assert_eq!(started["tasks"][0]["reference"], c_ref);
    let text = get("?q=BURST").await;
    assert_eq!(text["tasks"][0]["reference"], a["reference"]);
    assert_eq!(text["total"], 1);
    let urgent = get("?sort=urgency&limit=1").await;
    assert_eq!(urgent["tasks"].as_array().unwrap().len(), 1);
    assert_eq!(urgent["total"], 3, "total ignores paging");
    assert_eq!(urgent["tasks"][0]["urgency"], "emergency");
    let page2 = get("?sort=oldest&limit=2&offset=2").await;
    assert_eq!(page2["tasks"][0]["reference"], c_ref);

    let resp = t
        .api("GET", "/api/v1/tasks?status=done", Some(&tok), None)
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_error(&body_json(resp).await, "bad_request", "`status`");
}

#[tokio::test]
async fn patch_edits_fields_and_assignee_with_an_audit_trail() {
    let (t, tok) = with_token().await;
    let task = create(&t, &tok, json!({"issue": "drip"})).await;
    let uri = format!("/api/v1/tasks/{}", task["reference"].as_str().unwrap());
    let body = json!({"issue": "steady drip", "location": "12 High St", "assignee": "bo", "note": "caller rang back"});
    let resp = t
        .api("PATCH", &uri, Some(&tok), Some(&body.to_string()))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let v = body_json(resp).await;
    assert_eq!(
        (v["issue"].as_str(), v["location"].as_str()),
        (Some("steady drip"), Some("12 High St"))
    );
    assert_eq!(v["assignee"], "bo");
    let events = body_json(
        t.api("GET", &format!("{uri}/events"), Some(&tok), None)
            .await,
    )
    .await;
    let fields: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["status", "issue", "location", "assignee"]);
    assert_eq!(events["events"][1]["note"], "caller rang back");
    assert_eq!(events["events"][1]["from_value"], "drip");
    assert_eq!(events["events"][1]["actor"], "token:ci");

    let resp = t
        .api(
            "PATCH",
            &uri,
            Some(&tok),
            Some(&json!({"assignee": null}).to_string()),
        )
        .await;
    assert_eq!(body_json(resp).await["assignee"], Value::Null);
    let resp = t
        .api(
            "PATCH",
            &uri,
            Some(&tok),
            Some(&json!({"status": "closed"}).to_string()),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_error(
        &body_json(resp).await,
        "unprocessable",
        "unknown field `status`",
    );
    let resp = t
        .api("PATCH", "/api/v1/tasks/T-9999", Some(&tok), Some("{}"))
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_error(&body_json(resp).await, "not_found", "T-9999");
}

#[tokio::test]
async fn illegal_transition_is_409_with_the_reason() {
    let (t, tok) = with_token().await;
    let task = create(&t, &tok, json!({"issue": "locked out"})).await;
    let uri = format!(
        "/api/v1/tasks/{}/transitions",
        task["reference"].as_str().unwrap()
    );
    let close = json!({"to": "closed", "note": "locksmith sent"}).to_string();
    let resp = t.api("POST", &uri, Some(&tok), Some(&close)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let v = body_json(resp).await;
    assert_eq!(v["status"], "closed");
    assert!(v["closed_at"].is_string());

    let escalate = json!({"to": "escalated"}).to_string();
    let resp = t.api("POST", &uri, Some(&tok), Some(&escalate)).await;
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    assert_error(
        &body_json(resp).await,
        "conflict",
        "cannot move a task from closed to escalated",
    );
    let resp = t
        .api(
            "POST",
            &uri,
            Some(&tok),
            Some(&json!({"to": "new"}).to_string()),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    let resp = t
        .api(
            "POST",
            &uri,
            Some(&tok),
            Some(&json!({"to": "done"}).to_string()),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_error(
        &body_json(resp).await,
        "unprocessable",
        "unknown status `done`",
    );
    let stored = t
        .store
        .task(task["reference"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(
        stored.status.as_str(),
        "closed",
        "refused moves change nothing"
    );
}

#[tokio::test]
async fn calls_by_carrier_id_and_with_transcript_and_task() {
    let (t, tok) = with_token().await;
    let call = t
        .store
        .create_call(NewCall {
            transport: Transport::Twilio,
            external_id: "CA0123".into(),
            from_number: "+15550100".into(),
            to_number: "+15550199".into(),
            started_at: Utc::now(),
        })
        .await
        .unwrap();
    for (speaker, text) in [
        (Speaker::Agent, "How can I help?"),
        (Speaker::Caller, "My boiler is out"),
    ] {
        let turn = NewTurn {
            speaker,
            text: text.into(),
            start_ms: None,
            end_ms: None,
            confidence: None,
            heard_chars: None,
        };
        t.store
            .append_turn(call.id, Utc::now(), turn)
            .await
            .unwrap();
    }
    let fields = TaskFields {
        issue: Some("boiler out".into()),
        ..Default::default()
    };
    let task = t
        .store
        .create_task(Some(call.id), fields, "system")
        .await
        .unwrap();

    let found = body_json(
        t.api("GET", "/api/v1/calls?external_id=CA0123", Some(&tok), None)
            .await,
    )
    .await;
    assert_eq!(found["calls"].as_array().unwrap().len(), 1);
    assert_eq!(found["calls"][0]["id"], call.id);
    let none = body_json(
        t.api("GET", "/api/v1/calls?external_id=CAnope", Some(&tok), None)
            .await,
    )
    .await;
    assert_eq!(none["calls"].as_array().unwrap().len(), 0);

    let v = body_json(
        t.api(
            "GET",
            &format!("/api/v1/calls/{}", call.id),
            Some(&tok),
            None,
        )
        .await,
    )
    .await;
    assert_eq!(v["external_id"], "CA0123");
    assert_eq!(v["transcript"][1]["speaker"], "caller");
    assert_eq!(v["transcript"][1]["text"], "My boiler is out");
    assert!(v["transcript"][0]["at"].is_string());
    assert_eq!(v["task"]["reference"], task.reference.as_str());

    for uri in [
        "/api/v1/calls/999",
        "/api/v1/calls/abc",
        "/api/v1/nothing-here",
    ] {
        let resp = t.api("GET", uri, Some(&tok), None).await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{uri}");
        assert_error(&body_json(resp).await, "not_found", "not found");
    }
}

#[tokio::test]
async fn events_stream_delivers_task_created() {
    let (t, tok) = with_token().await;
    let resp = t.api("GET", "/api/v1/events", Some(&tok), None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "text/event-stream");
    let task = t
        .store
        .create_task(
            None,
            TaskFields {
                issue: Some("wasps".into()),
                ..Default::default()
            },
            "system",
        )
        .await
        .unwrap();
    let mut body = resp.into_body().into_data_stream();
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !seen.contains("\n\n") {
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .expect("an event before the deadline")
            .expect("stream open")
            .expect("chunk");
        seen.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert!(seen.starts_with("event: task_created\n"), "{seen}");
    let data = seen.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
    let v: Value = serde_json::from_str(data).unwrap();
    assert_eq!(v["reference"], task.reference.as_str());
    assert_eq!(v["status"], "new");
}
