//! TLS under the connection phases: wss:// echo with tungstenite over rustls, plain and TLS
//! listeners at once, HTTP over TLS, and peers that get TLS wrong (plain HTTP on the TLS
//! port, a garbage ClientHello, a handshake that stops halfway), none of which disturbs the
//! other connections.

mod util;

use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

use tungstenite::Message as TMessage;
use util::tls::*;
use util::*;
use wss_net::{Listen, NetConfig, NetEvent};
use wss_proto::{CloseCode, Message};

fn tls_config(pki: &TestPki) -> NetConfig {
    NetConfig {
        tls: Some(pki.server_config()),
        ..quick_config()
    }
}

fn assert_echoes(client: &mut TlsClient, text: &str) {
    client.send(TMessage::text(text)).unwrap();
    assert_eq!(client.read().unwrap(), TMessage::text(text));
}

#[test]
fn wss_echo_over_rustls_keeps_text_binary_and_the_peer_address() {
    let pki = pki();
    let server = start(tls_config(&pki), true);
    let client_config = pki.client_config();
    let mut client = wss_client(server.addr, "/ws", &client_config);
    let conn = match server.next_event() {
        NetEvent::Opened { conn, peer, .. } => {
            assert_eq!(peer, client_addr(&client), "remoteAddress as without TLS");
            conn
        }
        other => panic!("{other:?}"),
    };
    assert_echoes(&mut client, "héllo over TLS");
    client.send(TMessage::binary(vec![0u8, 1, 2, 255])).unwrap();
    assert_eq!(
        client.read().unwrap(),
        TMessage::binary(vec![0u8, 1, 2, 255])
    );
    client.close(None).unwrap();
    loop {
        match client.read() {
            Ok(_) => {}
            Err(tungstenite::Error::ConnectionClosed) => break,
            Err(e) => panic!("the close handshake ends cleanly over TLS: {e}"),
        }
    }
    let (code, _, error) = server.expect_closed(conn);
    assert_eq!(code, CloseCode::NO_STATUS);
    assert_eq!(error, None);
    assert_eq!(server.handle.stats().tls_failures, 0);
}

/// Over TLS the server keeps the FIN-then-wait ending after a clean closing handshake (a TLS
/// peer may answer our `close_notify` with its own, which a closed socket would answer with
/// a reset): once the client has seen our `close_notify` and FIN, the server still holds the
/// socket, until the client's EOF.
#[test]
fn over_tls_the_server_waits_for_the_peer_eof_after_the_close() {
    let pki = pki();
    let server = start(tls_config(&pki), false);
    let mut client = wss_client(server.addr, "/ws", &pki.client_config());
    let conn = server.expect_opened();
    client.close(None).unwrap();
    loop {
        match client.read() {
            Ok(_) => {}
            Err(tungstenite::Error::ConnectionClosed) => break,
            Err(e) => panic!("the close handshake ends cleanly over TLS: {e}"),
        }
    }
    let tcp = match client.get_ref() {
        tungstenite::stream::MaybeTlsStream::Rustls(s) => &s.sock,
        _ => panic!("not a TLS stream"),
    };
    assert!(
        server_holds_socket(server.addr, tcp),
        "closed at once over TLS"
    );
    tcp.shutdown(std::net::Shutdown::Write).unwrap();
    let deadline = Instant::now() + WAIT;
    while server_holds_socket(server.addr, tcp) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!server_holds_socket(server.addr, tcp), "closed on our EOF");
    let (code, _, error) = server.expect_closed(conn);
    assert_eq!((code, error), (CloseCode::NO_STATUS, None));
}

fn client_addr(client: &TlsClient) -> std::net::SocketAddr {
    match client.get_ref() {
        tungstenite::stream::MaybeTlsStream::Rustls(s) => s.sock.local_addr().unwrap(),
        _ => panic!("not a TLS stream"),
    }
}

