//! The fake `/v1/listen` connection: records what the client sends and
//! "recognises" marked frames, answering as Deepgram does (see the parent
//! module's doc).

use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, WebSocket};

use super::{marker_of, word, ClientMessage, Cut, Shared, CONFIDENCE, FRAME_BYTES};
/// The fake recogniser's state for one connection.
struct Recogniser {
    /// Frames received on this connection.
    frames: usize,
    /// First frame not yet covered by a final result.
    segment_start: usize,
    words: Vec<String>,
    in_speech: bool,
    final_every: usize,
    script: Option<Arc<std::sync::Mutex<std::collections::VecDeque<String>>>>,
    quiet_frames: usize,
}

fn seconds(frames: usize) -> f64 {
    frames as f64 * 0.02
}

impl Recogniser {
    fn results(&self, is_final: bool, speech_final: bool) -> String {
        serde_json::json!({
            "type": "Results",
            "channel_index": [0, 1],
            "start": seconds(self.segment_start),
            "duration": seconds(self.frames - self.segment_start),
            "is_final": is_final,
            "speech_final": speech_final,
            "from_finalize": false,
            "channel": {"alternatives": [{
                "transcript": self.words.join(" "),
                "confidence": CONFIDENCE,
                "words": [],
            }]},
            "metadata": {"request_id": "fake", "model_info": {"name": "general-nova-3", "version": "fake", "arch": "nova-3"}, "model_uuid": "fake"},
        })
        .to_string()
    }

    /// A final result over the frames since the last one, if any.
    fn finalize(&mut self, speech_final: bool, out: &mut Vec<String>) {
        if self.frames > self.segment_start {
            out.push(self.results(true, speech_final));
            self.segment_start = self.frames;
            self.words.clear();
        }
    }

    /// Script mode: energy decides speech; an utterance is the next line.
    fn scripted_frame(&mut self, bytes: &[u8], out: &mut Vec<String>) {
        let samples: Vec<f64> = bytes
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]) as f64)
            .collect();
        let rms = (samples.iter().map(|v| v * v).sum::<f64>() / samples.len().max(1) as f64).sqrt();
        self.frames += 1;
        if rms > 300.0 {
            self.quiet_frames = 0;
            if !self.in_speech {
                self.in_speech = true;
                out.push(
                    serde_json::json!({"type": "SpeechStarted", "channel": [0, 1], "timestamp": seconds(self.frames - 1)})
                        .to_string(),
                );
            }
        } else if self.in_speech {
            self.quiet_frames += 1;
            if self.quiet_frames >= 15 {
                self.in_speech = false;
                let line = self
                    .script
                    .as_ref()
                    .and_then(|s| s.lock().unwrap().pop_front())
                    .unwrap_or_default();
                self.words = vec![line];
                self.finalize(true, out);
                out.push(
                    serde_json::json!({"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": seconds(self.frames - 15)})
                        .to_string(),
                );
            }
        }
    }

    fn frame(&mut self, bytes: &[u8], out: &mut Vec<String>) {
        if self.script.is_some() {
            return self.scripted_frame(bytes, out);
        }
        let marker = marker_of(bytes);
        self.frames += 1;
        match marker {
            Some(m) => {
                if !self.in_speech {
                    self.in_speech = true;
                    out.push(
                        serde_json::json!({"type": "SpeechStarted", "channel": [0, 1], "timestamp": seconds(self.frames - 1)})
                            .to_string(),
                    );
                }
                self.words.push(word(m));
                out.push(self.results(false, false));
            }
            None if self.in_speech => {
                self.in_speech = false;
                self.finalize(true, out);
                out.push(
                    serde_json::json!({"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": seconds(self.frames - 1)})
                        .to_string(),
                );
            }
            None => {}
        }
        if self.frames - self.segment_start >= self.final_every {
            self.finalize(false, out);
        }
    }
}

async fn send_all(socket: &mut WebSocket, texts: Vec<String>) -> bool {
    for t in texts {
        if socket.send(Message::Text(t.into())).await.is_err() {
            return false;
        }
    }
    true
}

pub(super) async fn serve(
    mut socket: WebSocket,
    shared: Arc<Shared>,
    index: usize,
    connection: usize,
) {
    let (cut, malformed_after, final_every, script) = shared.knobs(|k| {
        (
            k.cut_first.filter(|_| connection == 0),
            k.malformed_after_frames.filter(|_| connection == 0),
            k.final_every,
            k.script.clone(),
        )
    });
    let mut rec = Recogniser {
        frames: 0,
        segment_start: 0,
        words: Vec::new(),
        in_speech: false,
        final_every,
        script,
        quiet_frames: 0,
    };
    let mut pending = Vec::new();
    let mut received = 0usize;
    while let Some(Ok(message)) = socket.recv().await {
        match message {
            Message::Binary(bytes) => {
                if shared.knobs(|k| k.kill_live) {
                    return;
                }
                received += bytes.len();
                shared.record(|r| {
                    let l = &mut r.listen[index];
                    l.messages.push(ClientMessage::Audio(bytes.len()));
                    l.audio.extend_from_slice(&bytes);
                });
                if let Some((_, how)) = cut.filter(|(limit, _)| received >= *limit) {
                    if let Cut::Close(code, reason) = how {
                        let frame = CloseFrame {
                            code,
                            reason: reason.into(),
                        };
                        let _ = socket.send(Message::Close(Some(frame))).await;
                    }
                    return;
                }
                pending.extend_from_slice(&bytes);
                let mut out = Vec::new();
                while pending.len() >= FRAME_BYTES {
                    let frame: Vec<u8> = pending.drain(..FRAME_BYTES).collect();
                    rec.frame(&frame, &mut out);
                    if malformed_after == Some(rec.frames) {
                        out.push(
                            r#"{"type":"Results","channel":{"alternatives":[{"transcr"#.into(),
                        );
                    }
                }
                if !send_all(&mut socket, out).await {
                    return;
                }
            }
            Message::Text(text) => {
                let text = text.as_str().to_string();
                shared.record(|r| {
                    r.listen[index]
                        .messages
                        .push(ClientMessage::Text(text.clone()))
                });
                let kind = serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_string));
                match kind.as_deref() {
                    Some("KeepAlive") => {}
                    Some("CloseStream") => {
                        let mut out = Vec::new();
                        rec.finalize(true, &mut out);
                        out.push(
                            serde_json::json!({
                                "type": "Metadata", "transaction_key": "deprecated",
                                "request_id": "fake", "sha256": "fake",
                                "created": "2026-01-01T00:00:00.000Z",
                                "duration": seconds(rec.frames), "channels": 1,
                            })
                            .to_string(),
                        );
                        if send_all(&mut socket, out).await {
                            let frame = CloseFrame {
                                code: 1000,
                                reason: "".into(),
                            };
                            let _ = socket.send(Message::Close(Some(frame))).await;
                        }
                        return;
                    }
                    _ => {
                        let frame = CloseFrame {
                            code: 1008,
                            reason: "DATA-0000".into(),
                        };
                        let _ = socket.send(Message::Close(Some(frame))).await;
                        return;
                    }
                }
            }
            Message::Close(_) => return,
            Message::Ping(_) | Message::Pong(_) => {}
        }
    }
}
