//! The callback traits (4D's `WSSHandler` and `connectionHandler`) and [`HandlerRef`], the way
//! to reach a live handler instance from outside its callbacks (4D's `.handler`).

use std::any::Any;
use std::cell::Cell;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::connection::WebSocketConnection;
use crate::error::HandlerBusy;
use crate::event::{
    ConnectionEvent, ErrorEvent, MessageEvent, OpenEvent, ServerTerminateEvent, TerminateEvent,
};
use crate::server::WebSocketServer;

/// Server-level callbacks (4D's *WSSHandler*). Only `on_connection` is required.
///
/// All callbacks of one server run on that server's worker thread, one at a time, in arrival
/// order, so `&mut self` needs no locking (SPEC Part A point 5). A panic inside a callback is
/// caught and reported to `on_error` (Part A point 7).
///
/// ```
/// use wss_server::*;
///
/// // Lets in clients with the right token, speaking the `chat.v1` subprotocol if offered.
/// struct Gate {
///     token: String,
///     admitted: u64,
/// }
/// struct Member {
///     name: String,
/// }
///
/// impl ServerHandler for Gate {
///     type Connection = Member;
///     fn on_connection(&mut self, _: &WebSocketServer, event: &ConnectionEvent) -> Option<Member> {
///         if event.request.query.get("token") != Some(self.token.as_str()) {
///             return None; // the client gets 403
///         }
///         event.select_protocol("chat.v1");
///         self.admitted += 1; // &mut self: callbacks run one at a time
///         let name = event.request.query.get("name").unwrap_or("guest").to_owned();
///         Some(Member { name })
///     }
///     fn on_terminate(&mut self, _: &WebSocketServer, _: &ServerTerminateEvent) {
///         println!("{} clients admitted", self.admitted);
///     }
/// }
///
/// impl ConnectionHandler for Member {
///     fn on_message(&mut self, ws: &WebSocketConnection, event: &MessageEvent) {
///         if let Data::Text(text) = &event.data {
///             ws.wss().broadcast(format!("{}: {text}", self.name), None);
///         }
///     }
/// }
///
/// let web = WebServer::start(WebServerOptions::default().with_address("127.0.0.1", 0))?;
/// let gate = Gate { token: "s3cret".into(), admitted: 0 };
/// let _wss = WebSocketServer::new(&web, gate, ServerOptions::default().with_path("/chat"))?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait ServerHandler: Send + 'static {
    /// The connection handler `on_connection` returns. Use `Box<dyn ConnectionHandler>` to
    /// return different handler types.
    type Connection: ConnectionHandler;

    /// A client asks to connect. Runs **before** the `101` answer (A1): return a handler to
    /// accept (then the connection is added to `connections()` and its `on_open` runs), or
    /// `None` to refuse with `403 Forbidden` (A2). A subprotocol may be picked with
    /// [`ConnectionEvent::select_protocol`].
    fn on_connection(
        &mut self,
        wss: &WebSocketServer,
        event: &ConnectionEvent,
    ) -> Option<Self::Connection>;

    /// The server has started; runs once, first, after `new()` returned (A10).
    fn on_open(&mut self, wss: &WebSocketServer, event: &OpenEvent) {
        let _ = (wss, event);
    }

    /// The server (or its web server) has closed; runs once, last, after every connection's
    /// `on_terminate`. `connections()` is empty by then.
    fn on_terminate(&mut self, wss: &WebSocketServer, event: &ServerTerminateEvent) {
        let _ = (wss, event);
    }

    /// A server-level error: a panic in a server callback, a handshake refused by the origin
    /// policy. A panic in here is only logged.
    fn on_error(&mut self, wss: &WebSocketServer, event: &ErrorEvent) {
        let _ = (wss, event);
    }
}

