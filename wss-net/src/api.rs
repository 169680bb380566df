//! The interface between the loops and the layer above: ids, the request callback, the event
//! sink, and what can be sent.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use wss_proto::handshake::{Request, Response, UpgradeRequest};
use wss_proto::CloseCode;
use wss_proto::Message;
use wss_proto::ProtocolError;
use wss_proto::{CloseReply, DeflateParams};

use crate::inbound::{Buffered, Credit, Inbound};

/// Process-wide-unique id of one accepted TCP connection.
///
/// It packs the loop index (8 bits), a generation (24 bits) and the slab slot (32 bits), so a
/// command for a connection that is gone never reaches the socket that reused its slot (until
/// the generation wraps after 16 million accepts on that loop).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(u64);

impl ConnId {
    pub(crate) fn new(loop_index: usize, generation: u32, slot: usize) -> ConnId {
        ConnId(
            ((loop_index as u64 & 0xff) << 56)
                | ((u64::from(generation) & 0xff_ffff) << 32)
                | (slot as u64 & 0xffff_ffff),
        )
    }

    /// An id from its parts, as a loop makes them. For tests of the layers above (a table
    /// keyed by [`slot`](Self::slot) must ignore an older generation); real ids come from
    /// the loops.
    #[doc(hidden)]
    pub fn from_parts(loop_index: usize, generation: u32, slot: usize) -> ConnId {
        ConnId::new(loop_index, generation, slot)
    }

    /// The raw value, stable for the life of the connection (for logs and maps).
    pub fn as_u64(self) -> u64 {
        self.0
    }

    /// The index of the loop that owns the connection (0 up to the loop count).
    pub fn loop_index(self) -> usize {
        (self.0 >> 56) as usize
    }

    pub(crate) fn generation(self) -> u32 {
        ((self.0 >> 32) & 0xff_ffff) as u32
    }

    /// The connection's slot in its loop's table. Slots are dense (a loop reuses the slot of
    /// an ended connection), so the layer above can index a table of its own by loop and
    /// slot instead of hashing ids; it must then compare the whole id, as a later
    /// connection gets the same slot with another generation.
    pub fn slot(self) -> usize {
        (self.0 & 0xffff_ffff) as usize
    }
}

impl fmt::Debug for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ConnId({}:{}#{})",
            self.loop_index(),
            self.slot(),
            self.generation()
        )
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}", self.0)
    }
}

/// The layer above, asked what to do with each HTTP request head.
///
/// Called on a network thread, in the middle of a loop turn: it must decide quickly and never
/// block. Whatever it runs delays every other connection of that loop, so a layer that runs
/// user code here (wss-server's loop dispatch) says so to its users. When the answer needs more time (another thread must be asked),
/// return [`Decision::Pending`] and answer later with
/// [`NetHandle::decide`](crate::NetHandle::decide).
pub trait Service: Send + Sync + 'static {
    /// A full request head arrived on `conn` from `peer`.
    fn on_request(&self, conn: ConnId, peer: SocketAddr, request: Request) -> Decision;

    /// What the loops call: a full request head arrived on `conn`, described by `info`
    /// (whether it came over TLS, which is what the request's scheme is: an `Origin` check
    /// or a `Secure` cookie depend on it). The default forwards to
    /// [`on_request`](Self::on_request); override this one to see `info` (and make
    /// `on_request` forward to it, or answer as for plain TCP).
    fn on_request_with(&self, conn: ConnId, info: &ConnInfo, request: Request) -> Decision {
        self.on_request(conn, info.peer, request)
    }
}

/// What the loop knows about the connection a request came on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnInfo {
    /// The client's address (as the kernel reports it: `remoteAddress`, with or without TLS).
    pub peer: SocketAddr,
    /// The request came over TLS (`https://` / `wss://`).
    pub tls: bool,
}

