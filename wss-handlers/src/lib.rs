//! Ready-made handlers for [`wss_server`], taken from the examples of 4D's WebSocketServer
//! page, and the `wss` binary that runs them.
//!
//! | handler | what it does |
//! |---|---|
//! | [`Echo`] | sends every message back: text as text, binary as binary |
//! | [`Uppercase`] | the seed's first example: the message back in capitals (full Unicode rules) |
//! | [`Chat`] | the seed's chat: welcome, join/leave notices, messages to the others |
//! | [`Broadcast`] | relays every message unchanged to every other client, on every node |
//! | [`AddressFilter`] | the seed's `VerifyAddress`: allow/deny by IP and CIDR, wraps any handler |
//! | [`LogFile`] | the seed's `LogFile`: one line per event in a file, wraps any handler |
//!
//! Wrappers stack: `LogFile::open(path, AddressFilter::new(Chat::new()).allow(net))` logs
//! every connection, including the refused ones, and only lets allowed addresses chat.
//!
//! [`ChatPage`] is the chat page the `wss` binary serves at `/`, with its security headers.
#![warn(missing_docs)]

mod address_filter;
mod assets;
mod broadcast;
pub mod chat;
mod cidr;
mod echo;
mod log_file;
mod log_sink;
mod uppercase;

pub use address_filter::AddressFilter;
pub use assets::{Asset, ChatPage, CHAT_CSP};
pub use broadcast::{Broadcast, BroadcastConnection};
pub use chat::{Chat, ChatConnection};
pub use cidr::{CidrError, IpNet};
pub use echo::{Echo, EchoConnection};
pub use log_file::{LogFile, LogReopener, LoggedConnection};
pub use uppercase::{uppercase_data, Uppercase, UppercaseConnection};

/// The README's examples, compiled as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
