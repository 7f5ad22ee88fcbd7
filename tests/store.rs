//! The `Store` contract, run against SQLite and PostgreSQL alike.

use chrono::{Duration, Utc};
use switchboard::domain::{Speaker, TaskStatus, Urgency};
use switchboard::events::Event;
use switchboard::store::{
    testkit, CallFilter, NewCall, NewTurn, Role, Store, StoreError, TaskFields, TaskFilter,
    TaskSort, Transport, TurnLatency,
};

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

fn new_call(ext: &str) -> NewCall {
    NewCall {
        transport: Transport::Twilio,
        external_id: ext.to_string(),
        from_number: "+15551234567".into(),
        to_number: "+15557654321".into(),
        started_at: Utc::now(),
    }
}

fn plumbing() -> TaskFields {
    TaskFields {
        category: Some("plumbing".into()),
        issue: Some("kitchen sink leaking".into()),
        location: Some("42 Oak Street".into()),
        urgency: Some(Urgency::High),
        caller_number: Some("+15551234567".into()),
        confidence: Some(0.8),
        ..Default::default()
    }
}

both_backends!(call_lifecycle_and_transcript, |store: Store| async move {
    let mut events = store.bus().subscribe();
    let call = store.create_call(new_call("CA123")).await.unwrap();
    assert_eq!(
        events.recv().await.unwrap(),
        Event::CallStarted { call_id: call.id }
    );
    store.mark_call_answered(call.id, Utc::now()).await.unwrap();
    let t1 = store
        .append_turn(
            call.id,
            Utc::now(),
            NewTurn {
                speaker: Speaker::Agent,
                text: "Hello".into(),
                start_ms: Some(0),
                end_ms: Some(900),
                confidence: None,
                heard_chars: Some(5),
            },
        )
        .await
        .unwrap();
    let t2 = store
        .append_turn(
            call.id,
            Utc::now(),
            NewTurn {
                speaker: Speaker::Caller,
                text: "My sink leaks".into(),
                start_ms: Some(1000),
                end_ms: Some(2500),
                confidence: Some(0.9),
                heard_chars: None,
            },
        )
        .await
        .unwrap();
    assert_eq!((t1.seq, t2.seq), (1, 2));
    let transcript = store.transcript(call.id).await.unwrap();
    assert_eq!(
        transcript
            .iter()
            .map(|t| t.text.as_str())
            .collect::<Vec<_>>(),
        ["Hello", "My sink leaks"]
    );
    assert_eq!(transcript[1].speaker, Speaker::Caller);
    assert!((transcript[1].confidence.unwrap() - 0.9).abs() < 1e-6);

    store
        .end_call(call.id, Utc::now(), "caller_hung_up")
        .await
        .unwrap();
    store
        .end_call(call.id, Utc::now(), "later_reason")
        .await
        .unwrap();
    let ended = store.call(call.id).await.unwrap();
    assert_eq!(
        ended.end_reason.as_deref(),
        Some("caller_hung_up"),
        "the first end reason wins"
    );
    assert!(ended.answered_at.is_some() && ended.ended_at.is_some());

    let found = store
        .set_carrier_status("CA123", "completed")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.carrier_status.as_deref(), Some("completed"));
    assert_eq!(
        store
            .list_calls(&CallFilter {
                external_id: Some("CA123".into()),
                ..Default::default()
            })
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(store.call_by_external_id("nope").await.unwrap().is_none());
    assert!(matches!(
        store.call(999_999).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store
            .append_turn(
                999_999,
                Utc::now(),
                NewTurn {
                    speaker: Speaker::Caller,
                    text: "x".into(),
                    start_ms: None,
                    end_ms: None,
                    confidence: None,
                    heard_chars: None
                }
            )
            .await,
        Err(StoreError::NotFound(_))
    ));

    store
        .append_call_event(
            call.id,
            Utc::now(),
            "turn_end",
            &serde_json::json!({"why": "silence"}),
        )
        .await
        .unwrap();
    let ev = store.call_events(call.id).await.unwrap();
    assert_eq!(ev[0].1, "turn_end");
    assert_eq!(ev[0].2["why"], "silence");
});

