//! The UAS in virtual time: every test walks a fake clock; no sockets.

use super::*;

const CALLER: &str = "192.0.2.5:5070";

fn invite(branch: &str, cseq: u32, to_tag: Option<&str>) -> Vec<u8> {
    let to = match to_tag {
        Some(t) => format!("<sip:sb@127.0.0.1>;tag={t}"),
        None => "<sip:sb@127.0.0.1>".to_string(),
    };
    let body = "v=0\r\nc=IN IP4 192.0.2.5\r\nm=audio 4000 RTP/AVP 0\r\n";
    format!(
        "INVITE sip:sb@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.5:5070;branch={branch}\r\nMax-Forwards: 70\r\n\
From: <sip:+15551234567@192.0.2.5>;tag=caller1\r\nTo: {to}\r\nCall-ID: call-1\r\nCSeq: {cseq} INVITE\r\n\
Contact: <sip:alice@192.0.2.5:5070>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn simple(method: &str, branch: &str, cseq: u32, to_tag: Option<&str>) -> Vec<u8> {
    let to = match to_tag {
        Some(t) => format!("<sip:sb@127.0.0.1>;tag={t}"),
        None => "<sip:sb@127.0.0.1>".to_string(),
    };
    format!(
        "{method} sip:sb@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.5:5070;branch={branch}\r\nMax-Forwards: 70\r\n\
From: <sip:+15551234567@192.0.2.5>;tag=caller1\r\nTo: {to}\r\nCall-ID: call-1\r\nCSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

struct Harness {
    ep: Endpoint,
    now: Instant,
}

impl Harness {
    fn new() -> Harness {
        Harness {
            ep: Endpoint::new(EndpointConfig::new("127.0.0.1:5060".parse().unwrap()), 42),
            now: Instant::now(),
        }
    }

    fn feed(&mut self, data: &[u8]) -> Vec<Event> {
        self.ep
            .handle_datagram(self.now, CALLER.parse().unwrap(), data);
        self.drain()
    }

    fn drain(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.ep.poll_event()).collect()
    }

    /// Advances to the next deadline (if before `limit`) and returns what happened.
    fn advance_until(&mut self, limit: Instant) -> Vec<Event> {
        let mut out = Vec::new();
        while let Some(t) = self.ep.poll_timeout() {
            if t > limit {
                break;
            }
            self.now = t.max(self.now);
            self.ep.handle_timeout(self.now);
            out.extend(self.drain());
        }
        self.now = limit;
        out
    }

    fn local_tag(&self) -> String {
        self.ep.dialogs.get("call-1").unwrap().local_tag.clone()
    }
}

fn sent(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Transmit { data, .. } => Some(
                String::from_utf8_lossy(data)
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            ),
            _ => None,
        })
        .collect()
}

fn answered_call(h: &mut Harness) -> String {
    let ev = h.feed(&invite("z9hG4bKa", 1, None));
    assert_eq!(sent(&ev), ["SIP/2.0 100 Trying"]);
    assert!(
        matches!(&ev[1], Event::IncomingCall { call, from, .. } if call == "call-1" && from == "sip:+15551234567@192.0.2.5")
    );
    h.ep.ring(h.now, "call-1").unwrap();
    h.ep.accept(h.now, "call-1", b"v=0\r\n").unwrap();
    assert_eq!(sent(&h.drain()), ["SIP/2.0 180 Ringing", "SIP/2.0 200 OK"]);
    h.local_tag()
}

#[test]
fn invite_ring_answer_ack_bye() {
    let mut h = Harness::new();
    let tag = answered_call(&mut h);
    let ev = h.feed(&simple("ACK", "z9hG4bKack", 1, Some(&tag)));
    assert_eq!(
        ev,
        vec![Event::Established {
            call: "call-1".into()
        }]
    );
    let ev = h.feed(&simple("BYE", "z9hG4bKbye", 2, Some(&tag)));
    assert_eq!(sent(&ev), ["SIP/2.0 200 OK"]);
    assert!(ev.contains(&Event::Ended {
        call: "call-1".into(),
        reason: EndReason::RemoteBye
    }));
    // A retransmitted BYE gets the same answer and no second end.
    let ev = h.feed(&simple("BYE", "z9hG4bKbye", 2, Some(&tag)));
    assert_eq!(sent(&ev), ["SIP/2.0 200 OK"]);
    assert_eq!(ev.len(), 1);
}

#[test]
fn ok_is_retransmitted_with_doubling_intervals_until_ack() {
    let mut h = Harness::new();
    let start = h.now;
    let tag = answered_call(&mut h);
    let ev = h.advance_until(start + Duration::from_millis(3600));
    // Timer G schedule: 0.5 s, then 1 s, then 2 s later.
    assert_eq!(
        sent(&ev),
        ["SIP/2.0 200 OK", "SIP/2.0 200 OK", "SIP/2.0 200 OK"]
    );
    h.feed(&simple("ACK", "z9hG4bKack", 1, Some(&tag)));
    let ev = h.advance_until(start + Duration::from_secs(60));
    assert!(sent(&ev).is_empty(), "no retransmission after ACK: {ev:?}");
}

