//! Twilio Media Streams: the webhook that answers a call with TwiML, the
//! request signature, the per-call media token, the WebSocket message codec,
//! the WebSocket leg (decode, pace, mark, clear) and the REST client used to
//! transfer a live call.

pub mod codec;
pub mod media;
pub mod rest;
pub mod signature;
pub mod token;
pub mod twiml;
pub mod webhook;
pub mod wire;

#[cfg(test)]
mod media_tests;

pub use media::{MediaOptions, MediaPump, PumpEnd};
pub use rest::RestClient;
pub use token::TokenKey;
pub use webhook::{routes, CallHost, TwilioRuntime};
