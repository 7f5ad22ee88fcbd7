//! Our INVITE in virtual time against a scripted callee; no sockets.
use super::super::EndpointConfig;
use super::*;
use md5::{Digest, Md5};

const CALLEE: &str = "192.0.2.9:5080";

struct Harness {
    ep: Endpoint,
    t0: Instant,
    call: String,
}

fn dial(credentials: bool) -> Dial {
    Dial {
        call_id: "out-1@switchboard".into(),
        target: "sip:bob@192.0.2.9:5080".into(),
        from: "sip:switchboard@127.0.0.1:5060".into(),
        next_hop: CALLEE.parse().unwrap(),
        sdp: b"v=0\r\n".to_vec(),
        credentials: credentials.then(|| ("1001".to_string(), "s3cret".to_string())),
        ring_timeout: Duration::from_secs(30),
    }
}

impl Harness {
    fn start(credentials: bool) -> (Harness, String) {
        let t0 = Instant::now();
        let mut ep = Endpoint::new(EndpointConfig::new("127.0.0.1:5060".parse().unwrap()), 7);
        let d = dial(credentials);
        let call = d.call_id.clone();
        ep.invite(t0, d);
        let mut h = Harness { ep, t0, call };
        let sent = h.sent();
        assert_eq!(sent.len(), 1);
        (h, sent[0].clone())
    }

    fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.ep.poll_event()).collect()
    }

    /// What the endpoint transmitted since the last look, as text.
    fn sent(&mut self) -> Vec<String> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Transmit { data, .. } => Some(String::from_utf8(data).unwrap()),
                _ => None,
            })
            .collect()
    }

    fn at(&mut self, ms: u64) {
        self.ep.handle_timeout(self.t0 + Duration::from_millis(ms));
    }

    /// The callee's answer to `request` (one of our INVITEs), given at `ms`.
    fn answer(&mut self, ms: u64, request: &str, code: u16, extra: &str, body: &str) {
        let Message::Request(req) = Message::parse(request.as_bytes()).unwrap() else {
            panic!("a request")
        };
        let vias: String = req
            .core
            .vias
            .iter()
            .map(|v| format!("Via: {v}\r\n"))
            .collect();
        let tag = if code > 100 { ";tag=bob1" } else { "" };
        let text = format!(
            "SIP/2.0 {code} X\r\n{vias}From: {}\r\nTo: {}{tag}\r\nCall-ID: {}\r\nCSeq: {} {}\r\n{extra}Content-Length: {}\r\n\r\n{body}",
            req.core.from, req.core.to, req.core.call_id, req.core.cseq, req.core.cseq_method, body.len()
        );
        self.ep.handle_datagram(
            self.t0 + Duration::from_millis(ms),
            CALLEE.parse().unwrap(),
            text.as_bytes(),
        );
    }
}

fn line<'a>(msg: &'a str, prefix: &str) -> &'a str {
    msg.lines().find(|l| l.starts_with(prefix)).unwrap_or("")
}

#[test]
fn timer_a_until_ringing_then_the_answer_is_acked() {
    let (mut h, invite) = Harness::start(false);
    assert!(invite.starts_with("INVITE sip:bob@192.0.2.9:5080 SIP/2.0\r\n"));
    h.at(499);
    assert!(h.sent().is_empty());
    h.at(500);
    assert_eq!(h.sent(), vec![invite.clone()], "Timer A fires at T1");
    h.at(1499);
    assert!(h.sent().is_empty());
    h.at(1500);
    assert_eq!(h.sent().len(), 1, "then after 2·T1");
    h.answer(1600, &invite, 180, "", "");
    h.at(3600);
    h.at(20_000);
    assert!(h.sent().is_empty(), "no retransmission once it rings");
    let sdp = "v=0\r\nc=IN IP4 192.0.2.9\r\nm=audio 7000 RTP/AVP 0\r\n";
    h.answer(
        2000,
        &invite,
        200,
        "Contact: <sip:bob@192.0.2.9:5081>\r\nContent-Type: application/sdp\r\n",
        sdp,
    );
    let events = h.events();
    let ack = events
        .iter()
        .find_map(|e| match e {
            Event::Transmit { to, data } => Some((*to, String::from_utf8(data.clone()).unwrap())),
            _ => None,
        })
        .expect("an ACK");
    assert_eq!(ack.0, "192.0.2.9:5081".parse().unwrap(), "to the Contact");
    assert!(
        ack.1.starts_with("ACK sip:bob@192.0.2.9:5081 SIP/2.0"),
        "{}",
        ack.1
    );
    assert!(line(&ack.1, "To:").ends_with(";tag=bob1"));
    assert_eq!(line(&ack.1, "CSeq:"), "CSeq: 1 ACK");
    assert_ne!(
        line(&ack.1, "Via:"),
        line(&invite, "Via:"),
        "a 2xx ACK is its own transaction"
    );
    assert!(events.iter().any(
        |e| matches!(e, Event::Answered { call, sdp: s } if *call == h.call && s == sdp.as_bytes())
    ));
    // A retransmitted 2xx means our ACK was lost: send it again.
    h.answer(
        2500,
        &invite,
        200,
        "Contact: <sip:bob@192.0.2.9:5081>\r\n",
        "",
    );
    assert_eq!(h.sent(), vec![ack.1.clone()]);
    // The callee hangs up.
    let bye = format!(
        "BYE sip:switchboard@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.9:5081;branch=z9hG4bKb1\r\nFrom: <sip:bob@192.0.2.9:5080>;tag=bob1\r\n{}\r\nCall-ID: {}\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n",
        line(&ack.1, "From:").replacen("From:", "To:", 1),
        h.call
    );
    h.ep.handle_datagram(
        h.t0 + Duration::from_secs(9),
        "192.0.2.9:5081".parse().unwrap(),
        bye.as_bytes(),
    );
    let events = h.events();
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::Transmit { data, .. } if data.starts_with(b"SIP/2.0 200"))));
    assert!(events.iter().any(|e| matches!(
        e,
        Event::Ended {
            reason: EndReason::RemoteBye,
            ..
        }
    )));
}

