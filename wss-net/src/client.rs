//! Outgoing connections: a socket the layer above connected and upgraded itself, handed to a
//! loop, which from then on runs it exactly like an accepted, upgraded one.
//!
//! The loops never dial out or parse a `101`: the caller connects (with its own connect and
//! handshake timeouts), writes the upgrade request, checks the answer with
//! [`ClientHandshake`](wss_proto::handshake::ClientHandshake), builds a client-side
//! [`wss_proto::Connection`] and feeds it whatever bytes followed the `101`; then
//! [`NetHandle::connect`](crate::NetHandle::connect) hands the lot over. The loop reports
//! [`NetEvent::Opened`](crate::NetEvent::Opened), the messages and exactly one
//! [`NetEvent::Closed`](crate::NetEvent::Closed) to the sink, and takes sends, closes and
//! aborts through the same [`NetHandle`](crate::NetHandle) commands as for a server
//! connection. The protocol state masks what it sends because its role says so; a server
//! connection pays one role test per send for that.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use wss_proto::{Connection, Role};

use crate::api::EventSink;

/// An upgraded client connection on its way to a loop (see the module docs).
pub struct ClientStream {
    pub(crate) stream: mio::net::TcpStream,
    pub(crate) peer: SocketAddr,
    pub(crate) ws: Connection,
    pub(crate) tls: Option<rustls::ClientConnection>,
    pub(crate) sink: Arc<dyn EventSink>,
}

impl ClientStream {
    /// Wraps `stream`, connected and past its opening handshake, with `ws`, the protocol
    /// state that handshake produced (bytes read after the `101` already given to
    /// [`receive`](wss_proto::Connection::receive)). Events go to `sink`.
    ///
    /// # Errors
    /// `InvalidInput` when `ws` is not a client-side connection; otherwise the socket could
    /// not be made non-blocking or has no peer address (it is not connected).
    pub fn new(
        stream: std::net::TcpStream,
        ws: Connection,
        sink: Arc<dyn EventSink>,
    ) -> io::Result<ClientStream> {
        if ws.role() != Role::Client {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a ClientStream needs a client-side wss_proto::Connection",
            ));
        }
        let peer = stream.peer_addr()?;
        stream.set_nonblocking(true)?;
        // Small frames must not wait for Nagle; failing to set it costs latency, not
        // correctness.
        if let Err(e) = stream.set_nodelay(true) {
            log::debug!("TCP_NODELAY on a client socket to {peer}: {e}");
        }
        Ok(ClientStream {
            stream: mio::net::TcpStream::from_std(stream),
            peer,
            ws,
            tls: None,
            sink,
        })
    }

    /// The connection runs over `tls`, a rustls session whose handshake (and the WebSocket
    /// handshake inside it) the caller completed on this socket. Plaintext it already holds
    /// is read first.
    #[must_use]
    pub fn with_tls(mut self, tls: rustls::ClientConnection) -> ClientStream {
        self.tls = Some(tls);
        self
    }

    /// The server's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }
}

impl std::fmt::Debug for ClientStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientStream")
            .field("peer", &self.peer)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}
