//! The WebSocket protocol (RFC 6455) as a pure state machine: bytes in, events and bytes out.
//!
//! No sockets, no threads, no clock reads: time is an argument.
#![warn(missing_docs)]

pub mod close;
pub mod connection;
pub mod error;
pub mod frame;
pub mod handshake;
pub mod mask;
pub mod utf8;
