//! The plain-HTTP side over loopback (issue 20): one of each header and a `Date`, validators and
//! `304`s, `HEAD`, folders, sessions only for pages, no body on upgrades, the `Host` policy.
//! Headers are counted on the raw bytes of each response.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use support::*;
use wss_server::*;

/// One response as it came off the wire.
struct Wire {
    status: u16,
    /// Header lines in order, names as sent.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Wire {
    /// How many header lines carry `name` (any case).
    fn count(&self, name: &str) -> usize {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count()
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one request with `Connection: close` added and parses everything the server wrote
/// until it closed: a body the response should not have shows up in `body`.
fn exchange(addr: SocketAddr, request: &str) -> Wire {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(WAIT)).unwrap();
    let request = request.replacen("\r\n", "\r\nConnection: close\r\n", 1);
    s.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    parse(&raw)
}

fn parse(raw: &[u8]) -> Wire {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.to_owned(), v.trim().to_owned()))
        .collect();
    Wire {
        status,
        headers,
        body: raw[end + 4..].to_vec(),
    }
}

fn get(addr: SocketAddr, path: &str, extra: &str) -> Wire {
    exchange(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{extra}\r\n"),
    )
}

fn temp_root(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wss-web-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::create_dir_all(dir.join("empty")).unwrap();
    std::fs::write(dir.join("index.html"), "<h1>home</h1>").unwrap();
    std::fs::write(dir.join("app.js"), "run()").unwrap();
    std::fs::write(dir.join("sub/index.html"), "<h1>sub</h1>").unwrap();
    dir
}

/// A date header's value is an IMF-fixdate close to now.
fn assert_recent_date(value: &str) {
    assert!(
        value.ends_with(" GMT") && value.len() == 29,
        "not an IMF-fixdate: {value}"
    );
    let when = httpdate_parse(value);
    let skew = SystemTime::now()
        .duration_since(when)
        .unwrap_or_else(|e| e.duration());
    assert!(skew < Duration::from_secs(5), "{value} is not now");
}

/// Parses an IMF-fixdate with the standard library alone (the test needs no date crate).
fn httpdate_parse(text: &str) -> SystemTime {
    let parts: Vec<&str> = text.split([' ', ':']).collect();
    let [_, day, month, year, h, m, s, _] = parts[..] else {
        panic!("bad date {text}");
    };
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|x| *x == month)
    .expect("month") as i64
        + 1;
    let (y, d): (i64, i64) = (year.parse().unwrap(), day.parse().unwrap());
    // Days from the civil date (Howard Hinnant's algorithm).
    let y2 = if month <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400
        + h.parse::<i64>().unwrap() * 3600
        + m.parse::<i64>().unwrap() * 60
        + s.parse::<i64>().unwrap();
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs as u64)
}