#[test]
fn a_challenge_is_answered_once_with_digest_credentials() {
    let (mut h, invite) = Harness::start(true);
    let challenge = "WWW-Authenticate: Digest realm=\"pbx\", nonce=\"abc\", qop=\"auth\"\r\n";
    h.answer(100, &invite, 401, challenge, "");
    let sent = h.sent();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(sent[0].starts_with("ACK ") && line(&sent[0], "Via:") == line(&invite, "Via:"));
    let again = &sent[1];
    assert_eq!(line(again, "CSeq:"), "CSeq: 2 INVITE");
    assert_eq!(line(again, "Call-ID:"), line(&invite, "Call-ID:"));
    let auth = line(again, "Authorization:");
    let param = |k: &str| {
        let start = auth.find(&format!("{k}=")).unwrap() + k.len() + 1;
        auth[start..]
            .trim_start_matches('"')
            .split(['"', ','])
            .next()
            .unwrap()
            .to_string()
    };
    let h1 = hex::encode(Md5::digest(b"1001:pbx:s3cret"));
    let h2 = hex::encode(Md5::digest(b"INVITE:sip:bob@192.0.2.9:5080"));
    let expected = hex::encode(Md5::digest(
        format!("{h1}:abc:{}:{}:auth:{h2}", param("nc"), param("cnonce")).as_bytes(),
    ));
    assert_eq!(param("response"), expected, "{auth}");
    assert_eq!(param("uri"), "sip:bob@192.0.2.9:5080");
    // A second challenge means the credentials are wrong: give up.
    h.answer(200, again, 401, challenge, "");
    let events = h.events();
    assert!(
        events.iter().any(|e| matches!(
            e,
            Event::Ended {
                reason: EndReason::Rejected(401),
                ..
            }
        )),
        "{events:?}"
    );
}

#[test]
fn busy_is_acked_and_ends_the_call() {
    let (mut h, invite) = Harness::start(false);
    h.answer(100, &invite, 486, "", "");
    let events = h.events();
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::Transmit { data, .. } if data.starts_with(b"ACK "))));
    assert!(events.iter().any(|e| matches!(
        e,
        Event::Ended {
            reason: EndReason::Rejected(486),
            ..
        }
    )));
    assert_eq!(h.ep.poll_timeout(), None, "nothing left to do");
}

#[test]
fn timer_b_ends_a_call_nobody_answers() {
    let (mut h, _) = Harness::start(false);
    for ms in [500, 1500, 3500, 7500, 15_500] {
        h.at(ms);
    }
    assert_eq!(h.sent().len(), 5);
    h.at(32_000);
    assert!(h.events().iter().any(|e| matches!(
        e,
        Event::Ended {
            reason: EndReason::NoResponse,
            ..
        }
    )));
}

#[test]
fn ringing_too_long_is_cancelled() {
    let (mut h, invite) = Harness::start(false);
    h.answer(100, &invite, 180, "", "");
    h.at(30_000);
    let sent = h.sent();
    assert_eq!(sent.len(), 1);
    let cancel = &sent[0];
    assert!(cancel.starts_with("CANCEL sip:bob@192.0.2.9:5080 SIP/2.0"));
    assert_eq!(
        line(cancel, "Via:"),
        line(&invite, "Via:"),
        "same branch as the INVITE"
    );
    assert_eq!(line(cancel, "CSeq:"), "CSeq: 1 CANCEL");
    h.answer(30_100, cancel, 200, "", "");
    h.answer(30_100, &invite, 487, "", "");
    let events = h.events();
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::Transmit { data, .. } if data.starts_with(b"ACK "))));
    assert!(events.iter().any(|e| matches!(
        e,
        Event::Ended {
            reason: EndReason::NoAnswer,
            ..
        }
    )));
}
