//! Text-to-speech engines. [`offline`] is the embedded default: flite's
//! `cmu_us_slt` voice through the hand-written FFI in [`flite`]. The cloud
//! engines stream over HTTP: [`openai`] (24 kHz PCM, converted),
//! [`elevenlabs`] (16 kHz PCM) through the shared `providers::http` client pieces and
//! the [`pcm`] framer, and [`deepgram`] (Aura, μ-law 8 kHz, converted).

pub mod deepgram;
pub mod elevenlabs;
pub mod flite;
pub mod offline;
pub mod openai;
pub mod pcm;
