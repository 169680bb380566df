//! Helpers shared by the integration tests: a routing service, a recording (and optionally
//! echoing) sink, the testkit's raw-socket WebSocket client, and tungstenite clients.
#![allow(dead_code)]

pub mod deflate;
pub mod tls;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use wss_net::{
    ConnError, ConnId, Decision, EventSink, Listen, Net, NetConfig, NetEvent, NetHandle, Outgoing,
    Service,
};
use wss_proto::handshake::{validate_upgrade, Request, Response};
use wss_proto::{CloseCode, Message};

pub const WAIT: Duration = Duration::from_secs(10);

/// Records every event; echoes messages back when it has a handle.
pub struct Recorder {
    tx: Sender<NetEvent>,
    pub delivers: AtomicUsize,
    pub echo: OnceLock<NetHandle>,
}

impl EventSink for Recorder {
    fn deliver(&self, batch: Vec<NetEvent>) {
        self.delivers.fetch_add(1, Ordering::Relaxed);
        let mut replies = Vec::new();
        for event in batch {
            if let (Some(_), NetEvent::Message { conn, message }) = (self.echo.get(), &event) {
                let out = match message {
                    Message::Text(t) => Outgoing::Text(t.clone()),
                    Message::Binary(b) => Outgoing::Binary(b.clone()),
                };
                replies.push((*conn, out));
            }
            let _ = self.tx.send(event);
        }
        if let Some(net) = self.echo.get() {
            if !replies.is_empty() {
                net.send_batch(replies);
            }
        }
    }

    /// The echo answers inside `deliver`, as a server in loop dispatch does.
    fn read_ahead(&self) -> bool {
        true
    }
}

/// Routes: `/ws...` upgrades, `/pending` is decided later (the request goes to `pending`),
/// anything else gets `200` with body `"<method> <url>"`.
pub struct Routes {
    pub sink: Arc<Recorder>,
    pub pending: Sender<(ConnId, Request)>,
}

impl Service for Routes {
    fn on_request(&self, conn: ConnId, _peer: SocketAddr, request: Request) -> Decision {
        if request.path() == "/pending" {
            let _ = self.pending.send((conn, request));
            return Decision::Pending;
        }
        if request.path().starts_with("/ws") {
            return match validate_upgrade(&request) {
                Ok(upgrade) => Decision::Upgrade {
                    upgrade,
                    extra_headers: vec![("X-Test".into(), "yes".into())],
                    sink: self.sink.clone(),
                },
                Err(e) => Decision::Respond {
                    response: e.response(),
                    keep_alive: false,
                },
            };
        }
        let mut response = Response::new(200);
        response.body = format!("{} {}", request.method(), request.url()).into_bytes();
        Decision::Respond {
            response,
            keep_alive: true,
        }
    }
}

pub struct Server {
    pub net: Option<Net>,
    /// The first listener's address.
    pub addr: SocketAddr,
    /// The first TLS listener's address, if any.
    pub tls_addr: Option<SocketAddr>,
    pub handle: NetHandle,
    pub sink: Arc<Recorder>,
    pub events: Receiver<NetEvent>,
    pub pending: Receiver<(ConnId, Request)>,
}

/// A config with short timeouts, two loops.
pub fn quick_config() -> NetConfig {
    let mut config = NetConfig {
        threads: 2,
        handshake_timeout: Duration::from_secs(5),
        ..NetConfig::default()
    };
    config.proto.close_timeout = Duration::from_secs(2);
    config
}

/// One listener on 127.0.0.1 (TLS when `config.tls` is set).
pub fn start(config: NetConfig, echo: bool) -> Server {
    let listen = Listen {
        addr: "127.0.0.1:0".parse().unwrap(),
        tls: config.tls.is_some(),
    };
    start_on(&[listen], config, echo)
}

pub fn start_on(listeners: &[Listen], config: NetConfig, echo: bool) -> Server {
    let (tx, events) = crossbeam_channel::unbounded();
    let (ptx, pending) = crossbeam_channel::unbounded();
    let sink = Arc::new(Recorder {
        tx,
        delivers: AtomicUsize::new(0),
        echo: OnceLock::new(),
    });
    let routes = Arc::new(Routes {
        sink: sink.clone(),
        pending: ptx,
    });
    let net = Net::bind_all(listeners, config, routes).unwrap();
    let handle = net.handle();
    if echo {
        let _ = sink.echo.set(handle.clone());
    }
    Server {
        addr: net.local_addr(),
        tls_addr: net.tls_addr(),
        handle,
        net: Some(net),
        sink,
        events,
        pending,
    }
}

