//! The client against the wss server in the same process: echo of text, binary and JSON,
//! 8 MiB, permessage-deflate, close codes both ways, the 1005/1006 rules, refusals.

mod support;

use support::{Ev, Recorder, WAIT};
use wss_client::{ClientOptions, Data, Status, WebSocket};
use wss_handlers::Echo;
use wss_server::{ServerOptions, WebServer, WebServerOptions, WebSocketServer};

fn echo_server(deflate: bool) -> (WebServer, WebSocketServer, String) {
    let mut options = WebServerOptions::default().with_address("127.0.0.1", 0);
    if !deflate {
        options.deflate.enabled = false;
    }
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
