//! Tests of the Twilio media leg driven through channels. Pacing is checked
//! against the real clock: a timer can fire late but never early, so the
//! "never more than 100 ms ahead" bound holds on a loaded machine too.

use std::convert::Infallible;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use futures::channel::mpsc::{unbounded, UnboundedReceiver, UnboundedSender};
use futures::StreamExt;
use tokio::time::Instant;

use super::media::{accept, MediaError, MediaOptions, PumpEnd};
use super::token::{TokenError, TokenKey};
use crate::audio::Frame;
use crate::transport::{CallLeg, HangupReason, TransportCommand, TransportEvent};

const NOW: u64 = 1_800_000_000;

fn opts() -> MediaOptions {
    MediaOptions::new(TokenKey::new([3; 32]), None)
}

fn start_json(token: &str) -> String {
    serde_json::json!({
        "event": "start",
        "sequenceNumber": "1",
        "start": {
            "accountSid": "AC1", "streamSid": "MZ1", "callSid": "CA1",
            "tracks": ["inbound"],
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            "customParameters": {"token": token, "From": "+15551230000", "To": "+15559870000"}
        },
        "streamSid": "MZ1"
    })
    .to_string()
}

fn media_json(bytes: &[u8]) -> String {
    serde_json::json!({
        "event": "media", "streamSid": "MZ1",
        "media": {"track": "inbound", "chunk": "1", "timestamp": "20", "payload": B64.encode(bytes)}
    })
    .to_string()
}

type In = UnboundedSender<Result<String, Infallible>>;
type Out = UnboundedReceiver<String>;

/// Opens a leg: connected, a malformed frame, then start with a valid token.
async fn open() -> (In, Out, CallLeg, tokio::task::JoinHandle<PumpEnd>) {
    let (in_tx, in_rx) = unbounded();
    let (out_tx, out_rx) = unbounded::<String>();
    let o = opts();
    let token = o.token_key.issue("CA1", NOW);
    in_tx
        .unbounded_send(Ok(
            r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#.into(),
        ))
        .unwrap();
    in_tx.unbounded_send(Ok("{garbage".into())).unwrap();
    in_tx.unbounded_send(Ok(start_json(&token))).unwrap();
    let (leg, pump) = accept(in_rx, out_tx, &o, NOW).await.expect("accepted");
    let handle = tokio::spawn(pump.run());
    (in_tx, out_rx, leg, handle)
}

fn event_of(text: &str) -> serde_json::Value {
    serde_json::from_str(text).expect("pump prints JSON")
}

#[tokio::test]
async fn start_without_a_valid_token_is_refused() {
    for (token, want) in [
        (None, TokenError::Missing),
        (Some("1.AAAA".to_string()), TokenError::BadSignature),
        (
            Some(TokenKey::new([3; 32]).issue("CA-other", NOW)),
            TokenError::BadSignature,
        ),
    ] {
        let (in_tx, in_rx) = unbounded::<Result<String, Infallible>>();
        let (out_tx, _out_rx) = unbounded::<String>();
        let mut start = event_of(&start_json("x"));
        match &token {
            Some(t) => start["start"]["customParameters"]["token"] = t.clone().into(),
            None => {
                start["start"]["customParameters"]
                    .as_object_mut()
                    .unwrap()
                    .remove("token");
            }
        }
        in_tx.unbounded_send(Ok(start.to_string())).unwrap();
        let err = accept(in_rx, out_tx, &opts(), NOW)
            .await
            .err()
            .expect("refused");
        match err {
            MediaError::Token(t) => assert_eq!(t, want),
            other => panic!("unexpected {other}"),
        }
    }
}

#[tokio::test]
async fn leg_info_comes_from_start_and_parameters() {
    let (_in, _out, leg, _h) = open().await;
    assert_eq!(leg.info.external_id, "CA1");
    assert_eq!(leg.info.from, "+15551230000");
    assert_eq!(leg.info.to, "+15559870000");
    assert_eq!(
        leg.info.params.get("StreamSid").map(String::as_str),
        Some("MZ1")
    );
    assert!(!leg.info.params.contains_key("token"));
    assert!(!leg.info.can_transfer);
}

#[tokio::test]
async fn inbound_media_dtmf_mark_and_stop_become_events() {
    let (in_tx, _out, mut leg, handle) = open().await;
    // 0xff is μ-law silence; 240 bytes = 1.5 frames → one frame now, one later.
    in_tx.unbounded_send(Ok(media_json(&[0xff; 240]))).unwrap();
    in_tx.unbounded_send(Ok("not json at all".into())).unwrap();
    in_tx.unbounded_send(Ok(media_json(&[0x80; 80]))).unwrap();
    in_tx
        .unbounded_send(Ok(
            r#"{"event":"dtmf","streamSid":"MZ1","dtmf":{"track":"inbound_track","digit":"0"}}"#
                .into(),
        ))
        .unwrap();
    in_tx
        .unbounded_send(Ok(
            r#"{"event":"mark","streamSid":"MZ1","mark":{"name":"u1-s0"}}"#.into(),
        ))
        .unwrap();
    in_tx
        .unbounded_send(Ok(
            r#"{"event":"stop","streamSid":"MZ1","stop":{"accountSid":"AC1","callSid":"CA1"}}"#
                .into(),
        ))
        .unwrap();
    let mut got = Vec::new();
    while let Some(ev) = leg.events.recv().await {
        got.push(ev);
    }
    assert_eq!(got.len(), 5, "{got:?}");
    assert_eq!(got[0], TransportEvent::Audio(Frame::SILENCE));
    let TransportEvent::Audio(loud) = &got[1] else {
        panic!("expected audio, got {:?}", got[1])
    };
    assert!(
        loud.0[300].unsigned_abs() > 30_000,
        "0x80 is μ-law full scale"
    );
    assert_eq!(got[2], TransportEvent::Dtmf('0'));
    assert_eq!(got[3], TransportEvent::Mark("u1-s0".into()));
    assert_eq!(got[4], TransportEvent::Hangup(HangupReason::Remote));
    assert_eq!(
        handle.await.unwrap(),
        PumpEnd::Carrier(HangupReason::Remote)
    );
}