impl Server {
    pub fn next_event(&self) -> NetEvent {
        self.events
            .recv_timeout(WAIT)
            .expect("an event within the wait")
    }

    pub fn expect_opened(&self) -> ConnId {
        match self.next_event() {
            NetEvent::Opened { conn, .. } => conn,
            other => panic!("expected Opened, got {other:?}"),
        }
    }

    /// Waits for the Closed of `conn`, skipping other events.
    pub fn expect_closed(&self, conn: ConnId) -> (CloseCode, String, Option<ConnError>) {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self
                .events
                .recv_timeout(left)
                .expect("Closed within the wait")
            {
                NetEvent::Closed {
                    conn: c,
                    code,
                    reason,
                    error,
                } if c == conn => return (code, reason, error),
                _ => {}
            }
        }
    }

    pub fn shutdown(mut self, graceful: Option<(CloseCode, Duration)>) {
        if let Some(net) = self.net.take() {
            net.shutdown(graceful);
        }
    }
}

/// The raw WebSocket client is the testkit's (one for every crate's tests).
#[allow(unused_imports)]
pub use testkit::raw::{client_frame, read_frame, read_head, read_to_eof};

/// A TCP connection with these tests' longer read timeout ([`WAIT`]).
pub fn tcp(addr: SocketAddr) -> TcpStream {
    let s = testkit::raw::tcp(addr);
    s.set_read_timeout(Some(WAIT)).unwrap();
    s
}

/// An upgrade request for `path` with `Host: localhost` and no extra header.
pub fn upgrade_request(path: &str) -> String {
    testkit::raw::upgrade_request("localhost", path, &[])
}

/// Handshake over a raw socket: the test then speaks frames itself.
pub fn raw_ws(addr: SocketAddr, path: &str) -> TcpStream {
    let mut s = tcp(addr);
    s.write_all(upgrade_request(path).as_bytes()).unwrap();
    let head = read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    s
}

pub type Client = tungstenite::WebSocket<TcpStream>;

pub fn ws_client(addr: SocketAddr, path: &str) -> Client {
    let stream = tcp(addr);
    let (ws, response) = tungstenite::client(format!("ws://{addr}{path}"), stream).unwrap();
    assert_eq!(response.status(), 101);
    ws
}

/// Raises the soft descriptor limit to the hard one: the many-connection tests hold two
/// descriptors per connection in this process.
pub fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit only read and write the struct passed by pointer.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Whether the server's end of the client's TCP connection `client` (to `server`) still has
/// a descriptor in this process (see [`socket_held`]).
pub fn server_holds_socket(server: SocketAddr, client: &TcpStream) -> bool {
    socket_held(server.port(), client.local_addr().unwrap().port())
}

/// Whether the loopback TCP socket from `local_port` to `remote_port` has a descriptor in some
/// process, from `/proc/net/tcp`: a socket its owner closed is listed with inode 0 while the
/// kernel finishes it (FIN_WAIT, TIME_WAIT), or not at all.
pub fn socket_held(local_port: u16, remote_port: u16) -> bool {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    let port_of = |addr: &str| {
        addr.rsplit(':')
            .next()
            .and_then(|p| u16::from_str_radix(p, 16).ok())
    };
    table.lines().skip(1).any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(local), Some(remote), Some(inode)) =
            (fields.get(1), fields.get(2), fields.get(9))
        else {
            return false;
        };
        port_of(local) == Some(local_port) && port_of(remote) == Some(remote_port) && *inode != "0"
    })
}

/// Reads the server's FIN: `read` returns 0 (a reset, or a byte, fails the test).
pub fn expect_fin(s: &mut TcpStream) {
    use std::io::Read;
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("{n} bytes where the FIN was expected: {:?}", &buf[..n]),
        Err(e) => panic!("expected the FIN, got {e}"),
    }
}
