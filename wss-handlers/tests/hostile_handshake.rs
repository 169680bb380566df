//! Hostile input before the upgrade (issue 6 item 4), against the real `wss` binary over raw
//! sockets: every bad request head gets its exact HTTP status, a head that never ends is cut
//! at the handshake timeout, and static files never leak from outside `--root`. After each
//! abuse a fresh client still echoes.

#[path = "support/raw.rs"]
mod raw;
mod support;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use raw::{dial, http, read_head, upgrade_request, Server};

fn echo_server() -> Server {
    Server::start(&["--handler", "echo", "--threads", "1"])
}

/// Asserts the server closes the connection after an error response (it must not wait for
/// more of a request it refused).
fn assert_closed_after(s: &mut std::net::TcpStream, what: &str) {
    s.set_read_timeout(Some(raw::WAIT)).unwrap();
    let mut rest = Vec::new();
    match s.read_to_end(&mut rest) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("{what}: connection left open after the error response: {e}"),
    }
}

#[test]
fn malformed_request_lines_get_400() {
    let mut server = echo_server();
    let bad: [&[u8]; 6] = [
        b"GET /ws\r\nHost: x\r\n\r\n",
        b"GET  HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /ws HTTP/1.1 junk\r\nHost: x\r\n\r\n",
        b"\x00\x01\x02\x03 / HTTP/1.1\r\n\r\n",
        b"GET /ws HTTP/1.1\r\nno colon here\r\n\r\n",
        b"GET /ws HTTP/x.y\r\nHost: x\r\n\r\n",
    ];
    for request in bad {
        let what = String::from_utf8_lossy(request);
        let mut s = dial(server.addr);
        s.write_all(request).unwrap();
        let head = read_head(&mut s);
        assert_eq!(head.status, 400, "{what:?} -> {}", head.text);
        assert_closed_after(&mut s, &what);
    }
    server.assert_still_serves();
}

#[test]
fn missing_key_gets_400() {
    let mut server = echo_server();
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n",
        server.path, server.addr
    );
    let head = http(server.addr, request.as_bytes());
    assert_eq!(head.status, 400, "{}", head.text);
    server.assert_still_serves();
}

#[test]
fn duplicate_key_gets_400() {
    let mut server = echo_server();
    let request = upgrade_request(
        server.addr,
        &server.path,
        "Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==\r\n",
    );
    let head = http(server.addr, request.as_bytes());
    assert_eq!(head.status, 400, "{}", head.text);
    server.assert_still_serves();
}

#[test]
fn bad_version_gets_426_naming_version_13() {
    let mut server = echo_server();
    for version in ["8", "12", "14", "banana", ""] {
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: {version}\r\n\r\n",
            server.path, server.addr
        );
        let head = http(server.addr, request.as_bytes());
        assert_eq!(head.status, 426, "version {version:?}: {}", head.text);
        assert_eq!(
            head.header("Sec-WebSocket-Version").as_deref(),
            Some("13"),
            "version {version:?}: {}",
            head.text
        );
    }
    server.assert_still_serves();
}

#[test]
fn head_over_16_kib_gets_431() {
    let mut server = echo_server();
    // One header line that takes the head past 16 KiB (the whole head, sent at once).
    let big = format!("X-Filler: {}\r\n", "a".repeat(16 << 10));
    let request = upgrade_request(server.addr, &server.path, &big);
    let head = http(server.addr, request.as_bytes());
    assert_eq!(head.status, 431, "{}", head.text);

    // The same size reached without an end: the server must not wait for the blank line.
    let mut s = dial(server.addr);
    let start = format!("GET {} HTTP/1.1\r\nHost: {}\r\n", server.path, server.addr);
    s.write_all(start.as_bytes()).unwrap();
    for _ in 0..17 {
        s.write_all(format!("X-Filler: {}\r\n", "b".repeat(1010)).as_bytes())
            .unwrap();
    }
    let head = read_head(&mut s);
    assert_eq!(head.status, 431, "unfinished head: {}", head.text);
    assert_closed_after(&mut s, "unfinished 17 KiB head");

    // 65 header lines, well under 16 KiB, break the other half of the limit.
    let many: String = (0..65).map(|i| format!("X-H{i}: v\r\n")).collect();
    let head = http(
        server.addr,
        upgrade_request(server.addr, &server.path, &many).as_bytes(),
    );
    assert_eq!(head.status, 431, "65 headers: {}", head.text);
    server.assert_still_serves();
}

