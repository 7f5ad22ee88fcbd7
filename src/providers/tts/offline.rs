//! The offline text-to-speech engine: flite's slt voice, in process. Text is
//! split into sentences so the first one plays while the rest is still being
//! made; each sentence is synthesized on tokio's blocking pool (never on the
//! async runtime), brought to 16 kHz if the voice is not already, and sent as
//! 20 ms [`Frame`]s (the last one padded with silence). Dropping the receiver
//! stops the work at the next sentence or frame.

use tokio::sync::mpsc;

use super::flite;
use crate::audio::resample::resample_to_16k;
use crate::audio::{Frame, FRAME_SAMPLES, SAMPLE_RATE};
use crate::providers::{ProviderError, TtsProvider};

const ENGINE: &str = "flite";
/// Frames buffered ahead of the consumer (2 s); synthesis runs ahead of
/// real-time playback by at most this much per sentence.
const CHANNEL_FRAMES: usize = 100;

/// flite with the `cmu_us_slt` voice. Stateless: flite's own state is global.
#[derive(Debug, Clone, Copy, Default)]
pub struct OfflineTts;

impl OfflineTts {
    pub fn new() -> Self {
        OfflineTts
    }
}

impl TtsProvider for OfflineTts {
    fn name(&self) -> &'static str {
        ENGINE
    }

    fn synthesize(&self, text: &str) -> mpsc::Receiver<Result<Frame, ProviderError>> {
        let (tx, rx) = mpsc::channel(CHANNEL_FRAMES);
        let sentences = split_sentences(text);
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(speak(sentences, tx));
            }
            Err(_) => {
                let err = ProviderError::fatal(ENGINE, "synthesize needs a tokio runtime");
                let _ = tx.try_send(Err(err));
            }
        }
        rx
    }
}

async fn speak(sentences: Vec<String>, tx: mpsc::Sender<Result<Frame, ProviderError>>) {
    for sentence in sentences {
        if tx.is_closed() {
            return;
        }
        let wave = tokio::task::spawn_blocking(move || flite::synthesize(&sentence)).await;
        let samples = match wave {
            Ok(Ok(w)) => match to_internal_rate(&w.samples, w.sample_rate) {
                Ok(pcm) => pcm,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            },
            Ok(Err(e)) => {
                let _ = tx
                    .send(Err(ProviderError::fatal(ENGINE, e.to_string())))
                    .await;
                return;
            }
            Err(e) => {
                let _ = tx
                    .send(Err(ProviderError::fatal(
                        ENGINE,
                        format!("synthesis task: {e}"),
                    )))
                    .await;
                return;
            }
        };
        for frame in frames(&samples) {
            if tx.send(Ok(frame)).await.is_err() {
                return;
            }
        }
    }
}

/// Cuts PCM into 20 ms frames, padding the last with silence.
pub fn frames(samples: &[i16]) -> impl Iterator<Item = Frame> + '_ {
    samples.chunks(FRAME_SAMPLES).map(|chunk| {
        let mut frame = Frame::SILENCE;
        frame.0[..chunk.len()].copy_from_slice(chunk);
        frame
    })
}

/// Splits text after `.`, `!` or `?` followed by whitespace; empty pieces are
/// dropped. Abbreviations may split early, which only costs a short pause.
pub fn split_sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        current.push(c);
        let boundary =
            matches!(c, '.' | '!' | '?') && chars.peek().is_none_or(|n| n.is_whitespace());
        if boundary {
            push_trimmed(&mut out, &mut current);
        }
    }
    push_trimmed(&mut out, &mut current);
    out
}

fn push_trimmed(out: &mut Vec<String>, current: &mut String) {
    let t = current.trim();
    if t.chars().any(|c| c.is_alphanumeric()) {
        out.push(t.to_string());
    }
    current.clear();
}

/// Brings a voice's output to the internal rate. slt is already 16 kHz;
/// another voice goes through the band-limited resampler.
fn to_internal_rate(samples: &[i16], rate: u32) -> Result<Vec<i16>, ProviderError> {
    if rate == SAMPLE_RATE {
        return Ok(samples.to_vec());
    }
    resample_to_16k(samples, rate)
        .map_err(|e| ProviderError::fatal(ENGINE, format!("voice at {rate} Hz: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_split_on_terminal_punctuation() {
        assert_eq!(
            split_sentences("Hello there. Your reference is T 1 0 4 2! Anything else?  "),
            vec![
                "Hello there.",
                "Your reference is T 1 0 4 2!",
                "Anything else?"
            ]
        );
        assert_eq!(
            split_sentences("It costs 3.50 dollars"),
            vec!["It costs 3.50 dollars"]
        );
        assert!(split_sentences(" ... ").is_empty());
    }

    #[test]
    fn frames_pad_the_tail() {
        let samples: Vec<i16> = (0..700).map(|i| i as i16 + 1).collect();
        let f: Vec<Frame> = frames(&samples).collect();
        assert_eq!(f.len(), 3);
        assert_eq!(f[2].0[59], 700);
        assert!(f[2].0[60..].iter().all(|s| *s == 0));
    }

    #[test]
    fn other_rates_are_resampled_to_16k() {
        let s8: Vec<i16> = (0..800).map(|i| ((i % 8) * 100) as i16).collect();
        assert_eq!(to_internal_rate(&s8, 8_000).map(|v| v.len()), Ok(1600));
        assert_eq!(to_internal_rate(&s8, 16_000), Ok(s8.clone()));
        assert!(to_internal_rate(&s8, 0).is_err());
    }

    #[tokio::test]
    async fn synthesizes_frames_and_stops_when_dropped() {
        let mut rx = OfflineTts::new().synthesize("Thanks for calling. How can I help?");
        let mut n = 0;
        while let Some(frame) = rx.recv().await {
            frame.expect("audio");
            n += 1;
        }
        assert!(n > 50, "{n} frames");
        // Dropping the receiver early must not panic or hang the sender.
        let rx = OfflineTts::new().synthesize("One. Two. Three. Four.");
        drop(rx);
    }
}
