//! The SMS outbox worker against a fake Twilio Messages endpoint: what it
//! sends, how it retries (backoff, Retry-After), what it gives up, and that
//! a queued text survives the provider being down and the server
//! restarting, and is sent exactly once — also with two nodes on one
//! PostgreSQL database. Waits are on events (the fake's records, the
//! worker's counters); timeouts only bound them.

#[path = "support/fake_twilio_sms.rs"]
mod fake_twilio_sms;

use std::collections::HashSet;
use std::future::Future;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use fake_twilio_sms::{FakeTwilioSms, Reply, ACCOUNT_SID, AUTH_TOKEN};
use switchboard::domain::Urgency;
use switchboard::events::Bus;
use switchboard::outbox::{text, Outbox, OutboxConfig, OutboxCounts, RetryPolicy};
use switchboard::store::{testkit, OutboxStatus, Store, StoreError, TaskFields};
use switchboard::transport::twilio::rest::RestClient;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const FROM: &str = "+15550001111";
const CALLER: &str = "+15551234567";
const ONCALL: &str = "+15559990000";

fn config() -> OutboxConfig {
    OutboxConfig {
        from: Some(FROM.into()),
        business_name: "Acme Plumbing".into(),
        oncall_sms: Some(ONCALL.into()),
        retry: RetryPolicy {
            first: Duration::from_millis(60),
            max: Duration::from_millis(400),
            max_attempts: 8,
            max_retry_after: Duration::from_secs(5),
        },
        poll_every: Duration::from_millis(300),
        request_timeout: Duration::from_millis(500),
        lease: Duration::from_secs(5),
    }
}

fn rest_for(fake: &FakeTwilioSms) -> RestClient {
    RestClient::from_config(&fake.twilio_config(FROM)).expect("Twilio settings")
}

/// Bounds a wait on an event.
async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(15), fut)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

struct Worker {
    outbox: Outbox,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Worker {
    fn start(store: Store, rest: Option<RestClient>, config: OutboxConfig) -> Worker {
        let outbox = Outbox::new(store, rest, config);
        let stop = CancellationToken::new();
        let task = tokio::spawn({
            let outbox = outbox.clone();
            let stop = stop.clone();
            async move { outbox.run(stop).await }
        });
        Worker { outbox, stop, task }
    }

    async fn until(&self, what: &str, done: impl FnMut(&OutboxCounts) -> bool) -> OutboxCounts {
        let mut counts = self.outbox.watch();
        within(what, async {
            *counts.wait_for(done).await.expect("worker alive")
        })
        .await
    }

    async fn stop(self) {
        self.stop.cancel();
        within("the worker to stop", self.task)
            .await
            .expect("worker task");
    }
}

async fn sqlite() -> (Store, tempfile::TempDir) {
    testkit::sqlite().await.expect("sqlite store")
}

async fn postgres() -> Store {
    testkit::postgres().await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL at {} is required for this test: {e}",
            testkit::postgres_url()
        )
    })
}

