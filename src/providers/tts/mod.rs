//! Text-to-speech engines. [`offline`] is the embedded default: flite's
//! `cmu_us_slt` voice through the hand-written FFI in [`flite`].
//! [`deepgram`] is Deepgram's Aura voices over HTTP, streamed.

pub mod deepgram;
pub mod flite;
pub mod offline;