#[test]
fn no_ack_ends_the_call_with_a_bye() {
    let mut h = Harness::new();
    let start = h.now;
    answered_call(&mut h);
    let ev = h.advance_until(start + Duration::from_secs(40));
    let lines = sent(&ev);
    assert!(
        lines.iter().filter(|l| *l == "SIP/2.0 200 OK").count() >= 7,
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("BYE sip:alice@192.0.2.5:5070 SIP/2.0")),
        "{lines:?}"
    );
    assert!(ev.contains(&Event::Ended {
        call: "call-1".into(),
        reason: EndReason::NoAck
    }));
    let t = h.now;
    assert!(t >= start + Duration::from_secs(32));
}

#[test]
fn retransmitted_invite_is_absorbed() {
    let mut h = Harness::new();
    h.feed(&invite("z9hG4bKa", 1, None));
    h.ep.ring(h.now, "call-1").unwrap();
    h.drain();
    let ev = h.feed(&invite("z9hG4bKa", 1, None));
    assert_eq!(
        sent(&ev),
        ["SIP/2.0 180 Ringing"],
        "the latest response is repeated"
    );
    assert!(!ev.iter().any(|e| matches!(e, Event::IncomingCall { .. })));
}

#[test]
fn cancel_before_answer_gets_200_and_487() {
    let mut h = Harness::new();
    h.feed(&invite("z9hG4bKa", 1, None));
    h.ep.ring(h.now, "call-1").unwrap();
    h.drain();
    let ev = h.feed(&simple("CANCEL", "z9hG4bKa", 1, None));
    assert_eq!(
        sent(&ev),
        ["SIP/2.0 200 OK", "SIP/2.0 487 Request Terminated"]
    );
    assert!(ev.contains(&Event::Ended {
        call: "call-1".into(),
        reason: EndReason::Cancelled
    }));
    // The application's late answer is refused, not sent.
    assert!(h.ep.accept(h.now, "call-1", b"v=0").is_err());
    let tag = h.local_tag();
    h.feed(&simple("ACK", "z9hG4bKa", 1, Some(&tag)));
    let ev = h.advance_until(h.now + Duration::from_secs(60));
    assert!(sent(&ev).is_empty(), "ACK stopped the 487 retransmission");
    assert_eq!(h.ep.active_calls(), 0);
}

#[test]
fn cancel_after_answer_changes_nothing_and_unknown_cancel_is_481() {
    let mut h = Harness::new();
    answered_call(&mut h);
    let ev = h.feed(&simple("CANCEL", "z9hG4bKa", 1, None));
    assert_eq!(sent(&ev), ["SIP/2.0 200 OK"]);
    assert!(!ev.iter().any(|e| matches!(e, Event::Ended { .. })));
    let ev = h.feed(&simple("CANCEL", "z9hG4bKother", 1, None));
    assert_eq!(sent(&ev), ["SIP/2.0 481 Call/Transaction Does Not Exist"]);
}

#[test]
fn reinvite_is_offered_to_the_application_and_answered() {
    let mut h = Harness::new();
    let tag = answered_call(&mut h);
    h.feed(&simple("ACK", "z9hG4bKack", 1, Some(&tag)));
    let ev = h.feed(&invite("z9hG4bKre", 2, Some(&tag)));
    assert_eq!(sent(&ev), ["SIP/2.0 100 Trying"]);
    assert!(matches!(&ev[1], Event::Reoffer { call, sdp } if call == "call-1" && !sdp.is_empty()));
    // A second re-INVITE while one is pending gets 491.
    let ev = h.feed(&invite("z9hG4bKre2", 3, Some(&tag)));
    assert_eq!(sent(&ev), ["SIP/2.0 491 Request Pending"]);
    h.ep.answer_reoffer(h.now, "call-1", b"v=0\r\n").unwrap();
    assert_eq!(sent(&h.drain()), ["SIP/2.0 200 OK"]);
    h.feed(&simple("ACK", "z9hG4bKack2", 2, Some(&tag)));
    let ev = h.advance_until(h.now + Duration::from_secs(10));
    assert!(sent(&ev).is_empty());
}

#[test]
fn options_unknown_and_unsupported_methods() {
    let mut h = Harness::new();
    let ev = h.feed(&simple("OPTIONS", "z9hG4bKo", 1, None));
    assert_eq!(sent(&ev), ["SIP/2.0 200 OK"]);
    let Event::Transmit { data, .. } = &ev[0] else {
        panic!()
    };
    assert!(String::from_utf8_lossy(data).contains("Allow: INVITE, ACK, CANCEL, BYE, OPTIONS"));
    assert_eq!(
        sent(&h.feed(&simple("FROBNICATE", "z9hG4bKf", 1, None))),
        ["SIP/2.0 501 Not Implemented"]
    );
    assert_eq!(
        sent(&h.feed(&simple("SUBSCRIBE", "z9hG4bKs", 1, None))),
        ["SIP/2.0 405 Method Not Allowed"]
    );
    assert_eq!(
        sent(&h.feed(&simple("BYE", "z9hG4bKb", 1, Some("nope")))),
        ["SIP/2.0 481 Call/Transaction Does Not Exist"]
    );
}

