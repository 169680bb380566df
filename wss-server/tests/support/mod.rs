//! Shared test helpers: a web server on a free loopback port, a handler that records every
//! callback, a tungstenite client and a raw-socket client for watching the wire.
#![allow(dead_code)]

// The permessage-deflate test client is wss-net's: one copy, shared by path.
#[path = "../../../wss-net/tests/util/deflate.rs"]
pub mod deflate;
pub mod tls;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tungstenite::stream::MaybeTlsStream;
use tungstenite::WebSocket;
use wss_server::*;

pub const WAIT: Duration = Duration::from_secs(5);

/// The raw WebSocket client is the testkit's (one for every crate's tests); `tcp` has the
/// same read timeout as [`WAIT`].
#[allow(unused_imports)]
pub use testkit::raw::{
    closed_without_bytes, read_close, read_frame, read_head, status_of, tcp, write_frame, KEY,
};

/// A thread-safe, waitable list of event lines.
#[derive(Clone, Default)]
pub struct Log(Arc<(Mutex<Vec<String>>, Condvar)>);

impl Log {
    pub fn push(&self, line: impl Into<String>) {
        let (lock, cv) = &*self.0;
        lock.lock().unwrap().push(line.into());
        cv.notify_all();
    }

    pub fn lines(&self) -> Vec<String> {
        self.0 .0.lock().unwrap().clone()
    }

    /// Waits until some line starts with `prefix`; returns it.
    pub fn wait_for(&self, prefix: &str) -> Option<String> {
        self.wait_until(|lines| lines.iter().find(|l| l.starts_with(prefix)).cloned())
    }

    /// Waits until `n` lines start with `prefix`.
    pub fn wait_count(&self, prefix: &str, n: usize) -> bool {
        self.wait_until(|lines| {
            (lines.iter().filter(|l| l.starts_with(prefix)).count() >= n).then_some(())
        })
        .is_some()
    }

    pub fn wait_until<T>(&self, mut f: impl FnMut(&[String]) -> Option<T>) -> Option<T> {
        let (lock, cv) = &*self.0;
        let deadline = Instant::now() + WAIT;
        let mut lines = lock.lock().unwrap();
        loop {
            if let Some(t) = f(&lines) {
                return Some(t);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            lines = cv.wait_timeout(lines, deadline - now).unwrap().0;
        }
    }

    pub fn count(&self, prefix: &str) -> usize {
        self.lines()
            .iter()
            .filter(|l| l.starts_with(prefix))
            .count()
    }

    pub fn index_of(&self, prefix: &str) -> Option<usize> {
        self.lines().iter().position(|l| l.starts_with(prefix))
    }
}

type MsgFn = Arc<dyn Fn(&WebSocketConnection, &MessageEvent) + Send + Sync>;
type AcceptFn = Arc<dyn Fn(&WebSocketServer, &ConnectionEvent) -> bool + Send + Sync>;

/// A server handler that records every callback in `log` and behaves as configured.
#[derive(Clone)]
pub struct Rec {
    pub log: Log,
    pub accept: AcceptFn,
    pub on_message: MsgFn,
    pub open_delay: Duration,
    pub accepted: u32,
}

impl Rec {
    pub fn new(log: &Log) -> Self {
        Rec {
            log: log.clone(),
            accept: Arc::new(|_, _| true),
            on_message: Arc::new(|ws, e| {
                let _ = ws.send(e.data.clone());
            }),
            open_delay: Duration::ZERO,
            accepted: 0,
        }
    }

    pub fn accept(
        mut self,
        f: impl Fn(&WebSocketServer, &ConnectionEvent) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.accept = Arc::new(f);
        self
    }

    pub fn on_message(
        mut self,
        f: impl Fn(&WebSocketConnection, &MessageEvent) + Send + Sync + 'static,
    ) -> Self {
        self.on_message = Arc::new(f);
        self
    }
}

pub struct RecConn {
    pub log: Log,
    pub on_message: MsgFn,
    pub open_delay: Duration,
    pub messages: u32,
}

fn listed(ws: &WebSocketConnection) -> bool {
    ws.wss().connections().iter().any(|c| c.id() == ws.id())
}

impl ServerHandler for Rec {
    type Connection = RecConn;

    fn on_connection(&mut self, wss: &WebSocketServer, event: &ConnectionEvent) -> Option<RecConn> {
        self.log.push(format!(
            "connection:{}:{}",
            event.request.url,
            wss.connections().len()
        ));
        if !(self.accept)(wss, event) {
            return None;
        }
        self.accepted += 1;
        Some(RecConn {
            log: self.log.clone(),
            on_message: self.on_message.clone(),
            open_delay: self.open_delay,
            messages: 0,
        })
    }

