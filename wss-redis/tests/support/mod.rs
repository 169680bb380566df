//! Test helpers: the testkit's private `redis-server` per test, nodes (a web
//! server, a WebSocket server and a Redis broker) in this process, tungstenite clients.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tungstenite::stream::MaybeTlsStream;
use tungstenite::WebSocket;
use wss_redis::{RedisBroker, RedisConfig};
use wss_server::*;

pub const WAIT: Duration = Duration::from_secs(5);

/// The private `redis-server` is the testkit's (one spawner for every crate's tests).
pub use testkit::RedisServer;

/// A plain client connection to `redis`, for looking at keys or publishing by hand.
pub fn client(redis: &RedisServer) -> redis::Connection {
    redis::Client::open(redis.url())
        .and_then(|c| c.get_connection())
        .expect("redis client")
}

/// Timings short enough for tests.
pub fn config(redis: &RedisServer, node: &str) -> RedisConfig {
    RedisConfig::new(redis.url())
        .with_node_id(node)
        .with_presence_ttl(Duration::from_millis(900))
        .with_reconnect(Duration::from_millis(20), Duration::from_millis(200))
}

/// A client-driven handler: `sub:R`, `unsub:R`, `user:NAME`, `pub:R:TEXT`, `all:TEXT`,
/// `join:NAME` (`user:NAME` then a broadcast of `joined NAME`, as a chat does); answers
/// `ok ...`.
pub struct Cmd;
pub struct CmdConn;

impl ServerHandler for Cmd {
    type Connection = CmdConn;
    fn on_connection(&mut self, _: &WebSocketServer, _: &ConnectionEvent) -> Option<CmdConn> {
        Some(CmdConn)
    }
}

impl ConnectionHandler for CmdConn {
    fn on_message(&mut self, ws: &WebSocketConnection, event: &MessageEvent) {
        let Some(text) = event.data.as_text() else {
            return;
        };
        let reply = match text.split_once(':') {
            Some(("sub", room)) => format!("sub:{:?}", ws.subscribe(room)),
            Some(("user", name)) => format!("user:{:?}", ws.set_user(Some(name))),
            Some(("pub", rest)) => {
                let (room, body) = rest.split_once(':').unwrap_or((rest, ""));
                format!("pub:{}", ws.wss().publish(room, body, Some(ws.id())))
            }
            Some(("all", body)) => format!("all:{}", ws.wss().broadcast(body, Some(ws.id()))),
            Some(("join", name)) => {
                let user = ws.set_user(Some(name));
                let sent = ws.wss().broadcast(format!("joined {name}"), Some(ws.id()));
                format!("join:{user:?}:{sent}")
            }
            _ => return,
        };
        let _ = ws.send(format!("ok {reply}"));
    }
}

/// One node: a web server with a Redis broker and a WebSocket server at `/ws`.
pub struct Node {
    pub broker: Arc<RedisBroker>,
    pub web: WebServer,
    pub wss: WebSocketServer,
    pub addr: SocketAddr,
}

impl Node {
    pub fn start(config: RedisConfig) -> Node {
        Node::start_with(config, WebServerOptions::default())
    }

    pub fn start_with(config: RedisConfig, options: WebServerOptions) -> Node {
        let broker = Arc::new(RedisBroker::start(config).expect("broker starts"));
        let web = WebServer::start(WebServerOptions {
            port: 0,
            threads: 1,
            ..options.with_broker(broker.clone())
        })
        .expect("web server starts");
        let wss = WebSocketServer::new(&web, Cmd, ServerOptions::default().with_path("/ws"))
            .expect("wss starts");
        let addr = web.local_addr();
        assert!(broker.wait_connected(WAIT), "node connects to redis");
        Node {
            broker,
            web,
            wss,
            addr,
        }
    }

    pub fn connect(&self) -> Client {
        let stream = TcpStream::connect(self.addr).expect("tcp connect");
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let url = format!("ws://{}/ws", self.addr);
        let (ws, _) = tungstenite::client(url, MaybeTlsStream::Plain(stream)).expect("handshake");
        ws
    }

    /// Users present in `room` as this node sees them: `node:user`, sorted.
    pub fn users(&self, room: Option<&str>) -> Vec<String> {
        self.wss
            .presence(room)
            .members
            .into_iter()
            .map(|m| format!("{}:{}", m.node, m.user))
            .collect()
    }
}

pub type Client = WebSocket<MaybeTlsStream<TcpStream>>;

pub fn read_text(ws: &mut Client) -> String {
    loop {
        match ws.read().expect("a message") {
            tungstenite::Message::Text(t) => return t.as_str().to_owned(),
            tungstenite::Message::Ping(_) | tungstenite::Message::Pong(_) => continue,
            other => panic!("expected text, got {other:?}"),
        }
    }
}

/// Sends a command and returns the `ok ...` answer, skipping other messages.
pub fn command(client: &mut Client, cmd: &str) -> String {
    client.send(tungstenite::Message::text(cmd)).unwrap();
    loop {
        let t = read_text(client);
        if let Some(rest) = t.strip_prefix("ok ") {
            return rest.to_owned();
        }
    }
}

/// True if no message arrives within `d`.
pub fn silent(client: &mut Client, d: Duration) -> bool {
    if let MaybeTlsStream::Plain(s) = client.get_ref() {
        s.set_read_timeout(Some(d)).unwrap();
    }
    let quiet = client.read().is_err();
    if let MaybeTlsStream::Plain(s) = client.get_ref() {
        let _ = s.set_read_timeout(Some(WAIT));
    }
    quiet
}

/// The next text message if one arrives within `d`.
pub fn read_within(client: &mut Client, d: Duration) -> Option<String> {
    if let MaybeTlsStream::Plain(s) = client.get_ref() {
        s.set_read_timeout(Some(d)).unwrap();
    }
    let got = loop {
        match client.read() {
            Ok(tungstenite::Message::Text(t)) => break Some(t.as_str().to_owned()),
            Ok(_) => continue,
            Err(_) => break None,
        }
    };
    if let MaybeTlsStream::Plain(s) = client.get_ref() {
        let _ = s.set_read_timeout(Some(WAIT));
    }
    got
}

/// Polls `f` every 10 ms for up to `limit`.
pub fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
