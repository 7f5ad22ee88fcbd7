//! SIP signalling and RTP receive paths: parse an INVITE, run it through the
//! UAS (100 Trying + call event), negotiate its SDP, and push/pop packets
//! through the jitter buffer. `cargo bench --bench sip`.

use std::net::SocketAddr;
use std::time::Instant;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use switchboard::transport::sip::endpoint::{Endpoint, EndpointConfig};
use switchboard::transport::sip::jitter::JitterBuffer;
use switchboard::transport::sip::message::Message;
use switchboard::transport::sip::sdp::{self, SessionDescription};

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.5\r\ns=-\r\nc=IN IP4 192.0.2.5\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n";

fn invite(n: u64) -> Vec<u8> {
    format!(
        "INVITE sip:sb@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.5:5070;branch=z9hG4bK{n}\r\nMax-Forwards: 70\r\n\
From: <sip:+15551234567@192.0.2.5>;tag=a{n}\r\nTo: <sip:sb@127.0.0.1>\r\nCall-ID: bench-{n}\r\nCSeq: 1 INVITE\r\n\
Contact: <sip:alice@192.0.2.5:5070>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    )
    .into_bytes()
}

fn signalling(c: &mut Criterion) {
    let data = invite(1);
    c.bench_function("sip_parse_invite", |b| {
        b.iter(|| Message::parse(black_box(&data)).is_ok())
    });
    c.bench_function("sdp_parse_and_negotiate", |b| {
        b.iter(|| {
            let offer = SessionDescription::parse(black_box(SDP)).unwrap();
            sdp::negotiate(&offer).unwrap().1.payload_type
        })
    });
    let source: SocketAddr = "192.0.2.5:5070".parse().unwrap();
    let mut ep = Endpoint::new(EndpointConfig::new("127.0.0.1:5060".parse().unwrap()), 7);
    let mut n = 0u64;
    let now = Instant::now();
    c.bench_function("uas_invite_to_trying_and_event", |b| {
        b.iter(|| {
            n += 1;
            ep.handle_datagram(now, source, &invite(n));
            while ep.poll_event().is_some() {}
            let _ = ep.reject(now, &format!("bench-{n}"), 486, &[]);
            while ep.poll_event().is_some() {}
        })
    });
}

fn jitter(c: &mut Criterion) {
    let payload = [0xffu8; 160];
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(8000);
    let mut seq = 0u16;
    c.bench_function("jitter_push_pop_20ms", |b| {
        b.iter(|| {
            seq = seq.wrapping_add(1);
            jb.push(1, seq, u32::from(seq) * 160, &payload, t0);
            black_box(jb.pop())
        })
    });
}

criterion_group!(benches, signalling, jitter);
criterion_main!(benches);
