use std::sync::Mutex;
use std::time::Duration;

use super::*;
use crate::providers::report::ReportKind;

/// A speech engine that "transcribes" each frame as its marker (the first
/// sample) and can fail to open or die after a number of frames.
struct MarkerStt {
    name: &'static str,
    fail_open: bool,
    die_after: Option<usize>,
    heard: Arc<Mutex<Vec<i16>>>,
}

impl MarkerStt {
    fn new(name: &'static str) -> MarkerStt {
        MarkerStt {
            name,
            fail_open: false,
            die_after: None,
            heard: Arc::default(),
        }
    }
}

impl SttProvider for MarkerStt {
    fn name(&self) -> &'static str {
        self.name
    }
    fn open(&self) -> Result<SttStream, ProviderError> {
        if self.fail_open {
            return Err(ProviderError::retryable(self.name, "connection refused"));
        }
        let (audio, mut rx) = mpsc::channel::<Frame>(1000);
        let (tx, events) = mpsc::channel(1000);
        let (name, die_after, heard) = (self.name, self.die_after, self.heard.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while let Some(frame) = rx.recv().await {
                if die_after == Some(n) {
                    let _ = tx
                        .send(SttEvent::Error(ProviderError::retryable(
                            name,
                            "socket reset",
                        )))
                        .await;
                    return;
                }
                n += 1;
                let marker = frame.0[0];
                heard.lock().unwrap().push(marker);
                let fin = SttEvent::Final {
                    text: marker.to_string(),
                    confidence: 0.9,
                    end_of_turn: false,
                };
                if tx.send(fin).await.is_err() {
                    return;
                }
            }
        });
        Ok(SttStream { audio, events })
    }
}

fn frame(marker: i16) -> Frame {
    let mut f = Frame::SILENCE;
    f.0[0] = marker;
    f
}

fn drain(
    rx: &mut mpsc::UnboundedReceiver<crate::providers::report::EngineReport>,
) -> Vec<(Stage, &'static str, ReportKind)> {
    std::iter::from_fn(|| rx.try_recv().ok())
        .map(|r| (r.stage, r.engine, r.kind))
        .collect()
}

async fn collect_finals(
    events: &mut mpsc::Receiver<SttEvent>,
) -> (Vec<i16>, Option<ProviderError>) {
    let mut got = Vec::new();
    while let Some(ev) = events.recv().await {
        match ev {
            SttEvent::Final { text, .. } => got.push(text.parse().unwrap()),
            SttEvent::Error(e) => return (got, Some(e)),
            _ => {}
        }
    }
    (got, None)
}

#[tokio::test]
async fn a_dying_engine_is_replaced_and_the_audio_since_the_last_final_is_replayed() {
    let mut first = MarkerStt::new("cloud");
    first.die_after = Some(3);
    let second = MarkerStt::new("offline");
    let second_heard = second.heard.clone();
    let chain = SttChain::new(vec![Arc::new(first), Arc::new(second)], EngineStats::new());
    let (reporter, mut reports) = Reporter::for_call(chain.stats.clone());
    let SttStream { audio, mut events } = chain.open_for(reporter).unwrap();
    let feeder = tokio::spawn(async move {
        for m in 1..=6 {
            audio.send(frame(m)).await.unwrap();
        }
    });
    let (finals, error) = collect_finals(&mut events).await;
    feeder.await.unwrap();
    assert!(error.is_none());
    // Every marker is transcribed; markers 1-3 may repeat from the replay,
    // but nothing is missing and order holds.
    for m in 1..=6 {
        assert!(finals.contains(&m), "marker {m} lost: {finals:?}");
    }
    assert!(
        finals.windows(2).filter(|w| w[0] > w[1]).count() <= 1,
        "{finals:?}"
    );
    // The replacement heard marker 4 onwards (the frame the first engine died on).
    assert!(second_heard.lock().unwrap().contains(&4));
    let r = drain(&mut reports);
    assert!(r.contains(&(Stage::Stt, "cloud", ReportKind::Fallback { to: "offline" })));
    assert!(r.iter().any(|(_, e, k)| *e == "cloud"
        && matches!(
            k,
            ReportKind::Error {
                retryable: true,
                ..
            }
        )));
    assert!(chain.stats.is_down(Stage::Stt, "cloud", Instant::now()));
}

#[tokio::test]
async fn an_engine_that_cannot_open_is_skipped_and_then_rested() {
    let mut first = MarkerStt::new("cloud");
    first.fail_open = true;
    let chain = SttChain::new(
        vec![Arc::new(first), Arc::new(MarkerStt::new("offline"))],
        EngineStats::new(),
    );
    let (reporter, mut reports) = Reporter::for_call(chain.stats.clone());
    let SttStream { audio, mut events } = chain.open_for(reporter.clone()).unwrap();
    audio.send(frame(7)).await.unwrap();
    drop(audio);
    assert_eq!(collect_finals(&mut events).await, (vec![7], None));
    assert_eq!(drain(&mut reports).len(), 3, "error, fallback, used");
    // The next call does not even try the resting engine: no error, no
    // fallback, and the transcript comes from the second engine alone.
    let SttStream { audio, mut events } = chain.open_for(reporter).unwrap();
    audio.send(frame(8)).await.unwrap();
    drop(audio);
    assert_eq!(collect_finals(&mut events).await, (vec![8], None));
    assert_eq!(
        drain(&mut reports),
        [(Stage::Stt, "offline", ReportKind::Used)]
    );
}

