//! Speech-to-text engines. [`segmented`] makes any utterance-at-a-time
//! recognizer streaming with our VAD; over it run [`offline`], the embedded
//! default (Whisper through `whisper-rs`), and [`transcribe`], any
//! OpenAI-compatible `/audio/transcriptions` service (OpenAI, Groq).
//! [`deepgram`] is Deepgram's live streaming recognition over WebSocket.

pub mod deepgram;
pub mod offline;
pub mod segmented;
pub mod transcribe;
pub mod unavailable;