#[test]
fn every_response_has_one_of_each_header_and_a_date() {
    let root = temp_root("headers");
    let web = web_with(
        WebServerOptions::default().with_root(&root).with_file(
            "/page.html",
            // Headers a caller might repeat: the server's own must still be single.
            BuiltinFile::new("text/html; charset=utf-8", &b"<p>x</p>"[..])
                .with_header("Content-Type", "text/html; charset=utf-8")
                .with_header("X-Content-Type-Options", "nosniff")
                .with_header("Date", "yesterday")
                .with_header("Content-Security-Policy", "default-src 'none'"),
        ),
    );
    let addr = web.local_addr();
    let host = "Host: localhost\r\n";
    for (request, status) in [
        (format!("GET / HTTP/1.1\r\n{host}\r\n"), 200),
        (format!("GET /app.js HTTP/1.1\r\n{host}\r\n"), 200),
        (format!("GET /page.html HTTP/1.1\r\n{host}\r\n"), 200),
        (format!("HEAD /page.html HTTP/1.1\r\n{host}\r\n"), 200),
        (format!("GET /missing HTTP/1.1\r\n{host}\r\n"), 404),
        (format!("GET /sub HTTP/1.1\r\n{host}\r\n"), 301),
        (
            format!("POST / HTTP/1.1\r\n{host}Content-Length: 0\r\n\r\n"),
            405,
        ),
        (
            "GET / HTTP/1.1\r\nHost: evil.example\r\n\r\n".to_string(),
            403,
        ),
        (
            format!("GET / HTTP/1.1\r\n{host}Content-Length: 3\r\n\r\nabc"),
            400,
        ),
    ] {
        let r = exchange(addr, &request);
        assert_eq!(r.status, status, "{request:?}");
        assert_eq!(r.count("Content-Type"), 1, "{request:?}: {:?}", r.headers);
        assert_eq!(r.count("X-Content-Type-Options"), 1, "{request:?}");
        assert_eq!(r.count("Date"), 1, "{request:?}");
        assert_eq!(r.count("Content-Length"), 1, "{request:?}");
        assert_recent_date(r.get("Date").unwrap());
        assert_eq!(r.count("Allow"), usize::from(status == 405), "{request:?}");
    }
    let r = exchange(
        addr,
        &format!("DELETE /x HTTP/1.1\r\n{host}Content-Length: 0\r\n\r\n"),
    );
    assert_eq!((r.status, r.count("Allow")), (405, 1));
    assert_eq!(r.get("Allow"), Some("GET, HEAD"));
    // Refused WebSocket requests too: no server on the path (the router's 404), and a key
    // that is not 16 bytes (wss-proto's 400).
    let _wss = WebSocketServer::new(
        &web,
        Rec::new(&Log::default()),
        ServerOptions::default().with_path("/ws"),
    )
    .unwrap();
    for (path, extra, status) in [
        ("/nowhere", "", 404),
        ("/ws", "Sec-WebSocket-Key: c2hvcnQ=\r\n", 400),
    ] {
        let key = if extra.is_empty() {
            format!("Sec-WebSocket-Key: {KEY}\r\n")
        } else {
            extra.to_string()
        };
        let r = exchange(
            addr,
            &format!(
                "GET {path} HTTP/1.1\r\n{host}Upgrade: websocket\r\nConnection: Upgrade\r\n\
                 {key}Sec-WebSocket-Version: 13\r\n\r\n"
            ),
        );
        assert_eq!(r.status, status, "{path}");
        assert_eq!(r.count("Date"), 1, "{path}: {:?}", r.headers);
        assert_eq!(r.count("Content-Type"), 1, "{path}: {:?}", r.headers);
        assert_eq!(
            r.count("X-Content-Type-Options"),
            1,
            "{path}: {:?}",
            r.headers
        );
    }
}

#[test]
fn files_carry_validators_and_answer_304_without_a_body() {
    let root = temp_root("validators");
    let web = web_with(WebServerOptions::default().with_root(&root).with_file(
        "/built-in.css",
        BuiltinFile::new("text/css", &b"p{}"[..]).with_header("Cache-Control", "max-age=5"),
    ));
    let addr = web.local_addr();
    for path in ["/app.js", "/built-in.css"] {
        let first = get(addr, path, "");
        assert_eq!(first.status, 200, "{path}");
        let etag = first.get("ETag").expect("an ETag").to_owned();
        assert!(
            etag.starts_with('"') && etag.ends_with('"') && etag.len() > 10,
            "a strong tag: {etag}"
        );
        assert_eq!(first.count("ETag"), 1);
        let modified = first
            .get("Last-Modified")
            .expect("Last-Modified")
            .to_owned();
        assert_recent_date(first.get("Date").unwrap());
        let expect_cache = if path == "/app.js" {
            "no-cache"
        } else {
            "max-age=5"
        };
        assert_eq!(first.get("Cache-Control"), Some(expect_cache), "{path}");

        for conditional in [
            format!("If-None-Match: {etag}\r\n"),
            format!("If-None-Match: \"other\", W/{etag}\r\n"),
            "If-None-Match: *\r\n".to_string(),
            format!("If-Modified-Since: {modified}\r\n"),
        ] {
            let r = get(addr, path, &conditional);
            assert_eq!(r.status, 304, "{path} {conditional:?}");
            assert!(r.body.is_empty(), "a 304 has no body: {:?}", r.body);
            assert_eq!(r.count("Content-Length"), 0, "{:?}", r.headers);
            assert_eq!(r.count("Content-Type"), 0, "{:?}", r.headers);
            assert_eq!(r.get("ETag"), Some(etag.as_str()));
            assert_eq!(r.get("Cache-Control"), Some(expect_cache));
            assert_eq!(r.count("Date"), 1);
        }
        for fresh in [
            "If-None-Match: \"other\"\r\n".to_string(),
            // If-None-Match decides when present, even if the date would match.
            format!("If-None-Match: \"other\"\r\nIf-Modified-Since: {modified}\r\n"),
            "If-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT\r\n".to_string(),
            "If-Modified-Since: not a date\r\n".to_string(),
        ] {
            let r = get(addr, path, &fresh);
            assert_eq!(r.status, 200, "{path} {fresh:?}");
            assert!(!r.body.is_empty());
        }

        // HEAD: the GET's headers, no body.
        let head = exchange(
            addr,
            &format!("HEAD {path} HTTP/1.1\r\nHost: localhost\r\n\r\n"),
        );
        assert_eq!(head.status, 200);
        assert!(head.body.is_empty(), "HEAD sent a body: {:?}", head.body);
        let without_date = |w: &Wire| -> Vec<(String, String)> {
            let mut h: Vec<(String, String)> = w
                .headers
                .iter()
                .filter(|(n, _)| n != "Date")
                .cloned()
                .collect();
            // The order of the lines does not matter; each name and value does.
            h.sort();
            h
        };
        assert_eq!(without_date(&head), without_date(&first), "{path}");
        assert_eq!(
            head.get("Content-Length"),
            Some(first.body.len().to_string().as_str())
        );
    }
}

