//! Text-to-speech engines. [`offline`] is the embedded default: flite's
//! `cmu_us_slt` voice through the hand-written FFI in [`flite`]. The cloud
//! engines stream raw PCM over HTTP: [`openai`] (24 kHz, converted) and
//! [`elevenlabs`] (16 kHz), through the shared [`http`] client pieces and the
//! [`pcm`] framer.

pub mod elevenlabs;
pub mod flite;
pub mod http;
pub mod offline;
pub mod openai;
pub mod pcm;