async fn happy_path(store: Store) {
    let fake = FakeTwilioSms::start().await;
    let task = store
        .create_task(
            None,
            TaskFields {
                category: Some("plumbing".into()),
                issue: Some("kitchen sink leaking".into()),
                location: Some("42 Oak Street".into()),
                urgency: Some(Urgency::High),
                caller_name: Some("Jane Doe".into()),
                caller_number: Some(CALLER.into()),
                confidence: Some(0.9),
                ..Default::default()
            },
            "test",
        )
        .await
        .unwrap();
    let worker = Worker::start(store.clone(), Some(rest_for(&fake)), config());
    let to_caller = worker
        .outbox
        .text_caller_reference(&task)
        .await
        .unwrap()
        .expect("the caller has a number");
    let to_oncall = worker
        .outbox
        .text_oncall_escalation(&task)
        .await
        .unwrap()
        .expect("an on-call number is configured");
    worker.until("two texts sent", |c| c.sent == 2).await;

    let expected_auth = format!(
        "Basic {}",
        B64.encode(format!("{ACCOUNT_SID}:{AUTH_TOKEN}"))
    );
    let requests = fake.requests();
    assert_eq!(requests.len(), 2);
    for request in &requests {
        assert!(request.problems.is_empty(), "{:?}", request.problems);
        assert_eq!(request.account_sid, ACCOUNT_SID);
        assert_eq!(
            request.authorization.as_deref(),
            Some(expected_auth.as_str())
        );
        assert_eq!(
            request.content_type.as_deref(),
            Some("application/x-www-form-urlencoded")
        );
        let names: Vec<&str> = request.form.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["To", "From", "Body"]);
    }
    let mut messages = fake.messages();
    messages.sort_by(|a, b| a.to.cmp(&b.to));
    assert_eq!(messages[0].to, CALLER);
    assert_eq!(
        messages[0].body,
        format!(
            "Acme Plumbing: thanks for calling. Your reference is {}. Please quote it if you contact us again.",
            task.reference
        )
    );
    assert_eq!(messages[1].to, ONCALL);
    assert_eq!(
        messages[1].body,
        text::escalation_summary("Acme Plumbing", &task)
    );
    assert!(messages[1].body.contains("Caller: Jane Doe +15551234567"));
    assert!(messages.iter().all(|m| m.from.as_deref() == Some(FROM)));

    for (row, to) in [(to_caller, CALLER), (to_oncall, ONCALL)] {
        let row = store.outbox_message(row.id).await.unwrap().unwrap();
        assert_eq!(row.status(), OutboxStatus::Sent);
        assert_eq!(row.attempts, 1);
        let sid = messages.iter().find(|m| m.to == to).map(|m| m.sid.clone());
        assert_eq!(row.provider_ref, sid, "Twilio's SID is kept");
    }
    assert_eq!(
        worker.outbox.snapshot(),
        OutboxCounts {
            sent: 2,
            failed: 0,
            dead: 0
        }
    );
    worker.stop().await;
}

#[tokio::test]
async fn happy_path_sqlite() {
    let (store, _dir) = sqlite().await;
    happy_path(store).await;
}

#[tokio::test]
async fn happy_path_postgres() {
    happy_path(postgres().await).await;
}

#[tokio::test]
async fn a_messaging_service_replaces_from() {
    let (store, _dir) = sqlite().await;
    let fake = FakeTwilioSms::start().await;
    let service = "MG0123456789abcdef0123456789abcdef";
    let worker = Worker::start(
        store,
        Some(rest_for(&fake)),
        OutboxConfig {
            from: Some(service.into()),
            ..config()
        },
    );
    worker.outbox.enqueue_sms(CALLER, "hello").await.unwrap();
    worker.until("the text sent", |c| c.sent == 1).await;
    let request = &fake.requests()[0];
    assert!(request.problems.is_empty(), "{:?}", request.problems);
    assert_eq!(
        request.form,
        [
            ("To".to_string(), CALLER.to_string()),
            ("MessagingServiceSid".to_string(), service.to_string()),
            ("Body".to_string(), "hello".to_string()),
        ]
    );
    worker.stop().await;
}

#[tokio::test]
async fn a_server_error_is_retried_after_a_backoff_and_sent_once() {
    let (store, _dir) = sqlite().await;
    let fake = FakeTwilioSms::start().await;
    fake.push_replies([Reply::ServerError]);
    let worker = Worker::start(store.clone(), Some(rest_for(&fake)), config());
    let row = worker.outbox.enqueue_sms(CALLER, "hello").await.unwrap();
    let counts = worker.until("the text sent", |c| c.sent == 1).await;
    assert_eq!((counts.failed, counts.dead), (1, 0));

    let requests = fake.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].reply, Some(Reply::ServerError));
    let gap = requests[1].at - requests[0].at;
    // The first backoff is 60 ms with equal jitter: at least half of it.
    assert!(gap >= Duration::from_millis(30), "retried after {gap:?}");
    assert_eq!(fake.messages().len(), 1);
    let row = store.outbox_message(row.id).await.unwrap().unwrap();
    assert_eq!((row.status(), row.attempts), (OutboxStatus::Sent, 2));
    worker.stop().await;
}

