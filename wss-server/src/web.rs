//! [`WebServer`]: the HTTP server WebSocket servers live on (4D's web server).

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant};

use wss_net::{Listen, Net, NetConfig, NetHandle, Service};
use wss_proto::handshake::HeadLimits;
use wss_proto::CloseCode;

use crate::broker::Broker;
use crate::connection::WebSocketConnection;
use crate::error::WebError;
use crate::files::Files;
use crate::health::Health;
use crate::hosts::HostPolicy;
use crate::metrics::MetricsServer;
use crate::options::WebServerOptions;
use crate::router::Router;
use crate::server::ServerInner;
use crate::session::{Session, SessionStore};
use crate::site::Site;
use crate::stats::{HandshakeCounters, HandshakeStats, ServerStats, WebServerStats};
use crate::worker::WorkerMsg;

/// After the network threads are gone, how long `stop` waits for each worker to finish.
const WORKER_FINISH_WAIT: Duration = Duration::from_secs(5);

pub(crate) struct WebInner {
    router: Arc<Router>,
    net: Mutex<Option<Net>>,
    handle: NetHandle,
    local_addr: SocketAddr,
    tls_addr: Option<SocketAddr>,
    scalable: bool,
    cookie_name: String,
    handshake_timeout: Duration,
    broker: Arc<dyn Broker>,
    /// Readiness and the drain flag, shared with the router and the metrics listener.
    health: Arc<Health>,
    /// Upgrade requests the router refused, by outcome.
    handshakes: Arc<HandshakeCounters>,
    /// Every WebSocket server created on this web server (for stats).
    servers: Mutex<Vec<Weak<ServerInner>>>,
    /// Whether metrics are served (then workers time their callbacks).
    metrics_on: bool,
    metrics: Mutex<Option<MetricsServer>>,
    metrics_addr: OnceLock<SocketAddr>,
    drain_time: Duration,
}

impl WebInner {
    pub(crate) fn broker(&self) -> &Arc<dyn Broker> {
        &self.broker
    }

    pub(crate) fn is_running(&self) -> bool {
        self.router.is_running()
    }

    pub(crate) fn scalable_session(&self) -> bool {
        self.scalable
    }

    pub(crate) fn net_handle(&self) -> NetHandle {
        self.handle.clone()
    }

    pub(crate) fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    pub(crate) fn router(&self) -> &Arc<Router> {
        &self.router
    }

    pub(crate) fn metrics_on(&self) -> bool {
        self.metrics_on
    }

    /// Lists a new WebSocket server for [`stats`](Self::stats).
    pub(crate) fn track(&self, server: &Arc<ServerInner>) {
        let mut all = self.servers.lock().unwrap_or_else(PoisonError::into_inner);
        all.retain(|w| w.strong_count() > 0);
        all.push(Arc::downgrade(server));
    }

    pub(crate) fn stats(&self) -> WebServerStats {
        let net = self.handle.stats();
        let live: Vec<Arc<ServerInner>> = self
            .servers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|s| !s.is_done())
            .collect();
        let servers: Vec<ServerStats> = live.iter().map(|s| s.stats()).collect();
        WebServerStats {
            handshakes: HandshakeStats::gather(&self.handshakes, &net, &servers),
            net,
            sessions: self.router.session_count(),
            draining: self.health.is_draining(),
            servers,
            broker: self.broker.stats(),
        }
    }

    fn stop_with(&self, graceful: Option<Duration>) {
        // Readiness turns 503 first, so balancers stop sending clients while we close.
        self.health.begin_drain();
        let Some(servers) = self.router.begin_stop() else {
            return;
        };
        let net = self
            .net
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let metrics = self
            .metrics
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let drain_time = self.drain_time;
        if wss_net::on_loop_thread() || crate::worker::on_control_thread() {
            // Called from a callback in loop dispatch: the steps below wait for the loops, and
            // a loop cannot wait for itself, nor for a control thread that holds the workers
            // the loops wait for. They finish on a thread of their own; this call returns at
            // once.
            let spawned = std::thread::Builder::new()
                .name("wss-stop".into())
                .spawn(move || finish_stop(servers, graceful, drain_time, net, metrics));
            if let Err(e) = spawned {
                log::error!("stopping the web server: no thread to finish on: {e}");
            }
            return;
        }
        finish_stop(servers, graceful, drain_time, net, metrics);
    }
}

