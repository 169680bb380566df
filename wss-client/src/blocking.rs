//! [`BlockingWebSocket`]: connect, send, receive with a timeout, close, for scripts and
//! tests. It is a [`WebSocket`] whose handler queues what arrives for `recv`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, SendTimeoutError, Sender};
use wss_server::{Data, ErrorEvent, ErrorInfo, MessageEvent, OpenEvent, TerminateEvent};

use crate::error::{ConnectError, RecvError, SendError};
use crate::handler::ClientHandler;
use crate::options::ClientOptions;
use crate::socket::WebSocket;

/// Messages waiting for `recv`. Past it the worker waits, so the loop stops reading and TCP
/// pushes back on the server: memory stays bounded when the script reads slowly.
const QUEUE: usize = 256;

/// How often a worker waiting on a full queue checks that the handle still wants messages.
const RECHECK: Duration = Duration::from_millis(50);

/// Extra time `connect_blocking` waits past the connect and handshake timeouts (the worker
/// reports those itself; this only guards against a worker that never answers).
const MARGIN: Duration = Duration::from_secs(5);

enum Item {
    Open,
    Message(Data),
    End,
}

/// What the collecting handler and the handle share.
#[derive(Default)]
struct Shared {
    /// The handle is gone or closing: drop messages instead of waiting for room.
    discard: AtomicBool,
    /// The `on_error` before the end, and the end itself.
    error: Mutex<Option<ErrorInfo>>,
    end: Mutex<Option<TerminateEvent>>,
}

struct Collector {
    tx: Sender<Item>,
    shared: Arc<Shared>,
}

impl Collector {
    /// Queues `item`, waiting for room while the handle still wants it.
    fn put(&self, mut item: Item) {
        loop {
            if self.shared.discard.load(Ordering::SeqCst) {
                return;
            }
            match self.tx.send_timeout(item, RECHECK) {
                Ok(()) | Err(SendTimeoutError::Disconnected(_)) => return,
                Err(SendTimeoutError::Timeout(back)) => item = back,
            }
        }
    }
}

impl ClientHandler for Collector {
    fn on_message(&mut self, _ws: &WebSocket, event: &MessageEvent) {
        self.put(Item::Message(event.data.clone()));
    }

    fn on_message_owned(&mut self, _ws: &WebSocket, event: MessageEvent) {
        self.put(Item::Message(event.data));
    }

    fn on_open(&mut self, _ws: &WebSocket, _event: &OpenEvent) {
        self.put(Item::Open);
    }

    fn on_error(&mut self, _ws: &WebSocket, event: &ErrorEvent) {
        if let Some(last) = event.errors.last() {
            *lock(&self.shared.error) = Some(last.clone());
        }
    }

    fn on_terminate(&mut self, _ws: &WebSocket, event: &TerminateEvent) {
        *lock(&self.shared.end) = Some(event.clone());
        self.put(Item::End);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A WebSocket used without callbacks: [`send`](Self::send), [`recv`](Self::recv) with a
/// timeout, [`close`](Self::close). Made by [`WebSocket::connect_blocking`]; the same loop
/// and worker machinery runs underneath. Dropping it closes the connection (1000).
///
/// ```no_run
/// use std::time::Duration;
/// use wss_client::WebSocket;
///
/// let ws = WebSocket::connect_blocking("ws://127.0.0.1:8080/")?;
/// ws.send("hello")?;
/// let reply = ws.recv(Some(Duration::from_secs(5)))?;
/// println!("{reply:?}");
/// ws.close();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct BlockingWebSocket {
    ws: WebSocket,
    rx: Receiver<Item>,
    shared: Arc<Shared>,
}

impl WebSocket {
    /// Connects to `url` with the default options and waits until the connection is open
    /// (or failed). See [`BlockingWebSocket`].
    ///
    /// # Errors
    /// Why the connection could not be made (the URL, the connection, the handshake, TLS).
    pub fn connect_blocking(url: &str) -> Result<BlockingWebSocket, ConnectError> {
        WebSocket::connect_blocking_with(url, ClientOptions::default())
    }

