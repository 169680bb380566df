#![doc = include_str!("../README.md")]
//!
//! # Design, in claims
//!
//! **Each loop owns its connections.** N loops (one per core by default), each a thread with a
//! mio `Poll` and a slab of connections. One listener, accepted on loop 0, hands sockets to the
//! loops round-robin, so they stay evenly loaded. Sockets are edge-triggered: read until
//! `WouldBlock` (within a per-turn budget, so one busy socket cannot starve the rest), write
//! until `WouldBlock`, then wait for writability.
//!
//! **Idle connections cost little.** One read buffer per loop is shared by all its sockets;
//! per connection only what must survive between events stays: the protocol state, a partial
//! message, queued output. The HTTP parser's buffer goes away after the head; an empty outgoing
//! queue holds no allocation.
//!
//! **Everything is bounded.** A connection's outgoing queue is capped by
//! [`NetConfig::max_outgoing`]: a client that stops reading is dropped, not buffered forever.
//! Heads are capped in size and time ([`NetConfig::handshake_timeout`]); a close that is never
//! answered, and a silent peer, hit the close and idle timeouts. The number of connections is
//! capped by [`NetConfig::max_connections`]. Out of descriptors, accepting pauses briefly
//! instead of spinning.
//!
//! **TLS sits under the phases, not beside them.** With [`NetConfig::tls`] a listener speaks
//! TLS through rustls, driven sans-IO by the loop (`read_tls`, `process_new_packets`, the
//! reader, the writer, `write_tls`); the request-head, pending and WebSocket phases see the
//! same plaintext as on a plain socket, and a plain socket pays one `Option` test for it. A
//! plain and a TLS listener can run at once ([`Net::bind_all`]). See [`tls`].
//!
//! **Limits are checked at accept.** Total connections, connections per address and
//! handshakes in progress ([`NetConfig::max_connections`], [`NetConfig::max_per_address`],
//! [`NetConfig::max_pending_handshakes`]): a refused socket gets a `503` and never reaches a
//! loop, so no open connection notices.
//!
//! **A slow consumer slows its senders down, it does not grow the process.** A sink that hands
//! messages to another thread gives the loops an [`Inbound`] ([`EventSink::inbound`]): each
//! connection, and the sink as a whole, may have only so many messages and bytes waiting for
//! the consumer ([`InboundLimits`]). Past that the loop stops reading the connection, the
//! kernel's buffers fill and TCP pushes back on the sender; reading resumes when the consumer
//! has caught up to half the limit, with one command per resume, never one per message.
//!
//! **Commands cost a wake-up only when a loop sleeps.** A loop raises a flag before it blocks;
//! a sender wakes it only if the flag is up, so under load a send costs a channel push.
//!
//! **A panic above costs one connection, not a loop.** A panic inside
//! [`Service::on_request_with`] answers that request `500`; one inside
//! [`EventSink::deliver`] closes the connections of that batch with 1011. The loop thread and
//! its other connections carry on.
//!
//! **Compression is negotiated by the loop.** With [`NetConfig::deflate`] on, the upgrade
//! accepts the client's first acceptable permessage-deflate offer, answers it in the 101, and
//! the connection compresses what it sends (from the threshold up) and inflates what it
//! receives, within the message limit. [`NetEvent::Opened`] reports the agreed parameters so
//! a broadcaster can compress once per group of alike receivers ([`Outgoing::Shared`]).
//!
//! **Events arrive batched and predictable.** One [`EventSink::deliver`] per sink per loop
//! turn, events in order; exactly one [`NetEvent::Closed`] for every [`NetEvent::Opened`], with
//! the peer's code, 1005 for a close frame without one, or 1006 with an error.
//!
//! # Example: an echo server
//!
//! ```no_run
//! use std::sync::{Arc, OnceLock};
//! use wss_net::{ConnId, Decision, EventSink, Net, NetConfig, NetEvent, NetHandle, Outgoing, Service};
//! use wss_proto::handshake::{validate_upgrade, Request, Response};
//! use wss_proto::Message;
//!
//! struct Echo(OnceLock<NetHandle>);
//!
//! impl EventSink for Echo {
//!     fn deliver(&self, batch: Vec<NetEvent>) {
//!         let Some(net) = self.0.get() else { return };
//!         let replies = batch.into_iter().filter_map(|event| match event {
//!             NetEvent::Message { conn, message: Message::Text(t) } => Some((conn, Outgoing::Text(t))),
//!             NetEvent::Message { conn, message: Message::Binary(b) } => Some((conn, Outgoing::Binary(b))),
//!             _ => None,
//!         });
//!         net.send_batch(replies.collect());
//!     }
//! }
//!
//! struct Routes(Arc<Echo>);
//!
//! impl Service for Routes {
//!     fn on_request(&self, _conn: ConnId, _peer: std::net::SocketAddr, request: Request) -> Decision {
//!         match validate_upgrade(&request) {
//!             Ok(upgrade) => Decision::Upgrade { upgrade, extra_headers: Vec::new(), sink: self.0.clone() },
//!             Err(refusal) => Decision::Respond { response: refusal.response(), keep_alive: false },
//!         }
//!     }
//! }
//!
//! let echo = Arc::new(Echo(OnceLock::new()));
//! let net = Net::bind("127.0.0.1:8080".parse()?, NetConfig::default(), Arc::new(Routes(echo.clone())))?;
//! let _ = echo.0.set(net.handle());
//! println!("listening on ws://{}/", net.local_addr());
//! # net.shutdown(None);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]
// One libc call (getrlimit, src/config.rs) is allowed by name; any other unsafe fails to build.
#![deny(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod accept;
mod api;
mod client;
mod config;
mod conn;
mod event_loop;
mod guard;
mod handle;
mod inbound;
mod limits;
mod net;
mod outq;
mod stats;
mod timers;
pub mod tls;
mod wake;

pub use api::{ConnError, ConnId, ConnInfo, Decision, EventSink, NetEvent, Outgoing, Service};
pub use client::ClientStream;
pub use config::{default_max_connections, NetConfig};
pub use event_loop::on_loop_thread;
pub use handle::{NetHandle, NetStats};
pub use inbound::{Backlog, Buffered, Credit, Inbound, InboundLimits};
pub use net::{Listen, Net};
pub use stats::{ByType, CloseBy, CloseCounts};

/// rustls, re-exported so users can name [`rustls::ServerConfig`] for [`NetConfig::tls`]
/// without a dependency of their own.
pub use rustls;

/// The protocol crate, re-exported so users of `wss-net` alone name one dependency.
pub use wss_proto as proto;
/// When the close frame the loop owes a connection goes out ([`EventSink::close_reply`]).
pub use wss_proto::CloseReply;