/// What to do with a request head.
pub enum Decision {
    /// Answer with this HTTP response. The connection stays open for the next request when
    /// `keep_alive` is true and the client allows it (HTTP/1.1 without `Connection: close`, or
    /// HTTP/1.0 with `Connection: keep-alive`); otherwise `Connection: close` is added and the
    /// connection is closed once the response is written.
    Respond {
        /// The response, written as is (its encoder adds `Content-Length`).
        response: Response,
        /// Whether the layer above allows another request on this connection.
        keep_alive: bool,
    },
    /// Switch to WebSocket: the loop writes the 101 built from `upgrade` and `extra_headers`
    /// (a chosen subprotocol, say) and from then on reports this connection's events to `sink`,
    /// starting with [`NetEvent::Opened`].
    Upgrade {
        /// What the validated request asked for (key, offered protocols and extensions).
        upgrade: UpgradeRequest,
        /// Headers added to the 101 response.
        extra_headers: Vec<(String, String)>,
        /// Where this connection's events go.
        sink: Arc<dyn EventSink>,
    },
    /// Decided later with [`NetHandle::decide`](crate::NetHandle::decide). The handshake timer
    /// keeps running: if it expires first the client gets a 503 and the connection is closed.
    /// Bytes that followed the head are held (and nothing more is read) until then.
    Pending,
}

impl fmt::Debug for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::Respond {
                response,
                keep_alive,
            } => f
                .debug_struct("Respond")
                .field("status", &response.status)
                .field("keep_alive", keep_alive)
                .finish(),
            Decision::Upgrade { extra_headers, .. } => f
                .debug_struct("Upgrade")
                .field("extra_headers", extra_headers)
                .finish_non_exhaustive(),
            Decision::Pending => f.write_str("Pending"),
        }
    }
}

/// Receives the events of upgraded connections.
///
/// Called on a network thread at the end of a loop turn, once per sink per turn, with every
/// event of that turn for that sink in the order they happened. Like [`Service`], it must not
/// block: hand the batch to another thread (one channel message per batch) or act on it at
/// once (sending through a [`NetHandle`](crate::NetHandle) is fine: it never blocks). Commands
/// a sink sends to its own loop during `deliver` are taken in the same turn.
///
/// A sink that acts at once and can fall behind (it runs user code) also returns an
/// [`Inbound`]: it then bounds what one turn reads ahead of `deliver`.
///
/// A sink that hands batches to a slower consumer should return an [`Inbound`] from
/// [`inbound`](Self::inbound): the loops then stop reading connections whose messages wait
/// for the consumer past its limits (see [`Inbound`]), instead of queueing without bound.
pub trait EventSink: Send + Sync + 'static {
    /// One loop turn's events for this sink.
    fn deliver(&self, batch: Vec<NetEvent>);

    /// The backlog this sink's consumer keeps, with its limits; asked once per connection,
    /// at its upgrade. Default `None`: no flow control (right for a sink that acts on each
    /// batch at once, inside `deliver`).
    fn inbound(&self) -> Option<Arc<Inbound>> {
        None
    }

    /// When the close frame the loop owes a connection of this sink goes out: the reply to
    /// the peer's close, or the close after a protocol failure. Asked once, when the
    /// connection is upgraded (an outgoing one follows its own `Connection`'s config).
    ///
    /// [`CloseReply::Auto`] (the default): at once, so answers the consumer sends later to
    /// messages received just before it are dropped (nothing may follow our close frame).
    ///
    /// [`CloseReply::Deferred`]: the loop stops reading the connection and reports its
    /// [`NetEvent::Closed`] as usual, still writes the messages sent to it, and writes the
    /// close frame after them on [`NetHandle::answered`](crate::NetHandle::answered) (or when
    /// the protocol's close timeout runs out, so a stuck consumer cannot keep the socket). A
    /// consumer that runs its callbacks on another thread answers `Deferred` and calls
    /// `answered` once it has handled each `Closed` (a call with nothing waiting is ignored).
    fn close_reply(&self) -> CloseReply {
        CloseReply::Auto
    }

    /// Whether the loop may read a large message's payload straight into the buffer that
    /// becomes the message (wss-proto's [`ReadAhead`](wss_proto::ReadAhead)), saving the copy
    /// out of the loop's read buffer. Asked once, when the connection is upgraded.
    ///
    /// It pays when the consumer acts inside `deliver` and its messages' buffers come back
    /// to the loop soon, still in cache: an echo or a relay, whose payload the loop writes
    /// and then keeps for the next read. When messages travel to another thread first, the
    /// buffers the loop gets back are colder, and the kernel's copy into them costs about
    /// what the saved copy did (measured with `benches/cpu-split.sh`). Default `false`.
    fn read_ahead(&self) -> bool {
        false
    }
}

