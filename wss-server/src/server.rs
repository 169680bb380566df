//! [`WebSocketServer`]: 4D's `4D.WebSocketServer`.

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use wss_net::{Backlog, Decision, Inbound, NetHandle};
use wss_proto::CloseCode;

use crate::broker::{Broker, Inbox, Presence, Topic};
use crate::connection::WebSocketConnection;
use crate::data::{Data, DataType};
use crate::error::ServerError;
use crate::frame::Frame;
use crate::handler::{store_server, HandlerRef, ServerHandler};
use crate::mailbox::{self, Sender};
use crate::options::Dispatch;
use crate::options::ServerOptions;
use crate::router::Router;
use crate::stats::{ServerCounters, ServerStats};
use crate::topics::Rooms;
use crate::web::WebServer;
use crate::worker::{self, Inline, PendingConnect, Worker, WorkerMsg};

/// Distinguishes servers for the worker's send batching.
static NEXT_SERVER_ID: AtomicU64 = AtomicU64::new(1);

pub(crate) struct ServerInner {
    pub(crate) id: u64,
    pub(crate) options: ServerOptions,
    pub(crate) scalable: bool,
    pub(crate) terminated: AtomicBool,
    /// Live connections by id: the order `connections()` promises.
    pub(crate) connections: Mutex<BTreeMap<u64, WebSocketConnection>>,
    /// The worker's control mailbox (opening, handshakes, errors, terminate), which it reads
    /// before any network event, so none of these waits behind a backlog of messages.
    pub(crate) tx: Sender<WorkerMsg>,
    /// The worker's mailbox of network events (batches of one loop turn), and `NetGone` after
    /// the last of them. Its messages are bounded by `inbound`.
    pub(crate) data_tx: Sender<WorkerMsg>,
    /// What the network has handed the worker and the worker has not taken yet, with the
    /// limits past which the loops stop reading (`ServerOptions::inbound`).
    pub(crate) inbound: Arc<Inbound>,
    pub(crate) net: NetHandle,
    pub(crate) handshake_timeout: Duration,
    handler_any: Arc<dyn Any + Send + Sync>,
    done: Mutex<bool>,
    done_cv: Condvar,
    pub(crate) router: Weak<Router>,
    /// Shares this server's topics with the other nodes.
    pub(crate) broker: Arc<dyn Broker>,
    /// This server's own topic (every connection), built once.
    pub(crate) topic: Topic,
    /// Local subscribers of each room.
    pub(crate) rooms: Mutex<Rooms>,
    /// What the workers count.
    pub(crate) counters: ServerCounters,
    /// In loop dispatch, the loops' workers, which take handshakes inline; `None` in worker
    /// dispatch, and once the server is over.
    inline: Mutex<Option<Arc<Inline>>>,
    me: Weak<ServerInner>,
}

impl ServerInner {
    pub(crate) fn path(&self) -> Option<&str> {
        self.options.path.as_deref()
    }

    /// Where the broker delivers what other nodes publish to this server's topics.
    pub(crate) fn inbox(&self) -> Inbox {
        Inbox::from_weak(self.me.clone())
    }

    pub(crate) fn stats(&self) -> ServerStats {
        let open = self
            .connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        self.counters
            .snapshot(self.path(), open, self.inbound.backlog())
    }

