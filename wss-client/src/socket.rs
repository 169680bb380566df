//! [`WebSocket`]: the handle (4D's `4D.WebSocket` object) and the state it shares with the
//! worker and the loop.

use std::any::Any;
use std::fmt;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use wss_net::{Buffered, ConnId, NetHandle, Outgoing};
use wss_proto::CloseCode;
use wss_server::{Data, DataType};

use crate::error::{ConnectError, SendError};
use crate::handler::ClientHandler;
use crate::options::ClientOptions;

/// Where a [`WebSocket`] stands (4D's `.status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    /// Connecting or in the opening handshake; `send` is refused.
    Connecting,
    /// Open: messages can be sent and received.
    Connected,
    /// `terminate` sent our close frame; waiting for the server's.
    Closing,
    /// Over; `on_terminate` has run or is about to.
    Closed,
}

impl Status {
    /// The 4D spelling: `"Connecting"`, `"Connected"`, `"Closing"` or `"Closed"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Connecting => "Connecting",
            Status::Connected => "Connected",
            Status::Closing => "Closing",
            Status::Closed => "Closed",
        }
    }

    fn from_u8(v: u8) -> Status {
        match v {
            0 => Status::Connecting,
            1 => Status::Connected,
            2 => Status::Closing,
            _ => Status::Closed,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A WebSocket client connection (4D's `4D.WebSocket`): a cheap, cloneable, `Send + Sync`
/// handle, usable from any thread and after the connection is over.
///
/// [`connect`](Self::connect) returns at once with the status `Connecting`; the
/// connection is made on the WebSocket's own worker thread, which then runs the
/// [`ClientHandler`] callbacks one at a time, while the socket itself is served by a
/// `wss-net` loop. [`send`](Self::send) and [`terminate`](Self::terminate) only queue
/// commands for that loop. Proxies (`HTTP CONNECT`) and HTTP redirects are not followed:
/// a `3xx` answer ends the attempt with `on_error` (errCode = the status).
#[derive(Clone)]
pub struct WebSocket {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    id: u64,
    url: String,
    data_type: DataType,
    status: AtomicU8,
    /// The connection's id on its loop, once the loop has it.
    conn: OnceLock<ConnId>,
    buffered: OnceLock<Buffered>,
    protocol: OnceLock<Option<String>>,
    extensions: OnceLock<Option<String>>,
    pub(crate) net: NetHandle,
    /// `terminate` was called: the end is our decision, not an error.
    closed_locally: AtomicBool,
    /// What `terminate` asked for before the loop had the connection, and the socket while
    /// the handshake runs (shut down to interrupt it).
    pending: Mutex<Pending>,
    /// The handler, typed away, for `with_handler` (the worker has the same `Mutex`).
    handler: Arc<dyn Any + Send + Sync>,
    /// Why the connection could not be made, for `connect_blocking`.
    failure: Mutex<Option<ConnectError>>,
    /// Set once `on_terminate` has run.
    done: Mutex<bool>,
    done_cv: Condvar,
}

#[derive(Default)]
struct Pending {
    close: Option<(CloseCode, String)>,
    socket: Option<TcpStream>,
}

const CONNECTING: u8 = 0;
const CONNECTED: u8 = 1;
const CLOSING: u8 = 2;
const CLOSED: u8 = 3;

impl WebSocket {
    /// Opens a WebSocket to `url` (`ws://host[:port][/path][?query]` or `wss://...`) with
    /// `handler`'s callbacks, and returns at once (status `Connecting`). A connection that
    /// cannot be made is reported to `on_error`, then `on_terminate` (1006).
    ///
    /// # Errors
    /// [`ConnectError::InvalidUrl`] for a URL that cannot be used (no callback runs);
    /// [`ConnectError::Spawn`] when the worker thread or the client loop cannot start.
    ///
    /// ```no_run
    /// use wss_client::{ClientHandler, ClientOptions, MessageEvent, WebSocket};
    ///
    /// struct Print;
    /// impl ClientHandler for Print {
    ///     fn on_message(&mut self, _ws: &WebSocket, event: &MessageEvent) {
    ///         println!("{:?}", event.data);
    ///     }
    /// }
    /// let ws = WebSocket::connect("ws://127.0.0.1:8080/", Print, ClientOptions::default())?;
    /// # Ok::<(), wss_client::ConnectError>(())
    /// ```
    pub fn connect(
        url: &str,
        handler: impl ClientHandler,
        options: ClientOptions,
    ) -> Result<WebSocket, ConnectError> {
        let target = crate::dial::parse(url)?;
        let net = match &options.net {
            Some(net) => net.clone(),
            None => crate::worker::client_loops()?,
        };
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let cell = Arc::new(Mutex::new(handler));
        let ws = WebSocket {
            inner: Arc::new(Inner {
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                url: url.to_owned(),
                data_type: options.data_type,
                status: AtomicU8::new(CONNECTING),
                conn: OnceLock::new(),
                buffered: OnceLock::new(),
                protocol: OnceLock::new(),
                extensions: OnceLock::new(),
                net,
                closed_locally: AtomicBool::new(false),
                pending: Mutex::new(Pending::default()),
                failure: Mutex::new(None),
                handler: cell.clone(),
                done: Mutex::new(false),
                done_cv: Condvar::new(),
            }),
        };
        crate::worker::spawn(ws.clone(), cell, options, target)?;
        Ok(ws)
    }

    /// A process-unique id (4D's `.id`).
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// The URL given to `connect` (4D's `.url`).
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// How messages reach `on_message` (4D's `.dataType`).
    pub fn data_type(&self) -> DataType {
        self.inner.data_type
    }

    /// Where the connection stands (4D's `.status`).
    pub fn status(&self) -> Status {
        Status::from_u8(self.inner.status.load(Ordering::SeqCst))
    }

    /// Bytes sent and not yet written to the socket (the browser's `bufferedAmount`); 0
    /// before the connection opens.
    pub fn buffered_amount(&self) -> usize {
        self.inner.buffered.get().map_or(0, Buffered::get)
    }

    /// The subprotocol the server picked, once open (`None` if none).
    pub fn protocol(&self) -> Option<&str> {
        self.inner.protocol.get().and_then(|p| p.as_deref())
    }

    /// The server's `Sec-WebSocket-Extensions` answer, once open (`None` when the connection
    /// runs uncompressed).
    pub fn extensions(&self) -> Option<&str> {
        self.inner.extensions.get().and_then(|p| p.as_deref())
    }

    /// Sends a message; the argument's type picks the frame (as on the server): text and
    /// JSON values as text frames (JSON compact), bytes as a binary frame. Never blocks.
    ///
    /// # Errors
    /// [`SendError::NotOpen`] while `Connecting`, [`SendError::Closed`] once `Closing` or
    /// `Closed`: the message is dropped.
    pub fn send(&self, message: impl Into<Data>) -> Result<(), SendError> {
        match self.inner.status.load(Ordering::SeqCst) {
            CONNECTED => {}
            CONNECTING => return Err(SendError::NotOpen),
            _ => return Err(SendError::Closed),
        }
        let Some(&conn) = self.inner.conn.get() else {
            return Err(SendError::NotOpen);
        };
        let out = match message.into() {
            Data::Text(t) => Outgoing::Text(t),
            Data::Blob(b) => Outgoing::Binary(b),
            Data::Object(v) => Outgoing::Text(v.to_string()),
        };
        self.inner.net.send(conn, out);
        Ok(())
    }

    /// Closes the WebSocket (4D's `.terminate()`): a close frame with `code` when it is 1000
    /// or within 3000..=4999 (with `reason`, cut to 123 bytes), else 1000 without a reason.
    /// The status becomes `Closing`; `on_terminate` follows with the server's answer, or
    /// after the close timeout. While `Connecting`, the attempt is abandoned (`on_terminate`
    /// with 1006, no `on_error`). Does nothing once `Closing` or `Closed`.
    pub fn terminate(&self, code: Option<u16>, reason: Option<&str>) {
        let (code, reason) = match code {
            Some(c) if c == 1000 || (3000..=4999).contains(&c) => {
                (CloseCode(c), truncate(reason.unwrap_or("")).to_owned())
            }
            _ => (CloseCode::NORMAL, String::new()),
        };
        let inner = &self.inner;
        let mut pending = inner.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let status = inner.status.load(Ordering::SeqCst);
        if status >= CLOSING {
            return;
        }
        inner.closed_locally.store(true, Ordering::SeqCst);
        match inner.conn.get() {
            Some(&conn) => {
                inner.status.store(CLOSING, Ordering::SeqCst);
                drop(pending);
                inner.net.close(conn, code, reason);
            }
            None => {
                pending.close = Some((code, reason));
                if let Some(socket) = pending.socket.take() {
                    let _ = socket.shutdown(std::net::Shutdown::Both);
                }
            }
        }
    }

    /// Runs `f` on the handler given to `connect` (4D's `.handler`: the very instance the
    /// callbacks run on), once the callback running now has returned. `None` when `H` is
    /// not the handler's type, or when called from this WebSocket's own callbacks (the
    /// handler is `self` there; waiting for it would never end).
    pub fn with_handler<H: ClientHandler, R>(&self, f: impl FnOnce(&mut H) -> R) -> Option<R> {
        if crate::worker::on_worker_of(self) {
            return None;
        }
        let cell = Arc::clone(&self.inner.handler)
            .downcast::<Mutex<H>>()
            .ok()?;
        let mut guard = cell.lock().unwrap_or_else(PoisonError::into_inner);
        Some(f(&mut guard))
    }

    /// Waits until `on_terminate` has run, at most `timeout` (`None`: no limit). Returns
    /// whether it has. Do not call it from this WebSocket's own callbacks (they run on the
    /// thread that would have to finish first): there it returns `false` at once.
    pub fn wait_terminated(&self, timeout: Option<Duration>) -> bool {
        if crate::worker::on_worker_of(self) {
            return *self
                .inner
                .done
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut done = self
            .inner
            .done
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        while !*done {
            match deadline {
                None => {
                    done = self
                        .inner
                        .done_cv
                        .wait(done)
                        .unwrap_or_else(PoisonError::into_inner)
                }
                Some(at) => {
                    let left = at.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return false;
                    }
                    done = self
                        .inner
                        .done_cv
                        .wait_timeout(done, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
            }
        }
        true
    }
}

impl Inner {
    /// The handshake socket exists: `terminate` may shut it down (at once, when it already
    /// came).
    pub(crate) fn set_socket(&self, socket: &TcpStream) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if pending.close.is_some() {
            let _ = socket.shutdown(std::net::Shutdown::Both);
        } else {
            pending.socket = socket.try_clone().ok();
        }
    }

    /// The handshake is over (either way): the clone for `terminate` goes.
    pub(crate) fn clear_socket(&self) {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .socket = None;
    }

    /// `terminate` came while connecting.
    pub(crate) fn abandoned(&self) -> bool {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .close
            .is_some()
    }

    pub(crate) fn set_negotiated(&self, protocol: Option<String>, extensions: Option<String>) {
        let _ = self.protocol.set(protocol);
        let _ = self.extensions.set(extensions);
    }

    /// The loop runs the connection (on its thread): sends may go now, and a `terminate`
    /// that came meanwhile is carried out.
    pub(crate) fn opened(&self, conn: ConnId, buffered: Buffered) {
        let _ = self.buffered.set(buffered);
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = self.conn.set(conn);
        match pending.close.take() {
            Some((code, reason)) => {
                self.status.store(CLOSING, Ordering::SeqCst);
                drop(pending);
                self.net.close(conn, code, reason);
            }
            None => {
                let _ = self.status.compare_exchange(
                    CONNECTING,
                    CONNECTED,
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                );
            }
        }
    }

    pub(crate) fn set_failure(&self, e: ConnectError) {
        *self.failure.lock().unwrap_or_else(PoisonError::into_inner) = Some(e);
    }

    pub(crate) fn take_failure(&self) -> Option<ConnectError> {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    pub(crate) fn closed_locally(&self) -> bool {
        self.closed_locally.load(Ordering::SeqCst)
    }

    pub(crate) fn set_closed(&self) {
        self.status.store(CLOSED, Ordering::SeqCst);
    }

    /// `on_terminate` has run: wake `wait_terminated`.
    pub(crate) fn set_done(&self) {
        *self.done.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.done_cv.notify_all();
    }
}

/// At most 123 bytes (a close frame's room for the reason), cut on a character boundary.
fn truncate(reason: &str) -> &str {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason.get(..end).unwrap_or("")
}

impl fmt::Debug for WebSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocket")
            .field("id", &self.id())
            .field("url", &self.url())
            .field("status", &self.status())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_is_cut_on_a_character_boundary() {
        let long = "é".repeat(100);
        let cut = truncate(&long);
        assert_eq!(cut.len(), 122);
        assert_eq!(truncate("bye"), "bye");
    }
}
