//! Settings of the web server and of each WebSocket server, with their documented defaults
//! (SPEC Part A point 6).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use wss_net::InboundLimits;
use wss_proto::DeflateConfig;

use crate::broker::{Broker, LocalBroker};
use crate::data::DataType;

/// A file served from memory (e.g. the `wss` binary's chat page), used when the static root
/// has no file at that path or there is no root.
#[derive(Clone, Debug)]
pub struct BuiltinFile {
    /// `Content-Type` to answer with, e.g. `text/html; charset=utf-8`.
    pub content_type: String,
    /// The body.
    pub body: Cow<'static, [u8]>,
    /// Extra response headers, e.g. a `Content-Security-Policy` for a page.
    pub headers: Vec<(String, String)>,
}

impl BuiltinFile {
    /// A file with no extra headers.
    pub fn new(content_type: impl Into<String>, body: impl Into<Cow<'static, [u8]>>) -> Self {
        BuiltinFile {
            content_type: content_type.into(),
            body: body.into(),
            headers: Vec::new(),
        }
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// Settings of [`WebServer::start`](crate::WebServer::start). Build with
/// `WebServerOptions { port: 0, ..Default::default() }` or the `with_*` helpers.
#[derive(Clone, Debug)]
pub struct WebServerOptions {
    /// Address or host name to listen on. Default `127.0.0.1`.
    pub host: String,
    /// TCP port; 0 picks a free one (read it back with `local_addr()`). Default 8080.
    pub port: u16,
    /// Folder served to plain GET/HEAD requests; `None` serves only `files`. Default `None`.
    pub root: Option<PathBuf>,
    /// In-memory files by URL path (e.g. `/` or `/chat.js`). Default empty.
    pub files: BTreeMap<String, BuiltinFile>,
    /// Largest file read from `root`, in bytes (bigger ones answer 404). Default 16 MiB.
    pub max_file_size: u64,
    /// Most bytes of `root` files kept in memory (least recently used dropped first). Files
    /// are read and hashed by one file thread, never by a network thread; a file larger than
    /// this is read for each request. Default 64 MiB.
    pub file_cache_bytes: usize,
    /// `Cache-Control: max-age` of `root` files; `None` sends `no-cache` (browsers revalidate
    /// with `If-None-Match` and get a `304` while the file is unchanged). Built-in files keep
    /// their own `Cache-Control` header, `no-cache` by default. Default `None`.
    pub max_age: Option<Duration>,
    /// Host names this server answers to (issue 20: DNS rebinding). `localhost`,
    /// `*.localhost`, `127.0.0.1` and `[::1]` are always allowed, on any port; entries add
    /// names (`chat.example.com`, `*.example.com` for its subdomains; a port given is
    /// ignored); `*` allows any. When empty: only those local names if the server listens on
    /// a loopback address, any name otherwise. A request naming another host gets `403`
    /// before any handler runs (upgrades are reported to the server's `on_error`).
    /// Default empty.
    pub allowed_hosts: Vec<String>,
    /// Network threads; 0 = one per core. Default 0.
    pub threads: usize,
    /// Largest HTTP request head, in bytes (431 beyond). Default 16 KiB.
    pub max_head_bytes: usize,
    /// Most header lines in a request head (431 beyond). Default 64.
    pub max_headers: usize,
    /// Time for a client to complete its handshake, including the time `on_connection`
    /// takes; past it the socket is closed (503 if `on_connection` is still deciding).
    /// Default 10 s.
    pub handshake_timeout: Duration,
    /// Largest message (after reassembly), in bytes; bigger ones close with 1009.
    /// Default 16 MiB.
    pub max_message_size: usize,
    /// How long to wait for the peer's close frame after ours. Default 5 s. It also bounds
    /// how long our reply to the peer's close (or the close after a protocol failure) waits
    /// for the answers the handlers send to the messages before it.
    pub close_timeout: Duration,
    /// Bytes queued for one connection and not yet written; past it the connection is
    /// dropped with `on_error` then `on_terminate{1006}`. Default 16 MiB.
    pub max_outgoing: usize,
    /// Idle time after which a connection is dropped (a ping goes out at half of it);
    /// `None` turns it off. Default 120 s.
    pub idle_timeout: Option<Duration>,
    /// Most simultaneous TCP connections; past it new sockets get 503 (TLS ones are closed).
    /// Default from the descriptor limit: `wss_net::default_max_connections()`.
    pub max_connections: usize,
    /// Most simultaneous connections from one remote IP address; past it new sockets get 503.
    /// Default `None` (no limit: clients behind one proxy or NAT share an address).
    pub max_per_address: Option<usize>,
    /// Most connections still in their handshake (TLS handshake and first request) at once;
    /// past it new sockets get 503. Default `None` (only `max_connections` bounds them).
    pub max_pending_handshakes: Option<usize>,
    /// TLS certificate and key (`https://`, `wss://`), e.g. from
    /// `wss_net::tls::server_config_from_pem_files(cert, key)`. With `tls_port` `None`, `port`
    /// speaks TLS only. Default `None` (plain).
    pub tls: Option<Arc<wss_net::rustls::ServerConfig>>,
    /// With `tls` set: a second listener on `host:tls_port` speaks TLS while `port` stays
    /// plain (4D's HTTP and HTTPS ports); 0 picks a free port (read it back with
    /// `tls_local_addr()`). Default `None`.
    pub tls_port: Option<u16>,
    /// permessage-deflate (RFC 7692) for every WebSocket server on this web server: which
    /// client offers are accepted and the local knobs (window bits, context takeover, level,
    /// `threshold`: messages shorter than it go out plain). Default: off
    /// (`DeflateConfig { enabled: false, .. }`); [`with_deflate`](Self::with_deflate) turns
    /// it on. With it on, a connection with context takeover holds a compressor window (about
    /// 380 KB at 2^15) once it sent a compressed message; broadcasts are compressed once per
    /// group of receivers with the same parameters, never once per receiver.
    pub deflate: DeflateConfig,
    /// Scalable sessions (SPEC Part A point 4): a session cookie on HTTP responses and the
    /// request's session in `on_connection`. Default off.
    pub scalable_session: bool,
    /// Session cookie name. Default `4DSID_wss` (4D's `4DSID_<AppName>`).
    pub session_cookie_name: String,
    /// A session unused this long is forgotten. Default 1 hour.
    pub session_idle_timeout: Duration,
    /// Most sessions kept in memory (least recently seen dropped beyond). Default 100 000.
    pub max_sessions: usize,
    /// Shares broadcasts, rooms and presence of every WebSocket server on this web server
    /// with the other nodes of a cluster. Default [`LocalBroker`]: one node, no cost.
    pub broker: Arc<dyn Broker>,
    /// Serve `/metrics` (Prometheus text format), `/healthz` and `/readyz` on a listener of
    /// their own at this address (port 0 picks a free one; read it back with
    /// [`WebServer::metrics_addr`](crate::WebServer::metrics_addr)). Keep it on loopback or
    /// a private network: the numbers are for operators. Serving metrics also times one
    /// `on_message` callback in eight (two clock reads each). Default `None`: off.
    pub metrics: Option<SocketAddr>,
    /// Also answer `PREFIX/healthz` and `PREFIX/readyz` on the main port (`"/"`: `/healthz`
    /// and `/readyz`), before static files, with no cookie. Default `None`: only on the
    /// metrics listener.
    pub health_path: Option<String>,
    /// A graceful stop ([`WebServer::stop_gracefully`](crate::WebServer::stop_gracefully))
    /// closes the open WebSockets (1001) one by one, evenly over this time, so the clients
    /// do not all reconnect in the same second; the stop's timeout runs after it. Default
    /// zero: all at once.
    pub drain_time: Duration,
}

impl Default for WebServerOptions {
    fn default() -> Self {
        WebServerOptions {
            host: "127.0.0.1".into(),
            port: 8080,
            root: None,
            files: BTreeMap::new(),
            max_file_size: 16 << 20,
            file_cache_bytes: 64 << 20,
            max_age: None,
            allowed_hosts: Vec::new(),
            threads: 0,
            max_head_bytes: 16 << 10,
            max_headers: 64,
            handshake_timeout: Duration::from_secs(10),
            max_message_size: 16 << 20,
            close_timeout: Duration::from_secs(5),
            max_outgoing: 16 << 20,
            idle_timeout: Some(Duration::from_secs(120)),
            max_connections: wss_net::default_max_connections(),
            max_per_address: None,
            max_pending_handshakes: None,
            tls: None,
            tls_port: None,
            deflate: DeflateConfig {
                enabled: false,
                ..DeflateConfig::default()
            },
            scalable_session: false,
            session_cookie_name: "4DSID_wss".into(),
            session_idle_timeout: Duration::from_secs(3600),
            max_sessions: 100_000,
            broker: Arc::new(LocalBroker),
            metrics: None,
            health_path: None,
            drain_time: Duration::ZERO,
        }
    }
}

impl WebServerOptions {
    /// Listens on `host:port`.
    pub fn with_address(mut self, host: impl Into<String>, port: u16) -> Self {
        self.host = host.into();
        self.port = port;
        self
    }

    /// Serves `root` to plain GET/HEAD requests.
    pub fn with_root(mut self, root: impl Into<PathBuf>) -> Self {
        self.root = Some(root.into());
        self
    }

    /// Adds an in-memory file at `path` (which must start with `/`).
    pub fn with_file(mut self, path: impl Into<String>, file: BuiltinFile) -> Self {
        self.files.insert(path.into(), file);
        self
    }

    /// Also answers requests naming `host` (see [`allowed_hosts`](Self::allowed_hosts));
    /// `"*"` allows any.
    pub fn allow_host(mut self, host: impl Into<String>) -> Self {
        self.allowed_hosts.push(host.into());
        self
    }

    /// Shares broadcasts and presence through `broker` (e.g. `wss-redis`'s).
    pub fn with_broker(mut self, broker: Arc<dyn Broker>) -> Self {
        self.broker = broker;
        self
    }

    /// Negotiates permessage-deflate with `config` (its `enabled` is set to true), e.g.
    /// `with_deflate(DeflateConfig::default())`.
    pub fn with_deflate(mut self, config: DeflateConfig) -> Self {
        self.deflate = DeflateConfig {
            enabled: true,
            ..config
        };
        self
    }

    /// Turns scalable sessions on or off.
    pub fn with_scalable_session(mut self, on: bool) -> Self {
        self.scalable_session = on;
        self
    }
}

/// Which browser origins may open a WebSocket (issue 13 item 1).
///
/// A handshake without `Origin` (not a browser) always passes. A handshake whose `Origin`
/// names the same host and port as its `Host` always passes. Any other origin passes only if
/// listed; refused ones get 403 before `on_connection`, reported to the server's `on_error`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OriginPolicy {
    /// Allowed origins, compared on scheme, host and port (`http://example.com:8080`);
    /// `*` allows every origin; `null` matches only if listed. Default empty (same origin).
    pub allowed: Vec<String>,
}

impl OriginPolicy {
    /// Same origin only (the default).
    pub fn same_origin() -> Self {
        OriginPolicy::default()
    }