    pub(crate) fn connections_snapshot(&self) -> Vec<WebSocketConnection> {
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    /// Marks terminated and every connection `Closing`; true the first time.
    pub(crate) fn mark_terminated(&self) -> bool {
        let first = !self.terminated.swap(true, Ordering::AcqRel);
        for c in self.connections_snapshot() {
            c.inner.begin_local_close();
        }
        first
    }

    pub(crate) fn set_done(&self) {
        *self.done.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.done_cv.notify_all();
    }

    pub(crate) fn is_done(&self) -> bool {
        *self.done.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for `set_done`, at most until `deadline`.
    pub(crate) fn wait_done(&self, deadline: Option<Instant>) -> bool {
        if worker::current_server() == Some(self.id) {
            return self.is_done();
        }
        let mut done = self.done.lock().unwrap_or_else(PoisonError::into_inner);
        while !*done {
            match deadline {
                None => {
                    done = self
                        .done_cv
                        .wait(done)
                        .unwrap_or_else(PoisonError::into_inner)
                }
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return false;
                    }
                    done = self
                        .done_cv
                        .wait_timeout(done, d - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
            }
        }
        true
    }

    pub(crate) fn set_inline(&self, inline: Option<Arc<Inline>>) {
        *self.inline.lock().unwrap_or_else(PoisonError::into_inner) = inline;
    }

    /// Hands a handshake to `on_connection`. In loop dispatch it runs now, on the calling loop,
    /// and the answer comes back; in worker dispatch it goes to the worker, and the answer is
    /// `Pending` (or `503` when the worker is gone).
    pub(crate) fn connect(&self, pending: PendingConnect) -> Decision {
        let inline = self
            .inline
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(inline) = inline {
            if let Some(me) = self.me.upgrade() {
                return inline.connect(&WebSocketServer { inner: me }, pending);
            }
        }
        match self.tx.send(WorkerMsg::Connect(Box::new(pending))) {
            Ok(()) => Decision::Pending,
            Err(_) => worker::refusal(503),
        }
    }

    /// Asks the worker to close everything with `code`, destroying stragglers after
    /// `timeout` (ZERO: at once, no close frame).
    pub(crate) fn request_terminate(&self, timeout: Option<Duration>, code: CloseCode) {
        self.mark_terminated();
        let _ = self.tx.send(WorkerMsg::Terminate { timeout, code });
    }
}

/// A WebSocket server living on a [`WebServer`]'s host and port, told apart from its siblings
/// by `path`. `Clone + Send + Sync`, cheap to clone.
///
/// The server keeps running while its web server runs, even when every handle is dropped,
/// until [`terminate`](Self::terminate) or [`WebServer::stop`] (4D's extra reference rule).
///
/// ```
/// # use wss_server::*;
/// # struct Echo;
/// # impl ConnectionHandler for Echo {
/// #     fn on_message(&mut self, ws: &WebSocketConnection, event: &MessageEvent) {
/// #         let _ = ws.send(&event.data);
/// #     }
/// # }
/// # struct Accept;
/// # impl ServerHandler for Accept {
/// #     type Connection = Echo;
/// #     fn on_connection(&mut self, _: &WebSocketServer, _: &ConnectionEvent) -> Option<Echo> {
/// #         Some(Echo)
/// #     }
/// # }
/// // `Accept` is a ServerHandler whose on_connection returns an echo handler.
/// let web = WebServer::start(WebServerOptions::default().with_address("127.0.0.1", 0))?;
/// // Two servers on one port, told apart by path.
/// let echo = WebSocketServer::new(&web, Accept, ServerOptions::default().with_path("/echo"))?;
/// let _chat = WebSocketServer::new(&web, Accept, ServerOptions::default().with_path("/chat"))?;
/// assert_eq!(echo.path(), Some("/echo"));
/// assert!(echo.connections().is_empty());
///
/// // One live server per path.
/// let again = WebSocketServer::new(&web, Accept, ServerOptions::default().with_path("/echo"));
/// assert!(matches!(again, Err(ServerError::PathTaken(_))));
/// web.stop(); // terminates both servers
/// assert!(echo.terminated());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct WebSocketServer {
    pub(crate) inner: Arc<ServerInner>,
}

impl WebSocketServer {
    /// Creates and starts a WebSocket server on `web` (4D's `4D.WebSocketServer.new`).
    ///
    /// Spawns the server's worker thread, which runs every callback of `handler` and of the
    /// connection handlers it returns. `on_open` runs on the worker after this returns (A10).
    /// With [`Dispatch::Loop`] in `options`, the connections' callbacks and `on_connection`
    /// run on the network threads instead, and the thread spawned here runs the server's own
    /// callbacks, `terminate` and the timers.
    /// Fails, with no callback run, when the web server is not running, the path is taken by
    /// a live server, a second catch-all is asked for, or the path is malformed (A6).
    pub fn new<H: ServerHandler>(
        web: &WebServer,
        handler: H,
        options: ServerOptions,
    ) -> Result<WebSocketServer, ServerError> {
        let web = &web.inner;
        if !web.is_running() {
            return Err(ServerError::WebServerNotRunning);
        }
        if let Some(p) = &options.path {
            if !p.starts_with('/') || p.contains(['?', '#']) {
                return Err(ServerError::InvalidPath(p.clone()));
            }
        }
        let stored = store_server(handler);
        // Unbounded, yet bounded in practice: control messages by the handshakes in progress
        // (the router refuses past a cap), network batches by `inbound`'s limits.
        let (tx, data_tx, mail) = mailbox::mailbox();
        let inbound = Arc::new(Inbound::new(options.inbound));
        let topic = Topic::server(options.path.as_deref());
        let inner = Arc::new_cyclic(|me| ServerInner {
            id: NEXT_SERVER_ID.fetch_add(1, Ordering::Relaxed),
            options,
            scalable: web.scalable_session(),
            terminated: AtomicBool::new(false),
            connections: Mutex::new(BTreeMap::new()),
            tx,
            data_tx,
            inbound,
            net: web.net_handle(),
            handshake_timeout: web.handshake_timeout(),
            handler_any: stored.any.clone(),
            done: Mutex::new(false),
            done_cv: Condvar::new(),
            router: Arc::downgrade(web.router()),
            broker: web.broker().clone(),
            topic,
            rooms: Mutex::new(Rooms::new()),
            counters: ServerCounters::new(web.metrics_on()),
            inline: Mutex::new(None),
            me: me.clone(),
        });
        // on_open is the first message, so it runs before any connection event (A10).
        let _ = inner.tx.send(WorkerMsg::Open);
        web.router().register(&inner)?;
        web.track(&inner);
        inner.broker.subscribe(&inner.topic, &inner.inbox());
        let server = WebSocketServer { inner };
        let started = match server.inner.options.dispatch {
            Dispatch::Worker => {
                let worker = Worker::new(server.clone(), stored);
                std::thread::Builder::new()
                    .name(format!("wss-worker-{}", server.inner.path().unwrap_or("*")))
                    .spawn(move || worker.run(mail))
                    .map(drop)
            }
            Dispatch::Loop => Inline::start(&server, stored, mail),
        };
        if let Err(e) = started {
            let inner = &server.inner;
            inner.broker.unsubscribe(&inner.topic, &inner.inbox());
            web.router().unregister(inner);
            return Err(ServerError::Spawn(e));
        }
        Ok(server)
    }

