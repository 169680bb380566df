//! `WebServer::stats` and `WebSocketServer::stats` over real sockets: each counter moves by
//! exactly what the clients did.

mod support;

use std::time::{Duration, Instant};

use support::*;
use tungstenite::protocol::frame::coding::CloseCode as TCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::Message;
use wss_server::*;

/// Polls `f` until it holds (counters are read from other threads, a moment behind).
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn stats_count_messages_bytes_closes_and_handshakes() {
    let log = Log::default();
    let web = web();
    let rec = Rec::new(&log).accept(|_, e| e.request.query.get("no").is_none());
    let wss = WebSocketServer::new(&web, rec, ServerOptions::default().with_path("/s")).unwrap();
    let before = web.stats();
    assert_eq!(before.net.upgrades, 0);

    let mut a = connect(web.local_addr(), "/s");
    let mut b = connect(web.local_addr(), "/s");
    a.send(Message::text("hello")).unwrap();
    assert_eq!(read_text(&mut a), "hello");
    b.send(Message::binary(vec![7u8; 10])).unwrap();
    assert!(matches!(b.read().unwrap(), Message::Binary(_)));
    eventually("two open", || wss.stats().connections == 2);

    // Refused by the handler, and to a path nobody serves.
    let Err(refused) = try_connect(web.local_addr(), "/s?no=1") else {
        panic!("the handler refuses ?no")
    };
    assert_eq!(refused_status(refused), 403);
    let Err(missing) = try_connect(web.local_addr(), "/elsewhere") else {
        panic!("no server at /elsewhere")
    };
    assert_eq!(refused_status(missing), 404);

    a.close(Some(CloseFrame {
        code: TCode::Normal,
        reason: "".into(),
    }))
    .unwrap();
    while a.read().is_ok() {}
    eventually("one open", || wss.stats().connections == 1);

    let s = wss.stats();
    assert_eq!(s.path.as_deref(), Some("/s"));
    assert_eq!(s.opened, 2);
    assert_eq!(s.accepted, 2);
    assert_eq!(s.refused_by_handler, 1);
    assert_eq!(s.messages_received.text, 1);
    assert_eq!(s.messages_received.binary, 1);
    assert_eq!(s.bytes_received, 15);
    assert_eq!(s.callback_panics, 0);
    assert_eq!(
        s.callback_duration.count, 0,
        "callbacks are timed only while metrics are served"
    );

    let w = web.stats();
    assert_eq!(w.net.upgrades, 2);
    assert_eq!(w.net.messages_received.text, 1);
    assert_eq!(w.net.messages_sent.text, 1);
    assert_eq!(w.net.messages_sent.binary, 1);
    assert_eq!(w.net.bytes_sent, 15);
    // Frame headers, masks and the handshakes come on top of the payloads.
    assert!(w.net.wire_bytes_received > 15 + 2 * 6);
    assert!(w.net.wire_bytes_sent > 15);
    eventually("the close counted", || {
        web.stats().net.closes.get(CloseBy::Client, 1000) == 1
    });
    let w = web.stats();
    assert_eq!(w.net.closes.total(), 1);
    assert_eq!(w.handshakes.accepted, 2);
    assert_eq!(w.handshakes.refused_by_handler, 1);
    assert_eq!(w.handshakes.not_found, 1);
    assert!(!w.draining);
    assert_eq!(w.servers.len(), 1);
    assert!(w.broker.is_none(), "the local broker reports nothing");

    // Closed by the server: counted on its side with its code.
    for c in wss.connections() {
        c.terminate(Some(4000), Some("bye"));
    }
    while b.read().is_ok() {}
    eventually("the server's close counted", || {
        web.stats().net.closes.get(CloseBy::Server, 4000) == 1
    });
    // Nothing stays counted as queued once every connection is gone.
    eventually("no connection left", || web.stats().net.connections == 0);
    assert_eq!(web.stats().net.outgoing_queued_bytes, 0);
}

#[test]
fn with_deflate_application_and_wire_bytes_differ() {
    let log = Log::default();
    let web = web_with(WebServerOptions::default().with_deflate(DeflateConfig::default()));
    let _wss = WebSocketServer::new(&web, Rec::new(&log), ServerOptions::default()).unwrap();
    let stream = std::net::TcpStream::connect(web.local_addr()).unwrap();
    let request = tungstenite::http::Request::builder()
        .uri(format!("ws://{}/", web.local_addr()))
        .header("Host", web.local_addr().to_string())
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header("Sec-WebSocket-Key", KEY)
        .header("Sec-WebSocket-Extensions", "permessage-deflate")
        .body(())
        .unwrap();
    let (mut ws, response) = tungstenite::client(request, stream).unwrap();
    assert!(response.headers().get("sec-websocket-extensions").is_some());
    // tungstenite sends uncompressed; the server compresses its echo.
    let text = "a".repeat(10_000);
    ws.send(Message::text(text.clone())).unwrap();
    // The echo arrives compressed, which this client cannot read: only the server's
    // counters matter here.
    let _ = ws.read();
    eventually("the echo sent", || web.stats().net.bytes_sent == 10_000);
    let s = web.stats().net;
    assert!(
        s.wire_bytes_sent < 2_000,
        "10 000 compressible bytes went out as {} on the wire",
        s.wire_bytes_sent
    );
}