#[tokio::test]
async fn socket_closed_without_stop_is_a_lost_leg() {
    let (in_tx, _out, mut leg, handle) = open().await;
    drop(in_tx);
    assert_eq!(
        leg.events.recv().await,
        Some(TransportEvent::Hangup(HangupReason::Lost))
    );
    assert_eq!(handle.await.unwrap(), PumpEnd::Carrier(HangupReason::Lost));
}

fn tone_frame() -> Frame {
    let mut f = Frame::SILENCE;
    for (i, s) in f.0.iter_mut().enumerate() {
        *s = if (i / 8) % 2 == 0 { 4000 } else { -4000 };
    }
    f
}

#[tokio::test]
async fn outbound_audio_is_paced_with_at_most_100ms_ahead() {
    let (_in, mut out, leg, _h) = open().await;
    let t0 = Instant::now();
    for _ in 0..50 {
        leg.commands
            .send(TransportCommand::Play(tone_frame()))
            .await
            .unwrap();
    }
    leg.commands
        .send(TransportCommand::Mark("end".into()))
        .await
        .unwrap();
    let mut media_at = Vec::new();
    loop {
        let text = out.next().await.expect("message");
        let v = event_of(&text);
        assert_eq!(v["streamSid"], "MZ1");
        match v["event"].as_str() {
            Some("media") => {
                let payload = B64.decode(v["media"]["payload"].as_str().unwrap()).unwrap();
                assert_eq!(payload.len(), 160, "20 ms of 8 kHz μ-law");
                assert_ne!(&payload[..4], b"RIFF", "never a WAV header");
                media_at.push(Instant::now() - t0);
            }
            Some("mark") => {
                assert_eq!(v["mark"]["name"], "end");
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(media_at.len(), 50);
    for (k, at) in media_at.iter().enumerate() {
        // Chunk k finishes playing at (k+1)*20 ms; it may leave at most 100 ms before that.
        let earliest = Duration::from_millis(((k as u64 + 1) * 20).saturating_sub(100));
        assert!(
            *at >= earliest,
            "chunk {k} sent at {at:?}, before {earliest:?}"
        );
    }
    // The first 100 ms go out at once; the rest follow the clock.
    assert!(
        media_at[4] - media_at[0] < Duration::from_millis(20),
        "{:?}",
        &media_at[..5]
    );
    assert!(media_at[49] >= Duration::from_millis(900));
    assert!(
        media_at[49] - media_at[0] < Duration::from_millis(3000),
        "far too slow: {:?}",
        media_at[49]
    );
}

#[tokio::test]
async fn clear_drops_queued_audio_and_tells_twilio() {
    let (_in, mut out, leg, _h) = open().await;
    for _ in 0..100 {
        leg.commands
            .send(TransportCommand::Play(tone_frame()))
            .await
            .unwrap();
    }
    leg.commands
        .send(TransportCommand::Mark("never".into()))
        .await
        .unwrap();
    let mut sent = 0;
    while sent < 10 {
        let v = event_of(&out.next().await.unwrap());
        assert_eq!(v["event"], "media");
        sent += 1;
    }
    leg.commands.send(TransportCommand::Clear).await.unwrap();
    leg.commands
        .send(TransportCommand::Mark("after".into()))
        .await
        .unwrap();
    // Whatever media was already in flight, a clear comes, then nothing queued before it.
    let mut saw_clear = false;
    loop {
        let v = event_of(&out.next().await.unwrap());
        match v["event"].as_str() {
            Some("media") => assert!(!saw_clear, "media after clear"),
            Some("clear") => saw_clear = true,
            Some("mark") => {
                assert!(saw_clear);
                assert_eq!(v["mark"]["name"], "after");
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn transfer_without_credentials_fails_at_once_and_hangup_closes() {
    let (_in, mut out, mut leg, handle) = open().await;
    leg.commands
        .send(TransportCommand::Transfer("+15550001111".into()))
        .await
        .unwrap();
    assert_eq!(
        leg.events.recv().await,
        Some(TransportEvent::TransferResult { ok: false })
    );
    leg.commands.send(TransportCommand::Hangup).await.unwrap();
    assert_eq!(handle.await.unwrap(), PumpEnd::Session);
    // The socket is closed: the stream of outbound messages ends.
    assert_eq!(out.next().await, None);
}