    /// The open connections, a snapshot sorted by ascending id (A8). A connection is listed
    /// from the moment `on_connection` accepts it until just before its `on_terminate`.
    pub fn connections(&self) -> Vec<WebSocketConnection> {
        self.inner.connections_snapshot()
    }

    /// How messages are delivered to `on_message`.
    pub fn data_type(&self) -> DataType {
        self.inner.options.data_type
    }

    /// The server handler given to `new`, if it is an `H` (4D's `.handler`): the live
    /// instance the callbacks run on. See [`HandlerRef`] for when locking waits.
    pub fn handler<H: Send + 'static>(&self) -> Option<HandlerRef<H>> {
        HandlerRef::downcast(&self.inner.handler_any)
    }

    /// The path served; `None` for the catch-all server.
    pub fn path(&self) -> Option<&str> {
        self.inner.path()
    }

    /// True once `terminate` was called or the web server stopped: new handshakes get 503.
    pub fn terminated(&self) -> bool {
        self.inner.terminated.load(Ordering::Acquire)
    }

    /// Whether the web server runs with scalable sessions (4D's `WebServer.scalableSession`,
    /// reported here as the seed page lists it).
    pub fn scalable_session(&self) -> bool {
        self.inner.scalable
    }

    /// Closes the server (SPEC §1.5, A15); returns at once, the work happens on the worker.
    ///
    /// - `None`: a close frame (1000) to every connection, then wait for each peer's answer,
    ///   at most `ServerOptions::terminate_cap` (30 s); stragglers are destroyed.
    /// - `Some(t)`, `t > 0`: the same, stragglers destroyed at `t`.
    /// - `Some(Duration::ZERO)`: every socket destroyed at once, no close frame;
    ///   `on_terminate{1006}` without `on_error`.
    ///
    /// Each connection's `on_terminate` runs, then the server's. Calling again is a no-op
    /// unless it shortens the deadline.
    ///
    /// ```
    /// # use wss_server::*;
    /// # struct Echo;
    /// # impl ConnectionHandler for Echo {
    /// #     fn on_message(&mut self, ws: &WebSocketConnection, event: &MessageEvent) {
    /// #         let _ = ws.send(&event.data);
    /// #     }
    /// # }
    /// # struct Accept;
    /// # impl ServerHandler for Accept {
    /// #     type Connection = Echo;
    /// #     fn on_connection(&mut self, _: &WebSocketServer, _: &ConnectionEvent) -> Option<Echo> {
    /// #         Some(Echo)
    /// #     }
    /// # }
    /// use std::time::Duration;
    ///
    /// let web = WebServer::start(WebServerOptions::default().with_address("127.0.0.1", 0))?;
    /// let wss = WebSocketServer::new(&web, Accept, ServerOptions::default())?;
    /// wss.terminate(None); // close frames (1000), then wait for the peers' answers
    /// assert!(wss.terminated()); // new handshakes now get 503
    /// assert!(wss.wait_terminated(Some(Duration::from_secs(10)))); // on_terminate has run
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn terminate(&self, timeout: Option<Duration>) {
        self.inner.request_terminate(timeout, CloseCode::NORMAL);
    }