    /// [`connect_blocking`](Self::connect_blocking) with options.
    ///
    /// # Errors
    /// As for `connect_blocking`.
    pub fn connect_blocking_with(
        url: &str,
        options: ClientOptions,
    ) -> Result<BlockingWebSocket, ConnectError> {
        let wait = options.connect_timeout + options.handshake_timeout + MARGIN;
        let (tx, rx) = crossbeam_channel::bounded(QUEUE);
        let shared = Arc::new(Shared::default());
        let collector = Collector {
            tx,
            shared: Arc::clone(&shared),
        };
        let ws = WebSocket::connect(url, collector, options)?;
        let handle = BlockingWebSocket { ws, rx, shared };
        match handle.rx.recv_timeout(wait) {
            Ok(Item::Open) => Ok(handle),
            Ok(_) | Err(RecvTimeoutError::Disconnected) => {
                Err(handle.ws.inner.take_failure().unwrap_or_else(|| {
                    let why = lock(&handle.shared.error)
                        .as_ref()
                        .map_or_else(|| "the connection ended".to_owned(), |e| e.message.clone());
                    ConnectError::Handshake(why)
                }))
            }
            Err(RecvTimeoutError::Timeout) => Err(ConnectError::HandshakeTimeout),
        }
    }
}

impl BlockingWebSocket {
    /// The underlying handle: status, buffered amount, protocol, terminate with a code.
    pub fn websocket(&self) -> &WebSocket {
        &self.ws
    }

    /// Sends a message (text, bytes or a JSON value, as [`WebSocket::send`]).
    ///
    /// # Errors
    /// [`SendError::Closed`] once the connection is closing or closed.
    pub fn send(&self, message: impl Into<Data>) -> Result<(), SendError> {
        self.ws.send(message)
    }

    /// The next message, waiting at most `timeout` (`None`: until one comes or the
    /// connection ends). Messages come in wire order, shaped by the options' data type.
    ///
    /// # Errors
    /// [`RecvError::Timeout`] when nothing came in time (the connection stays open);
    /// [`RecvError::Closed`] once the connection is over and every message was taken.
    pub fn recv(&self, timeout: Option<Duration>) -> Result<Data, RecvError> {
        loop {
            // Over, and the end already taken: the channel stays open (the handle keeps the
            // handler alive), so waiting on it would never end.
            if lock(&self.shared.end).is_some() && self.rx.is_empty() {
                return Err(self.closed());
            }
            let item = match timeout {
                Some(t) => self.rx.recv_timeout(t),
                None => self.rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            match item {
                Ok(Item::Message(data)) => return Ok(data),
                Ok(Item::Open) => continue,
                Ok(Item::End) | Err(RecvTimeoutError::Disconnected) => return Err(self.closed()),
                Err(RecvTimeoutError::Timeout) => {
                    if lock(&self.shared.end).is_some() && self.rx.is_empty() {
                        return Err(self.closed());
                    }
                    return Err(RecvError::Timeout);
                }
            }
        }
    }

    fn closed(&self) -> RecvError {
        let end = lock(&self.shared.end).clone();
        RecvError::Closed {
            code: end.as_ref().map_or(1006, |e| e.code),
            reason: end.and_then(|e| e.reason),
            error: lock(&self.shared.error).clone(),
        }
    }

    /// Closes with 1000 and waits for the end (at most the close timeout and a margin);
    /// messages not taken yet are dropped. Returns how it ended, `None` if it did not end
    /// in that time.
    pub fn close(self) -> Option<TerminateEvent> {
        self.close_with(1000, "")
    }

    /// [`close`](Self::close) with a code (1000 or 3000..=4999) and a reason.
    pub fn close_with(self, code: u16, reason: &str) -> Option<TerminateEvent> {
        self.shared.discard.store(true, Ordering::SeqCst);
        self.ws.terminate(Some(code), Some(reason));
        // The close timeout is at most what the options said; 5 s is the default.
        if self.ws.wait_terminated(Some(Duration::from_secs(30))) {
            lock(&self.shared.end).clone()
        } else {
            None
        }
    }
}

impl Drop for BlockingWebSocket {
    fn drop(&mut self) {
        self.shared.discard.store(true, Ordering::SeqCst);
        self.ws.terminate(Some(1000), None);
    }
}

impl std::fmt::Debug for BlockingWebSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingWebSocket")
            .field("ws", &self.ws)
            .finish_non_exhaustive()
    }
}