    /// Every origin (turns the check off).
    pub fn any() -> Self {
        OriginPolicy {
            allowed: vec!["*".into()],
        }
    }

    /// Same origin plus the listed ones.
    pub fn allow<I, S>(origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        OriginPolicy {
            allowed: origins.into_iter().map(Into::into).collect(),
        }
    }
}

/// Settings of [`WebSocketServer::new`](crate::WebSocketServer::new) (4D's `options` plus
/// this library's own).
///
/// ```
/// use wss_server::{DataType, OriginPolicy, ServerOptions};
///
/// // JSON messages on /api, from pages of this site or of the admin console.
/// let options = ServerOptions::default()
///     .with_path("/api")
///     .with_data_type(DataType::Object)
///     .with_origins(OriginPolicy::allow(["https://admin.example.com"]));
/// assert_eq!(options.path.as_deref(), Some("/api"));
/// ```
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Path served (exact, case-sensitive, query ignored); `None` = every upgrade no other
    /// server claims (one such catch-all per web server). Default `None`.
    pub path: Option<String>,
    /// How received messages are delivered. Default `Text`.
    pub data_type: DataType,
    /// Upper bound of `terminate(None)`: peers that have not answered our close frame by then
    /// are destroyed (SPEC A15). Default 30 s.
    pub terminate_cap: Duration,
    /// Who may connect from a browser. Default same origin only.
    pub origins: OriginPolicy,
    /// Fill an absent `reason` in `on_terminate` with the standard text of the code, as 4D's
    /// pre-release did (A12's switch). Default false (absent stays `None`).
    pub fill_standard_reason: bool,
    /// How many received messages may wait for this server's worker (SPEC Part A point 6:
    /// a peer sending faster than the callbacks run must not grow the process nor delay the
    /// others without bound). Past a limit the network stops reading the connections
    /// concerned, so TCP slows their senders down, and reads again once the worker is back at
    /// half of it. Per connection: 1 MiB and 256 messages; for the whole server: 16 MiB and
    /// 4096 messages (see [`InboundLimits`] for the trade-offs; `usize::MAX` turns a limit
    /// off). A message larger than a byte limit is still delivered, one at a time.
    ///
    /// Handshakes, `terminate` and errors do not wait behind these messages: the worker takes
    /// them first. Connection events keep their order: a connection's `on_terminate` runs
    /// after its last `on_message`.
    ///
    /// With [`Dispatch::Loop`] nothing waits for another thread, and the same limits bound
    /// what one loop turn reads ahead of its callbacks.
    pub inbound: InboundLimits,
    /// Which threads run the callbacks: the server's worker (the default, SPEC's model), or
    /// the network threads themselves ([`Dispatch::Loop`], opt-in). Default `Worker`, or what
    /// the `WSS_DISPATCH` environment variable names (`worker` or `loop`) when it is set: an
    /// application, or a whole test suite, runs in the other mode without a change.
    pub dispatch: Dispatch,
}