#[test]
fn metrics_listener_serves_prometheus_text_health_and_readiness() {
    use std::io::{Read, Write};
    let log = Log::default();
    let web = web_with(WebServerOptions {
        metrics: Some("127.0.0.1:0".parse().unwrap()),
        ..WebServerOptions::default()
    });
    let _wss = WebSocketServer::new(&web, Rec::new(&log), ServerOptions::default()).unwrap();
    let addr = web.metrics_addr().expect("metrics served");
    assert!(addr.ip().is_loopback());
    let mut c = connect(web.local_addr(), "/");
    c.send(Message::text("x")).unwrap();
    read_text(&mut c);
    let get = |path: &str| {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    let scrape = get("/metrics");
    assert!(scrape.starts_with("HTTP/1.1 200"), "{scrape}");
    assert!(scrape.contains("text/plain; version=0.0.4"));
    assert!(
        scrape.contains("\nwss_connections{path=\"*\"} 1\n"),
        "{scrape}"
    );
    assert!(scrape.contains("\nwss_messages_received_total{path=\"*\",type=\"text\"} 1\n"));
    assert!(scrape.contains("\nwss_callback_duration_seconds_count{path=\"*\"} 1\n"));
    assert!(
        scrape.contains("\nwss_callback_duration_seconds_bucket{path=\"*\",le=\"+Inf\"} 1\n"),
        "{scrape}"
    );
    assert!(scrape.contains("\nprocess_open_fds "));
    assert!(get("/healthz").starts_with("HTTP/1.1 200"));
    assert!(get("/readyz").starts_with("HTTP/1.1 200"));
    assert!(get("/other").starts_with("HTTP/1.1 404"));
    let post = {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(
            s,
            "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    assert!(post.starts_with("HTTP/1.1 405"), "{post}");
    let count = |name: &str| {
        post.lines()
            .filter(|l| l.to_ascii_lowercase().starts_with(name))
            .count()
    };
    assert_eq!(count("allow:"), 1, "{post}");
    assert_eq!(count("connection:"), 1, "{post}");
    // Not on the main port unless asked.
    assert!(http(
        web.local_addr(),
        "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"
    )
    .starts_with("HTTP/1.1 404"));
    drop(c);
    web.stop();
    assert!(std::net::TcpStream::connect(addr).is_err(), "port freed");
}

#[test]
fn every_refused_handshake_is_counted_under_its_outcome() {
    use std::io::{Read, Write};
    let log = Log::default();
    let web = web_with(WebServerOptions {
        handshake_timeout: Duration::from_millis(300),
        ..WebServerOptions::default()
    });
    let _wss = WebSocketServer::new(&web, Rec::new(&log), ServerOptions::default()).unwrap();
    let addr = web.local_addr();
    let status = |raw: &Raw| -> u16 {
        raw.head
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
    };
    // Cross-origin (same-origin policy by default): 403.
    let raw = raw_handshake(addr, "/", &["Origin: http://evil.example"]);
    assert_eq!(status(&raw), 403, "{}", raw.head);
    // A Host name the policy refuses (DNS rebinding): 403 too, counted as `host`.
    let refused = http(
        addr,
        "GET / HTTP/1.1\r\nHost: evil.example\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n",
    );
    assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");
    // Another protocol version: 426.
    let raw = raw_handshake(addr, "/", &["Sec-WebSocket-Version: 8"]);
    assert_eq!(status(&raw), 426, "{}", raw.head);
    // A head too large: 431.
    let big = format!("X-Big: {}", "a".repeat(20_000));
    let raw = raw_handshake(addr, "/", &[big.as_str()]);
    assert_eq!(status(&raw), 431, "{}", raw.head);
    // Not HTTP at all: 400.
    assert!(http(addr, "GARBAGE\r\n\r\n").starts_with("HTTP/1.1 400"));
    // A head that never ends: 408 after the handshake timeout.
    let mut slow = std::net::TcpStream::connect(addr).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\n").unwrap();
    let mut answer = String::new();
    let _ = slow.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");

    let h = web.stats().handshakes;
    assert_eq!(h.origin, 1);
    assert_eq!(h.host, 1);
    assert_eq!(h.upgrade_required, 1);
    assert_eq!(h.too_large, 1);
    assert_eq!(h.bad_request, 1);
    assert_eq!(h.timeout, 1);
    assert_eq!(h.accepted, 0);
    assert_eq!(h.not_found, 0);
    let total: u64 = h.iter().iter().map(|(_, n)| n).sum();
    assert_eq!(total, 6, "{h:?}");
}

#[test]
fn a_client_that_stops_reading_is_counted_as_a_slow_consumer() {
    let log = Log::default();
    let web = web_with(WebServerOptions {
        max_outgoing: 64 << 10,
        ..WebServerOptions::default()
    });
    let _wss = WebSocketServer::new(&web, Rec::new(&log), ServerOptions::default()).unwrap();
    let mut c = connect(web.local_addr(), "/");
    // Echoes of 1 MB each, never read: the kernel's buffers fill, then the queue passes 64 KiB.
    let big = vec![7u8; 1 << 20];
    for _ in 0..16 {
        if c.send(Message::binary(big.clone())).is_err() {
            break;
        }
        if web.stats().net.slow_consumers_dropped > 0 {
            break;
        }
    }
    eventually("the slow consumer dropped", || {
        web.stats().net.slow_consumers_dropped == 1
    });
    eventually("its close counted", || {
        web.stats().net.closes.get(CloseBy::Server, 1006) == 1
    });
    eventually("nothing left queued", || {
        web.stats().net.outgoing_queued_bytes == 0
    });
}
