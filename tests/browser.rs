//! The dashboard in a real browser: headless Chromium driven through
//! chromedriver signs in, opens a task from the queue, closes it with a note
//! and sees the audit trail show it. Needs Debian's `chromium` and
//! `chromium-driver`; without them the test fails and says so.

use std::net::TcpListener as StdListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use fantoccini::{Client, ClientBuilder, Locator};
use switchboard::config::Config;
use switchboard::domain::{Speaker, Urgency};
use switchboard::events::Bus;
use switchboard::store::{NewCall, NewTurn, Role, Store, TaskFields, Transport};
use switchboard::web::auth::hash_password;
use switchboard::web::{router, AppState};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const EMAIL: &str = "agent@example.com";
const PASSWORD: &str = "correct horse battery";
const NOTE: &str = "Replaced the washer; no more leak";
/// Where the screenshot of the closed task lands, for a person to look at.
const SCREENSHOT: &str = "/tmp/switchboard-task-page.png";
const STATS_SCREENSHOT: &str = "/tmp/switchboard-stats-page.png";

/// Kills chromedriver when the test ends, however it ends.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free local port")
}

async fn start_chromedriver() -> Driver {
    for bin in [CHROMIUM, CHROMEDRIVER] {
        assert!(
            Path::new(bin).exists(),
            "{bin} is missing: the browser test needs Debian's `chromium` and `chromium-driver` \
             packages (apt-get install chromium chromium-driver)"
        );
    }
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    // Poll /status until it reports ready, with a deadline.
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = match http.get(format!("{}/status", driver.url)).send().await {
            Ok(r) => r
                .json::<serde_json::Value>()
                .await
                .map(|v| v["value"]["ready"] == serde_json::Value::Bool(true))
                .unwrap_or(false),
            Err(_) => false,
        };
        if ready {
            return driver;
        }
        assert!(
            Instant::now() < deadline,
            "chromedriver did not answer /status within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn browser(driver: &Driver, profile: &Path) -> Client {
    let caps = serde_json::json!({
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                "--window-size=1280,1100",
                format!("--user-data-dir={}", profile.display()),
            ]
        }
    });
    let serde_json::Value::Object(caps) = caps else {
        unreachable!("a JSON object literal")
    };
    // chromedriver speaks plain HTTP on loopback: no TLS stack needed.
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a browser session")
}

/// A call with a transcript and the task it produced; returns the task's reference.
async fn seed(store: &Store) -> String {
    let call = store
        .create_call(NewCall {
            transport: Transport::Twilio,
            external_id: "CA-browser".into(),
            from_number: "+15551230000".into(),
            to_number: "+15559990000".into(),
            started_at: Utc::now(),
        })
        .await
        .expect("call");
    let turns = [
        (
            Speaker::Agent,
            "Thanks for calling Acme Plumbing, how can I help?",
        ),
        (
            Speaker::Caller,
            "My kitchen tap has been leaking since this morning.",
        ),
        (Speaker::Agent, "Sorry to hear that. What's the address?"),
        (Speaker::Caller, "12 Elm Street."),
    ];
    for (i, (speaker, text)) in turns.into_iter().enumerate() {
        let turn = NewTurn {
            speaker,
            text: text.into(),
            start_ms: Some(i as i64 * 3500),
            end_ms: None,
            confidence: None,
            heard_chars: None,
        };
        store
            .append_turn(call.id, Utc::now(), turn)
            .await
            .expect("turn");
    }
    let fields = TaskFields {
        category: Some("plumbing".into()),
        issue: Some("leaking kitchen tap".into()),
        location: Some("12 Elm Street".into()),
        urgency: Some(Urgency::High),
        caller_name: Some("Dana Reyes".into()),
        caller_number: Some("+15551230000".into()),
        summary: Some("Kitchen tap leaking since the morning at 12 Elm Street.".into()),
        ..TaskFields::default()
    };
    store
        .create_task(Some(call.id), fields, "call")
        .await
        .expect("task")
        .reference
}

async fn sign_in(client: &Client, base: &str) -> Result<(), fantoccini::error::CmdError> {
    client.goto(&format!("{base}/login")).await?;
    let form = client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("form input[name=email]"))
        .await?;
    form.send_keys(EMAIL).await?;
    client
        .find(Locator::Css("form input[name=password]"))
        .await?
        .send_keys(PASSWORD)
        .await?;
    client
        .find(Locator::Css(
            "form button[type=submit], form input[type=submit]",
        ))
        .await?
        .click()
        .await?;
    client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("table.queue"))
        .await?;
    Ok(())
}