#[test]
fn malformed_requests_get_400_with_a_reason_or_are_dropped() {
    let mut h = Harness::new();
    let bad = String::from_utf8(invite("z9hG4bKa", 1, None))
        .unwrap()
        .replace("CSeq: 1 INVITE", "CSeq: one INVITE");
    let ev = h.feed(bad.as_bytes());
    assert_eq!(sent(&ev), ["SIP/2.0 400 Malformed CSeq header"]);
    assert!(matches!(&ev[1], Event::Malformed { reason, .. } if reason.contains("CSeq")));
    let ev = h.feed(b"\x16\x03\x01 not sip at all");
    assert!(sent(&ev).is_empty());
    assert!(matches!(&ev[0], Event::Malformed { .. }));
    let hops = String::from_utf8(simple("OPTIONS", "z9hG4bKm", 1, None))
        .unwrap()
        .replace("Max-Forwards: 70", "Max-Forwards: 0");
    assert_eq!(
        sent(&h.feed(hops.as_bytes())),
        ["SIP/2.0 483 Too Many Hops"]
    );
    assert!(h.feed(b"\r\n\r\n").is_empty(), "keep-alive CRLF is ignored");
}

#[test]
fn local_hangup_sends_bye_and_refer_follows_notify() {
    let mut h = Harness::new();
    let tag = answered_call(&mut h);
    h.feed(&simple("ACK", "z9hG4bKack", 1, Some(&tag)));
    h.ep.refer(
        h.now,
        "call-1",
        "sip:agent@127.0.0.1:5080",
        "sip:switchboard@127.0.0.1:5060",
    )
    .unwrap();
    let ev = h.drain();
    let Event::Transmit { data, to } = &ev[0] else {
        panic!()
    };
    let text = String::from_utf8_lossy(data);
    assert!(
        text.starts_with("REFER sip:alice@192.0.2.5:5070 SIP/2.0"),
        "{text}"
    );
    assert!(
        text.contains("Refer-To: <sip:agent@127.0.0.1:5080>")
            && text.contains("Referred-By: <sip:switchboard@127.0.0.1:5060>")
    );
    assert!(text.contains(&format!("From: <sip:sb@127.0.0.1>;tag={tag}")));
    assert_eq!(to.to_string(), "192.0.2.5:5070");
    let branch = message::param(
        text.lines().find(|l| l.starts_with("Via:")).unwrap(),
        "branch",
    )
    .unwrap();
    let accepted = format!(
        "SIP/2.0 202 Accepted\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch={branch}\r\nFrom: <sip:sb@127.0.0.1>;tag={tag}\r\nTo: <sip:+15551234567@192.0.2.5>;tag=caller1\r\nCall-ID: call-1\r\nCSeq: 1 REFER\r\nContent-Length: 0\r\n\r\n"
    );
    assert_eq!(
        h.feed(accepted.as_bytes()),
        vec![Event::TransferProgress {
            call: "call-1".into(),
            code: 202
        }]
    );
    let notify = format!(
        "NOTIFY sip:sb@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.5:5070;branch=z9hG4bKn1\r\nFrom: <sip:+15551234567@192.0.2.5>;tag=caller1\r\nTo: <sip:sb@127.0.0.1>;tag={tag}\r\nCall-ID: call-1\r\nCSeq: 5 NOTIFY\r\nEvent: refer\r\nSubscription-State: terminated\r\nContent-Type: message/sipfrag\r\nContent-Length: 16\r\n\r\nSIP/2.0 200 OK\r\n"
    );
    let ev = h.feed(notify.as_bytes());
    assert_eq!(sent(&ev), ["SIP/2.0 200 OK"]);
    assert!(ev.contains(&Event::TransferProgress {
        call: "call-1".into(),
        code: 200
    }));
    h.ep.hangup(h.now, "call-1").unwrap();
    let ev = h.drain();
    assert!(sent(&ev)[0].starts_with("BYE "));
    assert!(ev.contains(&Event::Ended {
        call: "call-1".into(),
        reason: EndReason::LocalHangup
    }));
}

#[test]
fn reject_before_answer_is_final() {
    let mut h = Harness::new();
    h.feed(&invite("z9hG4bKa", 1, None));
    h.ep.reject(h.now, "call-1", 503, &[("Retry-After", "5".into())])
        .unwrap();
    let ev = h.drain();
    let Event::Transmit { data, .. } = &ev[0] else {
        panic!()
    };
    let text = String::from_utf8_lossy(data);
    assert!(text.starts_with("SIP/2.0 503 Service Unavailable") && text.contains("Retry-After: 5"));
    assert!(ev.contains(&Event::Ended {
        call: "call-1".into(),
        reason: EndReason::Rejected(503)
    }));
}
