//! The `wss` binary as scripts use it: flags, the readiness line, signals, exit statuses.

mod support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::time::Duration;

use support::{connect, next_json, next_message, run_to_exit, wire, Wss};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::Message;

#[test]
fn readiness_line_names_the_bound_port_and_path() {
    let wss = Wss::start(&["--handler", "echo", "--path", "/echo"]);
    assert_eq!(wss.addr.ip(), Ipv4Addr::LOCALHOST);
    assert_ne!(wss.addr.port(), 0, "--port 0 must report the real port");
    assert_eq!(wss.path, "/echo");
    let mut ws = connect(&wss.ws_url(""));
    ws.send(Message::text("ping")).unwrap();
    assert_eq!(next_message(&mut ws), Message::text("ping"));
}

#[test]
fn sigterm_closes_clients_with_1001_and_exits_0() {
    let mut wss = Wss::start(&["--handler", "echo", "--shutdown-timeout", "5"]);
    let mut a = connect(&wss.ws_url(""));
    let mut b = connect(&wss.ws_url(""));
    a.send(Message::text("x")).unwrap();
    next_message(&mut a);
    wss.signal("TERM");
    for ws in [&mut a, &mut b] {
        let frame = loop {
            match ws.read() {
                Ok(Message::Close(frame)) => break frame,
                Ok(_) => continue,
                Err(e) => panic!("no close frame before the socket ended: {e}"),
            }
        };
        let frame = frame.expect("a close frame with a code");
        assert_eq!(frame.code, CloseCode::Away);
        // Answer the close so the server needs no timeout.
        let _ = ws.flush();
    }
    let status = wss.wait_exit(Duration::from_secs(10)).expect("wss exits");
    assert!(status.success(), "exit status {status:?}\n{}", wss.stderr());
    assert_eq!(
        wss.extra_stdout(),
        "",
        "stdout holds only the readiness line"
    );
}

/// A raw socket that completes the handshake and then never reads or answers.
fn silent_peer(wss: &Wss) -> TcpStream {
    let mut raw = TcpStream::connect(wss.addr).unwrap();
    write!(
        raw,
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        wss.path, wss.addr
    )
    .unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut head = [0u8; 12];
    raw.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 101");
    raw
}

#[test]
fn sigint_with_a_silent_peer_exits_0_after_the_shutdown_timeout() {
    let mut wss = Wss::start(&["--handler", "echo", "--shutdown-timeout", "1"]);
    let _raw = silent_peer(&wss);
    wss.signal("INT");
    let status = wss
        .wait_exit(Duration::from_secs(8))
        .expect("bounded by --shutdown-timeout");
    assert!(status.success(), "exit status {status:?}\n{}", wss.stderr());
}

#[test]
fn second_signal_exits_at_once() {
    let mut wss = Wss::start(&["--handler", "echo", "--shutdown-timeout", "60"]);
    let _raw = silent_peer(&wss);
    wss.signal("TERM");
    assert!(
        wss.wait_exit(Duration::from_millis(500)).is_none(),
        "waits for the silent peer"
    );
    wss.signal("TERM");
    let status = wss
        .wait_exit(Duration::from_secs(5))
        .expect("the second signal ends it");
    // Issue 22: a forced stop says so, as 128 + SIGTERM.
    assert_eq!(
        status.code(),
        Some(143),
        "exit status {status:?}\n{}",
        wss.stderr()
    );
}