both_backends!(
    task_references_fields_and_audit_trail,
    |store: Store| async move {
        let call = store.create_call(new_call("CA1")).await.unwrap();
        let a = store
            .create_task(Some(call.id), plumbing(), "agent")
            .await
            .unwrap();
        let b = store
            .create_task(None, TaskFields::default(), "api:test")
            .await
            .unwrap();
        assert_eq!(a.reference, "T-1001");
        assert_eq!(b.reference, "T-1002");
        assert_eq!(a.status, TaskStatus::New);
        assert_eq!(a.urgency, Urgency::High);
        assert_eq!(b.urgency, Urgency::Normal);
        assert_eq!(
            store
                .task_for_call(call.id)
                .await
                .unwrap()
                .unwrap()
                .reference,
            "T-1001"
        );

        let when = Utc::now() + Duration::days(1);
        let patch = TaskFields {
            location: Some("43 Oak Street".into()),
            requested_time: Some("tomorrow morning".into()),
            requested_at: Some(when),
            issue: Some("kitchen sink leaking".into()),
            ..Default::default()
        };
        let t = store
            .update_task_fields(
                "T-1001",
                &patch,
                "user:ann@example.com",
                Some("caller corrected"),
            )
            .await
            .unwrap();
        assert_eq!(t.location.as_deref(), Some("43 Oak Street"));
        assert_eq!(
            t.requested_at.unwrap().timestamp_millis(),
            when.timestamp_millis()
        );
        assert_eq!(
            t.category.as_deref(),
            Some("plumbing"),
            "unset fields are kept"
        );

        let events = store.task_events("T-1001").await.unwrap();
        let fields: Vec<&str> = events.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["status", "location", "requested_time", "requested_at"],
            "unchanged issue writes no event"
        );
        let loc = &events[1];
        assert_eq!(
            (loc.from_value.as_deref(), loc.to_value.as_deref()),
            (Some("42 Oak Street"), Some("43 Oak Street"))
        );
        assert_eq!(loc.actor, "user:ann@example.com");
        assert_eq!(loc.note.as_deref(), Some("caller corrected"));

        store
            .assign_task("T-1001", Some("bob@example.com"), "user:ann@example.com")
            .await
            .unwrap();
        store
            .add_task_note("T-1001", "user:ann@example.com", "called back")
            .await
            .unwrap();
        assert!(matches!(
            store.add_task_note("T-1001", "x", "  ").await,
            Err(StoreError::Invalid(_))
        ));
        let events = store.task_events("T-1001").await.unwrap();
        assert_eq!(
            events[events.len() - 2].to_value.as_deref(),
            Some("bob@example.com")
        );
        assert_eq!(events.last().unwrap().note.as_deref(), Some("called back"));

        let bad = TaskFields {
            confidence: Some(1.5),
            ..Default::default()
        };
        assert!(matches!(
            store.update_task_fields("T-1001", &bad, "x", None).await,
            Err(StoreError::Invalid(_))
        ));
        assert!(matches!(
            store.task("T-9999").await,
            Err(StoreError::NotFound(_))
        ));
    }
);

both_backends!(
    transitions_follow_the_lifecycle,
    |store: Store| async move {
        let t = store.create_task(None, plumbing(), "agent").await.unwrap();
        let r = t.reference.as_str();
        let err = store
            .transition_task(r, TaskStatus::New, "u", None)
            .await
            .unwrap_err();
        match err {
            StoreError::Conflict(msg) => assert!(msg.contains("new to new"), "{msg}"),
            other => panic!("expected a conflict, got {other:?}"),
        }
        store
            .transition_task(r, TaskStatus::InProgress, "u", None)
            .await
            .unwrap();
        store
            .transition_task(
                r,
                TaskStatus::Escalated,
                "agent",
                Some("caller asked for a person"),
            )
            .await
            .unwrap();
        let closed = store
            .transition_task(r, TaskStatus::Closed, "u", Some("fixed the tap"))
            .await
            .unwrap();
        assert!(closed.closed_at.is_some());
        assert!(matches!(
            store
                .transition_task(r, TaskStatus::Escalated, "u", None)
                .await,
            Err(StoreError::Conflict(_))
        ));
        let reopened = store
            .transition_task(r, TaskStatus::InProgress, "u", Some("came back"))
            .await
            .unwrap();
        assert!(reopened.closed_at.is_none());
        let moves: Vec<(Option<String>, Option<String>)> = store
            .task_events(r)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.field == "status")
            .map(|e| (e.from_value, e.to_value))
            .collect();
        let s = |v: &str| Some(v.to_string());
        assert_eq!(
            moves,
            vec![
                (None, s("new")),
                (s("new"), s("in_progress")),
                (s("in_progress"), s("escalated")),
                (s("escalated"), s("closed")),
                (s("closed"), s("in_progress"))
            ]
        );
    }
);

