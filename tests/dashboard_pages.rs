//! The admin dashboard pages, driven through the router without a socket:
//! queue filters and counts, CSV export, the task page and its forms (CSRF,
//! closing with a note, illegal moves), calls and statistics.

use axum::body::Body;
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::Router;
use chrono::{Duration, Utc};
use switchboard::config::Config;
use switchboard::domain::{Speaker, TaskStatus, Urgency};
use switchboard::events::Bus;
use switchboard::store::{NewCall, NewTurn, Role, Store, Task, TaskFields, Transport, TurnLatency};
use switchboard::web::auth::token_hash;
use switchboard::web::{router, AppState};
use tempfile::TempDir;
use tower::ServiceExt;

struct App {
    router: Router,
    store: Store,
    cookie: String,
    csrf: String,
    _dir: TempDir,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Reply {
    fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

async fn app() -> App {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("sb.db").display());
    let store = Store::open(&url, Bus::new(), "test").await.expect("store");
    let user = store
        .create_user("agent@example.com", "not-a-real-hash", Role::Agent)
        .await
        .expect("user");
    let token = "test-session-token";
    let csrf = "test-csrf-token";
    store
        .create_session(
            &token_hash(token),
            user.id,
            csrf,
            Utc::now() + Duration::hours(1),
        )
        .await
        .expect("session");
    let mut config = Config::defaults();
    config.recordings_dir = dir.path().join("rec");
    App {
        router: router(AppState::new(config, store.clone())),
        store,
        cookie: format!("sb_session={token}"),
        csrf: csrf.to_string(),
        _dir: dir,
    }
}

impl App {
    async fn send(&self, req: Request<Body>) -> Reply {
        let resp = self.router.clone().oneshot(req).await.expect("router");
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), 8 << 20)
            .await
            .expect("body");
        Reply {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    async fn get(&self, path: &str) -> Reply {
        let req = Request::get(path)
            .header(header::COOKIE, &self.cookie)
            .body(Body::empty())
            .expect("request");
        self.send(req).await
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Reply {
        let body = serde_urlencoded::to_string(form).expect("form");
        let req = Request::post(path)
            .header(header::COOKIE, &self.cookie)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .expect("request");
        self.send(req).await
    }

    async fn task(&self, category: &str, issue: &str, urgency: Urgency) -> Task {
        let fields = TaskFields {
            category: Some(category.into()),
            issue: Some(issue.into()),
            urgency: Some(urgency),
            caller_name: Some("Dana Reyes".into()),
            caller_number: Some("+15551230000".into()),
            ..TaskFields::default()
        };
        self.store
            .create_task(None, fields, "test")
            .await
            .expect("task")
    }
}

/// The number shown on a status tab (`data-count="KEY">N<`).
fn tab_count(html: &str, key: &str) -> i64 {
    let marker = format!("data-count=\"{key}\">");
    let start = html.find(&marker).expect("tab present") + marker.len();
    let end = start + html[start..].find('<').expect("tab end");
    html[start..end].parse().expect("a number")
}

fn has_row(html: &str, reference: &str) -> bool {
    html.contains(&format!("data-ref=\"{reference}\""))
}

#[tokio::test]
async fn queue_filters_and_counts() {
    let app = app().await;
    let p1 = app
        .task("plumbing", "burst pipe in kitchen", Urgency::Emergency)
        .await;
    let p2 = app.task("plumbing", "dripping tap", Urgency::Low).await;
    let p3 = app.task("plumbing", "blocked drain", Urgency::Normal).await;
    let e1 = app
        .task("electrical", "no power upstairs", Urgency::High)
        .await;
    app.store
        .transition_task(&p2.reference, TaskStatus::Closed, "test", Some("fixed"))
        .await
        .unwrap();
    app.store
        .transition_task(&e1.reference, TaskStatus::Escalated, "test", None)
        .await
        .unwrap();

    let all = app.get("/admin/tasks").await;
    assert_eq!(all.status, StatusCode::OK);
    assert!(all.body.contains("<!doctype html>"));
    assert_eq!(tab_count(&all.body, "all"), 4);
    assert_eq!(tab_count(&all.body, "new"), 2);
    assert_eq!(tab_count(&all.body, "closed"), 1);
    assert_eq!(tab_count(&all.body, "escalated"), 1);
    assert_eq!(tab_count(&all.body, "in_progress"), 0);

    let plumbing = app.get("/admin/tasks?category=plumbing").await;
    assert_eq!(plumbing.status, StatusCode::OK);
    for t in [&p1, &p2, &p3] {
        assert!(
            has_row(&plumbing.body, &t.reference),
            "{} missing",
            t.reference
        );
    }
    assert!(!has_row(&plumbing.body, &e1.reference));
    // Tabs count within the other filters.
    assert_eq!(tab_count(&plumbing.body, "all"), 3);
    assert_eq!(tab_count(&plumbing.body, "escalated"), 0);
    // A status tab keeps the category.
    assert!(plumbing
        .body
        .contains("href=\"/admin/tasks?status=closed&#38;category=plumbing\""));

    let new_plumbing = app.get("/admin/tasks?category=plumbing&status=new").await;
    assert!(has_row(&new_plumbing.body, &p1.reference));
    assert!(!has_row(&new_plumbing.body, &p2.reference));

    let text = app.get("/admin/tasks?q=DRAIN").await;
    assert!(has_row(&text.body, &p3.reference));
    assert!(!has_row(&text.body, &p1.reference));

    let urgent = app.get("/admin/tasks?urgency=emergency").await;
    assert!(has_row(&urgent.body, &p1.reference));
    assert!(!has_row(&urgent.body, &p3.reference));

    // Urgency sort puts the emergency first, the low one last.
    let sorted = app.get("/admin/tasks?sort=urgency").await.body;
    let pos = |r: &str| sorted.find(&format!("data-ref=\"{r}\"")).unwrap();
    assert!(pos(&p1.reference) < pos(&e1.reference));
    assert!(pos(&e1.reference) < pos(&p3.reference));
    assert!(pos(&p3.reference) < pos(&p2.reference));

    for bad in [
        "status=done",
        "urgency=meh",
        "sort=random",
        "category=nope",
        "page=0",
    ] {
        let r = app.get(&format!("/admin/tasks?{bad}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
    }
}

#[tokio::test]
async fn queue_paginates_by_25_and_serves_a_fragment() {
    let app = app().await;
    let mut refs = Vec::new();
    for i in 0..30 {
        refs.push(
            app.task("cleaning", &format!("job {i}"), Urgency::Normal)
                .await
                .reference,
        );
    }
    let first = app.get("/admin/tasks").await.body;
    assert_eq!(first.matches("data-ref=").count(), 25);
    assert!(first.contains("page 1 of 2"));
    assert!(first.contains("href=\"/admin/tasks?page=2\""));
    // Newest first: the last created is on page 1, the first created on page 2.
    assert!(has_row(&first, &refs[29]));
    let second = app.get("/admin/tasks?page=2").await.body;
    assert_eq!(second.matches("data-ref=").count(), 5);
    assert!(has_row(&second, &refs[0]));

    let partial = app.get("/admin/tasks?partial=1&page=2").await;
    assert_eq!(partial.status, StatusCode::OK);
    assert!(!partial.body.contains("<html"));
    assert_eq!(partial.body.matches("data-ref=").count(), 5);
    assert_eq!(tab_count(&partial.body, "all"), 30);
}

#[tokio::test]
async fn csv_export_has_header_quoting_and_applies_the_filter() {
    let app = app().await;
    let tricky = app
        .task("plumbing", "leak, under \"the\" sink", Urgency::High)
        .await;
    let plain = app
        .task("plumbing", "boiler service", Urgency::Normal)
        .await;
    let other = app.task("roofing", "missing tiles", Urgency::Normal).await;

    let r = app.get("/admin/tasks.csv?category=plumbing").await;
    assert_eq!(r.status, StatusCode::OK);
    let ctype = r.headers[header::CONTENT_TYPE].to_str().unwrap();
    assert!(ctype.starts_with("text/csv"), "{ctype}");
    let disp = r.headers[header::CONTENT_DISPOSITION].to_str().unwrap();
    assert!(disp.starts_with("attachment; filename=\"tasks-"), "{disp}");

    let lines: Vec<&str> = r.body.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(
        lines[0],
        "reference,status,urgency,category,issue,location,requested_time,caller_name,caller_number,assignee,confidence,summary,call_id,created_at,updated_at,closed_at"
    );
    assert_eq!(lines.len(), 3, "header + two plumbing rows: {}", r.body);
    // Newest first, as the queue.
    assert!(lines[1].starts_with(&format!(
        "{},new,normal,plumbing,boiler service,",
        plain.reference
    )));
    assert!(lines[2].starts_with(&format!(
        "{},new,high,plumbing,\"leak, under \"\"the\"\" sink\",",
        tricky.reference
    )));
    assert!(lines[2].contains(",Dana Reyes,+15551230000,"));
    assert!(!r.body.contains(&other.reference));

    // Filters the page does not paginate: every matching row is exported.
    for i in 0..30 {
        app.task("cleaning", &format!("job {i}"), Urgency::Low)
            .await;
    }
    let all = app.get("/admin/tasks.csv?category=cleaning").await.body;
    assert_eq!(all.split("\r\n").filter(|l| !l.is_empty()).count(), 31);
}

async fn task_with_call(app: &App) -> Task {
    let call = app
        .store
        .create_call(NewCall {
            transport: Transport::Twilio,
            external_id: "CA0001".into(),
            from_number: "+15551230000".into(),
            to_number: "+15559990000".into(),
            started_at: Utc::now(),
        })
        .await
        .unwrap();
    let turns = [
        (Speaker::Agent, "Thanks for calling, how can I help?"),
        (Speaker::Caller, "My basement is flooding & the pipe burst"),
    ];
    for (i, (speaker, text)) in turns.into_iter().enumerate() {
        app.store
            .append_turn(
                call.id,
                Utc::now(),
                NewTurn {
                    speaker,
                    text: text.into(),
                    start_ms: Some(i as i64 * 4000),
                    end_ms: None,
                    confidence: None,
                    heard_chars: None,
                },
            )
            .await
            .unwrap();
    }
    let fields = TaskFields {
        category: Some("plumbing".into()),
        issue: Some("burst pipe".into()),
        ..TaskFields::default()
    };
    app.store
        .create_task(Some(call.id), fields, "call")
        .await
        .unwrap()
}

#[tokio::test]
async fn task_page_shows_fields_transcript_audit_and_only_legal_moves() {
    let app = app().await;
    let task = task_with_call(&app).await;
    app.store
        .add_task_note(
            &task.reference,
            "user:someone@example.com",
            "called back <b>twice</b>",
        )
        .await
        .unwrap();

    let r = app.get(&format!("/admin/tasks/{}", task.reference)).await;
    assert_eq!(r.status, StatusCode::OK);
    let html = r.body;
    assert!(html.contains("<span class=\"who\">Receptionist:</span>Thanks for calling"));
    assert!(html.contains(
        "<span class=\"who\">Caller:</span>My basement is flooding &#38; the pipe burst"
    ));
    assert!(html.contains("burst pipe"));
    // The audit trail: creation and the note, escaped.
    assert!(html.contains("<td>call</td><td>status</td>"));
    assert!(html.contains("called back &#60;b&#62;twice&#60;/b&#62;"));
    // From new: start, escalate, close — never "reopen".
    assert!(html.contains("class=\"move-in_progress\""));
    assert!(html.contains("class=\"move-escalated\""));
    assert!(html.contains("class=\"move-closed\""));
    assert!(html.contains(">Start</button>"));
    assert!(!html.contains(">Reopen</button>"));
    assert!(html.contains(&format!("value=\"{}\"", app.csrf)));

    let missing = app.get("/admin/tasks/T-9999").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn closing_with_a_note_redirects_and_writes_the_event() {
    let app = app().await;
    let task = app.task("locksmith", "locked out", Urgency::High).await;
    let path = format!("/admin/tasks/{}/transition", task.reference);

    let no_note = app
        .post(
            &path,
            &[("_csrf", &app.csrf), ("to", "closed"), ("note", "  ")],
        )
        .await;
    assert_eq!(no_note.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(no_note.body.contains("resolution note"));
    assert_eq!(
        app.store.task(&task.reference).await.unwrap().status,
        TaskStatus::New
    );

    let r = app
        .post(
            &path,
            &[
                ("_csrf", &app.csrf),
                ("to", "closed"),
                ("note", "Let the caller in, lock replaced"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        r.location(),
        format!("/admin/tasks/{}?flash=closed", task.reference)
    );
    let after = app.store.task(&task.reference).await.unwrap();
    assert_eq!(after.status, TaskStatus::Closed);
    let events = app.store.task_events(&task.reference).await.unwrap();
    let last = events.last().unwrap();
    assert_eq!(last.field, "status");
    assert_eq!(last.from_value.as_deref(), Some("new"));
    assert_eq!(last.to_value.as_deref(), Some("closed"));
    assert_eq!(last.actor, "user:agent@example.com");
    assert_eq!(
        last.note.as_deref(),
        Some("Let the caller in, lock replaced")
    );

    let page = app.get(r.location()).await.body;
    assert!(page.contains("Task closed."));
    assert!(page.contains("Let the caller in, lock replaced"));
    assert!(page.contains(">Reopen</button>"));
    assert!(!page.contains("class=\"move-escalated\""));
}

#[tokio::test]
async fn form_posts_without_the_right_csrf_token_are_refused() {
    let app = app().await;
    let task = app.task("hvac", "no heat", Urgency::Normal).await;
    let base = format!("/admin/tasks/{}", task.reference);
    let attempts: [(&str, Vec<(&str, &str)>); 4] = [
        ("/transition", vec![("to", "in_progress")]),
        ("/assign", vec![("assignee", "me")]),
        ("/note", vec![("note", "hello")]),
        ("/edit", vec![("urgency", "high"), ("issue", "changed")]),
    ];
    for (suffix, form) in attempts {
        let missing = app.post(&format!("{base}{suffix}"), &form).await;
        assert_eq!(
            missing.status,
            StatusCode::FORBIDDEN,
            "{suffix} without token"
        );
        let mut wrong = form.clone();
        wrong.push(("_csrf", "not-the-token"));
        let wrong = app.post(&format!("{base}{suffix}"), &wrong).await;
        assert_eq!(
            wrong.status,
            StatusCode::FORBIDDEN,
            "{suffix} with wrong token"
        );
    }
    // Nothing was written beyond the creation event.
    assert_eq!(
        app.store.task_events(&task.reference).await.unwrap().len(),
        1
    );
    assert_eq!(
        app.store.task(&task.reference).await.unwrap().status,
        TaskStatus::New
    );
}

#[tokio::test]
async fn an_illegal_move_shows_the_409_page() {
    let app = app().await;
    let task = app.task("roofing", "leak", Urgency::Normal).await;
    app.store
        .transition_task(&task.reference, TaskStatus::Closed, "test", Some("done"))
        .await
        .unwrap();
    let r = app
        .post(
            &format!("/admin/tasks/{}/transition", task.reference),
            &[("_csrf", &app.csrf), ("to", "escalated")],
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(
        r.body
            .contains("cannot move a task from closed to escalated"),
        "{}",
        r.body
    );
    assert_eq!(
        app.store.task(&task.reference).await.unwrap().status,
        TaskStatus::Closed
    );

    let bad = app
        .post(
            &format!("/admin/tasks/{}/transition", task.reference),
            &[("_csrf", &app.csrf), ("to", "done")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn assign_note_and_edit_write_audit_events() {
    let app = app().await;
    let task = app.task("carpentry", "door sticks", Urgency::Low).await;
    let base = format!("/admin/tasks/{}", task.reference);

    let r = app
        .post(
            &format!("{base}/assign"),
            &[("_csrf", &app.csrf), ("assignee", "me")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let r = app
        .post(
            &format!("{base}/note"),
            &[("_csrf", &app.csrf), ("note", "bring a plane")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let edit = [
        ("_csrf", app.csrf.as_str()),
        ("category", "carpentry"),
        ("urgency", "high"),
        ("issue", "front door sticks"),
        ("location", "12 Elm St"),
        ("requested_time", ""),
        ("caller_name", "Dana Reyes"),
        ("caller_number", "+15551230000"),
        ("summary", ""),
    ];
    let r = app.post(&format!("{base}/edit"), &edit).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(r.location().ends_with("flash=edited"));

    let t = app.store.task(&task.reference).await.unwrap();
    assert_eq!(t.assignee.as_deref(), Some("agent@example.com"));
    assert_eq!(t.urgency, Urgency::High);
    assert_eq!(t.issue.as_deref(), Some("front door sticks"));
    assert_eq!(t.location.as_deref(), Some("12 Elm St"));
    assert_eq!(
        t.summary, None,
        "a blank field over a blank one stays unset"
    );
    let fields: Vec<String> = app
        .store
        .task_events(&task.reference)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.field)
        .collect();
    assert_eq!(
        fields,
        ["status", "assignee", "note", "issue", "location", "urgency"]
    );

    // The same form again changes nothing.
    let again = app.post(&format!("{base}/edit"), &edit).await;
    assert!(again.location().ends_with("flash=unchanged"));
    let bad = [
        ("_csrf", app.csrf.as_str()),
        ("category", "astrology"),
        ("urgency", "low"),
    ];
    assert_eq!(
        app.post(&format!("{base}/edit"), &bad).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
}

#[tokio::test]
async fn calls_list_and_call_page() {
    let app = app().await;
    let task = task_with_call(&app).await;
    let call_id = task.call_id.unwrap();
    app.store
        .end_call(
            call_id,
            Utc::now() + Duration::seconds(95),
            "caller_hung_up",
        )
        .await
        .unwrap();
    app.store
        .append_call_event(
            call_id,
            Utc::now(),
            "turn_end",
            &serde_json::json!({"why": "silence"}),
        )
        .await
        .unwrap();

    let list = app.get("/admin/calls").await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(list.body.contains("+15559990000"));
    assert!(list.body.contains("caller_hung_up"));
    assert!(list.body.contains("1m 35s"));
    assert!(list
        .body
        .contains(&format!("href=\"/admin/tasks/{}\"", task.reference)));

    let page = app.get(&format!("/admin/calls/{call_id}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("My basement is flooding"));
    assert!(page.body.contains("turn_end"));
    assert!(page.body.contains("{&#34;why&#34;:&#34;silence&#34;}"));
    assert!(page
        .body
        .contains(&format!("href=\"/admin/tasks/{}\"", task.reference)));

    assert_eq!(
        app.get("/admin/calls/999").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get("/admin/calls/abc").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn stats_page_draws_svg_charts() {
    let app = app().await;
    let a = app.task("plumbing", "a", Urgency::Normal).await;
    app.task("plumbing", "b", Urgency::Normal).await;
    app.task("<script>x</script>", "c", Urgency::Normal).await;
    app.store
        .transition_task(&a.reference, TaskStatus::Escalated, "t", None)
        .await
        .unwrap();

    let r = app.get("/admin/stats").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body.matches("<svg").count(), 4);
    assert!(r.body.contains("33.3% (1 of 3)"));
    assert!(r.body.contains(">plumbing</text>"));
    // Category names come from callers: escaped inside the SVG too.
    assert!(!r.body.contains("<script>x</script>"));
    assert!(r.body.contains("&lt;script&gt;x&lt;/script&gt;"));
}

#[tokio::test]
async fn pages_need_a_session() {
    let app = app().await;
    for path in [
        "/admin/tasks",
        "/admin/tasks.csv",
        "/admin/calls",
        "/admin/stats",
    ] {
        let req = Request::get(path).body(Body::empty()).unwrap();
        let r = app.send(req).await;
        assert!(r.status.is_redirection(), "{path}: {}", r.status);
        assert_eq!(r.location(), "/login", "{path}");
    }
}

#[tokio::test]
async fn call_page_and_stats_show_turn_latency_and_engine_events() {
    let app = app().await;
    let task = task_with_call(&app).await;
    let call_id = task.call_id.expect("a call");
    for (turn, first_frame) in [(1, 900), (2, 1300), (3, 700)] {
        app.store
            .record_turn_latency(&TurnLatency {
                call_id,
                turn,
                at: Utc::now() - Duration::minutes(10),
                stt_ms: Some(200),
                intent_ms: Some(450),
                tts_ms: Some(first_frame - 20),
                first_frame_ms: Some(first_frame),
                stt_engine: Some("deepgram".into()),
                intent_engine: Some("chat".into()),
                tts_engine: Some("elevenlabs".into()),
            })
            .await
            .expect("latency row");
    }
    app.store
        .append_call_event(
            call_id,
            Utc::now(),
            "engine_fallback",
            &serde_json::json!({"stage": "intent", "from": "chat", "to": "rules"}),
        )
        .await
        .expect("event");
    let page = app.get(&format!("/admin/calls/{call_id}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Turn latency"), "{}", page.body);
    assert!(page.body.contains("deepgram → chat → elevenlabs"));
    // p50 / p95 of the first-frame column: 900 and 1300 ms.
    assert!(page.body.contains("900 / 1300 ms"), "{}", page.body);
    assert!(page.body.contains("engine_fallback"));
    app.store
        .outbox_enqueue(
            "sms",
            &serde_json::json!({"to": "+15550001111", "body": "T-1001 escalated"}),
            Utc::now(),
        )
        .await
        .expect("a queued text");
    let stats = app.get("/admin/stats").await;
    assert_eq!(stats.status, StatusCode::OK);
    assert!(stats.body.contains("+15550001111"), "{}", stats.body);
    assert!(stats.body.contains("<td>pending</td>"), "{}", stats.body);
    assert!(stats.body.contains("Turn latency per day"));
    assert!(stats.body.contains("900 / 1300 ms"), "{}", stats.body);
}

#[tokio::test]
async fn a_voice_message_plays_from_the_task_page() {
    let app = app().await;
    let task = task_with_call(&app).await;
    let page = app.get(&format!("/admin/tasks/{}", task.reference)).await;
    assert!(!page.body.contains("Voice message"));
    let dir = app._dir.path().join("rec");
    std::fs::create_dir_all(&dir).unwrap();
    let wav = switchboard::audio::wav::encode_wav(&[0i16; 1600], 16_000);
    std::fs::write(dir.join("call-1.wav"), &wav).unwrap();
    app.store
        .set_task_recording(&task.reference, "call-1.wav")
        .await
        .unwrap();
    let page = app.get(&format!("/admin/tasks/{}", task.reference)).await;
    assert!(page.body.contains("<audio controls"), "{}", page.body);
    let audio = app
        .get(&format!("/admin/tasks/{}/recording", task.reference))
        .await;
    assert_eq!(audio.status, StatusCode::OK);
    assert_eq!(audio.headers[header::CONTENT_TYPE], "audio/wav");
    assert!(audio.body.starts_with("RIFF"));
    // No session, no audio.
    let req = Request::get(format!("/admin/tasks/{}/recording", task.reference))
        .body(Body::empty())
        .unwrap();
    assert_ne!(app.send(req).await.status, StatusCode::OK);
    // A task without a message is a 404, not an error page about files.
    let other = app.task("plumbing", "drip", Urgency::Low).await;
    let missing = app
        .get(&format!("/admin/tasks/{}/recording", other.reference))
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}