#[tokio::test]
async fn a_permanent_refusal_is_dead_at_once() {
    let (store, _dir) = sqlite().await;
    let fake = FakeTwilioSms::start().await;
    fake.push_replies([
        Reply::Rejected {
            code: 21211,
            message: "The 'To' number +15550000000 is not a valid phone number.".into(),
        },
        Reply::Rejected {
            code: 21610,
            message: "Attempt to send to unsubscribed recipient".into(),
        },
    ]);
    let worker = Worker::start(store.clone(), Some(rest_for(&fake)), config());
    let invalid = worker
        .outbox
        .enqueue_sms("+15550000000", "one")
        .await
        .unwrap();
    worker
        .until("the first text given up", |c| c.dead == 1)
        .await;
    let opted_out = worker.outbox.enqueue_sms(CALLER, "two").await.unwrap();
    worker
        .until("the second text given up", |c| c.dead == 2)
        .await;
    // A text queued after both is sent: the dead ones were not retried before it.
    worker.outbox.enqueue_sms(CALLER, "three").await.unwrap();
    let counts = worker.until("the third text sent", |c| c.sent == 1).await;
    assert_eq!(counts.failed, 0);
    assert_eq!(fake.requests().len(), 3, "each text was tried once");

    for (id, code) in [(invalid.id, "21211"), (opted_out.id, "21610")] {
        let row = store.outbox_message(id).await.unwrap().unwrap();
        assert_eq!((row.status(), row.attempts), (OutboxStatus::Dead, 1));
        assert!(row.last_error.as_deref().unwrap_or("").contains(code));
    }
    assert_eq!(store.outbox_next_due("sms").await.unwrap(), None);
    worker.stop().await;
}

#[tokio::test]
async fn retry_after_on_429_is_honoured() {
    let (store, _dir) = sqlite().await;
    let fake = FakeTwilioSms::start().await;
    fake.push_replies([Reply::TooManyRequests {
        retry_after: "1".into(),
    }]);
    let worker = Worker::start(store.clone(), Some(rest_for(&fake)), config());
    worker.outbox.enqueue_sms(CALLER, "first").await.unwrap();
    fake.wait_for_requests(1).await;
    // Queued during the pause: it waits too, though its own backoff is nil.
    worker.outbox.enqueue_sms(CALLER, "second").await.unwrap();
    let counts = worker.until("both texts sent", |c| c.sent == 2).await;
    assert_eq!(counts.failed, 1);

    let requests = fake.requests();
    assert_eq!(requests.len(), 3);
    let gap = requests[1].at - requests[0].at;
    assert!(
        gap >= Duration::from_secs(1),
        "the next request came {gap:?} after the 429, before Retry-After: 1"
    );
    let bodies: HashSet<String> = fake.messages().into_iter().map(|m| m.body).collect();
    assert_eq!(bodies, HashSet::from(["first".into(), "second".into()]));
    worker.stop().await;
}

#[tokio::test]
async fn a_stalled_request_times_out_and_is_retried() {
    let (store, _dir) = sqlite().await;
    let fake = FakeTwilioSms::start().await;
    fake.push_replies([Reply::Stall]);
    let worker = Worker::start(store.clone(), Some(rest_for(&fake)), config());
    let row = worker.outbox.enqueue_sms(CALLER, "hello").await.unwrap();
    let counts = worker.until("the text sent", |c| c.sent == 1).await;
    assert_eq!(counts.failed, 1);
    assert_eq!(fake.messages().len(), 1);
    let row = store.outbox_message(row.id).await.unwrap().unwrap();
    assert_eq!(row.attempts, 2);
    worker.stop().await;
}

#[tokio::test]
async fn refused_credentials_keep_the_text_for_later() {
    let (store, _dir) = sqlite().await;
    let fake = FakeTwilioSms::start().await;
    fake.push_replies([Reply::Unauthorized]);
    let worker = Worker::start(store.clone(), Some(rest_for(&fake)), config());
    worker.outbox.enqueue_sms(CALLER, "hello").await.unwrap();
    let counts = worker.until("the text sent", |c| c.sent == 1).await;
    assert_eq!((counts.failed, counts.dead), (1, 0));
    assert_eq!(fake.messages().len(), 1);
    worker.stop().await;
}

