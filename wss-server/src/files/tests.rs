//! No disk I/O on a network thread (issue 20 item 3): WebSocket echoes on the same loop keep
//! flowing while the file thread is held in the middle of serving a 16 MiB file, and while
//! that file's bytes are being written. The hold is the crate-private test gate, compiled only
//! into this crate's own tests.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::{
    ConnectionEvent, ConnectionHandler, MessageEvent, ServerHandler, ServerOptions, WebServer,
    WebServerOptions, WebSocketConnection, WebSocketServer,
};

struct Echo;
struct EchoConnection;

impl ServerHandler for Echo {
    type Connection = EchoConnection;
    fn on_connection(
        &mut self,
        _: &WebSocketServer,
        _: &ConnectionEvent,
    ) -> Option<EchoConnection> {
        Some(EchoConnection)
    }
}

impl ConnectionHandler for EchoConnection {
    fn on_message(&mut self, ws: &WebSocketConnection, event: &MessageEvent) {
        let _ = ws.send(event.data.clone());
    }
}

const BIG: usize = 16 << 20;

fn echo_round_trips(ws: &mut tungstenite::WebSocket<TcpStream>, round: usize, n: usize) {
    for i in 0..n {
        let text = format!("round {round} echo {i}");
        ws.send(tungstenite::Message::text(text.clone()))
            .expect("send");
        match ws.read().expect("echo comes back") {
            tungstenite::Message::Text(t) => assert_eq!(t.as_str(), text),
            other => panic!("{other:?}"),
        }
    }
}

/// Reads one whole response: (status, Content-Length, body).
fn read_response(s: &mut TcpStream) -> (u16, usize, Vec<u8>) {
    let mut raw = Vec::with_capacity(BIG + 1024);
    let mut buf = vec![0u8; 1 << 16];
    loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).into_owned();
            let status = head
                .split(' ')
                .nth(1)
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if raw.len() >= end + 4 + len {
                return (status, len, raw[end + 4..end + 4 + len].to_vec());
            }
        }
        let n = s.read(&mut buf).expect("read");
        assert!(n > 0, "closed early after {} bytes", raw.len());
        raw.extend_from_slice(&buf[..n]);
    }
}

#[test]
fn echoes_flow_while_the_file_thread_serves_a_16_mib_file() {
    let dir = std::env::temp_dir().join(format!("wss-files-slow-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let content: Vec<u8> = (0..BIG).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.join("big.bin"), &content).unwrap();
    let web = WebServer::start(WebServerOptions {
        port: 0,
        // One network thread: the file's connection and the socket share the same loop.
        threads: 1,
        root: Some(dir.clone()),
        // Smaller than the file: every fetch is a read on the file thread, none from memory.
        file_cache_bytes: 1 << 20,
        ..WebServerOptions::default()
    })
    .expect("starts");
    let _wss = WebSocketServer::new(&web, Echo, ServerOptions::default()).expect("wss");
    let addr = web.local_addr();
    let gate = web.inner.router().site().files.gate.clone();

    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (mut ws, _) = tungstenite::client(format!("ws://{addr}/"), stream).expect("handshake");

    let mut http = TcpStream::connect(addr).unwrap();
    http.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    for round in 0..3 {
        gate.set_closed(true);
        write!(http, "GET /big.bin HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
        assert!(gate.wait_waiting(1), "the request reached the file thread");

        // The file thread is stuck before its read: the loop must not be.
        echo_round_trips(&mut ws, round, 50);
        assert_eq!(
            gate.waiting(),
            1,
            "the read was still pending during the echoes"
        );
        http.set_nonblocking(true).unwrap();
        let mut probe = [0u8; 1];
        let early = http.read(&mut probe);
        assert!(
            matches!(&early, Err(e) if e.kind() == ErrorKind::WouldBlock),
            "the file was answered before the file thread read it: {early:?}"
        );
        http.set_nonblocking(false).unwrap();

        // Let the read happen; while 16 MiB wait to be written (this client reads nothing
        // yet), the loop still answers echoes.
        gate.set_closed(false);
        let passed = round + 1;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while gate.passed() < passed {
            assert!(
                std::time::Instant::now() < deadline,
                "the file thread is stuck"
            );
            std::thread::yield_now();
        }
        echo_round_trips(&mut ws, round, 50);

        let (status, len, body) = read_response(&mut http);
        assert_eq!((status, len), (200, BIG));
        assert!(body == content, "the 16 MiB body differs");
    }
    assert_eq!(gate.passed(), 3, "each fetch went to the file thread");
    let _ = std::fs::remove_dir_all(&dir);
}
