//! The outbox table's contract (`Store::outbox_*`), run against SQLite and
//! PostgreSQL alike: enqueue, claim with a lease, fencing of stale claims,
//! retry scheduling, giving up, requeue, listing, and claims from two
//! stores on one database that never overlap.

use std::collections::HashSet;

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::json;
use switchboard::events::Bus;
use switchboard::store::{testkit, OutboxStatus, OutboxTotals, Store, StoreError};

/// Runs one async test body against both backends.
macro_rules! both_backends {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test]
            async fn sqlite() {
                let (store, _dir) = testkit::sqlite().await.expect("sqlite store");
                ($body)(store).await;
            }
            #[tokio::test]
            async fn postgres() {
                let store = testkit::postgres().await.unwrap_or_else(|e| {
                    panic!(
                        "PostgreSQL at {} is required for this test: {e}",
                        testkit::postgres_url()
                    )
                });
                ($body)(store).await;
            }
        }
    };
}

/// Now, at the millisecond precision the table keeps.
fn now() -> DateTime<Utc> {
    Utc.timestamp_millis_opt(Utc::now().timestamp_millis())
        .single()
        .expect("a valid instant")
}

fn sms(n: u32) -> serde_json::Value {
    json!({"to": "+15551230000", "body": format!("message {n}")})
}

both_backends!(claim_leases_oldest_first, |store: Store| async move {
    let t0 = now();
    let first = store.outbox_enqueue("sms", &sms(1), t0).await.unwrap();
    let second = store.outbox_enqueue("sms", &sms(2), t0).await.unwrap();
    assert_eq!(first.status(), OutboxStatus::Pending);
    assert_eq!((first.attempts, first.created_at), (0, t0));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&first.payload).unwrap(),
        sms(1)
    );

    let lease = Duration::seconds(30);
    let claimed = store.outbox_claim("sms", t0, lease, 1).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].id, first.id);
    assert_eq!(claimed[0].attempts, 1, "a claim counts the attempt");
    assert_eq!(claimed[0].next_attempt_at, t0 + lease);

    let next = store.outbox_claim("sms", t0, lease, 5).await.unwrap();
    assert_eq!(
        next.iter().map(|m| m.id).collect::<Vec<_>>(),
        [second.id],
        "a leased row is not handed out again"
    );
    assert!(store
        .outbox_claim("sms", t0, lease, 5)
        .await
        .unwrap()
        .is_empty());

    assert!(store
        .outbox_mark_sent(&claimed[0], Some("SM123"), t0)
        .await
        .unwrap());
    let sent = store.outbox_message(first.id).await.unwrap().unwrap();
    assert_eq!(sent.status(), OutboxStatus::Sent);
    assert_eq!(sent.sent_at, Some(t0));
    assert_eq!(sent.provider_ref.as_deref(), Some("SM123"));

    // After the lease runs out only the unsent row comes back.
    let again = store
        .outbox_claim("sms", t0 + lease, lease, 5)
        .await
        .unwrap();
    assert_eq!(again.iter().map(|m| m.id).collect::<Vec<_>>(), [second.id]);
    assert_eq!(again[0].attempts, 2);
});

both_backends!(
    claims_only_due_rows_of_the_kind,
    |store: Store| async move {
        let t0 = now();
        let email = store
            .outbox_enqueue("email", &json!({"to": "a@b.c"}), t0)
            .await
            .unwrap();
        let text = store.outbox_enqueue("sms", &sms(1), t0).await.unwrap();
        let lease = Duration::seconds(60);
        let claimed = store.outbox_claim("sms", t0, lease, 10).await.unwrap();
        assert_eq!(claimed.iter().map(|m| m.id).collect::<Vec<_>>(), [text.id]);

        let retry_at = t0 + Duration::seconds(10);
        assert_eq!(
            store
                .outbox_record_failure(&claimed[0], "HTTP 500: oops", retry_at, 5, t0)
                .await
                .unwrap(),
            Some(OutboxStatus::Pending)
        );
        let row = store.outbox_message(text.id).await.unwrap().unwrap();
        assert_eq!(row.last_error.as_deref(), Some("HTTP 500: oops"));
        assert_eq!(row.next_attempt_at, retry_at);
        assert_eq!(store.outbox_next_due("sms").await.unwrap(), Some(retry_at));

        let early = t0 + Duration::seconds(9);
        assert!(store
            .outbox_claim("sms", early, lease, 10)
            .await
            .unwrap()
            .is_empty());
        let due = store
            .outbox_claim("sms", retry_at, lease, 10)
            .await
            .unwrap();
        assert_eq!(due.iter().map(|m| m.id).collect::<Vec<_>>(), [text.id]);
        assert_eq!(
            store
                .outbox_message(email.id)
                .await
                .unwrap()
                .unwrap()
                .attempts,
            0,
            "rows of other kinds are left alone"
        );
        assert!(matches!(
            store.outbox_enqueue(" ", &sms(2), t0).await,
            Err(StoreError::Invalid(_))
        ));
    }
);