#[test]
fn chat_page_is_served_with_security_headers() {
    let wss = Wss::start(&["--handler", "chat"]);
    let mut s = TcpStream::connect(wss.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        wss.addr
    )
    .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let lower = response.to_ascii_lowercase();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(lower.contains("content-type: text/html"), "{response}");
    assert!(
        lower.contains("x-content-type-options: nosniff"),
        "{response}"
    );
    assert!(lower.contains("content-security-policy: default-src 'none'; script-src 'self'"));
    assert!(response.contains(r#"<meta name="wss-path" content="/ws">"#));
    assert!(response.contains(r#"<script src="/chat.js" defer></script>"#));
}

#[test]
fn chat_handler_speaks_json_by_default() {
    let wss = Wss::start(&["--handler", "chat"]);
    let mut ws = connect(&wss.ws_url("?name=Zed"));
    let welcome = next_json(&mut ws);
    assert_eq!(welcome["type"], "welcome");
    assert_eq!(welcome["name"], "Zed");
}

#[test]
fn allow_flag_refuses_other_addresses() {
    let wss = Wss::start(&[
        "--handler",
        "echo",
        "--allow",
        "10.0.0.0/8",
        "--allow",
        "::1",
    ]);
    assert_eq!(support::refused_status(&wss.ws_url("")), 403);
}

#[test]
fn log_flag_appends_events() {
    let dir = support::webdriver::TempDir::new("binlog");
    let log = dir.0.join("wss.log");
    let wss = Wss::start(&["--handler", "echo", "--log", log.to_str().unwrap()]);
    support::close(connect(&wss.ws_url("")));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("connection.terminate") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "log:\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn assert_one_line_failure(args: &[&str], needle: &str) {
    let (status, stdout, stderr) = run_to_exit(args);
    assert!(!status.success(), "{args:?} should fail");
    assert_eq!(stdout, "", "{args:?}: nothing on stdout");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{args:?}: one line, got:\n{stderr}");
    assert!(
        lines[0].contains(needle),
        "{args:?}: {:?} lacks {needle:?}",
        lines[0]
    );
}

#[test]
fn bad_flag_is_one_line_and_non_zero() {
    assert_one_line_failure(&["--handler", "echo", "--bogus"], "--bogus");
    assert_one_line_failure(&["--handler", "telnet"], "telnet");
    assert_one_line_failure(&[], "--handler");
}

#[test]
fn port_in_use_is_one_line_and_non_zero() {
    let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    assert_one_line_failure(&["--handler", "echo", "--port", &port], &port);
}

#[test]
fn bad_cidr_and_unreadable_root_are_one_line_and_non_zero() {
    assert_one_line_failure(
        &["--handler", "echo", "--port", "0", "--allow", "10.0.0.0/33"],
        "10.0.0.0/33",
    );
    assert_one_line_failure(
        &[
            "--handler",
            "chat",
            "--port",
            "0",
            "--root",
            "/no/such/folder",
        ],
        "/no/such/folder",
    );
}

#[test]
fn deflate_threshold_with_deflate_off_is_a_usage_error() {
    let args = [
        "--handler",
        "echo",
        "--port",
        "0",
        "--deflate",
        "off",
        "--deflate-threshold",
        "64",
    ];
    let (status, _, _) = run_to_exit(&args);
    assert_eq!(status.code(), Some(2), "invalid usage");
    assert_one_line_failure(&args, "--deflate-threshold");
}

#[test]
fn zero_limits_are_usage_errors() {
    for flag in ["--max-per-address", "--max-pending-handshakes"] {
        let args = ["--handler", "echo", "--port", "0", flag, "0"];
        let (status, _, _) = run_to_exit(&args);
        assert_eq!(status.code(), Some(2), "{flag} 0");
        assert_one_line_failure(&args, flag);
    }
}

const OFFER: &str = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n";

/// "Hello" compressed, as in RFC 7692 section 7.2.3.1.
const HELLO_DEFLATED: [u8; 7] = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];

/// A raw connection to `wss` that offered permessage-deflate; returns it and the 101 head.
fn offering_deflate(wss: &Wss) -> (TcpStream, String) {
    let mut s = TcpStream::connect(wss.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let head = wire::handshake(&mut s, &wss.path, OFFER);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    (s, head)
}

/// Inflates one message's payload (RFC 7692 section 7.2.2: append 00 00 ff ff).
fn inflate(payload: &[u8]) -> Vec<u8> {
    let mut input = payload.to_vec();
    input.extend_from_slice(&[0, 0, 0xff, 0xff]);
    let mut out = Vec::with_capacity(64 << 10);
    flate2::Decompress::new(false)
        .decompress_vec(&input, &mut out, flate2::FlushDecompress::Sync)
        .expect("valid deflate data");
    out
}

#[test]
fn deflate_is_on_by_default_for_clients_that_offer_it() {
    let wss = Wss::start(&["--handler", "echo"]);
    let (mut s, head) = offering_deflate(&wss);
    let agreed = wire::header(&head, "Sec-WebSocket-Extensions")
        .unwrap_or_else(|| panic!("no extension agreed:\n{head}"));
    assert!(agreed.starts_with("permessage-deflate"), "{agreed}");

    // A compressed message is understood; the echo of a short one goes out plain.
    s.write_all(&wire::client_frame(0xc1, &HELLO_DEFLATED))
        .unwrap();
    assert_eq!(
        wire::read_frame(&mut s),
        Some((0x81, b"Hello".to_vec())),
        "below the threshold (64) the echo is not compressed"
    );
    // A longer one goes out compressed (RSV1 set) and inflates to the original.
    let long = "the quick brown fox jumps over the lazy dog; ".repeat(8);
    s.write_all(&wire::client_frame(0x81, long.as_bytes()))
        .unwrap();
    let (b0, payload) = wire::read_frame(&mut s).expect("the echo");
    assert_eq!(b0, 0xc1, "FIN + RSV1 + text");
    assert!(payload.len() < long.len() / 2, "{} bytes", payload.len());
    assert_eq!(inflate(&payload), long.as_bytes());
}

#[test]
fn deflate_off_declines_the_offer() {
    let wss = Wss::start(&["--handler", "echo", "--deflate", "off"]);
    let (mut s, head) = offering_deflate(&wss);
    assert_eq!(
        wire::header(&head, "Sec-WebSocket-Extensions"),
        None,
        "{head}"
    );
    // Without the extension RSV1 is a protocol error: the server fails the connection.
    s.write_all(&wire::client_frame(0xc1, &HELLO_DEFLATED))
        .unwrap();
    let (b0, payload) = wire::read_frame(&mut s).expect("a close frame");
    assert_eq!(b0, 0x88);
    assert_eq!(&payload[..2], &1002u16.to_be_bytes());
}

#[test]
fn deflate_threshold_sets_the_smallest_compressed_message() {
    let low = Wss::start(&["--handler", "echo", "--deflate-threshold", "1"]);
    let (mut s, _) = offering_deflate(&low);
    s.write_all(&wire::client_frame(0x81, b"Hello")).unwrap();
    let (b0, payload) = wire::read_frame(&mut s).expect("the echo");
    assert_eq!(b0, 0xc1, "5 bytes are over a threshold of 1");
    assert_eq!(inflate(&payload), b"Hello");

    let high = Wss::start(&["--handler", "echo", "--deflate-threshold", "100000"]);
    let (mut s, _) = offering_deflate(&high);
    let long = "a".repeat(1000);
    s.write_all(&wire::client_frame(0x81, long.as_bytes()))
        .unwrap();
    assert_eq!(
        wire::read_frame(&mut s),
        Some((0x81, long.into_bytes())),
        "1000 bytes are under a threshold of 100000"
    );
}

#[test]
fn node_id_without_redis_is_a_usage_error() {
    let (status, _, _) = run_to_exit(&["--handler", "chat", "--port", "0", "--node-id", "a"]);
    assert_eq!(status.code(), Some(2), "invalid usage");
    assert_one_line_failure(
        &["--handler", "chat", "--port", "0", "--node-id", "a"],
        "--node-id",
    );
}

#[test]
fn bad_log_level_is_a_usage_error_naming_the_levels() {
    let args = ["--handler", "echo", "--port", "0", "--log-level", "loud"];
    let (status, _, _) = run_to_exit(&args);
    assert_eq!(status.code(), Some(2), "invalid usage");
    assert_one_line_failure(&args, "--log-level");
    assert_one_line_failure(&args, "error, warn, info, debug, trace, off");
}

#[test]
fn log_level_overrides_rust_log() {
    // Wss::start sets RUST_LOG=info; --log-level error must silence the info lines.
    let mut wss = Wss::start(&["--handler", "echo", "--log-level", "error"]);
    support::close(connect(&wss.ws_url("")));
    wss.signal("TERM");
    let status = wss.wait_exit(Duration::from_secs(10)).expect("wss exits");
    assert!(status.success());
    let logged = wss.stderr();
    for level in [" WARN ", " INFO ", " DEBUG ", " TRACE "] {
        assert!(!logged.contains(level), "nothing below error:\n{logged}");
    }

    let mut wss = Wss::start(&["--handler", "echo", "--log-level", "INFO"]);
    wss.signal("TERM");
    wss.wait_exit(Duration::from_secs(10)).expect("wss exits");
    assert!(
        wss.stderr().contains(" INFO ") && wss.stderr().contains("Echo handler on"),
        "info lines: {}",
        wss.stderr()
    );
}

#[test]
fn help_explains_every_contract_flag() {
    let (status, stdout, _) = run_to_exit(&["--help"]);
    assert!(status.success());
    for flag in [
        "--handler",
        "--host",
        "--port",
        "--path",
        "--data-type",
        "--root",
        "--allow ",
        "--log ",
        "--threads",
        "--max-message-size",
        "--shutdown-timeout",
        "--deflate ",
        "--deflate-threshold",
        "--allow-origin",
        "--max-connections",
        "--max-per-address",
        "--max-pending-handshakes",
        "--cert ",
        "--key ",
        "--tls-port",
        "--handshake-timeout",
        "--idle-timeout",
        "--close-timeout",
        "--max-outgoing",
        "--redis",
        "--node-id",
        "--log-level",
    ] {
        assert!(stdout.contains(flag), "--help lacks {flag}");
    }
}

/// Sends `request` and reads the whole answer (the server closes after a refusal or when asked
/// with `Connection: close`).
fn http_exchange(addr: std::net::SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn a_rebound_host_name_is_refused_until_allow_host_names_it() {
    let port_of = |wss: &Wss| wss.addr.port();
    let wss = Wss::start(&["--handler", "chat"]);
    let page =
        |host: String| format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    // A page on evil.example:PORT re-pointed at 127.0.0.1: same-origin, wrong name.
    let refused = http_exchange(wss.addr, &page(format!("evil.example:{}", port_of(&wss))));
    assert!(refused.starts_with("HTTP/1.1 403 "), "{refused}");
    let body = refused.split("\r\n\r\n").nth(1).unwrap_or("");
    assert_eq!(body.lines().count(), 1, "one line: {body:?}");
    assert!(body.contains("--allow-host evil.example"), "{body}");
    let upgrade = tungstenite::client::IntoClientRequest::into_client_request(wss.ws_url(""))
        .map(|mut r| {
            r.headers_mut().insert(
                "Host",
                format!("evil.example:{}", port_of(&wss)).parse().unwrap(),
            );
            r.headers_mut().insert(
                "Origin",
                format!("http://evil.example:{}", port_of(&wss))
                    .parse()
                    .unwrap(),
            );
            r
        })
        .unwrap();
    let stream = TcpStream::connect(wss.addr).unwrap();
    match tungstenite::client(upgrade, stream) {
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(r))) => {
            assert_eq!(r.status(), 403)
        }
        other => panic!("the upgrade was not refused: {:?}", other.map(|_| ())),
    }
    // The local names pass on any port.
    for host in ["localhost", "127.0.0.1:1", "app.localhost:9"] {
        let ok = http_exchange(wss.addr, &page(host.to_string()));
        assert!(ok.starts_with("HTTP/1.1 200 "), "{host}: {ok}");
    }
    let open = Wss::start(&["--handler", "chat", "--allow-host", "evil.example"]);
    let ok = http_exchange(open.addr, &page(format!("evil.example:{}", port_of(&open))));
    assert!(ok.starts_with("HTTP/1.1 200 "), "{ok}");
    let any = Wss::start(&["--handler", "chat", "--allow-host", "*"]);
    let ok = http_exchange(any.addr, &page("anything.example".into()));
    assert!(ok.starts_with("HTTP/1.1 200 "), "{ok}");
}

#[test]
fn the_default_chat_takes_plain_text_and_json() {
    let wss = Wss::start(&["--handler", "chat"]);
    let mut ann = connect(&wss.ws_url("?name=Ann"));
    assert_eq!(next_json(&mut ann)["type"], "welcome");
    let mut bob = connect(&wss.ws_url("?name=Bob"));
    assert_eq!(next_json(&mut bob)["type"], "welcome");
    assert_eq!(next_json(&mut ann)["type"], "joined");
    // What a terminal client types.
    bob.send(Message::text("hi")).unwrap();
    let got = next_json(&mut ann);
    assert_eq!(got["type"], "message", "{got}");
    assert_eq!(got["name"], "Bob");
    assert_eq!(got["text"], "hi");
    bob.send(Message::text(r#"{"type":"message","text":"as json"}"#))
        .unwrap();
    let got = next_json(&mut ann);
    assert_eq!(
        (got["type"].as_str(), got["text"].as_str()),
        (Some("message"), Some("as json"))
    );
}

#[test]
fn an_object_chat_answers_a_frame_that_is_not_json_with_an_error() {
    let wss = Wss::start(&["--handler", "chat", "--data-type", "object"]);
    let mut ann = connect(&wss.ws_url("?name=Ann"));
    assert_eq!(next_json(&mut ann)["type"], "welcome");
    let mut bob = connect(&wss.ws_url("?name=Bob"));
    assert_eq!(next_json(&mut bob)["type"], "welcome");
    assert_eq!(next_json(&mut ann)["type"], "joined");
    bob.send(Message::text("hi")).unwrap();
    let err = next_json(&mut bob);
    assert_eq!(err["type"], "error", "{err}");
    assert!(
        err["text"].as_str().unwrap_or("").contains("Invalid JSON"),
        "{err}"
    );
    // The others saw nothing; a JSON message still goes through.
    bob.send(Message::text(r#"{"type":"message","text":"ok"}"#))
        .unwrap();
    let got = next_json(&mut ann);
    assert_eq!(
        (got["type"].as_str(), got["text"].as_str()),
        (Some("message"), Some("ok"))
    );
}
