//! Speech-to-text engines. [`offline`] is the embedded default: Whisper
//! (whisper.cpp through `whisper-rs`) run on each VAD-ended utterance.
//! [`deepgram`] is Deepgram's live streaming recognition.

pub mod deepgram;
pub mod offline;
pub mod unavailable;