    fn on_open(&mut self, _wss: &WebSocketServer, _event: &OpenEvent) {
        self.log.push("server-open");
    }

    fn on_terminate(&mut self, wss: &WebSocketServer, _event: &ServerTerminateEvent) {
        self.log
            .push(format!("server-terminate:{}", wss.connections().len()));
    }

    fn on_error(&mut self, _wss: &WebSocketServer, event: &ErrorEvent) {
        let e = &event.errors[0];
        self.log
            .push(format!("server-error:{}:{}", e.err_code, e.message));
    }
}

impl ConnectionHandler for RecConn {
    fn on_open(&mut self, ws: &WebSocketConnection, _event: &OpenEvent) {
        std::thread::sleep(self.open_delay);
        self.log
            .push(format!("open:{}:{}:{}", ws.id(), listed(ws), ws.status()));
    }

    fn on_message(&mut self, ws: &WebSocketConnection, event: &MessageEvent) {
        self.messages += 1;
        let shown = match &event.data {
            Data::Text(t) => format!("text:{t}"),
            Data::Blob(b) => format!("blob:{b:?}"),
            Data::Object(v) => format!("object:{v}"),
        };
        self.log.push(format!("message:{}:{shown}", ws.id()));
        (self.on_message)(ws, event);
    }

    fn on_terminate(&mut self, ws: &WebSocketConnection, event: &TerminateEvent) {
        self.log.push(format!(
            "terminate:{}:{}:{:?}:{}:{}",
            ws.id(),
            event.code,
            event.reason,
            listed(ws),
            ws.status()
        ));
    }

    fn on_error(&mut self, ws: &WebSocketConnection, event: &ErrorEvent) {
        let e = &event.errors[0];
        self.log.push(format!(
            "error:{}:{}:{}:{}",
            ws.id(),
            e.err_code,
            e.component_signature,
            e.message
        ));
    }
}

pub fn web() -> WebServer {
    web_with(WebServerOptions::default())
}

pub fn web_with(options: WebServerOptions) -> WebServer {
    WebServer::start(WebServerOptions {
        port: 0,
        threads: 1,
        ..options
    })
    .expect("web server starts")
}

pub type Client = WebSocket<MaybeTlsStream<TcpStream>>;

pub fn connect(addr: SocketAddr, path: &str) -> Client {
    try_connect(addr, path).expect("handshake succeeds")
}

pub fn try_connect(addr: SocketAddr, path: &str) -> Result<Client, tungstenite::Error> {
    let stream = TcpStream::connect(addr).expect("tcp connect");
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let url = format!("ws://{addr}{path}");
    let (ws, _) = tungstenite::client(url, MaybeTlsStream::Plain(stream)).map_err(|e| match e {
        tungstenite::HandshakeError::Failure(e) => e,
        tungstenite::HandshakeError::Interrupted(_) => tungstenite::Error::ConnectionClosed,
    })?;
    Ok(ws)
}

/// The HTTP status a refused tungstenite handshake got.
pub fn refused_status(err: tungstenite::Error) -> u16 {
    match err {
        tungstenite::Error::Http(resp) => resp.status().as_u16(),
        other => panic!("expected an HTTP refusal, got {other:?}"),
    }
}

pub fn read_text(ws: &mut Client) -> String {
    loop {
        match ws.read().expect("a message") {
            tungstenite::Message::Text(t) => return t.as_str().to_owned(),
            tungstenite::Message::Ping(_) | tungstenite::Message::Pong(_) => continue,
            other => panic!("expected text, got {other:?}"),
        }
    }
}

/// A raw socket that did the handshake by hand.
pub struct Raw {
    pub stream: TcpStream,
    pub head: String,
}

/// Sends an upgrade request for `path` with `extra` header lines; returns the socket and the
/// response head.
pub fn raw_handshake(addr: SocketAddr, path: &str, extra: &[&str]) -> Raw {
    let (stream, head) = testkit::raw::handshake(addr, path, extra);
    Raw { stream, head }
}

/// Sends raw bytes as a request and returns the whole response head and body read until the
/// server closes or `WAIT` passes.
pub fn http(addr: SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("tcp connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let head_only = request.starts_with("HEAD ");
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
        if let Some(text) = complete_response(&out, head_only) {
            return text;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The response once its head and `Content-Length` body are in.
fn complete_response(bytes: &[u8], head_only: bool) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    let end = text.find("\r\n\r\n")? + 4;
    let len = text[..end]
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    (head_only || bytes.len() >= end + len).then(|| text.into_owned())
}
