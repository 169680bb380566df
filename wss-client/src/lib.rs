//! 4D's WebSocket client class (`4D.WebSocket`) in Rust: [`WebSocket::connect`] with a
//! handler whose callbacks mirror the server's connection handler, on the same protocol core
//! (`wss-proto`) and event loops (`wss-net`) as the wss server.
//!
//! # Design, in claims
//!
//! **The 4D shape.** `connect(url, handler, options)` returns at once with the status
//! `Connecting`; then `on_open` once, `on_message` in wire order, at most one `on_error`,
//! and `on_terminate` always, once, last, with the server's code (1005 when its close had
//! none, 1006 when no close frame was exchanged). `send` takes text, bytes or a JSON value
//! and picks the frame from the argument's type; `terminate(code, reason)` closes with 1000
//! or a code from 3000 to 4999. `id`, `url`, `status`, `data_type` are 4D's properties;
//! `buffered_amount` is the browser's.
//!
//! **Callbacks run one at a time on the WebSocket's own worker thread.** That thread makes
//! the connection (connect and handshake timeouts, TLS), hands it to a `wss-net` loop, then
//! runs the callbacks for what the loop reports. A handler needs no locks, and a slow
//! callback never delays another WebSocket or the socket itself: past 256 messages or 1 MiB
//! waiting for the callbacks, the loop stops reading and TCP pushes back on the server.
//! `send` and `terminate` work from any thread and only queue a command for the loop.
//!
//! **The server's protocol core, on the client side.** Frames are masked with a fresh
//! random seed per connection; fragments are joined, UTF-8 is checked as it arrives, pings
//! are answered, a protocol violation closes with the RFC's code; permessage-deflate is
//! offered by default, as browsers do. Messages above 16 MiB fail with 1009 (settable).
//!
//! **`wss://` with rustls**, trusting the Mozilla roots of `webpki-roots` by default, or the
//! root store (or whole rustls configuration) given in [`ClientOptions`].
//!
//! **Out of scope:** HTTP proxies (`CONNECT`) and redirects. A `3xx` answer fails the
//! attempt with `on_error` (errCode: the status). Reconnecting is the application's choice
//! (see `examples/reconnect.rs`).
//!
//! # Example
//!
//! ```no_run
//! use wss_client::{ClientHandler, ClientOptions, MessageEvent, OpenEvent, TerminateEvent, WebSocket};
//!
//! struct Chat;
//!
//! impl ClientHandler for Chat {
//!     fn on_open(&mut self, ws: &WebSocket, _: &OpenEvent) {
//!         let _ = ws.send("hello");
//!     }
//!     fn on_message(&mut self, ws: &WebSocket, event: &MessageEvent) {
//!         println!("got {:?}", event.data);
//!         ws.terminate(Some(1000), Some("done"));
//!     }
//!     fn on_terminate(&mut self, _: &WebSocket, event: &TerminateEvent) {
//!         println!("closed with {}", event.code);
//!     }
//! }
//!
//! let ws = WebSocket::connect("ws://127.0.0.1:8080/", Chat, ClientOptions::default())?;
//! ws.wait_terminated(None);
//! # Ok::<(), wss_client::ConnectError>(())
//! ```
//!
//! For scripts and tests, [`WebSocket::connect_blocking`] gives a handle with `send`,
//! `recv(timeout)` and `close` instead of callbacks.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod blocking;
mod dial;
mod error;
mod handler;
mod options;
mod socket;
mod worker;

pub use blocking::BlockingWebSocket;
pub use error::{codes, ConnectError, RecvError, SendError};
pub use handler::ClientHandler;
pub use options::ClientOptions;
pub use socket::{Status, WebSocket};
pub use wss_proto::DeflateConfig;
pub use wss_server::{
    Data, DataType, ErrorEvent, ErrorInfo, MessageEvent, OpenEvent, TerminateEvent,
};

/// The crate README's examples, compiled as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// rustls, re-exported to name [`rustls::ClientConfig`] and [`rustls::RootCertStore`] for
/// [`ClientOptions`] without a dependency of your own.
pub use wss_net::rustls;