/// Which threads run a WebSocket server's callbacks.
///
/// - `Worker` (default): one thread per server runs every callback, one at a time, in the
///   order events arrive (SPEC Part A point 5). A slow callback delays this server only; the
///   network threads keep reading and writing for everyone. The price is a hand-over per
///   batch of events (a wake of the worker, and of the loop for the answer), and one thread's
///   worth of callbacks per server, however many cores there are.
/// - `Loop`: the callbacks of a connection run on the network thread that owns it, inside
///   the loop's turn, with no hand-over. With one network thread every callback of the server
///   still runs one at a time; with several, the connections of different loops run their
///   callbacks at the same time (each connection's own callbacks stay in order, one at a
///   time), so a server uses every core. The server handler is one instance for all: its
///   callbacks (`on_connection`, `on_open`, `on_error`, `on_terminate`) run one at a time.
///
/// The price of `Loop`: a callback that takes long, or blocks (a database call, a lock held
/// elsewhere, `presence` waiting for Redis), stalls every connection of its loop, their
/// pings, closes and handshakes included. Choose it for callbacks that only compute and send.
/// A callback must not wait for the network in this mode: `WebServer::stop` called from one
/// returns at once and finishes on another thread, and `wait_terminated` only reports.
///
/// ```
/// use wss_server::{Dispatch, ServerOptions};
///
/// let options = ServerOptions::default().with_dispatch(Dispatch::Loop);
/// assert_eq!(options.dispatch, Dispatch::Loop);
/// assert_eq!("loop".parse::<Dispatch>(), Ok(Dispatch::Loop));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Dispatch {
    /// Callbacks run on the server's worker thread.
    #[default]
    Worker,
    /// Callbacks run on the network thread that owns the connection.
    Loop,
}