#[test]
fn an_edited_file_gets_a_new_etag_and_max_age_is_configurable() {
    let root = temp_root("edited");
    let web = web_with(WebServerOptions {
        max_age: Some(Duration::from_secs(60)),
        ..WebServerOptions::default().with_root(&root)
    });
    let addr = web.local_addr();
    let before = get(addr, "/app.js", "");
    assert_eq!(before.get("Cache-Control"), Some("max-age=60"));
    std::fs::write(root.join("app.js"), "run(2)").unwrap();
    // Cached files are checked against the disk at most a second apart.
    std::thread::sleep(Duration::from_millis(1100));
    let etag = before.get("ETag").unwrap();
    let after = get(addr, "/app.js", &format!("If-None-Match: {etag}\r\n"));
    assert_eq!(after.status, 200);
    assert_eq!(after.body, b"run(2)");
    assert_ne!(after.get("ETag"), Some(etag));
}

#[test]
fn folders_redirect_to_their_slash_and_serve_their_index_without_listing() {
    let root = temp_root("folders");
    let web = web_with(WebServerOptions::default().with_root(&root));
    let addr = web.local_addr();
    let r = get(addr, "/sub", "");
    assert_eq!(r.status, 301);
    assert_eq!(r.get("Location"), Some("/sub/"));
    let r = get(addr, "/sub?x=1&y", "");
    assert_eq!((r.status, r.get("Location")), (301, Some("/sub/?x=1&y")));
    // A path that looks like another host never redirects there.
    let r = get(addr, "//sub", "");
    assert_eq!((r.status, r.get("Location")), (301, Some("/sub/")));
    let r = get(addr, "/sub/", "");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"<h1>sub</h1>");
    let r = get(addr, "/empty/", "");
    assert_eq!(r.status, 404, "no listing");
    let r = get(addr, "/", "");
    assert_eq!(r.body, b"<h1>home</h1>");
}