both_backends!(gives_up_after_the_maximum, |store: Store| async move {
    let t0 = now();
    let row = store.outbox_enqueue("sms", &sms(1), t0).await.unwrap();
    let lease = Duration::seconds(60);
    let mut at = t0;
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        let claimed = store.outbox_claim("sms", at, lease, 1).await.unwrap();
        assert_eq!(claimed.len(), 1);
        at += Duration::seconds(1);
        outcomes.push(
            store
                .outbox_record_failure(&claimed[0], "connection refused", at, 3, at)
                .await
                .unwrap(),
        );
    }
    assert_eq!(
        outcomes,
        [
            Some(OutboxStatus::Pending),
            Some(OutboxStatus::Pending),
            Some(OutboxStatus::Dead)
        ]
    );
    let dead = store.outbox_message(row.id).await.unwrap().unwrap();
    assert_eq!(dead.status(), OutboxStatus::Dead);
    assert_eq!(dead.dead_at, Some(at));
    assert_eq!(dead.attempts, 3);
    assert_eq!(
        dead.last_error.as_deref(),
        Some("gave up after 3 attempts: connection refused")
    );
    let later = at + Duration::days(1);
    assert!(store
        .outbox_claim("sms", later, lease, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.outbox_next_due("sms").await.unwrap(), None);
    assert_eq!(
        store.outbox_totals().await.unwrap(),
        OutboxTotals {
            pending: 0,
            sent: 0,
            dead: 1
        }
    );
});

both_backends!(dead_rows_can_be_requeued, |store: Store| async move {
    let t0 = now();
    let row = store.outbox_enqueue("sms", &sms(1), t0).await.unwrap();
    let lease = Duration::seconds(60);
    let claimed = store.outbox_claim("sms", t0, lease, 1).await.unwrap();
    assert!(store
        .outbox_mark_dead(&claimed[0], "HTTP 400, Twilio error 21211: invalid To", t0)
        .await
        .unwrap());
    assert_eq!(
        store
            .outbox_message(row.id)
            .await
            .unwrap()
            .unwrap()
            .status(),
        OutboxStatus::Dead
    );

    let t1 = t0 + Duration::minutes(5);
    let back = store.outbox_requeue(row.id, t1).await.unwrap();
    assert_eq!(back.status(), OutboxStatus::Pending);
    assert_eq!((back.attempts, back.next_attempt_at), (0, t1));
    let claimed = store.outbox_claim("sms", t1, lease, 1).await.unwrap();
    assert_eq!(claimed.len(), 1);
    store.outbox_mark_sent(&claimed[0], None, t1).await.unwrap();

    assert!(matches!(
        store.outbox_requeue(row.id, t1).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.outbox_requeue(row.id + 1000, t1).await,
        Err(StoreError::NotFound(_))
    ));
});

