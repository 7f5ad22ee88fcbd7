//! Synthesis of one agent utterance: a task that runs TTS sentence by
//! sentence and reports frames and sentence ends, tagged with the utterance
//! id, to the driver — which alone forwards them to the leg, so a stopped
//! utterance's late frames are dropped in one place. Aborting the task drops
//! the TTS receiver, which cancels synthesis.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::audio::Frame;
use crate::call::UtteranceId;
use crate::providers::chain::TtsChain;
use crate::providers::report::Reporter;
use crate::providers::ProviderError;

/// What a speaker task reports.
// Frames travel by value on purpose: boxing would allocate per 20 ms frame.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(super) enum SpeechMsg {
    Frame(UtteranceId, Frame),
    /// Sentence `index` has been fully synthesized.
    SentenceEnd(UtteranceId, usize),
    /// Every sentence has been synthesized.
    End(UtteranceId),
    Failed(UtteranceId, ProviderError),
}

/// Synthesis already under way for a sentence, keyed by its text.
pub(super) type Prefetched = Vec<(String, mpsc::Receiver<Result<Frame, ProviderError>>)>;

/// Starts synthesizing `sentences` in order, pipelined one sentence ahead;
/// a sentence in `prefetched` uses the synthesis already started for it.
pub(super) fn spawn_speaker(
    tts: Arc<TtsChain>,
    reporter: Reporter,
    id: UtteranceId,
    sentences: Vec<String>,
    mut prefetched: Prefetched,
    tx: mpsc::Sender<SpeechMsg>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut start = |text: &String| match prefetched.iter().position(|(t, _)| t == text.trim())
        {
            Some(i) => prefetched.swap_remove(i).1,
            None => tts.synthesize_for(text, reporter.clone()),
        };
        // One sentence ahead is always being synthesized, so the next one's
        // first-byte time hides behind the current one's playback.
        let mut ahead = sentences.first().map(&mut start);
        for index in 0..sentences.len() {
            let Some(mut rx) = ahead.take() else { break };
            ahead = sentences.get(index + 1).map(&mut start);
            while let Some(chunk) = rx.recv().await {
                let msg = match chunk {
                    Ok(frame) => SpeechMsg::Frame(id, frame),
                    Err(e) => {
                        let _ = tx.send(SpeechMsg::Failed(id, e)).await;
                        return;
                    }
                };
                if tx.send(msg).await.is_err() {
                    return;
                }
            }
            if tx.send(SpeechMsg::SentenceEnd(id, index)).await.is_err() {
                return;
            }
        }
        let _ = tx.send(SpeechMsg::End(id)).await;
    })
}

/// The mark sent after sentence `index` of an utterance.
pub(super) fn sentence_mark(id: UtteranceId, index: usize) -> String {
    format!("u{}-s{index}", id.0)
}

/// The mark sent after the last sentence of an utterance.
pub(super) fn end_mark(id: UtteranceId) -> String {
    format!("u{}-end", id.0)
}

/// What a returned mark means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MarkKind {
    Sentence(UtteranceId, usize),
    End(UtteranceId),
}

/// Parses a mark name this module made; anything else is `None`.
pub(super) fn parse_mark(name: &str) -> Option<MarkKind> {
    let rest = name.strip_prefix('u')?;
    let (id, tail) = rest.split_once('-')?;
    let id = UtteranceId(id.parse().ok()?);
    if tail == "end" {
        return Some(MarkKind::End(id));
    }
    let index = tail.strip_prefix('s')?.parse().ok()?;
    Some(MarkKind::Sentence(id, index))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::report::EngineStats;
    use crate::providers::TtsProvider;

    fn chain() -> (Arc<TtsChain>, Reporter) {
        let stats = EngineStats::new();
        (
            Arc::new(TtsChain::new(vec![Arc::new(Fake)], stats.clone())),
            Reporter::detached(stats),
        )
    }

    #[test]
    fn marks_round_trip() {
        let id = UtteranceId(12);
        assert_eq!(
            parse_mark(&sentence_mark(id, 3)),
            Some(MarkKind::Sentence(id, 3))
        );
        assert_eq!(parse_mark(&end_mark(id)), Some(MarkKind::End(id)));
        for bad in ["", "u", "u12", "ux-end", "u1-sx", "x1-s1", "u1-done"] {
            assert_eq!(parse_mark(bad), None, "{bad}");
        }
    }

    struct Fake;
    impl TtsProvider for Fake {
        fn name(&self) -> &'static str {
            "fake"
        }
        fn synthesize(&self, text: &str) -> mpsc::Receiver<Result<Frame, ProviderError>> {
            let (tx, rx) = mpsc::channel(8);
            let n = text.len();
            let fail = text.contains("FAIL");
            tokio::spawn(async move {
                if fail {
                    let _ = tx.send(Err(ProviderError::fatal("fake", "boom"))).await;
                    return;
                }
                for _ in 0..n {
                    if tx.send(Ok(Frame::SILENCE)).await.is_err() {
                        return;
                    }
                }
            });
            rx
        }
    }

    #[tokio::test]
    async fn speaker_reports_frames_sentence_ends_and_failures() {
        let (tx, mut rx) = mpsc::channel(64);
        let id = UtteranceId(1);
        let (tts, reporter) = chain();
        spawn_speaker(
            tts.clone(),
            reporter.clone(),
            id,
            vec!["ab".into(), "c".into()],
            Vec::new(),
            tx.clone(),
        );
        let mut seen = Vec::new();
        loop {
            match rx.recv().await.unwrap() {
                SpeechMsg::Frame(u, _) => seen.push(format!("f{}", u.0)),
                SpeechMsg::SentenceEnd(_, i) => seen.push(format!("s{i}")),
                SpeechMsg::End(_) => break,
                SpeechMsg::Failed(..) => panic!("no failure expected"),
            }
        }
        assert_eq!(seen, ["f1", "f1", "s0", "f1", "s1"]);
        spawn_speaker(
            tts,
            reporter,
            UtteranceId(2),
            vec!["FAIL".into()],
            Vec::new(),
            tx,
        );
        assert!(matches!(
            rx.recv().await,
            Some(SpeechMsg::Failed(UtteranceId(2), _))
        ));
    }
}
