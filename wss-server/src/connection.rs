//! [`WebSocketConnection`]: the handle of one accepted connection (4D's
//! `4D.WebSocketConnection`).

use std::any::Any;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use wss_net::{Buffered, ConnId, Outgoing};
use wss_proto::DeflateParams;
use wss_proto::{internal::truncate_reason, CloseCode};

use crate::data::Data;
use crate::error::{SendError, TopicError};
use crate::handler::HandlerRef;
use crate::server::WebSocketServer;
use crate::topics::{self, ConnTopicsSlot};
use crate::worker;

/// State of a connection (4D's `status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    /// Open: messages can be sent and received.
    Connected,
    /// A close frame was sent (by `terminate`); waiting for the peer's.
    Closing,
    /// Over; `on_terminate` has run or is about to.
    Closed,
}

impl Status {
    /// The 4D spelling: `"Connected"`, `"Closing"` or `"Closed"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Connected => "Connected",
            Status::Closing => "Closing",
            Status::Closed => "Closed",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

const CONNECTED: u8 = 0;
const CLOSING: u8 = 1;
const CLOSED: u8 = 2;

pub(crate) struct ConnInner {
    pub(crate) id: u64,
    pub(crate) conn: ConnId,
    status: AtomicU8,
    /// Set when this side started the close (terminate): the close that follows is no error.
    local_close: AtomicBool,
    /// What the network reports when the connection opens: its queued-bytes counter, and
    /// permessage-deflate as agreed in the handshake (`None` when it runs uncompressed;
    /// broadcasts read it to pick the frame this receiver gets). One cell for both, boxed
    /// parameters: 16 bytes per connection less than two cells.
    opened: OnceLock<(Buffered, Option<Box<DeflateParams>>)>,
    pub(crate) server: WebSocketServer,
    handler_any: Arc<dyn Any + Send + Sync>,
    /// Rooms and presence name (see `topics`), boxed on first use.
    pub(crate) topics: Mutex<ConnTopicsSlot>,
}

/// Ids are process-wide and never reused (A9).
static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl ConnInner {
    pub(crate) fn new(
        conn: ConnId,
        server: WebSocketServer,
        handler_any: Arc<dyn Any + Send + Sync>,
    ) -> Self {
        ConnInner {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            conn,
            status: AtomicU8::new(CONNECTED),
            local_close: AtomicBool::new(false),
            opened: OnceLock::new(),
            server,
            handler_any,
            topics: Mutex::new(None),
        }
    }

    /// The network opened the connection: its queued-bytes counter and deflate parameters.
    pub(crate) fn set_opened(&self, buffered: Buffered, deflate: Option<DeflateParams>) {
        let _ = self.opened.set((buffered, deflate.map(Box::new)));
    }

    /// The agreed permessage-deflate parameters, once known (`None`: plain frames only).
    pub(crate) fn deflate(&self) -> Option<&DeflateParams> {
        self.opened.get().and_then(|(_, d)| d.as_deref())
    }

    pub(crate) fn set_closed(&self) {
        self.status.store(CLOSED, Ordering::Release);
    }

    /// Connected -> Closing; false if it was not Connected. Marks the close as ours.
    pub(crate) fn begin_local_close(&self) -> bool {
        self.local_close.store(true, Ordering::Release);
        self.status
            .compare_exchange(CONNECTED, CLOSING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    pub(crate) fn closed_locally(&self) -> bool {
        self.local_close.load(Ordering::Acquire)
    }

    pub(crate) fn is_connected(&self) -> bool {
        self.status.load(Ordering::Acquire) == CONNECTED
    }
}

/// One accepted WebSocket connection. `Clone + Send + Sync`, cheap to clone; usable from any
/// thread, and after the connection is gone (then `send` drops and reports
/// [`SendError::Closed`]).
///
/// ```
/// use wss_server::*;
///
/// // Echoes, ends the conversation on "bye", and drops a client that stops reading.
/// struct Careful;
/// impl ConnectionHandler for Careful {
///     fn on_message(&mut self, ws: &WebSocketConnection, event: &MessageEvent) {
///         if ws.buffered_amount() > 1 << 20 {
///             ws.terminate(Some(4008), Some("you are not reading"));
///         } else if event.data == Data::Text("bye".into()) {
///             ws.terminate(Some(1000), Some("goodbye"));
///         } else if ws.send(&event.data).is_err() {
///             // Closing or closed: the message was dropped, nothing else to do.
///         }
///     }
///     fn on_terminate(&mut self, ws: &WebSocketConnection, event: &TerminateEvent) {
///         assert_eq!(ws.status(), Status::Closed);
///         println!("connection {} closed with {}", ws.id(), event.code);
///     }
/// }
/// ```
#[derive(Clone)]
pub struct WebSocketConnection {
    pub(crate) inner: Arc<ConnInner>,
}

impl WebSocketConnection {
    /// Unique id, from one process-wide counter starting at 1, never reused (A9). Ids grow
    /// in acceptance order, so `connections()` lists connections by age.
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// `Connected`, `Closing` or `Closed`.
    pub fn status(&self) -> Status {
        match self.inner.status.load(Ordering::Acquire) {
            CONNECTED => Status::Connected,
            CLOSING => Status::Closing,
            _ => Status::Closed,
        }
    }

    /// The server that accepted this connection.
    pub fn wss(&self) -> WebSocketServer {
        self.inner.server.clone()
    }

    /// The connection handler `on_connection` returned, if it is an `H` (4D's `.handler`).
    /// See [`HandlerRef`] for when locking waits.
    pub fn handler<H: Send + 'static>(&self) -> Option<HandlerRef<H>> {
        HandlerRef::downcast(&self.inner.handler_any)
    }

    /// Queues a message; never blocks. The argument's type picks the frame (A4): text and
    /// JSON values go as text frames (JSON compact), bytes as a binary frame. Messages sent
    /// from one thread go out in order. On a `Closing` or `Closed` connection the message is
    /// dropped and `Err(SendError::Closed)` returned; nothing is raised (A14).
    pub fn send(&self, message: impl Into<Data>) -> Result<(), SendError> {
        if !self.inner.is_connected() {
            log::debug!(
                "send on connection {} dropped: not connected",
                self.inner.id
            );
            return Err(SendError::Closed);
        }
        let out = match message.into() {
            Data::Text(t) => Outgoing::Text(t),
            Data::Blob(b) => Outgoing::Binary(b),
            Data::Object(v) => Outgoing::Text(v.to_string()),
        };
        worker::send(&self.inner.server.inner, self.inner.conn, out);
        Ok(())
    }

    /// Starts closing the connection (A13): a close frame with `code` when it is 1000 or
    /// within 3000..=4999 (then `reason`, cut to 123 bytes, goes with it), else with 1000 and
    /// no reason. The status becomes `Closing`; `on_terminate` follows when the peer answers
    /// or after the close timeout. A no-op unless `Connected`.
    ///
    /// ```
    /// use wss_server::*;
    ///
    /// struct OneShot;
    /// impl ConnectionHandler for OneShot {
    ///     fn on_message(&mut self, ws: &WebSocketConnection, event: &MessageEvent) {
    ///         let _ = ws.send(&event.data);
    ///         // The echo leaves before the close frame: 4000 and the reason go with it.
    ///         ws.terminate(Some(4000), Some("one message per connection"));
    ///         assert_eq!(ws.status(), Status::Closing);
    ///     }
    /// }
    /// ```
    pub fn terminate(&self, code: Option<u16>, reason: Option<&str>) {
        if !self.inner.begin_local_close() {
            return;
        }
        let (code, reason) = match code {
            Some(c) if c == 1000 || (3000..=4999).contains(&c) => (
                CloseCode(c),
                truncate_reason(reason.unwrap_or("")).to_owned(),
            ),
            _ => (CloseCode::NORMAL, String::new()),
        };
        let server = &self.inner.server.inner;
        // Messages this callback queued must leave before the close frame.
        worker::flush_if_worker(server);
        server.net.close(self.inner.conn, code, reason);
    }

    /// Subscribes to `room` of this connection's server: from now on the connection receives
    /// what [`WebSocketServer::publish`] sends there, from any node. Idempotent. The
    /// subscription ends with the connection. Fails on a connection that is not `Connected`,
    /// a room name that is empty or longer than [`MAX_ROOM_LEN`](crate::MAX_ROOM_LEN) bytes,
    /// or past [`MAX_ROOMS_PER_CONNECTION`](crate::MAX_ROOMS_PER_CONNECTION) rooms.
    ///
    /// ```
    /// use wss_server::*;
    ///
    /// // "/join ROOM" enters a room; anything else goes to the others in the sender's rooms.
    /// struct Rooms;
    /// impl ConnectionHandler for Rooms {
    ///     fn on_message(&mut self, ws: &WebSocketConnection, event: &MessageEvent) {
    ///         let Data::Text(text) = &event.data else { return };
    ///         if let Some(room) = text.strip_prefix("/join ") {
    ///             if let Err(e) = ws.subscribe(room) {
    ///                 let _ = ws.send(format!("cannot join: {e}"));
    ///             }
    ///         } else {
    ///             for room in ws.rooms() {
    ///                 ws.wss().publish(&room, text, Some(ws.id()));
    ///             }
    ///         }
    ///     }
    /// }
    /// ```
    pub fn subscribe(&self, room: &str) -> Result<(), TopicError> {
        topics::subscribe(self, room)
    }

    /// Leaves `room`; false if the connection was not in it.
    pub fn unsubscribe(&self, room: &str) -> bool {
        topics::unsubscribe(self, room)
    }

    /// The rooms this connection is subscribed to.
    pub fn rooms(&self) -> Vec<String> {
        topics::rooms(self)
    }

    /// Makes this connection present as `user` in [`WebSocketServer::presence`], for its
    /// server and each of its rooms, on every node; `None` takes it out. A connection leaves
    /// presence when it closes. Fails on a name that is empty or longer than
    /// [`MAX_USER_LEN`](crate::MAX_USER_LEN) bytes, or on a connection not `Connected`.
    pub fn set_user(&self, user: Option<&str>) -> Result<(), TopicError> {
        topics::set_user(self, user)
    }

    /// The name given to [`set_user`](Self::set_user), if any.
    pub fn user(&self) -> Option<String> {
        topics::user(self)
    }

    /// Bytes queued for this connection and not yet written to its socket.
    pub fn buffered_amount(&self) -> usize {
        self.inner.opened.get().map_or(0, |(b, _)| b.get())
    }
}

impl fmt::Debug for WebSocketConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketConnection")
            .field("id", &self.id())
            .field("status", &self.status())
            .finish()
    }
}
