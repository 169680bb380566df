//! Handshakes: A1, A2, §2.2 request object, A18, subprotocols (Part A 3), origin policy
//! (issue 13 item 1).

mod support;

use std::time::Duration;

use support::*;
use wss_server::*;

#[test]
fn a_refused_connection_gets_403_and_never_appears_in_connections() {
    let log = Log::default();
    let web = web();
    let seen = Log::default();
    let seen2 = seen.clone();
    let rec = Rec::new(&log).accept(move |wss, _| {
        seen2.push(format!("listed:{}", wss.connections().len()));
        false
    });
    let wss = WebSocketServer::new(&web, rec, ServerOptions::default()).unwrap();
    let Err(err) = try_connect(web.local_addr(), "/") else {
        panic!("the handshake must be refused");
    };
    assert_eq!(refused_status(err), 403);
    assert_eq!(seen.lines(), ["listed:0"]);
    assert!(wss.connections().is_empty());
    assert_eq!(log.count("open:"), 0);
}

#[test]
fn on_connection_runs_before_the_101() {
    let log = Log::default();
    let web = web();
    let rec = Rec::new(&log).accept(|_, _| {
        std::thread::sleep(Duration::from_millis(300));
        true
    });
    let _wss = WebSocketServer::new(&web, rec, ServerOptions::default()).unwrap();
    let raw = raw_handshake(web.local_addr(), "/", &[]);
    assert_eq!(status_of(&raw.head), 101);
    // The 101 could only be written once on_connection had returned.
    let idx = log
        .index_of("connection:")
        .expect("on_connection ran first");
    assert_eq!(idx, 1, "{:?}", log.lines());
}

#[test]
fn a_panicking_on_connection_refuses_and_reports_to_the_server() {
    let log = Log::default();
    let web = web();
    let rec = Rec::new(&log).accept(|_, _| panic!("boom in on_connection"));
    let _wss = WebSocketServer::new(&web, rec, ServerOptions::default()).unwrap();
    let raw = raw_handshake(web.local_addr(), "/", &[]);
    assert_eq!(status_of(&raw.head), 403);
    let err = log.wait_for("server-error:").unwrap();
    assert!(err.contains("boom in on_connection"), "{err}");
}

#[test]
fn malformed_handshakes_are_refused_without_on_connection() {
    let log = Log::default();
    let web = web();
    let _wss = WebSocketServer::new(&web, Rec::new(&log), ServerOptions::default()).unwrap();
    let addr = web.local_addr();
    let no_key = http(
        addr,
        &format!("GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n"),
    );
    assert_eq!(status_of(&no_key), 400, "{no_key}");
    let old = http(
        addr,
        &format!("GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 8\r\n\r\n"),
    );
    assert_eq!(status_of(&old), 426, "{old}");
    assert!(old.contains("Sec-WebSocket-Version: 13"));
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(log.count("connection:"), 0);
}

struct Capture {
    log: Log,
}

impl ServerHandler for Capture {
    type Connection = Box<dyn ConnectionHandler>;
    fn on_connection(
        &mut self,
        _: &WebSocketServer,
        event: &ConnectionEvent,
    ) -> Option<Box<dyn ConnectionHandler>> {
        self.log.push(event.to_json().to_string());
        event.select_protocol("v2.chat");
        Some(Box::new(RecConn {
            log: self.log.clone(),
            on_message: std::sync::Arc::new(|_, _| {}),
            open_delay: Duration::ZERO,
            messages: 0,
        }))
    }
}

#[test]
fn the_request_object_has_the_4d_fields_and_a_subprotocol_can_be_chosen() {
    let log = Log::default();
    let web = web();
    let _wss =
        WebSocketServer::new(&web, Capture { log: log.clone() }, ServerOptions::default()).unwrap();
    let raw = raw_handshake(
        web.local_addr(),
        "/status?name=ryan&x=a%20b&x=c+d&flag",
        &[
            "X-Custom: one",
            "X-Custom: two",
            "Sec-WebSocket-Protocol: v1.chat, v2.chat",
        ],
    );
    assert_eq!(status_of(&raw.head), 101);
    assert!(
        raw.head.contains("Sec-WebSocket-Protocol: v2.chat\r\n"),
        "{}",
        raw.head
    );
    let json: serde_json::Value = serde_json::from_str(&log.wait_for("{").unwrap()).unwrap();
    assert_eq!(json["type"], "connection");
    let req = &json["request"];
    assert_eq!(req["url"], "/status?name=ryan&x=a%20b&x=c+d&flag");
    assert_eq!(req["remoteAddress"], "127.0.0.1");
    assert_eq!(req["query"]["name"], "ryan");
    assert_eq!(req["query"]["x"], serde_json::json!(["a b", "c d"]));
    assert_eq!(req["query"]["flag"], "");
    assert_eq!(
        req["headers"]["X-Custom"],
        serde_json::json!(["one", "two"])
    );
    assert_eq!(req["headers"]["Upgrade"], "websocket");
    assert!(req.get("session").is_none(), "no session unless enabled");
}

#[test]
fn no_subprotocol_header_unless_one_is_chosen() {
    let log = Log::default();
    let web = web();
    let _wss = WebSocketServer::new(&web, Rec::new(&log), ServerOptions::default()).unwrap();
    let raw = raw_handshake(web.local_addr(), "/", &["Sec-WebSocket-Protocol: chat"]);
    assert_eq!(status_of(&raw.head), 101);
    assert!(!raw
        .head
        .to_ascii_lowercase()
        .contains("sec-websocket-protocol"));
}

fn origin_status(policy: OriginPolicy, origin: Option<&str>) -> (u16, Log) {
    let log = Log::default();
    let web = web();
    let opts = ServerOptions::default().with_origins(policy);
    let _wss = WebSocketServer::new(&web, Rec::new(&log), opts).unwrap();
    let line = origin.map(|o| format!("Origin: {o}"));
    let extra: Vec<&str> = line.iter().map(String::as_str).collect();
    let raw = raw_handshake(web.local_addr(), "/", &extra);
    (status_of(&raw.head), log)
}

#[test]
fn cross_origin_handshakes_are_refused_and_reported() {
    let (status, log) = origin_status(OriginPolicy::default(), Some("http://evil.example:80"));
    assert_eq!(status, 403);
    let err = log.wait_for("server-error:").unwrap();
    assert!(err.starts_with("server-error:403:"), "{err}");
    assert_eq!(log.count("connection:"), 0);
}

#[test]
fn same_origin_and_no_origin_pass() {
    let log = Log::default();
    let web = web();
    let _wss = WebSocketServer::new(&web, Rec::new(&log), ServerOptions::default()).unwrap();
    let own = format!("Origin: http://{}", web.local_addr());
    assert_eq!(
        status_of(&raw_handshake(web.local_addr(), "/", &[&own]).head),
        101
    );
    assert_eq!(
        status_of(&raw_handshake(web.local_addr(), "/", &[]).head),
        101
    );
}

#[test]
fn listed_origins_pass_and_null_only_when_listed() {
    let allow = OriginPolicy::allow(["http://app.example:3000"]);
    assert_eq!(
        origin_status(allow.clone(), Some("http://app.example:3000")).0,
        101
    );
    assert_eq!(origin_status(allow, Some("null")).0, 403);
    assert_eq!(
        origin_status(OriginPolicy::allow(["null"]), Some("null")).0,
        101
    );
    assert_eq!(
        origin_status(OriginPolicy::any(), Some("http://x.example")).0,
        101
    );
}