#[test]
fn large_and_many_messages_cross_the_tls_buffers_intact() {
    let pki = pki();
    let server = start(tls_config(&pki), true);
    let mut client = wss_client(server.addr, "/ws", &pki.client_config());
    // Bigger than rustls' 64 KiB outgoing buffer and its 16 KiB records: the queue drains
    // through several flushes.
    let big: Vec<u8> = (0..3 << 20).map(|i: u32| (i % 251) as u8).collect();
    client.send(TMessage::binary(big.clone())).unwrap();
    assert_eq!(client.read().unwrap(), TMessage::binary(big));
    for i in 0..200 {
        client.write(TMessage::text(format!("m{i}"))).unwrap();
    }
    client.flush().unwrap();
    for i in 0..200 {
        assert_eq!(client.read().unwrap(), TMessage::text(format!("m{i}")));
    }
}

#[test]
fn plain_and_tls_listeners_serve_side_by_side() {
    let pki = pki();
    let any = "127.0.0.1:0".parse().unwrap();
    let server = start_on(
        &[Listen::plain(any), Listen::tls(any)],
        tls_config(&pki),
        true,
    );
    let tls_addr = server.tls_addr.expect("a TLS listener");
    assert_ne!(tls_addr, server.addr);
    let client_config = pki.client_config();

    let mut plain = ws_client(server.addr, "/ws");
    let mut secure = wss_client(tls_addr, "/ws", &client_config);
    plain.send(TMessage::text("plain")).unwrap();
    assert_eq!(plain.read().unwrap(), TMessage::text("plain"));
    assert_echoes(&mut secure, "secure");

    // Plain HTTP over TLS, two requests on one kept-alive connection.
    let mut s = tls_stream(tls_addr, &client_config);
    assert_eq!(s.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    for path in ["/one", "/two"] {
        write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
        s.flush().unwrap();
        let (head, body) = read_response(&mut s);
        assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
        assert_eq!(body, format!("GET {path}").into_bytes());
    }
    // And the TLS port does not answer plain text.
    let mut raw = tcp(tls_addr);
    raw.write_all(b"GET /one HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let answer = String::from_utf8_lossy(&read_to_eof(&mut raw)).into_owned();
    assert!(!answer.contains("GET /one"), "{answer}");
}

#[test]
fn plain_http_on_the_tls_port_gets_a_plain_400_and_harms_no_one() {
    let pki = pki();
    let server = start(tls_config(&pki), true);
    let mut bystander = wss_client(server.addr, "/ws", &pki.client_config());
    let _ = server.expect_opened();

    let mut raw = tcp(server.addr);
    raw.write_all(b"GET /ws HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let answer = String::from_utf8(read_to_eof(&mut raw)).unwrap();
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert!(answer.contains("https://"), "{answer}");
    assert!(answer.contains("Connection: close"), "{answer}");

    assert_echoes(&mut bystander, "still here");
    assert_eq!(server.handle.stats().tls_failures, 1);
}

#[test]
fn a_garbage_client_hello_gets_a_tls_alert_then_the_socket_closes() {
    let pki = pki();
    let server = start(tls_config(&pki), true);
    let mut bystander = wss_client(server.addr, "/ws", &pki.client_config());
    let _ = server.expect_opened();

    let garbage: [&[u8]; 2] = [
        // A ClientHello cut short: rustls answers with its own alert.
        &[
            0x16, 0x03, 0x01, 0x00, 0x08, 0x01, 0x00, 0x00, 0x04, 1, 2, 3, 4,
        ],
        // A handshake message claiming 11 MB: refused without a rustls alert.
        &[
            0x16, 0x03, 0x01, 0x00, 0x08, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4,
        ],
    ];
    for bytes in garbage {
        let mut raw = tcp(server.addr);
        raw.write_all(bytes).unwrap();
        let answer = read_to_eof(&mut raw);
        assert_eq!(answer.first(), Some(&0x15), "an alert record: {answer:?}");
        assert_eq!(answer.len(), 7, "one alert, then EOF: {answer:?}");
        assert_eq!(answer.get(5), Some(&2), "a fatal alert: {answer:?}");
    }

    assert_echoes(&mut bystander, "unharmed");
    assert_eq!(server.handle.stats().tls_failures, 2);
    wait_for(|| server.handle.stats().connections == 1);
}

#[test]
fn a_client_that_stops_mid_handshake_is_closed_at_the_handshake_timeout() {
    let pki = pki();
    let mut config = tls_config(&pki);
    config.handshake_timeout = Duration::from_millis(600);
    let server = start(config, true);
    let client_config = pki.client_config();

    let hello = client_hello_bytes(&client_config);
    let mut raw = tcp(server.addr);
    let started = Instant::now();
    raw.write_all(&hello[..hello.len() / 2]).unwrap();
    // A bystander that completes its handshake meanwhile is served throughout.
    let mut bystander = wss_client(server.addr, "/ws", &client_config);
    assert_echoes(&mut bystander, "before");
    let answer = read_to_eof(&mut raw);
    let waited = started.elapsed();
    assert!(answer.is_empty(), "closed without a word: {answer:?}");
    assert!(
        waited >= Duration::from_millis(500) && waited < Duration::from_secs(4),
        "closed after {waited:?}"
    );
    assert_echoes(&mut bystander, "after");
    wait_for(|| server.handle.stats().connections == 1);
    assert_eq!(server.handle.stats().handshakes, 0);
}

#[test]
fn a_slow_head_after_the_tls_handshake_gets_408_over_tls() {
    let pki = pki();
    let mut config = tls_config(&pki);
    config.handshake_timeout = Duration::from_millis(500);
    let server = start(config, false);
    let mut s = tls_stream(server.addr, &pki.client_config());
    s.write_all(b"GET /ws HTTP/1.1\r\nHost: loc").unwrap();
    s.flush().unwrap();
    let (head, _) = read_response(&mut s);
    assert!(head.starts_with("HTTP/1.1 408 "), "{head}");
    // Then our close_notify: a clean TLS end, not a truncation.
    let mut rest = Vec::new();
    assert_eq!(s.read_to_end(&mut rest).unwrap(), 0);
}

#[test]
fn graceful_shutdown_sends_close_frames_over_tls() {
    let pki = pki();
    let server = start(tls_config(&pki), false);
    let mut client = wss_client(server.addr, "/ws", &pki.client_config());
    let conn = server.expect_opened();
    let handle = server.handle.clone();
    handle.shutdown(Some((CloseCode::GOING_AWAY, Duration::from_secs(5))));
    match client.read() {
        Ok(TMessage::Close(Some(frame))) => assert_eq!(u16::from(frame.code), 1001),
        other => panic!("expected the close frame, got {other:?}"),
    }
    // Reading on sends tungstenite's answer, then sees the server's close_notify and FIN.
    match client.read() {
        Err(tungstenite::Error::ConnectionClosed) => {}
        other => panic!("expected a clean end, got {other:?}"),
    }
    let (code, _, error) = server.expect_closed(conn);
    assert_eq!(code, CloseCode::GOING_AWAY);
    assert_eq!(error, None);
    server.shutdown(None);
}

#[test]
fn messages_from_the_client_arrive_as_sent() {
    let pki = pki();
    let server = start(tls_config(&pki), false);
    let mut client = wss_client(server.addr, "/ws", &pki.client_config());
    let _ = server.expect_opened();
    client.send(TMessage::text("one")).unwrap();
    match server.next_event() {
        NetEvent::Message { message, .. } => assert_eq!(message, Message::Text("one".into())),
        other => panic!("{other:?}"),
    }
}

/// Python's `websockets` with an SSL context trusting the test CA: a second, independent TLS
/// and WebSocket stack. Skipped (loudly) when no Python with `websockets` is found.
#[test]
fn python_websockets_client_echoes_over_tls() {
    let Some(python) = python_with_websockets() else {
        eprintln!("SKIPPED python_websockets_client_echoes_over_tls: no python3 with `websockets` (.venv at the repo root, or on PATH)");
        return;
    };
    let pki = pki();
    let server = start(tls_config(&pki), true);
    let dir = std::env::temp_dir().join(format!("wss-net-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let script = r#"
import asyncio, ssl, sys
import websockets
async def main():
    ctx = ssl.create_default_context(cafile=sys.argv[2])
    async with websockets.connect(sys.argv[1], ssl=ctx) as ws:
        await ws.send("héllo from python")
        print(await ws.recv())
        await ws.send(bytes([0, 1, 2, 255]))
        print((await ws.recv()).hex())
asyncio.run(main())
"#;
    let url = format!("wss://localhost:{}/ws", server.addr.port());
    let out = Command::new(&python)
        .args(["-c", script, &url])
        .arg(&ca)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout, "héllo from python\n000102ff\n");
}

fn python_with_websockets() -> Option<std::path::PathBuf> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let candidates = [root.join(".venv/bin/python"), "python3".into()];
    candidates.into_iter().find(|p| {
        Command::new(p)
            .args(["-c", "import websockets"])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

fn wait_for(mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "condition not reached in time");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A record that does not decrypt, after the upgrade, ends only that connection, with
/// `ConnError::Tls(Decrypt)` (the server now decrypts in the loop's shared buffer).
#[test]
fn a_record_that_does_not_decrypt_ends_the_connection_with_a_tls_error() {
    let pki = pki();
    let server = start(tls_config(&pki), true);
    let client_config = pki.client_config();
    let mut bystander = wss_client(server.addr, "/ws", &client_config);
    let _bystander = server.expect_opened();
    let mut client = wss_client(server.addr, "/ws", &client_config);
    let conn = server.expect_opened();
    assert_echoes(&mut client, "before the forged record");
    let mut forged = vec![0x17, 0x03, 0x03, 0x00, 0x20];
    forged.extend_from_slice(&[0x41; 32]);
    match client.get_mut() {
        tungstenite::stream::MaybeTlsStream::Rustls(s) => s.sock.write_all(&forged).unwrap(),
        _ => panic!("not a TLS stream"),
    }
    let (_, _, error) = server.expect_closed(conn);
    assert!(
        matches!(
            error,
            Some(wss_net::ConnError::Tls(wss_net::tls::TlsFailure::Decrypt))
        ),
        "{error:?}"
    );
    assert_eq!(server.handle.stats().tls_failures, 1);
    assert_echoes(&mut bystander, "the other connection is untouched");
}

/// A ClientHello cut into one-byte records, more of them than the loop's buffer keeps for one
/// connection: refused with an alert, no memory beyond that bound, no harm to others.
#[test]
fn a_client_hello_in_tiny_records_is_refused_at_the_buffer_bound() {
    let pki = pki();
    let server = start(tls_config(&pki), true);
    let mut bystander = wss_client(server.addr, "/ws", &pki.client_config());
    let _ = server.expect_opened();

    let mut raw = tcp(server.addr);
    // The header of a ClientHello claiming 64 KiB - 1, then its body one byte per record.
    let mut bytes = Vec::new();
    for b in [0x01, 0x00, 0xff, 0xff] {
        bytes.extend_from_slice(&[0x16, 0x03, 0x01, 0x00, 0x01, b]);
    }
    for _ in 0..30_000 {
        bytes.extend_from_slice(&[0x16, 0x03, 0x01, 0x00, 0x01, 0x03]);
    }
    // The server may close before taking it all: a failed write is the refusal too.
    let _ = raw.write_all(&bytes);
    let _ = raw.shutdown(std::net::Shutdown::Write);
    let answer = read_to_eof(&mut raw);
    assert_eq!(answer.first(), Some(&0x15), "an alert record: {answer:?}");
    assert_eq!(answer.get(5), Some(&2), "a fatal alert: {answer:?}");

    assert_echoes(&mut bystander, "unharmed");
    assert_eq!(server.handle.stats().tls_failures, 1);
    wait_for(|| server.handle.stats().connections == 1);
}