#[tokio::test]
async fn an_unreadable_201_counts_as_sent_and_is_not_resent() {
    let (store, _dir) = sqlite().await;
    let fake = FakeTwilioSms::start().await;
    fake.push_replies([Reply::MalformedCreated]);
    let worker = Worker::start(store.clone(), Some(rest_for(&fake)), config());
    let row = worker.outbox.enqueue_sms(CALLER, "hello").await.unwrap();
    worker.until("the text sent", |c| c.sent == 1).await;
    assert_eq!(fake.requests().len(), 1);
    let row = store.outbox_message(row.id).await.unwrap().unwrap();
    assert_eq!((row.status(), row.provider_ref), (OutboxStatus::Sent, None));
    worker.stop().await;
}

#[tokio::test]
async fn an_answer_cut_mid_way_is_judged_by_its_status() {
    let (store, _dir) = sqlite().await;
    let fake = FakeTwilioSms::start().await;
    fake.push_replies([Reply::CutServerError, Reply::CutCreated]);
    let worker = Worker::start(store.clone(), Some(rest_for(&fake)), config());
    let row = worker.outbox.enqueue_sms(CALLER, "hello").await.unwrap();
    let counts = worker.until("the text sent", |c| c.sent == 1).await;
    // The cut 500 was retried; the cut 201 was taken as accepted, not resent.
    assert_eq!((counts.failed, counts.dead), (1, 0));
    assert_eq!(fake.requests().len(), 2);
    let row = store.outbox_message(row.id).await.unwrap().unwrap();
    assert_eq!((row.status(), row.attempts), (OutboxStatus::Sent, 2));
    worker.stop().await;
}

#[tokio::test]
async fn texts_wait_while_the_provider_is_down() {
    let (store, _dir) = sqlite().await;
    let mut fake = FakeTwilioSms::start_down().await;
    let worker = Worker::start(store.clone(), Some(rest_for(&fake)), config());
    let row = worker.outbox.enqueue_sms(CALLER, "hello").await.unwrap();
    worker.until("a failed attempt", |c| c.failed >= 1).await;
    let pending = store.outbox_message(row.id).await.unwrap().unwrap();
    assert_eq!(pending.status(), OutboxStatus::Pending);
    assert!(
        pending
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("connect"),
        "{:?}",
        pending.last_error
    );

    fake.restart().await;
    let counts = worker.until("the text sent", |c| c.sent == 1).await;
    assert_eq!(counts.dead, 0);
    assert_eq!(fake.messages().len(), 1);
    assert_eq!(
        fake.requests().len(),
        1,
        "only the successful attempt reached it"
    );
    worker.stop().await;
}

#[tokio::test]
async fn a_queued_text_survives_a_restart_and_is_sent_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("switchboard.db").display());
    let mut fake = FakeTwilioSms::start_down().await;

    // First life: the provider is down.
    let store = Store::open(&url, Bus::new(), "node").await.unwrap();
    let worker = Worker::start(store.clone(), Some(rest_for(&fake)), config());
    let row = worker
        .outbox
        .enqueue_sms(CALLER, "before the restart")
        .await
        .unwrap();
    worker.until("a failed attempt", |c| c.failed >= 1).await;
    worker.stop().await;
    store.close().await;
    drop(store);

    // Second life: same database file, provider back.
    fake.restart().await;
    let store = Store::open(&url, Bus::new(), "node").await.unwrap();
    let worker = Worker::start(store.clone(), Some(rest_for(&fake)), config());
    worker.until("the queued text sent", |c| c.sent == 1).await;
    let sent = store.outbox_message(row.id).await.unwrap().unwrap();
    assert_eq!(sent.status(), OutboxStatus::Sent);
    assert!(sent.attempts >= 2);
    worker.stop().await;
    store.close().await;
    drop(store);

    // Third life: a new text goes; the old one is not sent again.
    let store = Store::open(&url, Bus::new(), "node").await.unwrap();
    let worker = Worker::start(store.clone(), Some(rest_for(&fake)), config());
    worker.outbox.enqueue_sms(CALLER, "after").await.unwrap();
    worker.until("the new text sent", |c| c.sent == 1).await;
    let bodies: Vec<String> = fake.messages().into_iter().map(|m| m.body).collect();
    assert_eq!(bodies, ["before the restart", "after"]);
    assert!(fake.requests().iter().all(|r| r.problems.is_empty()));
    worker.stop().await;
}