#[tokio::test]
async fn when_every_engine_fails_the_stream_reports_the_error() {
    let mut a = MarkerStt::new("a");
    a.die_after = Some(1);
    let mut b = MarkerStt::new("b");
    b.die_after = Some(0);
    let chain = SttChain::new(vec![Arc::new(a), Arc::new(b)], EngineStats::new());
    let (reporter, mut reports) = Reporter::for_call(chain.stats.clone());
    let SttStream { audio, mut events } = chain.open_for(reporter).unwrap();
    audio.send(frame(1)).await.unwrap();
    audio.send(frame(2)).await.unwrap();
    let (finals, error) = collect_finals(&mut events).await;
    assert_eq!(finals, vec![1]);
    assert_eq!(error.unwrap().engine, "b");
    assert!(drain(&mut reports)
        .iter()
        .any(|(_, _, k)| *k == ReportKind::Exhausted));
}

struct ToneTts {
    name: &'static str,
    frames: usize,
    fail_after: Option<usize>,
}

impl TtsProvider for ToneTts {
    fn name(&self) -> &'static str {
        self.name
    }
    fn synthesize(&self, _text: &str) -> mpsc::Receiver<Result<Frame, ProviderError>> {
        let (tx, rx) = mpsc::channel(8);
        let (name, frames, fail_after) = (self.name, self.frames, self.fail_after);
        tokio::spawn(async move {
            for i in 0..frames {
                if fail_after == Some(i) {
                    let _ = tx
                        .send(Err(ProviderError::retryable(name, "HTTP 500")))
                        .await;
                    return;
                }
                let marker = if name == "offline" { 2 } else { 1 };
                if tx.send(Ok(frame(marker))).await.is_err() {
                    return;
                }
            }
        });
        rx
    }
}

async fn markers(
    mut rx: mpsc::Receiver<Result<Frame, ProviderError>>,
) -> (Vec<i16>, Option<ProviderError>) {
    let mut out = Vec::new();
    while let Some(item) = rx.recv().await {
        match item {
            Ok(f) => out.push(f.0[0]),
            Err(e) => return (out, Some(e)),
        }
    }
    (out, None)
}

#[tokio::test]
async fn speech_falls_back_and_restarts_the_sentence_on_the_next_engine() {
    let chain = TtsChain::new(
        vec![
            Arc::new(ToneTts {
                name: "cloud",
                frames: 5,
                fail_after: Some(2),
            }),
            Arc::new(ToneTts {
                name: "offline",
                frames: 3,
                fail_after: None,
            }),
        ],
        EngineStats::new(),
    );
    let (reporter, mut reports) = Reporter::for_call(chain.stats.clone());
    let (frames, error) = markers(chain.synthesize_for("Hello.", reporter)).await;
    assert!(error.is_none());
    assert_eq!(frames, vec![1, 1, 2, 2, 2]);
    let r = drain(&mut reports);
    assert!(matches!(
        r[0],
        (Stage::Tts, "cloud", ReportKind::FirstResult(_))
    ));
    assert!(r.contains(&(Stage::Tts, "cloud", ReportKind::Fallback { to: "offline" })));

    let only = TtsChain::new(
        vec![Arc::new(ToneTts {
            name: "cloud",
            frames: 2,
            fail_after: Some(0),
        })],
        EngineStats::new(),
    );
    let (frames, error) = markers(only.synthesize("Hi.")).await;
    assert!(frames.is_empty());
    assert_eq!(error.unwrap().message, "HTTP 500");
}

struct FixedIntent {
    name: &'static str,
    fail: bool,
}

impl IntentExtractor for FixedIntent {
    fn name(&self) -> &'static str {
        self.name
    }
    fn extract<'a>(
        &'a self,
        _c: &'a Conversation,
    ) -> BoxFuture<'a, Result<Extraction, ProviderError>> {
        Box::pin(async move {
            if self.fail {
                tokio::time::sleep(Duration::from_millis(1)).await;
                return Err(ProviderError::retryable(self.name, "timed out after 2.5 s"));
            }
            Ok(Extraction {
                category: Some(self.name.to_string()),
                ..Default::default()
            })
        })
    }
}

#[tokio::test]
async fn intent_falls_back_to_the_next_extractor_for_the_turn() {
    let chain = IntentChain::new(
        vec![
            Arc::new(FixedIntent {
                name: "chat",
                fail: true,
            }),
            Arc::new(FixedIntent {
                name: "rules",
                fail: false,
            }),
        ],
        EngineStats::new(),
    );
    let (reporter, mut reports) = Reporter::for_call(chain.stats.clone());
    let x = chain
        .extract_for(&Conversation::default(), &reporter)
        .await
        .unwrap();
    assert_eq!(x.category.as_deref(), Some("rules"));
    let r = drain(&mut reports);
    assert!(r.contains(&(Stage::Intent, "chat", ReportKind::Fallback { to: "rules" })));
    assert_eq!(chain.names(), ["chat", "rules"]);
}
