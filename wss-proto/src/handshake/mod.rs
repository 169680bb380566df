//! The opening handshake (RFC 6455 §4): HTTP/1.1 in, `101 Switching Protocols` out.
//!
//! # Server side
//!
//! A connection starts as HTTP. Feed its bytes to a [`RequestParser`] until it returns a
//! [`Request`]; bytes after the head stay with the caller (a pipelined request, or the
//! client's first frames, which belong to the [`Connection`](crate::Connection)).
//! [`is_upgrade_request`] tells a WebSocket upgrade from a plain GET; [`validate_upgrade`]
//! checks it and yields an [`UpgradeRequest`], answered with
//! [`Response::switching_protocols`]. Every failure maps to an HTTP status and a ready
//! [`Response`].
//!
//! ```
//! use wss_proto::handshake::{validate_upgrade, HeadLimits, RequestParser, Response};
//!
//! let wire = b"GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
//!              Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
//!              Sec-WebSocket-Version: 13\r\n\r\n";
//! let mut parser = RequestParser::new(HeadLimits::default());
//! let (request, used) = parser.feed(wire)?.expect("a whole head");
//! assert_eq!(used, wire.len());
//!
//! let mut out = Vec::new();
//! match validate_upgrade(&request) {
//!     Ok(upgrade) => Response::switching_protocols(&upgrade, &[]).encode(&mut out),
//!     Err(refusal) => refusal.response().encode(&mut out),
//! }
//! let reply = String::from_utf8(out).unwrap();
//! assert!(reply.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
//! # Ok::<(), wss_proto::handshake::HeadError>(())
//! ```
//!
//! # Client side
//!
//! [`ClientHandshake`] writes the request and checks the server's answer, the accept key
//! included.
//!
//! # Limits
//!
//! A head is bounded in bytes and in fields ([`HeadLimits`], 16 KiB and 64 by default), checked
//! as bytes arrive: a peer that never ends its head is refused with 431 once past the bound, and
//! costs no more memory than the bound.

use base64::Engine as _;
use sha1::{Digest, Sha1};

mod client;
pub mod deflate;
pub mod extensions;
mod headers;
mod parser;
mod query;
mod request;
mod response;
mod scan;
mod server;

pub use client::{ClientHandshake, ClientHandshakeError};
pub use headers::Headers;
pub use parser::{HeadError, HeadLimits, HeadSyntax, RequestParser};
pub use query::Query;
pub use request::Request;
pub use response::{reason_phrase, Response};
pub use server::{is_upgrade_request, validate_upgrade, HandshakeError, UpgradeRequest};

/// The GUID RFC 6455 §1.3 appends to the client's key before hashing.
pub const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The `Sec-WebSocket-Accept` value answering `key`: base64 of the SHA-1 of the key followed by
/// [`WEBSOCKET_GUID`].
///
/// ```
/// // The example of RFC 6455 §1.3.
/// assert_eq!(
///     wss_proto::handshake::accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
///     "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
/// );
/// ```
pub fn accept_key(key: &str) -> String {
    String::from_utf8_lossy(&accept_key_bytes(key)).into_owned()
}

/// Length of a `Sec-WebSocket-Accept` value: base64 of a 20-byte SHA-1, padded.
pub(crate) const ACCEPT_KEY_LEN: usize = 28;

/// [`accept_key`] in a stack buffer, for the server's 101, which is written once per
/// connection and needs no `String` of its own. Always ASCII.
pub(crate) fn accept_key_bytes(key: &str) -> [u8; ACCEPT_KEY_LEN] {
    let mut hasher = Sha1::new();
    hasher.update(key.as_bytes());
    hasher.update(WEBSOCKET_GUID.as_bytes());
    let mut out = [0u8; ACCEPT_KEY_LEN];
    // 20 bytes always encode to exactly 28 characters, so the slice is never too short.
    let _ = base64::engine::general_purpose::STANDARD.encode_slice(hasher.finalize(), &mut out);
    out
}
