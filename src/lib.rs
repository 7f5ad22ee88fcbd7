//! Switchboard: an AI phone receptionist server.
//!
//! This is the composition root. [`run`] wires the store, the event bus, the
//! web router and the call transports together and serves until shutdown.

pub mod audio;
pub mod call;
pub mod config;
pub mod domain;
pub mod events;
pub mod models;
pub mod providers;
pub mod session;
pub mod store;
pub mod transport;
pub mod web;