/// Per-connection callbacks (4D's *connectionHandler*). Only `on_message` is required.
///
/// Order per connection: `on_open` once, then `on_message`s in wire order, then at most one
/// transport `on_error`, then `on_terminate` once (A11, A12).
///
/// ```
/// use wss_server::*;
///
/// // Counts what one client sent and says so when it leaves.
/// #[derive(Default)]
/// struct Counted {
///     messages: usize,
/// }
///
/// impl ConnectionHandler for Counted {
///     fn on_open(&mut self, ws: &WebSocketConnection, _: &OpenEvent) {
///         let _ = ws.send("hello");
///     }
///     fn on_message(&mut self, ws: &WebSocketConnection, event: &MessageEvent) {
///         self.messages += 1; // per-connection state, no lock
///         let _ = ws.send(&event.data);
///     }
///     fn on_error(&mut self, ws: &WebSocketConnection, event: &ErrorEvent) {
///         for e in &event.errors {
///             eprintln!("connection {}: {} ({})", ws.id(), e.message, e.err_code);
///         }
///     }
///     fn on_terminate(&mut self, ws: &WebSocketConnection, event: &TerminateEvent) {
///         let reason = event.reason.as_deref().unwrap_or("");
///         println!("{} left after {} messages: {} {reason}", ws.id(), self.messages, event.code);
///     }
/// }
/// ```
pub trait ConnectionHandler: Send + 'static {
    /// A message arrived, shaped by the server's data type.
    fn on_message(&mut self, ws: &WebSocketConnection, event: &MessageEvent);

    /// The server's entry point for a message: it hands the event over, and by default
    /// lends it to [`on_message`](Self::on_message). Override it to keep or forward the data
    /// without a copy (an echo sends `event.data` back as it is: for a 64 KiB message that is
    /// a 64 KiB copy less). Implement `on_message` as well, for callers that only lend.
    fn on_message_owned(&mut self, ws: &WebSocketConnection, event: MessageEvent) {
        self.on_message(ws, &event)
    }

    /// The connection is open (after the 101); `ws` is already in `wss().connections()`.
    fn on_open(&mut self, ws: &WebSocketConnection, event: &OpenEvent) {
        let _ = (ws, event);
    }

    /// The connection has closed; `ws.status()` is `Closed` and it is no longer in
    /// `connections()`. Runs exactly once per `on_open`.
    fn on_terminate(&mut self, ws: &WebSocketConnection, event: &TerminateEvent) {
        let _ = (ws, event);
    }

    /// An error: abnormal close (code other than 1000/1005), invalid JSON with
    /// `DataType::Object` (connection stays open), or a panic in another callback of this
    /// handler (connection stays open). A panic in here is only logged.
    fn on_error(&mut self, ws: &WebSocketConnection, event: &ErrorEvent) {
        let _ = (ws, event);
    }
}

impl ConnectionHandler for Box<dyn ConnectionHandler> {
    fn on_message(&mut self, ws: &WebSocketConnection, event: &MessageEvent) {
        (**self).on_message(ws, event)
    }
    fn on_message_owned(&mut self, ws: &WebSocketConnection, event: MessageEvent) {
        (**self).on_message_owned(ws, event)
    }
    fn on_open(&mut self, ws: &WebSocketConnection, event: &OpenEvent) {
        (**self).on_open(ws, event)
    }
    fn on_terminate(&mut self, ws: &WebSocketConnection, event: &TerminateEvent) {
        (**self).on_terminate(ws, event)
    }
    fn on_error(&mut self, ws: &WebSocketConnection, event: &ErrorEvent) {
        (**self).on_error(ws, event)
    }
}

thread_local! {
    /// Address of the handler whose callback runs on this thread right now (0: none).
    static RUNNING: Cell<usize> = const { Cell::new(0) };
}

/// A typed, shared reference to a live handler instance (4D's `wss.handler` / `ws.handler`):
/// the very object the callbacks run on, not a copy.
///
/// The worker locks the handler for the length of each callback, so [`HandlerRef::lock`]
/// from another thread waits for the running callback to end, and from inside one of this
/// handler's own callbacks it returns [`HandlerBusy`] (use `self` there) instead of
/// deadlocking. Do not hold the guard across a wait on the worker (e.g. `wait_terminated`).
pub struct HandlerRef<H> {
    cell: Arc<Mutex<H>>,
}

impl<H> Clone for HandlerRef<H> {
    fn clone(&self) -> Self {
        HandlerRef {
            cell: self.cell.clone(),
        }
    }
}

impl<H: Send + 'static> HandlerRef<H> {
    /// Locks the handler. A panic in an earlier callback does not poison it.
    pub fn lock(&self) -> Result<MutexGuard<'_, H>, HandlerBusy> {
        if RUNNING.with(Cell::get) == cell_addr(&self.cell) {
            return Err(HandlerBusy);
        }
        Ok(self.cell.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Runs `f` on the locked handler.
    pub fn with<R>(&self, f: impl FnOnce(&mut H) -> R) -> Result<R, HandlerBusy> {
        let mut guard = self.lock()?;
        Ok(f(&mut guard))
    }

    pub(crate) fn downcast(any: &Arc<dyn Any + Send + Sync>) -> Option<Self> {
        any.clone()
            .downcast::<Mutex<H>>()
            .ok()
            .map(|cell| HandlerRef { cell })
    }
}