/// Something that happened on an upgraded connection.
#[derive(Debug)]
pub enum NetEvent {
    /// The 101 was queued: the connection is a WebSocket now.
    Opened {
        /// The connection.
        conn: ConnId,
        /// The client's address.
        peer: SocketAddr,
        /// Bytes queued for this connection and not yet written to the socket, kept current by
        /// the loop (it is what `bufferedAmount` reports).
        buffered: Buffered,
        /// The permessage-deflate parameters agreed in the handshake, `None` when the
        /// connection runs uncompressed. Receivers with equal parameters can share one
        /// compressed broadcast frame
        /// ([`encode_message_deflated`](wss_proto::encode_message_deflated)).
        deflate: Option<DeflateParams>,
        /// The connection's share of the sink's [`Inbound`] backlog, when the sink has one
        /// ([`EventSink::inbound`]): release each message on it once done with it.
        credit: Option<Credit>,
    },
    /// A complete message (fragments joined, text validated as UTF-8).
    Message {
        /// The connection.
        conn: ConnId,
        /// The message.
        message: Message,
    },
    /// The connection is over. Reported exactly once for every `Opened`.
    Closed {
        /// The connection.
        conn: ConnId,
        /// The peer's code; 1005 when its close frame had none; 1006 when no close frame was
        /// exchanged (vanished peer, timeout, overflow, abort, shutdown) or the peer broke the
        /// protocol (then the code we sent, 1002/1007/1009, and `error` says why).
        code: CloseCode,
        /// The peer's reason (empty when the code was not the peer's).
        reason: String,
        /// Why the closure was abnormal; `None` after a clean closing handshake.
        error: Option<ConnError>,
    },
}

/// Why a connection ended abnormally.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnError {
    /// The peer broke RFC 6455; the matching close frame was sent.
    Protocol(ProtocolError),
    /// A socket read or write failed (or the peer closed TCP without a close frame:
    /// `UnexpectedEof`).
    Io(std::io::ErrorKind),
    /// The peer reset the TCP connection.
    ResetByPeer,
    /// Our close frame was not answered within the close timeout.
    CloseTimeout,
    /// Nothing was received within the idle timeout (pings included).
    IdleTimeout,
    /// More than `limit` bytes were queued for a client that does not read.
    OutgoingOverflow {
        /// `NetConfig::max_outgoing`.
        limit: usize,
    },
    /// [`NetHandle::abort`](crate::NetHandle::abort) dropped the connection.
    Aborted,
    /// The server shut down before the closing handshake finished.
    Shutdown,
    /// The TLS layer failed after the upgrade (a record that does not decrypt, a fatal
    /// alert from the peer, a malformed record).
    Tls(crate::tls::TlsFailure),
}

impl fmt::Display for ConnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnError::Protocol(e) => write!(f, "protocol error: {e}"),
            ConnError::Io(kind) => write!(f, "I/O error: {kind}"),
            ConnError::ResetByPeer => f.write_str("connection reset by peer"),
            ConnError::CloseTimeout => f.write_str("close frame not answered in time"),
            ConnError::IdleTimeout => f.write_str("nothing received within the idle timeout"),
            ConnError::OutgoingOverflow { limit } => {
                write!(
                    f,
                    "more than {limit} bytes queued for a peer that does not read"
                )
            }
            ConnError::Aborted => f.write_str("connection aborted"),
            ConnError::Shutdown => f.write_str("server shut down"),
            ConnError::Tls(e) => write!(f, "TLS: {e}"),
        }
    }
}

impl std::error::Error for ConnError {}

/// A message to send on an upgraded connection: the protocol core's, which frames it.
pub use wss_proto::Outgoing;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conn_id_round_trips_its_parts() {
        let id = ConnId::new(3, 0x12_3456, 0xdead_beef);
        assert_eq!(id.loop_index(), 3);
        assert_eq!(id.generation(), 0x12_3456);
        assert_eq!(id.slot(), 0xdead_beef);
    }

    #[test]
    fn conn_id_generation_wraps_at_24_bits() {
        let id = ConnId::new(0, 0x0100_0001, 7);
        assert_eq!(id.generation(), 1);
        assert_eq!(id.slot(), 7);
    }
}
