#![doc = include_str!("../README.md")]
//!
//! # Callbacks run on the server's own worker
//!
//! Each `WebSocketServer` has one worker thread that runs all of its callbacks, those of the
//! server handler and of every connection handler, one at a time, in arrival order (like a 4D
//! worker processing its mailbox). Handlers take `&mut self` and need no locks. The network
//! threads never run user code; [`WebSocketConnection::send`] and `terminate` only enqueue,
//! from any thread.
//!
//! # The seed's chat
//!
//! ```no_run
//! use wss_server::*;
//!
//! struct Chat;
//! struct ChatConnection;
//!
//! impl ServerHandler for Chat {
//!     type Connection = ChatConnection;
//!     fn on_connection(&mut self, _: &WebSocketServer, _: &ConnectionEvent) -> Option<ChatConnection> {
//!         Some(ChatConnection)
//!     }
//! }
//!
//! impl ChatConnection {
//!     // Like the seed: loop over the connections, skip the sender.
//!     fn broadcast(&self, ws: &WebSocketConnection, message: &str) {
//!         for client in ws.wss().connections() {
//!             if client.id() != ws.id() {
//!                 let _ = client.send(message);
//!             }
//!         }
//!     }
//! }
//!
//! impl ConnectionHandler for ChatConnection {
//!     fn on_message(&mut self, ws: &WebSocketConnection, event: &MessageEvent) {
//!         if let Data::Text(text) = &event.data {
//!             self.broadcast(ws, text);
//!         }
//!     }
//!     fn on_open(&mut self, ws: &WebSocketConnection, _: &OpenEvent) {
//!         let _ = ws.send("Welcome to the chat!");
//!         // Same as the loop, framed once for everyone:
//!         ws.wss().broadcast("New client connected", Some(ws.id()));
//!     }
//!     fn on_terminate(&mut self, ws: &WebSocketConnection, _: &TerminateEvent) {
//!         self.broadcast(ws, "Client disconnected");
//!     }
//! }
//!
//! let web = WebServer::start(WebServerOptions::default())?;
//! let _wss = WebSocketServer::new(&web, Chat, ServerOptions::default().with_path("/chat"))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod broker;
mod clock;
mod connection;
mod data;
mod error;
mod event;
mod fanout;
mod files;
mod frame;
mod handler;
mod health;
mod hosts;
mod mailbox;
mod metrics;
mod options;
mod origin;
mod router;
mod server;
mod session;
mod site;
mod statics;
mod stats;
mod topics;
mod web;
mod worker;

pub use broker::{
    Broker, BrokerError, BrokerLag, BrokerStats, Inbox, LocalBroker, Member, Presence, Topic,
    BROKER_LAG_BUCKETS,
};
pub use connection::{Status, WebSocketConnection};
pub use data::{Data, DataType};
pub use error::{codes, ErrorInfo, HandlerBusy, SendError, ServerError, TopicError, WebError};
pub use event::{
    ConnectionEvent, ErrorEvent, MessageEvent, OpenEvent, Pairs, Request, ServerTerminateEvent,
    TerminateEvent,
};
pub use frame::{Frame, FrameError};
pub use handler::{ConnectionHandler, HandlerRef, ServerHandler};
pub use options::{
    BuiltinFile, Dispatch, OriginPolicy, ServerOptions, UnknownDispatch, WebServerOptions,
};
pub use server::WebSocketServer;
pub use session::Session;
pub use stats::{CallbackDurations, HandshakeStats, ServerStats, WebServerStats, CALLBACK_BUCKETS};
pub use topics::{MAX_ROOMS_PER_CONNECTION, MAX_ROOM_LEN, MAX_USER_LEN};
pub use web::WebServer;
/// The network loops' counters ([`WebServerStats::net`]) and the types they use.
pub use wss_net::{ByType, CloseBy, CloseCounts, NetStats};

/// TLS setup (certificate and key loading, the errors a bad pair gives), re-exported from
/// `wss-net` so that users of this crate need no other dependency for
/// [`WebServerOptions::tls`].
pub use wss_net::tls;

/// The limits of what may wait for a server's worker ([`ServerOptions::inbound`]), and what
/// [`WebSocketServer::backlog`] reports.
pub use wss_net::{Backlog, InboundLimits};

/// permessage-deflate settings for [`WebServerOptions::deflate`], and the agreed parameters.
pub use wss_proto::{DeflateConfig, DeflateParams};
