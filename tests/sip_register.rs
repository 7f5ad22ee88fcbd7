//! Registering as an extension, seen from outside: the SIP server registers
//! with a fake registrar (401 Digest challenge, then 200), and `/readyz` and
//! the dashboard's statistics page show the state — registered with its
//! expiry and last success, failing with the last error, or not configured.

#[path = "support/fake_registrar.rs"]
mod fake_registrar;
mod support;

use std::time::Duration;

use axum::extract::Extension;
use axum::http::StatusCode;
use support::{app, body_json, body_text, TestApp};
use switchboard::config::{Config, Registrar, Secret};
use switchboard::session::Registry;
use switchboard::store::Role;
use switchboard::transport::sip::server::SipServer;
use switchboard::transport::sip::status::{RegistrationState, RegistrationStatus};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

/// A SIP server registering with `registrar`; stops when the sender drops.
async fn start_sip(registrar: std::net::SocketAddr) -> (RegistrationStatus, oneshot::Sender<()>) {
    let mut sip = Config::defaults().sip;
    sip.registration = Some(Registrar {
        addr: registrar,
        domain: fake_registrar::REALM.into(),
        username: "1001".into(),
        password: Secret::new("s3cret"),
        expires: 600,
    });
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let status = RegistrationStatus::new();
    let (calls, _legs) = mpsc::channel(1);
    let server = SipServer {
        config: sip,
        registry: Registry::new(1),
        calls,
        agent_uri: None,
        registration_status: status.clone(),
        dials: None,
    };
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = server
            .run(socket, async {
                let _ = stopped.await;
            })
            .await;
    });
    (status, stop)
}

/// Waits until the published state satisfies `want`.
async fn wait_for(
    status: &RegistrationStatus,
    want: impl Fn(&RegistrationState) -> bool,
) -> RegistrationState {
    let mut rx = status.subscribe();
    let state = tokio::time::timeout(Duration::from_secs(15), rx.wait_for(|s| want(s)))
        .await
        .expect("the registration state changes in time")
        .expect("the server is running")
        .clone();
    state
}

/// `/readyz` and `/admin/stats` of a web app that sees `status`.
async fn readyz_and_stats(t: &TestApp, status: &RegistrationStatus) -> (serde_json::Value, String) {
    t.add_user("ops@example.com", "correct horse", Role::Admin)
        .await;
    let browser = t.sign_in("ops@example.com", "correct horse").await;
    let web = switchboard::web::router(t.state.clone()).layer(Extension(status.clone()));
    let get = |uri: &str, cookie: Option<&str>| {
        let mut req = axum::http::Request::get(uri);
        if let Some(c) = cookie {
            req = req.header(axum::http::header::COOKIE, c);
        }
        let req = req.body(axum::body::Body::empty()).unwrap();
        tower::ServiceExt::oneshot(web.clone(), req)
    };
    let ready = get("/readyz", None).await.unwrap();
    assert_eq!(
        ready.status(),
        StatusCode::OK,
        "registration does not decide readiness"
    );
    let ready = body_json(ready).await;
    let stats = get("/admin/stats", Some(&browser.cookie)).await.unwrap();
    assert_eq!(stats.status(), StatusCode::OK);
    (ready, body_text(stats).await)
}

#[tokio::test]
async fn registers_after_a_digest_challenge_and_shows_it() {
    let registrar = fake_registrar::start("1001", "s3cret").await;
    let (status, _stop) = start_sip(registrar.addr()).await;
    let state = wait_for(&status, |s| {
        matches!(s, RegistrationState::Registered { .. })
    })
    .await;

    // RFC 3261 §22: the first REGISTER is challenged; the retry carries a
    // digest the registrar checked against the password.
    let seen = registrar.seen();
    assert!(seen.len() >= 2, "{seen:?}");
    assert!(seen[0]
        .text
        .starts_with(&format!("REGISTER sip:{} SIP/2.0", fake_registrar::REALM)));
    assert_eq!(
        (seen[0].authorization.is_none(), seen[0].answered),
        (true, Some(401))
    );
    assert_eq!(
        (seen[1].digest_ok, seen[1].answered),
        (Some(true), Some(200)),
        "{}",
        seen[1].text
    );

    let RegistrationState::Registered {
        expires_at,
        last_success,
        ..
    } = &state
    else {
        unreachable!()
    };
    let granted = (*expires_at - *last_success).num_seconds();
    assert!(
        (i64::from(fake_registrar::GRANTED) - 1..=i64::from(fake_registrar::GRANTED))
            .contains(&granted),
        "the registrar granted {} s; shown {granted} s",
        fake_registrar::GRANTED
    );

    let t = app().await;
    let (ready, page) = readyz_and_stats(&t, &status).await;
    let sip = &ready["sip_registration"];
    assert_eq!(sip["state"], "registered", "{ready}");
    assert_eq!(sip["registrar"], registrar.addr().to_string());
    assert!(
        sip["expires_at"].is_string() && sip["last_success"].is_string(),
        "{ready}"
    );
    assert!(
        page.contains(&format!(
            "SIP registration: registered with {} until",
            registrar.addr()
        )),
        "{page}"
    );
}

#[tokio::test]
async fn a_refusing_registrar_shows_failing_with_the_error() {
    let registrar = fake_registrar::start("1001", "s3cret").await;
    registrar.refuse_with(403);
    let (status, _stop) = start_sip(registrar.addr()).await;
    let state = wait_for(&status, |s| matches!(s, RegistrationState::Failing { .. })).await;
    let RegistrationState::Failing {
        last_error,
        retry_at,
        last_success,
        ..
    } = &state
    else {
        unreachable!()
    };
    assert!(last_error.contains("403"), "{last_error}");
    assert!(retry_at.is_some() && last_success.is_none(), "{state:?}");

    let t = app().await;
    let (ready, page) = readyz_and_stats(&t, &status).await;
    let sip = &ready["sip_registration"];
    assert_eq!(sip["state"], "failing", "{ready}");
    assert!(
        sip["last_error"].as_str().unwrap().contains("403"),
        "{ready}"
    );
    assert!(page.contains("SIP registration: failing with"), "{page}");
    assert!(page.contains("(last success never)"), "{page}");
}

#[tokio::test]
async fn without_a_registrar_readyz_says_not_configured() {
    let t = app().await;
    let ready = body_json(t.get("/readyz", None).await).await;
    assert_eq!(ready["status"], "ready");
    assert_eq!(
        ready["sip_registration"]["state"], "not_configured",
        "{ready}"
    );
}