both_backends!(a_stale_claim_cannot_overwrite, |store: Store| async move {
    let t0 = now();
    let row = store.outbox_enqueue("sms", &sms(1), t0).await.unwrap();
    let lease = Duration::seconds(10);
    let stale = store
        .outbox_claim("sms", t0, lease, 1)
        .await
        .unwrap()
        .remove(0);
    // The first worker stalls past its lease; a second one takes the row.
    let t1 = t0 + Duration::seconds(11);
    let fresh = store
        .outbox_claim("sms", t1, lease, 1)
        .await
        .unwrap()
        .remove(0);
    assert_eq!((fresh.id, fresh.attempts), (row.id, 2));

    assert!(!store
        .outbox_mark_sent(&stale, Some("SMold"), t1)
        .await
        .unwrap());
    assert_eq!(
        store
            .outbox_record_failure(&stale, "timed out", t1, 5, t1)
            .await
            .unwrap(),
        None
    );
    assert!(!store.outbox_mark_dead(&stale, "late", t1).await.unwrap());
    assert!(store
        .outbox_mark_sent(&fresh, Some("SMnew"), t1)
        .await
        .unwrap());
    let sent = store.outbox_message(row.id).await.unwrap().unwrap();
    assert_eq!(sent.provider_ref.as_deref(), Some("SMnew"));
    assert_eq!(sent.last_error, None);
});

both_backends!(recent_rows_newest_first, |store: Store| async move {
    let t0 = now();
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(store.outbox_enqueue("sms", &sms(n), t0).await.unwrap().id);
    }
    let claimed = store
        .outbox_claim("sms", t0, Duration::seconds(60), 2)
        .await
        .unwrap();
    assert_eq!(claimed.iter().map(|m| m.id).collect::<Vec<_>>(), ids[..2]);
    store
        .outbox_mark_sent(&claimed[0], Some("SM1"), t0)
        .await
        .unwrap();
    store
        .outbox_mark_dead(&claimed[1], "refused", t0)
        .await
        .unwrap();

    let recent = store.outbox_recent(3).await.unwrap();
    assert_eq!(
        recent.iter().map(|m| m.id).collect::<Vec<_>>(),
        [ids[4], ids[3], ids[2]]
    );
    assert_eq!(
        store.outbox_totals().await.unwrap(),
        OutboxTotals {
            pending: 3,
            sent: 1,
            dead: 1
        }
    );
    assert_eq!(
        store
            .outbox_recent(10)
            .await
            .unwrap()
            .iter()
            .map(|m| m.status())
            .collect::<Vec<_>>(),
        [
            OutboxStatus::Pending,
            OutboxStatus::Pending,
            OutboxStatus::Pending,
            OutboxStatus::Dead,
            OutboxStatus::Sent
        ]
    );
});

/// Two stores (nodes) on one database claim concurrently until the queue
/// is empty: every row is claimed exactly once.
async fn concurrent_claims_never_overlap(a: Store, b: Store) {
    let t0 = now();
    let mut all = HashSet::new();
    for n in 0..40 {
        all.insert(a.outbox_enqueue("sms", &sms(n), t0).await.unwrap().id);
    }
    async fn drain(store: Store, at: DateTime<Utc>) -> Vec<i64> {
        let mut mine = Vec::new();
        loop {
            let claimed = store
                .outbox_claim("sms", at, Duration::seconds(60), 2)
                .await
                .unwrap();
            if claimed.is_empty() {
                return mine;
            }
            mine.extend(claimed.iter().map(|m| m.id));
        }
    }
    let (from_a, from_b) = tokio::join!(drain(a.clone(), t0), drain(b.clone(), t0));
    let mut seen = HashSet::new();
    for id in from_a.iter().chain(&from_b) {
        assert!(seen.insert(*id), "row {id} was claimed twice");
    }
    assert_eq!(seen, all);
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn concurrent_claims_never_overlap_on_postgres() {
    let url = testkit::postgres_schema_url().await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL at {} is required for this test: {e}",
            testkit::postgres_url()
        )
    });
    let a = Store::open(&url, Bus::new(), "node-a").await.unwrap();
    let b = Store::open(&url, Bus::new(), "node-b").await.unwrap();
    concurrent_claims_never_overlap(a, b).await;
}

#[tokio::test]
async fn concurrent_claims_never_overlap_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("outbox.db").display());
    let a = Store::open(&url, Bus::new(), "node-a").await.unwrap();
    let b = Store::open(&url, Bus::new(), "node-b").await.unwrap();
    concurrent_claims_never_overlap(a, b).await;
}