impl Dispatch {
    /// `WSS_DISPATCH` when it names a mode, else `Worker`. A value that names neither is
    /// logged (once per call) and ignored.
    pub fn from_env() -> Dispatch {
        match std::env::var("WSS_DISPATCH") {
            Ok(v) => v.parse().unwrap_or_else(|e| {
                log::warn!("WSS_DISPATCH: {e}; using worker dispatch");
                Dispatch::Worker
            }),
            Err(_) => Dispatch::Worker,
        }
    }
}

/// A name that is not a [`Dispatch`] mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownDispatch(pub String);

impl std::fmt::Display for UnknownDispatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unknown dispatch {:?} (expected worker or loop)", self.0)
    }
}

impl std::error::Error for UnknownDispatch {}

impl std::str::FromStr for Dispatch {
    type Err = UnknownDispatch;

    fn from_str(s: &str) -> Result<Dispatch, UnknownDispatch> {
        match s {
            "worker" => Ok(Dispatch::Worker),
            "loop" => Ok(Dispatch::Loop),
            other => Err(UnknownDispatch(other.to_owned())),
        }
    }
}

impl std::fmt::Display for Dispatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Dispatch::Worker => "worker",
            Dispatch::Loop => "loop",
        })
    }
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            path: None,
            data_type: DataType::Text,
            terminate_cap: Duration::from_secs(30),
            origins: OriginPolicy::default(),
            fill_standard_reason: false,
            inbound: InboundLimits::default(),
            dispatch: Dispatch::from_env(),
        }
    }
}

impl ServerOptions {
    /// Serves `path` only.
    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// Delivers messages as `data_type`.
    pub fn with_data_type(mut self, data_type: DataType) -> Self {
        self.data_type = data_type;
        self
    }

    /// Sets the origin policy.
    pub fn with_origins(mut self, origins: OriginPolicy) -> Self {
        self.origins = origins;
        self
    }

    /// Sets the limits of what may wait for the worker.
    pub fn with_inbound_limits(mut self, limits: InboundLimits) -> Self {
        self.inbound = limits;
        self
    }

    /// Chooses which threads run the callbacks (see [`Dispatch`]).
    pub fn with_dispatch(mut self, dispatch: Dispatch) -> Self {
        self.dispatch = dispatch;
        self
    }
}
