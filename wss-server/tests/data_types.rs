//! dataType text / blob / object (SPEC Part A point 2, A4, A5) and send by argument type.

mod support;

use support::*;
use tungstenite::Message as M;
use wss_server::*;

fn server(log: &Log, data_type: DataType) -> WebServer {
    let web = web();
    let rec = Rec::new(log).on_message(|ws, e| {
        // Reply with each kind, whatever arrived: the argument type picks the frame.
        let _ = ws.send(e.data.clone());
        let _ = ws.send(serde_json::json!({"ok": true}));
        let _ = ws.send(vec![1u8, 2]);
    });
    let opts = ServerOptions::default().with_data_type(data_type);
    let wss = WebSocketServer::new(&web, rec, opts).unwrap();
    assert_eq!(wss.data_type(), data_type);
    // The server runs on without handles, like 4D's extra reference.
    drop(wss);
    web
}

fn replies(c: &mut Client) -> (M, M, M) {
    (c.read().unwrap(), c.read().unwrap(), c.read().unwrap())
}

#[test]
fn text_type_gives_text_for_text_and_blob_for_binary() {
    let log = Log::default();
    let web = server(&log, DataType::Text);
    let mut c = connect(web.local_addr(), "/");
    c.send(M::text("héllo")).unwrap();
    let (echo, json, bytes) = replies(&mut c);
    assert_eq!(echo, M::text("héllo"));
    assert_eq!(json, M::text("{\"ok\":true}"));
    assert_eq!(bytes, M::binary(vec![1u8, 2]));
    c.send(M::binary(vec![0xffu8, 0])).unwrap();
    assert_eq!(
        c.read().unwrap(),
        M::binary(vec![0xffu8, 0]),
        "unchanged, no lossy decode"
    );
    assert!(log.wait_for("message:").unwrap().ends_with("text:héllo"));
    assert!(log.wait_count("message:", 2));
    assert!(log.lines().iter().any(|l| l.ends_with("blob:[255, 0]")));
}

#[test]
fn blob_type_gives_bytes_for_everything() {
    let log = Log::default();
    let web = server(&log, DataType::Blob);
    let mut c = connect(web.local_addr(), "/");
    c.send(M::text("ab")).unwrap();
    let (echo, _, _) = replies(&mut c);
    assert_eq!(echo, M::binary(b"ab".to_vec()));
    assert!(log.wait_for("message:").unwrap().ends_with("blob:[97, 98]"));
}

#[test]
fn object_type_parses_json_and_bad_json_goes_to_on_error_keeping_the_connection() {
    let log = Log::default();
    let web = server(&log, DataType::Object);
    let mut c = connect(web.local_addr(), "/");
    c.send(M::text("{\"message\":\"hi\"}")).unwrap();
    let (echo, _, _) = replies(&mut c);
    assert_eq!(echo, M::text("{\"message\":\"hi\"}"));
    c.send(M::text("not json")).unwrap();
    let err = log.wait_for("error:").unwrap();
    assert!(err.contains(":1007:JSON:"), "{err}");
    // Still open: a valid message after the bad one is delivered.
    c.send(M::binary(b"[1,2]".to_vec())).unwrap();
    let (echo, _, _) = replies(&mut c);
    assert_eq!(echo, M::text("[1,2]"));
    assert_eq!(log.count("terminate:"), 0);
    assert_eq!(log.count("message:"), 2);
}
