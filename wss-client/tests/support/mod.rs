//! Helpers shared by the client tests: a recording handler, hand-made servers, and the
//! testkit's test CA.
#![allow(dead_code)]

/// The test CA and certificates: the testkit's, one copy for every crate's tests.
pub mod tls {
    use std::sync::Arc;

    #[allow(unused_imports)]
    pub use testkit::pki::{pki, TestPki};
    use wss_client::rustls::ServerConfig;

    /// The server side of the test PKI, loaded by wss-net's PEM loader as a user's PEM is.
    pub trait ServerPki {
        fn server_config(&self) -> Arc<ServerConfig>;
    }

    impl ServerPki for TestPki {
        fn server_config(&self) -> Arc<ServerConfig> {
            let (chain, key) = (self.chain_pem.as_bytes(), self.key_pem.as_bytes());
            wss_server::tls::server_config_from_pem(chain, key).unwrap()
        }
    }
}

use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use wss_client::{
    ClientHandler, Data, ErrorEvent, ErrorInfo, MessageEvent, OpenEvent, TerminateEvent, WebSocket,
};

/// Long enough for a loaded shared machine; only reached when something is broken.
pub const WAIT: Duration = Duration::from_secs(20);

/// One callback, as the recorder saw it.
#[derive(Debug, Clone, PartialEq)]
pub enum Ev {
    Open,
    Message(Data),
    Error(ErrorInfo),
    Terminate(u16, Option<String>),
}

/// What a recorder runs in `on_open`.
type OnOpen = Box<dyn FnMut(&WebSocket) + Send>;

/// A handler that reports every callback on a channel, and can act on open.
pub struct Recorder {
    tx: Sender<Ev>,
    on_open: Option<OnOpen>,
}

impl Recorder {
    pub fn new() -> (Recorder, Events) {
        let (tx, rx) = channel();
        (Recorder { tx, on_open: None }, Events(rx))
    }

    /// Runs `f` in `on_open` (to send from the worker).
    pub fn with_on_open(mut self, f: impl FnMut(&WebSocket) + Send + 'static) -> Recorder {
        self.on_open = Some(Box::new(f));
        self
    }
}

impl ClientHandler for Recorder {
    fn on_message(&mut self, _ws: &WebSocket, event: &MessageEvent) {
        let _ = self.tx.send(Ev::Message(event.data.clone()));
    }
    fn on_open(&mut self, ws: &WebSocket, _event: &OpenEvent) {
        let _ = self.tx.send(Ev::Open);
        if let Some(f) = self.on_open.as_mut() {
            f(ws);
        }
    }
    fn on_error(&mut self, _ws: &WebSocket, event: &ErrorEvent) {
        for e in &event.errors {
            let _ = self.tx.send(Ev::Error(e.clone()));
        }
    }
    fn on_terminate(&mut self, _ws: &WebSocket, event: &TerminateEvent) {
        let _ = self
            .tx
            .send(Ev::Terminate(event.code, event.reason.clone()));
    }
}

/// The recorder's channel.
pub struct Events(pub Receiver<Ev>);

impl Events {
    /// The next callback; panics after [`WAIT`].
    pub fn next(&self) -> Ev {
        match self.0.recv_timeout(WAIT) {
            Ok(ev) => ev,
            Err(RecvTimeoutError::Timeout) => panic!("no callback within {WAIT:?}"),
            Err(RecvTimeoutError::Disconnected) => panic!("the handler is gone"),
        }
    }

    /// Asserts the next callback is `on_open`.
    pub fn expect_open(&self) {
        assert_eq!(self.next(), Ev::Open);
    }

    /// The next message's data; panics on any other callback.
    pub fn message(&self) -> Data {
        match self.next() {
            Ev::Message(d) => d,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    /// Nothing more comes after the end (the handle keeps the handler alive for
    /// `with_handler`, so the channel may stay open).
    pub fn assert_finished(&self) {
        match self.0.recv_timeout(Duration::from_millis(200)) {
            Err(RecvTimeoutError::Disconnected | RecvTimeoutError::Timeout) => {}
            Ok(ev) => panic!("unexpected callback after the end: {ev:?}"),
        }
    }
}

/// A one-connection server on loopback that answers the upgrade by hand (no extension, no
/// subprotocol) and then runs `after` on the socket: for ends a real server does not
/// produce (a close frame without a code, a dropped socket, an oversized message).
pub fn raw_server(after: impl FnOnce(std::net::TcpStream) + Send + 'static) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if stream.read(&mut byte).unwrap_or(0) == 0 {
                return;
            }
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).into_owned();
        let key = testkit::raw::header(&head, "sec-websocket-key").expect("the client sent a key");
        let accept = wss_proto::handshake::accept_key(key);
        let reply = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {accept}\r\n\r\n"
        );
        stream.write_all(reply.as_bytes()).unwrap();
        after(stream);
    });
    url
}

/// A server that accepts TCP connections and never answers (for handshake timeouts).
pub fn silent_server() -> (std::net::TcpListener, String) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    (listener, url)
}