/// A head trickled one line every 500 ms, forever, and a socket that sends nothing: the server
/// closes both at its handshake timeout (10 s by default; `wss` has no flag to shorten it, so
/// this test takes about 10 s, in parallel with the others).
#[test]
fn slowloris_is_cut_at_the_handshake_timeout() {
    let mut server = echo_server();
    // A second socket that sends nothing at all must be cut at the same time.
    let mut silent = dial(server.addr);
    let mut s = dial(server.addr);
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let started = Instant::now();
    write!(s, "GET {} HTTP/1.1\r\n", server.path).unwrap();
    let mut got = Vec::new();
    let mut n = 0;
    let ended = loop {
        let mut buf = [0u8; 512];
        match s.read(&mut buf) {
            Ok(0) => break started.elapsed(),
            Ok(k) => got.extend_from_slice(&buf[..k]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break started.elapsed(),
            Err(_) => {}
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the trickled head is still open after 20 s"
        );
        n += 1;
        // Writes may fail once the server is gone; the read above reports the end.
        let _ = write!(s, "X-Slow-{n}: 1\r\n");
    };
    assert!(
        ended >= Duration::from_secs(9) && ended <= Duration::from_secs(13),
        "closed after {ended:?}, expected at the 10 s handshake timeout"
    );
    // Closing silently or with a 408 are both fine; anything else is not.
    assert!(
        got.is_empty() || got.starts_with(b"HTTP/1.1 408"),
        "unexpected bytes before the close: {:?}",
        String::from_utf8_lossy(&got)
    );
    silent
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut rest = Vec::new();
    match silent.read_to_end(&mut rest) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("a silent socket outlived the handshake timeout: {e}"),
    }
    assert!(
        rest.is_empty() || rest.starts_with(b"HTTP/1.1 408"),
        "silent socket got {:?}",
        String::from_utf8_lossy(&rest)
    );
    server.assert_still_serves();
}

/// A folder served by `--root`, with a secret next to it (outside the root) and a symbolic
/// link to that secret inside it.
struct Site {
    base: std::path::PathBuf,
}

impl Site {
    fn new() -> Site {
        let base = std::env::temp_dir().join(format!("wss-hostile-site-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(base.join("root/sub")).unwrap();
        std::fs::write(base.join("root/index.html"), "<p>public</p>").unwrap();
        std::fs::write(base.join("root/sub/page.txt"), "public too").unwrap();
        std::fs::write(base.join("secret.txt"), "TOP SECRET").unwrap();
        // A link inside the root that leads out of it.
        std::os::unix::fs::symlink(base.join("secret.txt"), base.join("root/link.txt")).unwrap();
        Site { base }
    }

    fn root(&self) -> String {
        self.base.join("root").to_string_lossy().into_owned()
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

fn get(server: &Server, target: &str) -> (u16, String) {
    let mut s = dial(server.addr);
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        server.addr
    )
    .unwrap();
    let mut response = Vec::new();
    let _ = s.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("GET {target}: no status line in {text:?}"));
    (status, text)
}

#[test]
fn path_traversal_gets_404() {
    let site = Site::new();
    let mut server = Server::start(&[
        "--handler",
        "echo",
        "--threads",
        "1",
        "--root",
        &site.root(),
    ]);
    // The root is served, so a 404 below means "refused", not "serves nothing".
    let (status, body) = get(&server, "/sub/page.txt");
    assert_eq!(status, 200, "{body}");
    assert!(body.ends_with("public too"), "{body}");
    for target in [
        "/../etc/passwd",
        "/%2e%2e/etc/passwd",
        "//etc/passwd",
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E%2Fsecret.txt",
        "/..%2fsecret.txt",
        "/..%5csecret.txt",
        "/sub/../../secret.txt",
        "/sub/%2e%2e/%2e%2e/secret.txt",
        "/./../secret.txt",
        "/..//secret.txt",
        "/sub/..%00/../secret.txt",
        "/%00../secret.txt",
        "/link.txt",
    ] {
        let (status, body) = get(&server, target);
        assert_eq!(status, 404, "GET {target}:\n{body}");
        assert!(!body.contains("TOP SECRET"), "GET {target} leaked:\n{body}");
        assert!(!body.contains("root:"), "GET {target} leaked:\n{body}");
    }
    server.assert_still_serves();
}

#[test]
fn path_traversal_without_root_gets_404() {
    let mut server = echo_server();
    for target in ["/../etc/passwd", "/%2e%2e/etc/passwd", "//etc/passwd"] {
        let (status, body) = get(&server, target);
        assert_eq!(status, 404, "GET {target}:\n{body}");
    }
    server.assert_still_serves();
}
