//! Over TLS the request's own origin is `https://` + `Host`, and the session cookie is
//! `Secure`; the plain listener next to it keeps its rules.

mod support;

use support::tls::{https_head, pki, try_wss, ServerPki};
use support::*;
use wss_server::*;

fn tls_web(log: &Log) -> (WebServer, WebSocketServer, support::tls::TestPki) {
    let pki = pki();
    let web = web_with(WebServerOptions {
        tls: Some(pki.server_config()),
        tls_port: Some(0),
        scalable_session: true,
        // A page to serve: only an HTML page served to a GET opens a session.
        files: [("/".to_owned(), BuiltinFile::new("text/html", &b"x"[..]))].into(),
        ..WebServerOptions::default()
    });
    let wss = WebSocketServer::new(
        &web,
        Rec::new(log),
        ServerOptions::default().with_path("/ws"),
    )
    .unwrap();
    (web, wss, pki)
}

#[test]
fn same_origin_over_tls_is_https_plus_host() {
    let log = Log::default();
    let (web, _wss, pki) = tls_web(&log);
    let addr = web.tls_local_addr().expect("a TLS listener");
    let client = pki.client_config();
    let own = format!("https://localhost:{}", addr.port());

    let mut ws = try_wss(addr, "/ws", &[("Origin", &own)], &client).expect("same origin passes");
    ws.send(tungstenite::Message::text("over tls")).unwrap();
    assert_eq!(read_text(&mut ws), "over tls");

    let before = log.count("connection:");
    for cross in [
        "https://evil.example".to_owned(),
        // The same host and port, but a plain-HTTP page: another origin.
        format!("http://localhost:{}", addr.port()),
        "https://localhost".to_owned(),
    ] {
        let err = try_wss(addr, "/ws", &[("Origin", &cross)], &client)
            .err()
            .unwrap_or_else(|| panic!("{cross} must be refused"));
        assert_eq!(refused_status(err), 403, "{cross}");
    }
    assert!(log.wait_count("server-error:", 3));
    assert_eq!(log.count("connection:"), before, "on_connection never ran");
    // No Origin: not a browser, passes.
    let mut ws = try_wss(addr, "/ws", &[], &client).expect("no origin passes");
    ws.send(tungstenite::Message::text("no origin")).unwrap();
    assert_eq!(read_text(&mut ws), "no origin");
}

#[test]
fn the_plain_listener_keeps_http_origins() {
    let log = Log::default();
    let (web, _wss, _pki) = tls_web(&log);
    let addr = web.local_addr();
    let origin = format!("Origin: http://{addr}");
    let raw = raw_handshake(addr, "/ws", &[&origin]);
    assert_eq!(status_of(&raw.head), 101, "{}", raw.head);
}

#[test]
fn the_session_cookie_is_secure_over_tls_only() {
    let log = Log::default();
    let (web, _wss, pki) = tls_web(&log);
    let tls_addr = web.tls_local_addr().expect("a TLS listener");
    let request = "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";

    let head = https_head(tls_addr, request, &pki.client_config());
    let cookie = set_cookie(&head).expect("a session cookie over TLS");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"));
    assert!(cookie.contains("; Secure"), "{cookie}");

    let head = http(web.local_addr(), request);
    let cookie = set_cookie(&head).expect("a session cookie over plain HTTP");
    assert!(!cookie.contains("Secure"), "{cookie}");

    // An upgrade joins the session its cookie names but never opens one (a client that keeps
    // no cookies would add a session per connection): no cookie, none set.
    let upgrade = format!(
        "GET /ws HTTP/1.1\r\nHost: localhost:{}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n",
        tls_addr.port()
    );
    let head = https_head(tls_addr, &upgrade, &pki.client_config());
    assert_eq!(status_of(&head), 101, "{head}");
    assert!(set_cookie(&head).is_none(), "{head}");
}

fn set_cookie(head: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("set-cookie")
            .then(|| value.trim().to_owned())
    })
}
