//! [`WebServer`]: the HTTP server WebSocket servers live on (4D's web server).

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use wss_net::{Listen, Net, NetConfig, NetHandle, Service};
use wss_proto::close::CloseCode;
use wss_proto::handshake::HeadLimits;

use crate::broker::Broker;
use crate::error::WebError;
use crate::files::Files;
use crate::hosts::HostPolicy;
use crate::options::WebServerOptions;
use crate::router::Router;
use crate::session::{Session, SessionStore};
use crate::site::Site;
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

    fn stop_with(&self, graceful: Option<Duration>) {
        let Some(servers) = self.router.begin_stop() else {
            return;
        };
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
        let net = self
            .net
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
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
        let router = Arc::new(Router::new(site.clone()));
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
        };
        Ok(WebServer {
            inner: Arc::new(inner),
        })
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

    /// Stops gracefully: new connections are refused, every WebSocket gets a close frame
    /// with 1001 (going away), peers that have not answered within `timeout` are destroyed,
    /// then as [`stop`](Self::stop).
    pub fn stop_gracefully(&self, timeout: Duration) {
        self.inner.stop_with(Some(timeout));
    }
}

impl fmt::Debug for WebServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebServer").finish_non_exhaustive()
    }
}
