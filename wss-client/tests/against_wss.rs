//! The client against the wss server in the same process: echo of text, binary and JSON,
//! 8 MiB, permessage-deflate, close codes both ways, the 1005/1006 rules, refusals.

mod support;

use support::{Ev, Recorder, WAIT};
use wss_client::{ClientOptions, ConnectError, Data, SendError, Status, WebSocket};
use wss_handlers::Echo;
use wss_server::{ServerOptions, WebServer, WebServerOptions, WebSocketServer};

fn echo_server(deflate: bool) -> (WebServer, WebSocketServer, String) {
    let mut options = WebServerOptions::default().with_address("127.0.0.1", 0);
    // Off by default in the library.
    options.deflate.enabled = deflate;
    let web = WebServer::start(options).expect("web server");
    let wss = WebSocketServer::new(&web, Echo, ServerOptions::default().with_path("/echo"))
        .expect("echo server");
    let url = format!("ws://{}/echo", web.local_addr());
    (web, wss, url)
}

#[test]
fn text_binary_and_json_come_back_as_sent() {
    let (_web, _wss, url) = echo_server(false);
    let (rec, events) = Recorder::new();
    let rec = rec.with_on_open(|ws| {
        ws.send("héllo").unwrap();
        ws.send(vec![0u8, 1, 2, 255]).unwrap();
        ws.send(serde_json::json!({"a": [1, 2]})).unwrap();
    });
    let ws = WebSocket::connect(&url, rec, ClientOptions::default()).unwrap();
    events.expect_open();
    assert_eq!(ws.status(), Status::Connected);
    assert_eq!(events.message(), Data::Text("héllo".into()));
    assert_eq!(events.message(), Data::Blob(vec![0, 1, 2, 255]));
    assert_eq!(events.message(), Data::Text(r#"{"a":[1,2]}"#.into()));
    ws.terminate(Some(4000), Some("bye"));
    assert_eq!(
        events.next(),
        Ev::Terminate(4000, None),
        "wss echoes the code, no reason"
    );
    assert_eq!(ws.status(), Status::Closed);
    assert!(ws.wait_terminated(Some(WAIT)));
    events.assert_finished();
}

#[test]
fn eight_mib_messages_and_deflate_round_trip() {
    let (_web, _wss, url) = echo_server(true);
    let big: Vec<u8> = (0..8u32 << 20).map(|i| (i % 251) as u8).collect();
    let text = "compressible ".repeat(100_000);
    let (rec, events) = Recorder::new();
    let (big2, text2) = (big.clone(), text.clone());
    let rec = rec.with_on_open(move |ws| {
        ws.send(big2.clone()).unwrap();
        ws.send(text2.as_str()).unwrap();
    });
    let ws = WebSocket::connect(&url, rec, ClientOptions::default()).unwrap();
    events.expect_open();
    let extensions = ws.extensions().unwrap_or_default().to_owned();
    assert!(
        extensions.starts_with("permessage-deflate"),
        "wss accepted the default offer: {extensions:?}"
    );
    assert_eq!(events.message(), Data::Blob(big));
    assert_eq!(events.message(), Data::Text(text));
    assert_eq!(ws.buffered_amount(), 0, "everything sent was written");
    ws.terminate(None, None);
    assert_eq!(events.next(), Ev::Terminate(1000, None));
}

#[test]
fn without_the_offer_the_connection_is_uncompressed() {
    let (_web, _wss, url) = echo_server(true);
    let (rec, events) = Recorder::new();
    let options = ClientOptions::default().with_deflate(false);
    let ws = WebSocket::connect(&url, rec, options).unwrap();
    events.expect_open();
    assert_eq!(ws.extensions(), None);
    ws.terminate(None, None);
    assert_eq!(events.next(), Ev::Terminate(1000, None));
}

#[test]
fn sends_from_other_threads_arrive() {
    let (_web, _wss, url) = echo_server(false);
    let (rec, events) = Recorder::new();
    let ws = WebSocket::connect(&url, rec, ClientOptions::default()).unwrap();
    assert_eq!(ws.send("too early"), Err(SendError::NotOpen));
    events.expect_open();
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let ws = ws.clone();
            std::thread::spawn(move || {
                for i in 0..25 {
                    ws.send(format!("{t}:{i}")).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let mut got: Vec<String> = (0..100)
        .map(|_| match events.message() {
            Data::Text(t) => t,
            other => panic!("{other:?}"),
        })
        .collect();
    got.sort();
    let mut want: Vec<String> = (0..4)
        .flat_map(|t| (0..25).map(move |i| format!("{t}:{i}")))
        .collect();
    want.sort();
    assert_eq!(got, want);
    ws.terminate(Some(1000), Some("done"));
    // The server's close reply may already have been handled: Closing or Closed, never open.
    assert!(
        matches!(ws.status(), Status::Closing | Status::Closed),
        "{:?}",
        ws.status()
    );
    assert_eq!(ws.send("late"), Err(SendError::Closed));
    assert_eq!(events.next(), Ev::Terminate(1000, None));
}

/// Closes every connection with 4002 "server says bye" on its first message.
struct Closer;
struct CloserConnection;

impl wss_server::ServerHandler for Closer {
    type Connection = CloserConnection;
    fn on_connection(
        &mut self,
        _: &WebSocketServer,
        _: &wss_server::ConnectionEvent,
    ) -> Option<CloserConnection> {
        Some(CloserConnection)
    }
}

impl wss_server::ConnectionHandler for CloserConnection {
    fn on_message(&mut self, ws: &wss_server::WebSocketConnection, _: &wss_server::MessageEvent) {
        ws.terminate(Some(4002), Some("server says bye"));
    }
}

#[test]
fn server_close_code_and_reason_reach_on_terminate_after_on_error() {
    let web = WebServer::start(WebServerOptions::default().with_address("127.0.0.1", 0)).unwrap();
    let _wss = WebSocketServer::new(&web, Closer, ServerOptions::default()).unwrap();
    let (rec, events) = Recorder::new();
    let rec = rec.with_on_open(|ws| ws.send("close me").unwrap());
    let url = format!("ws://{}/", web.local_addr());
    let _ws = WebSocket::connect(&url, rec, ClientOptions::default()).unwrap();
    events.expect_open();
    match events.next() {
        Ev::Error(e) => assert_eq!((e.err_code, e.component_signature.as_str()), (4002, "HTTP")),
        other => panic!("expected on_error first, got {other:?}"),
    }
    assert_eq!(
        events.next(),
        Ev::Terminate(4002, Some("server says bye".into()))
    );
    events.assert_finished();
}

#[test]
fn a_path_the_server_does_not_serve_is_refused_with_its_status() {
    let (_web, _wss, url) = echo_server(false);
    let url = url.replace("/echo", "/nowhere");
    let (rec, events) = Recorder::new();
    let ws = WebSocket::connect(&url, rec, ClientOptions::default()).unwrap();
    match events.next() {
        Ev::Error(e) => {
            assert_eq!((e.err_code, e.component_signature.as_str()), (404, "HTTP"));
            assert!(e.message.contains("404"), "{}", e.message);
        }
        other => panic!("expected on_error, got {other:?}"),
    }
    assert_eq!(events.next(), Ev::Terminate(1006, None));
    assert_eq!(ws.status(), Status::Closed);
    events.assert_finished();

    match WebSocket::connect_blocking(&url) {
        Err(ConnectError::Refused(404)) => {}
        other => panic!("expected Refused(404), got {other:?}"),
    }
}

/// Counts messages and says whether `with_handler` works from inside a callback.
struct Counter {
    messages: usize,
    inside: Option<bool>,
}

impl wss_client::ClientHandler for Counter {
    fn on_open(&mut self, ws: &WebSocket, _: &wss_client::OpenEvent) {
        // On the worker the handler is `self`: the accessor declines instead of deadlocking.
        self.inside = Some(ws.with_handler(|c: &mut Counter| c.messages).is_some());
        for i in 0..3 {
            ws.send(format!("m{i}")).unwrap();
        }
    }
    fn on_message(&mut self, _: &WebSocket, _: &wss_client::MessageEvent) {
        self.messages += 1;
    }
}

#[test]
fn with_handler_reaches_the_instance_the_callbacks_run_on() {
    let (_web, _wss, url) = echo_server(false);
    let counter = Counter {
        messages: 0,
        inside: None,
    };
    let ws = WebSocket::connect(&url, counter, ClientOptions::default()).unwrap();
    let deadline = std::time::Instant::now() + support::WAIT;
    while ws.with_handler(|c: &mut Counter| c.messages) != Some(3) {
        assert!(
            std::time::Instant::now() < deadline,
            "three echoes expected"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(
        ws.with_handler(|c: &mut Counter| c.inside),
        Some(Some(false))
    );
    assert_eq!(ws.with_handler(|_: &mut Recorder| ()), None, "another type");
    ws.terminate(None, None);
    assert!(ws.wait_terminated(Some(WAIT)));
}

#[test]
fn the_blocking_handle_reports_the_end_on_every_later_recv() {
    let (_web, _wss, url) = echo_server(false);
    let ws = WebSocket::connect_blocking(&url).unwrap();
    ws.send("one").unwrap();
    assert_eq!(ws.recv(Some(WAIT)).unwrap(), Data::Text("one".into()));
    ws.websocket().terminate(Some(3003), None);
    for _ in 0..2 {
        match ws.recv(None) {
            Err(wss_client::RecvError::Closed { code, error, .. }) => {
                assert_eq!((code, error), (3003, None))
            }
            other => panic!("{other:?}"),
        }
    }
}
