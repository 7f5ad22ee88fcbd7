//! Registration in virtual time against a scripted registrar.

use super::*;
use crate::transport::sip::message::Message;

fn cfg() -> RegisterConfig {
    RegisterConfig {
        registrar: "127.0.0.1:5070".parse().unwrap(),
        domain: "pbx.example.com".into(),
        user: "1001".into(),
        password: "secret".into(),
        expires: 600,
        contact: "<sip:switchboard@127.0.0.1:5060>".into(),
        via_host: "127.0.0.1:5060".into(),
    }
}

/// Parses what the client sent and builds the registrar's answer to it.
fn answer(sent: &[u8], code: u16, extra: &str) -> (Response, String) {
    let Message::Request(req) = Message::parse(sent).unwrap() else {
        panic!("a request")
    };
    let text = String::from_utf8_lossy(sent).to_string();
    let vias = req
        .core
        .vias
        .iter()
        .map(|v| format!("Via: {v}\r\n"))
        .collect::<String>();
    let resp = format!(
        "SIP/2.0 {code} X\r\n{vias}From: {}\r\nTo: {};tag=reg\r\nCall-ID: {}\r\nCSeq: {} REGISTER\r\n{extra}Content-Length: 0\r\n\r\n",
        req.core.from, req.core.to, req.core.call_id, req.core.cseq
    );
    let Message::Response(r) = Message::parse(resp.as_bytes()).unwrap() else {
        panic!("a response")
    };
    (r, text)
}

#[test]
fn challenge_then_registered_then_refresh() {
    let t0 = Instant::now();
    let mut reg = Registration::new(cfg(), t0, 9);
    reg.handle_timeout(t0);
    let first = reg.poll_transmit().unwrap();
    let (resp, text) = answer(
        &first,
        401,
        "WWW-Authenticate: Digest realm=\"pbx\", nonce=\"n1\", algorithm=SHA-256, qop=\"auth\"\r\n",
    );
    assert!(
        text.starts_with("REGISTER sip:pbx.example.com SIP/2.0") && !text.contains("Authorization")
    );
    reg.handle_response(t0, &resp);
    let second = reg.poll_transmit().unwrap();
    let text2 = String::from_utf8_lossy(&second).to_string();
    assert!(
        text2.contains("Authorization: Digest username=\"1001\", realm=\"pbx\"")
            && text2.contains("algorithm=SHA-256"),
        "{text2}"
    );
    assert!(text2.contains("CSeq: 2 REGISTER"));
    let (ok, _) = answer(
        &second,
        200,
        "Contact: <sip:switchboard@127.0.0.1:5060>;expires=120\r\n",
    );
    reg.handle_response(t0, &ok);
    assert_eq!(
        reg.status(t0),
        Status::Registered {
            expires_in: Duration::from_secs(120)
        }
    );
    // Refresh before expiry: at 120 − 30 s.
    assert_eq!(reg.poll_timeout(), t0 + Duration::from_secs(90));
    reg.handle_timeout(t0 + Duration::from_secs(90));
    let refresh = String::from_utf8_lossy(&reg.poll_transmit().unwrap()).to_string();
    assert!(
        refresh.contains("CSeq: 3 REGISTER") && refresh.contains("nc=00000002"),
        "{refresh}"
    );
}

#[test]
fn wrong_password_is_not_retried_in_a_loop() {
    let t0 = Instant::now();
    let mut reg = Registration::new(cfg(), t0, 3);
    reg.handle_timeout(t0);
    let chal = "WWW-Authenticate: Digest realm=\"pbx\", nonce=\"n1\"\r\n";
    let (r1, _) = answer(&reg.poll_transmit().unwrap(), 401, chal);
    reg.handle_response(t0, &r1);
    let (r2, _) = answer(&reg.poll_transmit().unwrap(), 401, chal);
    reg.handle_response(t0, &r2);
    assert!(reg.poll_transmit().is_none());
    assert!(
        matches!(reg.status(t0), Status::Failed { ref reason, .. } if reason.contains("credentials"))
    );
}

#[test]
fn silent_registrar_means_retransmits_then_backoff() {
    let t0 = Instant::now();
    let mut reg = Registration::new(cfg(), t0, 5);
    reg.handle_timeout(t0);
    let mut sends = 0;
    let mut now = t0;
    while now < t0 + Duration::from_secs(40) {
        while reg.poll_transmit().is_some() {
            sends += 1;
        }
        now = reg.poll_timeout().max(now);
        reg.handle_timeout(now);
        if matches!(reg.status(now), Status::Failed { .. }) {
            break;
        }
    }
    assert!(sends >= 7, "retransmitted {sends} times");
    let Status::Failed { retry_in, .. } = reg.status(now) else {
        panic!("failed after Timer F")
    };
    assert_eq!(retry_in, Duration::from_secs(2));
    assert!(now >= t0 + Duration::from_secs(32));
}

#[test]
fn interval_too_brief_raises_expires() {
    let t0 = Instant::now();
    let mut reg = Registration::new(cfg(), t0, 7);
    reg.handle_timeout(t0);
    let (r, _) = answer(&reg.poll_transmit().unwrap(), 423, "Min-Expires: 1800\r\n");
    reg.handle_response(t0, &r);
    let again = String::from_utf8_lossy(&reg.poll_transmit().unwrap()).to_string();
    assert!(again.contains("Expires: 1800"), "{again}");
}

#[test]
fn snapshot_keeps_the_last_success_and_the_last_error() {
    let t0 = Instant::now();
    let mut reg = Registration::new(cfg(), t0, 5);
    reg.handle_timeout(t0);
    let (ok, _) = answer(
        &reg.poll_transmit().unwrap(),
        200,
        "Contact: <sip:switchboard@127.0.0.1:5060>;expires=120\r\n",
    );
    reg.handle_response(t0, &ok);
    let s = reg.snapshot();
    assert_eq!(s.registered_until, Some(t0 + Duration::from_secs(120)));
    assert_eq!((s.last_success, s.last_error), (Some(t0), None));
    // The refresh is refused: the binding still holds until it expires.
    let t1 = reg.poll_timeout();
    reg.handle_timeout(t1);
    let (refused, _) = answer(&reg.poll_transmit().unwrap(), 403, "");
    reg.handle_response(t1, &refused);
    let s = reg.snapshot();
    assert_eq!(s.registered_until, Some(t0 + Duration::from_secs(120)));
    assert_eq!(s.last_success, Some(t0));
    let error = s.last_error.unwrap_or_default();
    assert!(error.starts_with("registrar answered 403"), "{error}");
    assert!(s.retry_at.is_some_and(|t| t > t1));
}