both_backends!(
    filters_sorting_counts_and_stats,
    |store: Store| async move {
        let mk = |cat: &str, urg: Urgency, name: &str| TaskFields {
            category: Some(cat.into()),
            urgency: Some(urg),
            caller_name: Some(name.into()),
            issue: Some(format!("{cat} issue")),
            ..Default::default()
        };
        store
            .create_task(None, mk("plumbing", Urgency::Normal, "Ann O'Neil"), "a")
            .await
            .unwrap();
        store
            .create_task(None, mk("electrical", Urgency::Emergency, "Bob 100%"), "a")
            .await
            .unwrap();
        store
            .create_task(None, mk("plumbing", Urgency::Low, "Cy_Z"), "a")
            .await
            .unwrap();
        store
            .transition_task("T-1002", TaskStatus::Escalated, "a", None)
            .await
            .unwrap();
        store
            .transition_task("T-1003", TaskStatus::Closed, "a", None)
            .await
            .unwrap();

        let f = TaskFilter {
            category: Some("plumbing".into()),
            ..Default::default()
        };
        assert_eq!(store.count_tasks(&f).await.unwrap(), 2);
        let f = TaskFilter {
            text: Some("ANN".into()),
            ..Default::default()
        };
        assert_eq!(store.list_tasks(&f).await.unwrap()[0].reference, "T-1001");
        // LIKE wildcards in the search text are literal.
        assert_eq!(
            store
                .count_tasks(&TaskFilter {
                    text: Some("100%".into()),
                    ..Default::default()
                })
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            store
                .count_tasks(&TaskFilter {
                    text: Some("_".into()),
                    ..Default::default()
                })
                .await
                .unwrap(),
            1
        );
        let f = TaskFilter {
            status: Some(TaskStatus::Escalated),
            ..Default::default()
        };
        assert_eq!(store.list_tasks(&f).await.unwrap().len(), 1);
        let by_urgency = store
            .list_tasks(&TaskFilter {
                sort: TaskSort::Urgency,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(
            by_urgency
                .iter()
                .map(|t| t.reference.as_str())
                .collect::<Vec<_>>(),
            ["T-1002", "T-1001", "T-1003"]
        );
        let page = store
            .list_tasks(&TaskFilter {
                sort: TaskSort::Oldest,
                limit: 1,
                offset: 1,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(page[0].reference, "T-1002");

        let counts = store.count_by_status().await.unwrap();
        assert_eq!(
            counts,
            vec![
                (TaskStatus::New, 1),
                (TaskStatus::InProgress, 0),
                (TaskStatus::Escalated, 1),
                (TaskStatus::Closed, 1)
            ]
        );

        store.create_call(new_call("CA9")).await.unwrap();
        let stats = store.stats(Utc::now(), 30).await.unwrap();
        assert_eq!(stats.per_day.len(), 30);
        let today = stats.per_day.last().unwrap();
        assert_eq!((today.calls, today.tasks), (1, 3));
        assert_eq!(stats.tasks_total, 3);
        assert_eq!(stats.escalated_total, 1);
        assert_eq!(stats.by_category[0], ("plumbing".to_string(), 2));
        assert!(stats.median_close_secs.unwrap() >= 0.0);
    }
);

both_backends!(users_sessions_and_tokens, |store: Store| async move {
    assert_eq!(store.count_users().await.unwrap(), 0);
    let u = store
        .create_user("Ann@Example.com", "$argon2id$fake", Role::Agent)
        .await
        .unwrap();
    assert_eq!(u.email, "ann@example.com");
    assert!(matches!(
        store.create_user("ann@example.com", "h", Role::Admin).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.create_user("not-an-email", "h", Role::Admin).await,
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(
        store
            .user_by_email("ANN@example.com")
            .await
            .unwrap()
            .unwrap()
            .id,
        u.id
    );

    let now = Utc::now();
    store
        .create_session("hash1", u.id, "csrf1", now + Duration::hours(8))
        .await
        .unwrap();
    store
        .create_session("old", u.id, "csrf2", now - Duration::seconds(1))
        .await
        .unwrap();
    let s = store.session("hash1", now).await.unwrap().unwrap();
    assert_eq!((s.user.id, s.csrf_token.as_str()), (u.id, "csrf1"));
    assert!(
        store.session("old", now).await.unwrap().is_none(),
        "expired sessions do not count"
    );
    assert_eq!(store.delete_expired_sessions(now).await.unwrap(), 1);
    store.set_user_role(u.id, Role::Admin).await.unwrap();
    assert_eq!(
        store
            .session("hash1", now)
            .await
            .unwrap()
            .unwrap()
            .user
            .role,
        Role::Admin
    );
    store
        .set_user_password(u.id, "$argon2id$other")
        .await
        .unwrap();
    assert!(
        store.session("hash1", now).await.unwrap().is_none(),
        "a new password signs every session out"
    );

    let tok = store.create_api_token("ci", "tokhash").await.unwrap();
    assert_eq!(
        store
            .api_token_by_hash("tokhash")
            .await
            .unwrap()
            .unwrap()
            .id,
        tok.id
    );
    assert!(store.api_token_by_hash("other").await.unwrap().is_none());
    store.delete_user(u.id).await.unwrap();
    assert!(matches!(
        store.delete_user(u.id).await,
        Err(StoreError::NotFound(_))
    ));
});

both_backends!(
    turn_latencies_and_voice_messages,
    |store: Store| async move {
        let call = store.create_call(new_call("CAlat")).await.unwrap();
        assert_eq!(call.direction, "inbound");
        store.mark_call_outbound(call.id).await.unwrap();
        assert_eq!(store.call(call.id).await.unwrap().direction, "outbound");
        let at = Utc::now() - Duration::minutes(5);
        for (turn, first_frame) in [(1, Some(900)), (2, None)] {
            store
                .record_turn_latency(&TurnLatency {
                    call_id: call.id,
                    turn,
                    at: at + Duration::seconds(turn * 10),
                    stt_ms: Some(250),
                    intent_ms: Some(700),
                    tts_ms: first_frame.map(|f| f - 50),
                    first_frame_ms: first_frame,
                    stt_engine: Some("deepgram".into()),
                    intent_engine: Some("chat".into()),
                    tts_engine: first_frame.map(|_| "openai".to_string()),
                })
                .await
                .unwrap();
        }
        let turns = store.turn_latencies(call.id).await.unwrap();
        assert_eq!(turns.len(), 2);
        assert_eq!(turns[0].first_frame_ms, Some(900));
        assert_eq!(turns[1].tts_engine, None);
        assert_eq!(
            turns[0].at.timestamp_millis(),
            (at + Duration::seconds(10)).timestamp_millis()
        );
        assert_eq!(
            store
                .turn_latencies_since(at + Duration::seconds(15))
                .await
                .unwrap()
                .len(),
            1
        );

        let task = store
            .create_task(Some(call.id), plumbing(), "agent")
            .await
            .unwrap();
        assert_eq!(store.task_recording(&task.reference).await.unwrap(), None);
        store
            .set_task_recording(&task.reference, "call-1.wav")
            .await
            .unwrap();
        assert_eq!(
            store
                .task_recording(&task.reference)
                .await
                .unwrap()
                .as_deref(),
            Some("call-1.wav")
        );
        assert!(matches!(
            store.set_task_recording("T-9999", "x.wav").await,
            Err(StoreError::NotFound(_))
        ));
    }
);

#[tokio::test]
async fn migrations_are_idempotent_and_sqlite_uses_wal() {
    let (store, dir) = testkit::sqlite().await.unwrap();
    store.migrate().await.unwrap();
    store.ping().await.unwrap();
    assert!(
        dir.path().join("test.db-wal").exists() || dir.path().join("test.db-shm").exists(),
        "WAL files present"
    );
    let pg = testkit::postgres().await.expect("PostgreSQL is required");
    pg.migrate().await.unwrap();
}
