//! SIP/RTP transport: answer calls from a SIP trunk or PBX. Pure codecs and
//! state machines here (SDP offer/answer, RTP jitter buffer, RFC 4733 DTMF,
//! the UAS transaction and dialog layer); the UDP loops are the thin I/O shell.

pub mod dialing;
pub mod digest;
pub mod dtmf;
pub mod endpoint;
pub mod jitter;
pub mod media;
pub mod message;
pub mod opus;
pub mod outbound;
pub mod register;
pub mod rtp;
pub mod sdp;
pub mod server;
pub mod status;