/// The part of a stop that waits: the drain, each server's end, the network's threads.
fn finish_stop(
    servers: Vec<Arc<ServerInner>>,
    graceful: Option<Duration>,
    drain_time: Duration,
    net: Option<Net>,
    metrics: Option<MetricsServer>,
) {
    if graceful.is_some() && !drain_time.is_zero() {
        spread_closes(&servers, drain_time);
    }
    let timeout = graceful.unwrap_or(Duration::ZERO);
    for s in &servers {
        s.request_terminate(Some(timeout), CloseCode::GOING_AWAY);
    }
    if graceful.is_some() {
        // Workers abort stragglers at `timeout`, then wait up to a second for the network.
        let deadline = Instant::now() + timeout + Duration::from_secs(2);
        for s in &servers {
            s.wait_done(Some(deadline));
        }
    }
    if let Some(net) = net {
        net.shutdown(None);
    }
    for s in &servers {
        // After the network's last batch, in the same mailbox.
        let _ = s.data_tx.send(WorkerMsg::NetGone);
    }
    let deadline = Instant::now() + WORKER_FINISH_WAIT;
    for s in &servers {
        s.wait_done(Some(deadline));
    }
    if let Some(mut m) = metrics {
        m.stop();
    }
}

/// Closes every open WebSocket of `servers` with 1001, evenly spaced over `over`: the i-th of
/// n at `over * i / n`. Connections opened meanwhile (none: routing has stopped) and those
/// that do not answer are left to the terminate that follows. Runs on the stopping thread.
fn spread_closes(servers: &[Arc<ServerInner>], over: Duration) {
    let conns: Vec<WebSocketConnection> = servers
        .iter()
        .flat_map(|s| s.connections_snapshot())
        .collect();
    let n = conns.len();
    if n == 0 {
        return;
    }
    log::info!("draining {n} connections over {:.1}s", over.as_secs_f64());
    let start = Instant::now();
    for (i, c) in conns.iter().enumerate() {
        let due = start + over.mul_f64(i as f64 / n as f64);
        let now = Instant::now();
        // Sleeps below a millisecond are mostly scheduler overhead: close a few together.
        if due > now + Duration::from_millis(1) {
            std::thread::sleep(due - now);
        }
        if c.inner.begin_local_close() {
            c.inner
                .server
                .inner
                .net
                .close(c.inner.conn, CloseCode::GOING_AWAY, String::new());
        }
    }
}

impl Drop for WebInner {
    fn drop(&mut self) {
        self.stop_with(None);
    }
}

/// An HTTP/1.1 server: static files for plain GET/HEAD, WebSocket upgrades for the
/// [`WebSocketServer`](crate::WebSocketServer)s created on it. `Clone + Send + Sync`.
///
/// Request routing runs on the network threads and never runs user code: upgrades go to the
/// server whose path matches exactly, else to the catch-all server, else 404; other GET/HEAD
/// requests to the static root, then the built-in files, else 404. Before any of that, a
/// request naming a host the server does not answer to gets 403
/// ([`WebServerOptions::allowed_hosts`]).
///
/// Files are served from memory with `ETag`, `Last-Modified` and `304`s: built-in files are
/// prepared here, root files are read and hashed by a file thread (`wss-files`) into a bounded
/// cache ([`WebServerOptions::file_cache_bytes`]), so no network thread waits for the disk.
///
/// Dropping the last handle stops the server, as [`stop`](Self::stop) does.
///
/// ```
/// use wss_server::{WebServer, WebServerOptions};
///
/// // Port 0: the system picks a free port; local_addr() tells which.
/// let web = WebServer::start(WebServerOptions::default().with_address("127.0.0.1", 0))?;
/// println!("serving http://{}/", web.local_addr());
/// assert!(web.is_running());
/// web.stop(); // or drop the last handle
/// assert!(!web.is_running());
/// # Ok::<(), wss_server::WebError>(())
/// ```
#[derive(Clone)]
pub struct WebServer {
    pub(crate) inner: Arc<WebInner>,
}