/// Queue → task → close with a note → audit trail; returns the audit table's text.
async fn close_from_queue(
    client: &Client,
    base: &str,
    reference: &str,
) -> Result<String, fantoccini::error::CmdError> {
    let wait = || client.wait().at_most(Duration::from_secs(10));
    client.goto(&format!("{base}/admin/tasks")).await?;
    wait()
        .for_element(Locator::Css(&format!("a[href='/admin/tasks/{reference}']")))
        .await?
        .click()
        .await?;
    let note = wait()
        .for_element(Locator::Css("form.move-closed textarea[name=note]"))
        .await?;
    note.send_keys(NOTE).await?;
    client
        .find(Locator::Css("form.move-closed button[type=submit]"))
        .await?
        .click()
        .await?;
    wait().for_element(Locator::Css(".flash")).await?;
    client.screenshot().await.map(|png| {
        std::fs::write(SCREENSHOT, png).expect("screenshot written");
    })?;
    client.find(Locator::Css("#audit")).await?.text().await
}

/// An open queue shows a task created meanwhile without a reload
/// (server-sent events → the page re-fetches its fragment).
async fn live_queue(
    client: &Client,
    base: &str,
    store: &Store,
) -> Result<(), fantoccini::error::CmdError> {
    client.goto(&format!("{base}/admin/tasks")).await?;
    // The stream is open once the page shows its "live" marker.
    client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#live:not([hidden])"))
        .await?;
    // A reload would drop this variable.
    client
        .execute("window.__notReloaded = true;", vec![])
        .await?;
    let fields = TaskFields {
        category: Some("electrical".into()),
        issue: Some("sparking socket".into()),
        ..TaskFields::default()
    };
    let created = store.create_task(None, fields, "call").await.expect("task");
    client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(&format!(
            "tr[data-ref='{}']",
            created.reference
        )))
        .await?;
    let kept = client
        .execute("return window.__notReloaded === true;", vec![])
        .await?;
    assert_eq!(
        kept,
        serde_json::Value::Bool(true),
        "the queue page reloaded"
    );
    Ok(())
}

/// Opens the statistics page, saves a screenshot, and counts the rendered charts.
async fn stats_charts(client: &Client, base: &str) -> Result<usize, fantoccini::error::CmdError> {
    client.goto(&format!("{base}/admin/stats")).await?;
    let charts = client.find_all(Locator::Css("svg.chart")).await?;
    let png = client.screenshot().await?;
    std::fs::write(STATS_SCREENSHOT, png).expect("screenshot written");
    Ok(charts.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_signs_in_and_closes_a_task_with_a_note() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("sb.db").display());
    let store = Store::open(&url, Bus::new(), "test").await.expect("store");
    let hash = hash_password(PASSWORD).expect("hash");
    store
        .create_user(EMAIL, &hash, Role::Agent)
        .await
        .expect("user");
    let reference = seed(&store).await;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let app = router(AppState::new(Config::defaults(), store.clone()));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let driver = start_chromedriver().await;
    let profile = tempfile::tempdir().expect("profile dir");
    let client = browser(&driver, profile.path()).await;
    let outcome = async {
        sign_in(&client, &base).await?;
        live_queue(&client, &base, &store).await?;
        let audit = close_from_queue(&client, &base, &reference).await?;
        let charts = stats_charts(&client, &base).await?;
        Ok::<_, fantoccini::error::CmdError>((audit, charts))
    }
    .await;
    // Close the browser before judging, so a failure leaves no Chromium behind.
    let _ = client.close().await;
    server.abort();
    let (audit, charts) = outcome.expect("the browser walk-through");
    assert_eq!(charts, 4, "the stats page draws four SVG charts");

    assert!(
        audit.contains("new → closed"),
        "audit trail lacks the close: {audit}"
    );
    assert!(audit.contains(NOTE), "audit trail lacks the note: {audit}");
    assert!(audit.contains(&format!("user:{EMAIL}")), "{audit}");
    let task = store.task(&reference).await.expect("task");
    assert_eq!(task.status, switchboard::domain::TaskStatus::Closed);
}