#[test]
fn only_a_page_opens_a_session_and_a_304_never_does() {
    let root = temp_root("sessions");
    let web = web_with(
        WebServerOptions::default()
            .with_root(&root)
            .with_scalable_session(true),
    );
    let addr = web.local_addr();
    let page = get(addr, "/", "");
    assert_eq!(page.count("Set-Cookie"), 1, "{:?}", page.headers);
    let etag = page.get("ETag").unwrap().to_owned();
    let script = get(addr, "/app.js", "");
    assert_eq!(script.count("Set-Cookie"), 0, "{:?}", script.headers);
    let revalidated = get(addr, "/", &format!("If-None-Match: {etag}\r\n"));
    assert_eq!(revalidated.status, 304);
    assert_eq!(
        revalidated.count("Set-Cookie"),
        0,
        "{:?}",
        revalidated.headers
    );
    let head = exchange(addr, "HEAD / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(head.count("Set-Cookie"), 0);
    // A visitor with a live session keeps it: no second cookie.
    let cookie = page.get("Set-Cookie").unwrap();
    let pair = cookie.split(';').next().unwrap();
    let again = get(addr, "/", &format!("Cookie: {pair}\r\n"));
    assert_eq!((again.status, again.count("Set-Cookie")), (200, 0));
}

#[test]
fn an_upgrade_with_a_body_is_refused_with_400_before_on_connection() {
    let log = Log::default();
    let web = web();
    let _wss = WebSocketServer::new(&web, Rec::new(&log), ServerOptions::default()).unwrap();
    let addr = web.local_addr();
    for extra in [
        &["Transfer-Encoding: chunked"][..],
        &["Content-Length: 5"],
        &["Content-Length: 0", "Transfer-Encoding: identity"],
    ] {
        let raw = raw_handshake(addr, "/ws", extra);
        assert_eq!(status_of(&raw.head), 400, "{extra:?}: {}", raw.head);
    }
    let raw = raw_handshake(addr, "/ws", &["Content-Length: 0"]);
    assert_eq!(status_of(&raw.head), 101, "an empty body is no body");
    assert!(log.wait_count("connection:", 1));
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        log.count("connection:"),
        1,
        "on_connection ran for a request with a body: {:?}",
        log.lines()
    );
}

#[test]
fn a_host_not_allowed_gets_403_and_is_reported_then_allowed_hosts_let_it_in() {
    let log = Log::default();
    let web = web_with(
        WebServerOptions::default().with_file("/", BuiltinFile::new("text/html", &b"x"[..])),
    );
    let _wss = WebSocketServer::new(
        &web,
        Rec::new(&log),
        ServerOptions::default().with_path("/ws"),
    )
    .unwrap();
    let addr = web.local_addr();
    let port = addr.port();
    let evil = format!("evil.example:{port}");
    // The rebinding page: Origin and Host agree, the name is not ours.
    let page = exchange(addr, &format!("GET / HTTP/1.1\r\nHost: {evil}\r\n\r\n"));
    assert_eq!(page.status, 403);
    let body = String::from_utf8(page.body).unwrap();
    assert_eq!(body.lines().count(), 1, "{body:?}");
    assert!(body.contains("--allow-host evil.example"), "{body}");
    let raw = raw_handshake(
        addr,
        "/ws",
        &[&format!("Host: {evil}"), &format!("Origin: http://{evil}")],
    );
    // raw_handshake sends its own Host first: two Host headers are a 400 already.
    assert_eq!(status_of(&raw.head), 400, "{}", raw.head);
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        s,
        "GET /ws HTTP/1.1\r\nHost: {evil}\r\nOrigin: http://{evil}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let refused = parse(&raw);
    assert_eq!(refused.status, 403);
    let error = log
        .wait_for("server-error:403:")
        .expect("reported to on_error");
    assert!(error.contains("evil.example"), "{error}");
    assert_eq!(log.count("connection:"), 0, "on_connection ran");
    for local in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        "x.localhost".into(),
    ] {
        let r = exchange(addr, &format!("GET / HTTP/1.1\r\nHost: {local}\r\n\r\n"));
        assert_eq!(r.status, 200, "{local}");
    }

    let open = web_with(
        WebServerOptions::default()
            .with_file("/", BuiltinFile::new("text/html", &b"x"[..]))
            .allow_host("evil.example"),
    );
    let _wss2 = WebSocketServer::new(
        &open,
        Rec::new(&Log::default()),
        ServerOptions::default().with_path("/ws"),
    )
    .unwrap();
    let r = exchange(
        open.local_addr(),
        &format!(
            "GET / HTTP/1.1\r\nHost: evil.example:{}\r\n\r\n",
            open.local_addr().port()
        ),
    );
    assert_eq!(r.status, 200);
}

#[test]
fn malformed_hosts_and_get_bodies_get_400() {
    let web = web_with(
        WebServerOptions::default().with_file("/", BuiltinFile::new("text/html", &b"x"[..])),
    );
    let addr = web.local_addr();
    for request in [
        "GET / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: localhost\r\nHost: localhost\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ] {
        let r = exchange(addr, request);
        assert_eq!(r.status, 400, "{request:?}");
        assert_eq!(r.get("Connection"), Some("close"));
    }
    // HTTP/1.0 needs no Host.
    let r = exchange(addr, "GET / HTTP/1.0\r\n\r\n");
    assert_eq!(r.status, 200);
}