impl WebServer {
    /// Binds and starts serving; returns once accepting connections.
    pub fn start(options: WebServerOptions) -> Result<WebServer, WebError> {
        let addr = (options.host.as_str(), options.port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut it| it.next())
            .ok_or_else(|| WebError::Resolve(options.host.clone()))?;
        let root = match &options.root {
            None => None,
            Some(r) => {
                let real = std::fs::canonicalize(r).map_err(WebError::Root)?;
                if !real.is_dir() {
                    return Err(WebError::Root(std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        "not a folder",
                    )));
                }
                Some(real)
            }
        };
        // Built-in files are hashed here, once; their `Last-Modified` is this start.
        let files = Files::new(root, &options, std::time::SystemTime::now());
        let sessions = options
            .scalable_session
            .then(|| SessionStore::new(options.session_idle_timeout, options.max_sessions));
        let hosts = HostPolicy::new(&options.allowed_hosts, addr.ip());
        let site = Arc::new(Site::new(
            files,
            sessions,
            options.session_cookie_name.clone(),
            hosts,
        ));
        let handshakes = Arc::new(HandshakeCounters::default());
        let router = Arc::new(Router::new(site.clone(), Arc::clone(&handshakes)));
        let health = Arc::new(Health::new(
            options.broker.clone(),
            options.health_path.as_deref(),
        ));
        if options.health_path.is_some() {
            let _ = router.health.set(Arc::clone(&health));
        }
        let proto = wss_proto::Config {
            max_frame_size: options.max_message_size,
            max_message_size: options.max_message_size,
            close_timeout: options.close_timeout,
            idle_timeout: options.idle_timeout,
            ..Default::default()
        };
        let config = NetConfig {
            threads: options.threads,
            head_limits: HeadLimits {
                max_head_bytes: options.max_head_bytes,
                max_headers: options.max_headers,
            },
            handshake_timeout: options.handshake_timeout,
            proto,
            max_outgoing: options.max_outgoing,
            max_connections: options.max_connections,
            max_per_address: options.max_per_address,
            max_pending_handshakes: options.max_pending_handshakes,
            tls: options.tls.clone(),
            deflate: options.deflate.clone(),
        };
        let service: Arc<dyn Service> = router.clone();
        let listeners = match (&options.tls, options.tls_port) {
            (Some(_), Some(tls_port)) => vec![
                Listen::plain(addr),
                Listen::tls(SocketAddr::new(addr.ip(), tls_port)),
            ],
            (tls, None) | (tls @ None, _) => vec![Listen {
                addr,
                tls: tls.is_some(),
            }],
        };
        let net = Net::bind_all(&listeners, config, service).map_err(WebError::Bind)?;
        // Requests that reached the loops already wait in the file thread's queue.
        if let Err(e) = Files::start_thread(&site, net.handle()) {
            net.shutdown(None);
            return Err(WebError::Bind(e));
        }
        let inner = WebInner {
            router,
            handle: net.handle(),
            local_addr: net.local_addr(),
            tls_addr: net.tls_addr(),
            net: Mutex::new(Some(net)),
            scalable: options.scalable_session,
            cookie_name: options.session_cookie_name,
            handshake_timeout: options.handshake_timeout,
            broker: options.broker,
            health: Arc::clone(&health),
            handshakes,
            servers: Mutex::new(Vec::new()),
            metrics_on: options.metrics.is_some(),
            metrics: Mutex::new(None),
            metrics_addr: OnceLock::new(),
            drain_time: options.drain_time,
        };
        let inner = Arc::new(inner);
        if let Some(addr) = options.metrics {
            let started = MetricsServer::start(addr, Arc::downgrade(&inner), health);
            let m = match started {
                Ok(m) => m,
                Err(e) => {
                    inner.stop_with(None);
                    return Err(WebError::Metrics(e));
                }
            };
            let _ = inner.metrics_addr.set(m.local_addr());
            *inner.metrics.lock().unwrap_or_else(PoisonError::into_inner) = Some(m);
        }
        Ok(WebServer { inner })
    }

    /// The metrics listener's address (the real port when 0 was asked), if metrics are
    /// served ([`WebServerOptions::metrics`]).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.inner.metrics_addr.get().copied()
    }

    /// Counters and gauges of this web server and of every WebSocket server on it: network
    /// traffic, handshakes by outcome, closes by code, sessions, the broker's link. Cheap
    /// (each network loop's counters are summed, each server's read): fine once a second,
    /// not meant for every message.
    pub fn stats(&self) -> WebServerStats {
        self.inner.stats()
    }

    /// The address actually bound (the real port when `port` was 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// The TLS listener's address (the real port when `tls_port` was 0), if TLS is on. With
    /// `tls` and no `tls_port` it equals `local_addr()`.
    pub fn tls_local_addr(&self) -> Option<SocketAddr> {
        self.inner.tls_addr
    }

    /// False once `stop` was called.
    pub fn is_running(&self) -> bool {
        self.inner.is_running()
    }

    /// Whether scalable sessions are on.
    pub fn scalable_session(&self) -> bool {
        self.inner.scalable
    }

    /// The session cookie's name.
    pub fn session_cookie_name(&self) -> &str {
        &self.inner.cookie_name
    }

    /// The broker this node shares its topics through.
    pub fn broker(&self) -> &Arc<dyn Broker> {
        &self.inner.broker
    }

    /// The live session with this id, if any.
    pub fn session(&self, id: &str) -> Option<Session> {
        self.inner.router.session(id)
    }

    /// Stops at once (A16): every WebSocket server on it is terminated as by
    /// `terminate(Some(0))` (connections get `on_terminate{1006}`, then the server's
    /// `on_terminate` runs), and the sockets are closed. Returns when the network threads
    /// have ended and the servers' `on_terminate` have run (except the calling worker's own,
    /// when called from a callback). Calling it again does nothing.
    pub fn stop(&self) {
        self.inner.stop_with(None);
    }

    /// Stops gracefully: `/readyz` answers 503 and new upgrades are refused (503) at once,
    /// every WebSocket gets a close frame with 1001 (going away), spread evenly over
    /// [`WebServerOptions::drain_time`] when it is set, peers that have not answered within
    /// `timeout` after that are destroyed, then as [`stop`](Self::stop).
    pub fn stop_gracefully(&self, timeout: Duration) {
        self.inner.stop_with(Some(timeout));
    }
}

impl fmt::Debug for WebServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebServer").finish_non_exhaustive()
    }
}