    /// Waits until the server's `on_terminate` has run, at most `timeout` (`None`: no
    /// bound). Returns true if it has. From the server's own worker (inside a callback) it
    /// cannot wait and only reports the current state.
    pub fn wait_terminated(&self, timeout: Option<Duration>) -> bool {
        self.inner
            .wait_done(timeout.and_then(|t| Instant::now().checked_add(t)))
    }

    /// Sends `message` to every `Connected` connection of this server except the one with id
    /// `except`, on this node and on every other node sharing the broker (see
    /// [`WebServerOptions::broker`](crate::WebServerOptions::broker)), framing it once for all
    /// (the receivers share one buffer). Returns how many local connections it was queued for.
    ///
    /// `except` is a connection id of this node: the other nodes deliver to all their
    /// connections. Delivery to other nodes is at most once (see the broker's guarantees).
    ///
    /// ```
    /// use wss_server::*;
    ///
    /// // A relay: every message to everyone else, encoded once.
    /// struct Relay;
    /// impl ConnectionHandler for Relay {
    ///     fn on_message(&mut self, ws: &WebSocketConnection, event: &MessageEvent) {
    ///         ws.wss().broadcast(&event.data, Some(ws.id()));
    ///     }
    /// }
    /// # struct Accept;
    /// # impl ServerHandler for Accept {
    /// #     type Connection = Relay;
    /// #     fn on_connection(&mut self, _: &WebSocketServer, _: &ConnectionEvent) -> Option<Relay> {
    /// #         Some(Relay)
    /// #     }
    /// # }
    ///
    /// // From outside the callbacks too, from any thread:
    /// let web = WebServer::start(WebServerOptions::default().with_address("127.0.0.1", 0))?;
    /// let wss = WebSocketServer::new(&web, Accept, ServerOptions::default())?;
    /// let queued = wss.broadcast("maintenance at noon", None);
    /// assert_eq!(queued, 0); // nobody is connected yet
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn broadcast(&self, message: impl Into<Data>, except: Option<u64>) -> usize {
        let frame = Frame::encode(&message.into());
        self.inner.publish_frame(None, &frame, except)
    }

    /// Sends `message` to the connections [subscribed](WebSocketConnection::subscribe) to
    /// `room`, on this node and every other node, except the local connection `except`.
    /// Framed once. Returns how many local connections it was queued for.
    pub fn publish(&self, room: &str, message: impl Into<Data>, except: Option<u64>) -> usize {
        let frame = Frame::encode(&message.into());
        self.inner.publish_frame(Some(room), &frame, except)
    }

    /// As [`broadcast`](Self::broadcast) (`room` `None`) or [`publish`](Self::publish), with a
    /// frame already encoded, e.g. one frame sent to several rooms.
    pub fn publish_frame(&self, room: Option<&str>, frame: &Frame, except: Option<u64>) -> usize {
        self.inner.publish_frame(room, frame, except)
    }

    /// Who is present (see [`WebSocketConnection::set_user`]) in `room`, or in the whole
    /// server when `room` is `None`, on every node. This node's members come from memory;
    /// the other nodes' from the broker, which may wait for its backend (boundedly); when it
    /// cannot answer, [`Presence::complete`] is false.
    pub fn presence(&self, room: Option<&str>) -> Presence {
        self.inner.presence(room)
    }

    /// The rooms with at least one local subscriber.
    pub fn rooms(&self) -> Vec<String> {
        let rooms = self
            .inner
            .rooms
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut names: Vec<String> = rooms.keys().cloned().collect();
        names.sort();
        names
    }

    /// This node's id in the cluster ([`Broker::node_id`]; `local` without one).
    pub fn node_id(&self) -> &str {
        self.inner.broker.node_id()
    }

    /// The topic this server's broadcasts go to.
    pub fn topic(&self) -> &Topic {
        &self.inner.topic
    }

    /// The messages (and their bytes) that the network has read for this server and its
    /// worker has not finished with yet: what [`ServerOptions::inbound`] bounds.
    pub fn backlog(&self) -> Backlog {
        self.inner.inbound.backlog()
    }

    /// This server's counters: connections open and opened, handshakes it accepted or
    /// refused, messages received, callback panics and durations, its worker's queue. Cheap
    /// (a handful of loads and the connection table's lock); for the network's side
    /// (bytes, messages sent, closes) see [`WebServer::stats`].
    pub fn stats(&self) -> ServerStats {
        self.inner.stats()
    }
}

impl fmt::Debug for WebSocketServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketServer")
            .field("path", &self.path())
            .field("data_type", &self.data_type())
            .field("terminated", &self.terminated())
            .finish()
    }
}
