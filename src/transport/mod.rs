//! Carrier adapters: Twilio Media Streams and SIP/RTP, each turning a carrier connection into a call leg of 16 kHz PCM frames.

pub mod sip;