impl<H> std::fmt::Debug for HandlerRef<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HandlerRef")
    }
}

fn cell_addr<T: ?Sized>(cell: &Arc<Mutex<T>>) -> usize {
    Arc::as_ptr(cell) as *const u8 as usize
}

/// A handler kept twice: typed (as `Any`, for `HandlerRef`) and as the callback trait object
/// the worker calls. Both point at the same `Mutex`.
pub(crate) struct Stored<T: ?Sized> {
    pub(crate) any: Arc<dyn Any + Send + Sync>,
    pub(crate) cell: Arc<Mutex<T>>,
}

impl<T: ?Sized> Clone for Stored<T> {
    /// Another handle to the same instance (loop dispatch gives one to each loop).
    fn clone(&self) -> Self {
        Stored {
            any: Arc::clone(&self.any),
            cell: Arc::clone(&self.cell),
        }
    }
}

impl<T: ?Sized> Stored<T> {
    /// Locks for a callback and marks the handler as running on this thread until the
    /// returned guard drops.
    pub(crate) fn enter(&self) -> Running<'_, T> {
        enter(&self.cell)
    }
}

/// [`Stored::enter`] for a handler kept without its `Any` half (the worker's per-connection
/// table keeps only the callback half: the connection handle has the other).
pub(crate) fn enter<T: ?Sized>(cell: &Arc<Mutex<T>>) -> Running<'_, T> {
    let prev = RUNNING.with(|r| r.replace(cell_addr(cell)));
    Running {
        guard: cell.lock().unwrap_or_else(PoisonError::into_inner),
        prev,
    }
}

pub(crate) struct Running<'a, T: ?Sized> {
    pub(crate) guard: MutexGuard<'a, T>,
    prev: usize,
}

impl<T: ?Sized> Drop for Running<'_, T> {
    fn drop(&mut self) {
        RUNNING.with(|r| r.set(self.prev));
    }
}

/// The server handler with its associated type erased, as the worker calls it.
pub(crate) trait ErasedServer: Send {
    fn on_connection(
        &mut self,
        wss: &WebSocketServer,
        event: &ConnectionEvent,
    ) -> Option<Stored<dyn ConnectionHandler>>;
    fn on_open(&mut self, wss: &WebSocketServer, event: &OpenEvent);
    fn on_terminate(&mut self, wss: &WebSocketServer, event: &ServerTerminateEvent);
    fn on_error(&mut self, wss: &WebSocketServer, event: &ErrorEvent);
}

impl<H: ServerHandler> ErasedServer for H {
    fn on_connection(
        &mut self,
        wss: &WebSocketServer,
        event: &ConnectionEvent,
    ) -> Option<Stored<dyn ConnectionHandler>> {
        let handler = ServerHandler::on_connection(self, wss, event)?;
        let cell = Arc::new(Mutex::new(handler));
        Some(Stored {
            any: cell.clone(),
            cell,
        })
    }
    fn on_open(&mut self, wss: &WebSocketServer, event: &OpenEvent) {
        ServerHandler::on_open(self, wss, event)
    }
    fn on_terminate(&mut self, wss: &WebSocketServer, event: &ServerTerminateEvent) {
        ServerHandler::on_terminate(self, wss, event)
    }
    fn on_error(&mut self, wss: &WebSocketServer, event: &ErrorEvent) {
        ServerHandler::on_error(self, wss, event)
    }
}

/// Wraps a server handler for the worker.
pub(crate) fn store_server<H: ServerHandler>(handler: H) -> Stored<dyn ErasedServer> {
    let cell = Arc::new(Mutex::new(handler));
    Stored {
        any: cell.clone(),
        cell,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Counter(u32);

    #[test]
    fn handler_ref_reaches_the_same_instance_and_detects_reentry() {
        let cell = Arc::new(Mutex::new(Counter(1)));
        let stored: Stored<Counter> = Stored {
            any: cell.clone(),
            cell,
        };
        let r = HandlerRef::<Counter>::downcast(&stored.any).expect("same type");
        assert!(HandlerRef::<String>::downcast(&stored.any).is_none());
        r.with(|c| c.0 += 1).expect("not running");
        {
            let running = stored.enter();
            assert_eq!(running.guard.0, 2);
            assert_eq!(r.lock().err(), Some(HandlerBusy));
        }
        assert_eq!(r.with(|c| c.0).ok(), Some(2));
    }
}