#[tokio::test]
async fn without_twilio_texts_stay_queued() {
    let (store, _dir) = sqlite().await;
    let unconfigured = Worker::start(store.clone(), None, config());
    assert!(!unconfigured.outbox.is_configured());
    let row = unconfigured
        .outbox
        .enqueue_sms(CALLER, "hello")
        .await
        .unwrap();
    unconfigured.stop().await;
    let kept = store.outbox_message(row.id).await.unwrap().unwrap();
    assert_eq!((kept.status(), kept.attempts), (OutboxStatus::Pending, 0));

    // A sender is needed too.
    let fake = FakeTwilioSms::start().await;
    let no_sender = Outbox::new(
        store.clone(),
        Some(rest_for(&fake)),
        OutboxConfig {
            from: None,
            ..config()
        },
    );
    assert!(!no_sender.is_configured());

    let worker = Worker::start(store.clone(), Some(rest_for(&fake)), config());
    worker.until("the kept text sent", |c| c.sent == 1).await;
    assert_eq!(fake.messages()[0].body, "hello");
    worker.stop().await;
}

#[tokio::test]
async fn bad_numbers_and_bodies_are_refused_at_enqueue() {
    let (store, _dir) = sqlite().await;
    let outbox = Outbox::new(store.clone(), None, config());
    for (to, body) in [
        ("anonymous", "hi"),
        ("5551234567", "hi"),
        (CALLER, "   "),
        (CALLER, &"x".repeat(1601)),
    ] {
        assert!(
            matches!(
                outbox.enqueue_sms(to, body).await,
                Err(StoreError::Invalid(_))
            ),
            "{to} / {} chars",
            body.len()
        );
    }
    assert!(store.outbox_recent(10).await.unwrap().is_empty());
}

#[tokio::test]
async fn two_workers_on_one_postgres_never_send_a_row_twice() {
    let url = testkit::postgres_schema_url().await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL at {} is required for this test: {e}",
            testkit::postgres_url()
        )
    });
    let fake = FakeTwilioSms::start().await;
    let store_a = Store::open(&url, Bus::new(), "node-a").await.unwrap();
    let store_b = Store::open(&url, Bus::new(), "node-b").await.unwrap();
    let a = Worker::start(store_a.clone(), Some(rest_for(&fake)), config());
    let b = Worker::start(store_b.clone(), Some(rest_for(&fake)), config());
    const N: usize = 30;
    for n in 0..N {
        let node = if n % 2 == 0 { &a } else { &b };
        node.outbox
            .enqueue_sms(CALLER, &format!("text {n}"))
            .await
            .unwrap();
    }
    within("every text sent", fake.wait_for_messages(N)).await;
    let mut counts_a = a.outbox.watch();
    let mut counts_b = b.outbox.watch();
    within("both workers to record their sends", async {
        loop {
            let total = counts_a.borrow().sent + counts_b.borrow().sent;
            if total as usize >= N {
                break;
            }
            tokio::select! {
                changed = counts_a.changed() => changed.expect("worker a alive"),
                changed = counts_b.changed() => changed.expect("worker b alive"),
            }
        }
    })
    .await;

    let bodies: Vec<String> = fake
        .requests()
        .iter()
        .map(|r| r.form[2].1.clone())
        .collect();
    assert_eq!(bodies.len(), N, "one request per text");
    let distinct: HashSet<&String> = bodies.iter().collect();
    assert_eq!(distinct.len(), N, "no text was sent twice");
    assert_eq!(
        a.outbox.snapshot().sent + b.outbox.snapshot().sent,
        N as u64
    );
    let totals = store_a.outbox_totals().await.unwrap();
    assert_eq!((totals.sent, totals.pending, totals.dead), (N as i64, 0, 0));
    a.stop().await;
    b.stop().await;
}
