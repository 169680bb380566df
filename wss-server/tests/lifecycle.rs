//! Connection lifecycle over real sockets: SPEC §2, §3, A8–A14.

mod support;

use std::time::Duration;

use support::*;
use tungstenite::protocol::frame::coding::CloseCode as TCode;
use tungstenite::protocol::CloseFrame;
use wss_server::*;

fn echo_server(log: &Log) -> (WebServer, WebSocketServer) {
    let web = web();
    let wss = WebSocketServer::new(&web, Rec::new(log), ServerOptions::default()).unwrap();
    (web, wss)
}

#[test]
fn uppercase_echo_from_the_seed_works() {
    let log = Log::default();
    let web = web();
    let rec = Rec::new(&log).on_message(|ws, e| {
        if let Data::Text(t) = &e.data {
            let _ = ws.send(t.to_uppercase());
        }
    });
    let _wss = WebSocketServer::new(&web, rec, ServerOptions::default()).unwrap();
    let mut c = connect(web.local_addr(), "/");
    c.send(tungstenite::Message::text("hello")).unwrap();
    assert_eq!(read_text(&mut c), "HELLO");
}

#[test]
fn on_open_sees_itself_in_connections_and_on_terminate_no_longer_does() {
    let log = Log::default();
    let (web, wss) = echo_server(&log);
    let mut c = connect(web.local_addr(), "/");
    let open = log.wait_for("open:").expect("on_open ran");
    assert!(open.ends_with(":true:Connected"), "{open}");
    assert_eq!(wss.connections().len(), 1);
    c.close(None).unwrap();
    let _ = c.read();
    let term = log.wait_for("terminate:").expect("on_terminate ran");
    assert!(term.ends_with(":false:Closed"), "{term}");
    assert!(wss.connections().is_empty());
}

#[test]
fn on_connection_does_not_see_the_candidate_in_connections() {
    let log = Log::default();
    let (web, _wss) = echo_server(&log);
    let _c = connect(web.local_addr(), "/");
    assert_eq!(
        log.wait_for("connection:").as_deref(),
        Some("connection:/:0")
    );
}

#[test]
fn server_on_open_runs_before_any_connection_event() {
    let log = Log::default();
    let (web, _wss) = echo_server(&log);
    let _c = connect(web.local_addr(), "/");
    log.wait_for("open:").unwrap();
    assert_eq!(log.index_of("server-open"), Some(0));
}

#[test]
fn messages_sent_right_after_the_handshake_wait_for_on_open() {
    let log = Log::default();
    let web = web();
    let mut rec = Rec::new(&log);
    rec.open_delay = Duration::from_millis(300);
    let _wss = WebSocketServer::new(&web, rec, ServerOptions::default()).unwrap();
    let mut raw = raw_handshake(web.local_addr(), "/", &[]);
    assert_eq!(status_of(&raw.head), 101);
    write_frame(&mut raw.stream, 1, b"first");
    write_frame(&mut raw.stream, 1, b"second");
    log.wait_count("message:", 2);
    let lines = log.lines();
    let open = lines.iter().position(|l| l.starts_with("open:")).unwrap();
    let first = lines
        .iter()
        .position(|l| l.ends_with("text:first"))
        .unwrap();
    let second = lines
        .iter()
        .position(|l| l.ends_with("text:second"))
        .unwrap();
    assert!(open < first && first < second, "{lines:?}");
}

#[test]
fn close_frame_without_code_gives_1005_and_no_error() {
    let log = Log::default();
    let (web, _wss) = echo_server(&log);
    let mut raw = raw_handshake(web.local_addr(), "/", &[]);
    log.wait_for("open:").unwrap();
    write_frame(&mut raw.stream, 8, b"");
    let term = log.wait_for("terminate:").unwrap();
    assert!(term.contains(":1005:None:"), "{term}");
    assert_eq!(log.count("error:"), 0);
}

#[test]
fn dropped_tcp_connection_gives_on_error_then_1006() {
    let log = Log::default();
    let (web, _wss) = echo_server(&log);
    let raw = raw_handshake(web.local_addr(), "/", &[]);
    log.wait_for("open:").unwrap();
    drop(raw);
    let term = log.wait_for("terminate:").unwrap();
    assert!(term.contains(":1006:None:"), "{term}");
    let err = log.index_of("error:").expect("on_error ran");
    assert!(log.lines()[err].contains(":1006:HTTP:"));
    assert!(err < log.index_of("terminate:").unwrap());
}

#[test]
fn normal_close_keeps_the_reason_and_raises_no_error() {
    let log = Log::default();
    let (web, _wss) = echo_server(&log);
    let mut c = connect(web.local_addr(), "/");
    c.close(Some(CloseFrame {
        code: TCode::Normal,
        reason: "bye".into(),
    }))
    .unwrap();
    let term = log.wait_for("terminate:").unwrap();
    assert!(term.contains(":1000:Some(\"bye\"):"), "{term}");
    assert_eq!(log.count("error:"), 0);
}

#[test]
fn going_away_raises_on_error_before_on_terminate() {
    let log = Log::default();
    let (web, _wss) = echo_server(&log);
    let mut c = connect(web.local_addr(), "/");
    c.close(Some(CloseFrame {
        code: TCode::Away,
        reason: "".into(),
    }))
    .unwrap();
    let term = log.wait_for("terminate:").unwrap();
    assert!(term.contains(":1001:None:"), "{term}");
    let err = log.wait_for("error:").unwrap();
    assert!(err.contains(":1001:HTTP:"), "{err}");
    assert!(log.index_of("error:") < log.index_of("terminate:"));
}

#[test]
fn protocol_violation_gives_the_sent_code() {
    let log = Log::default();
    let (web, _wss) = echo_server(&log);
    let mut raw = raw_handshake(web.local_addr(), "/", &[]);
    log.wait_for("open:").unwrap();
    write_frame(&mut raw.stream, 1, &[0xff, 0xfe]); // invalid UTF-8 text
    assert_eq!(read_close(&mut raw.stream), Some(Some(1007)));
    let term = log.wait_for("terminate:").unwrap();
    assert!(term.contains(":1007:"), "{term}");
    assert!(log.wait_for("error:").unwrap().contains(":1007:HTTP:"));
}

#[test]
fn terminate_with_custom_code_sends_it_and_reports_it() {
    let log = Log::default();
    let web = web();
    let rec = Rec::new(&log).on_message(|ws, _| ws.terminate(Some(4001), Some("kicked")));
    let _wss = WebSocketServer::new(&web, rec, ServerOptions::default()).unwrap();
    let mut raw = raw_handshake(web.local_addr(), "/", &[]);
    write_frame(&mut raw.stream, 1, b"x");
    let (op, payload) = read_frame(&mut raw.stream).unwrap();
    assert_eq!(op, 8);
    assert_eq!(&payload[..2], &4001u16.to_be_bytes());
    assert_eq!(&payload[2..], b"kicked");
    write_frame(&mut raw.stream, 8, &payload[..2]);
    let term = log.wait_for("terminate:").unwrap();
    assert!(term.contains(":4001:"), "{term}");
    assert_eq!(log.count("error:"), 0, "our own close is no error");
}

#[test]
fn terminate_with_an_invalid_code_sends_1000_without_reason() {
    let log = Log::default();
    let web = web();
    let rec = Rec::new(&log).on_message(|ws, _| {
        ws.terminate(Some(2999), Some("not sent"));
        assert_eq!(ws.status(), Status::Closing);
        // A second call is a no-op.
        ws.terminate(Some(4000), None);
    });
    let _wss = WebSocketServer::new(&web, rec, ServerOptions::default()).unwrap();
    let mut raw = raw_handshake(web.local_addr(), "/", &[]);
    write_frame(&mut raw.stream, 1, b"x");
    let (op, payload) = read_frame(&mut raw.stream).unwrap();
    assert_eq!(op, 8);
    assert_eq!(payload, 1000u16.to_be_bytes());
    // Nothing else (no second close frame) before we answer.
    write_frame(&mut raw.stream, 8, &payload);
    assert!(log.wait_for("terminate:").unwrap().contains(":1000:"));
}

#[test]
fn send_on_a_closed_connection_is_dropped_silently() {
    let log = Log::default();
    let (web, wss) = echo_server(&log);
    let mut c = connect(web.local_addr(), "/");
    log.wait_for("open:").unwrap();
    let ws = wss.connections().pop().unwrap();
    c.close(None).unwrap();
    log.wait_for("terminate:").unwrap();
    assert_eq!(ws.status(), Status::Closed);
    assert_eq!(ws.send("late"), Err(SendError::Closed));
    assert_eq!(log.count("error:"), 0);
}

#[test]
fn ids_are_unique_increasing_and_connections_sorted() {
    let log = Log::default();
    let (web, wss) = echo_server(&log);
    let _a = connect(web.local_addr(), "/");
    let _b = connect(web.local_addr(), "/");
    let _c = connect(web.local_addr(), "/");
    log.wait_count("open:", 3);
    let ids: Vec<u64> = wss.connections().iter().map(|c| c.id()).collect();
    assert_eq!(ids.len(), 3);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert!(ids[0] >= 1);
}

#[test]
fn buffered_amount_is_readable_and_starts_near_zero() {
    let log = Log::default();
    let (web, wss) = echo_server(&log);
    let _c = connect(web.local_addr(), "/");
    log.wait_for("open:").unwrap();
    let ws = wss.connections().pop().unwrap();
    assert!(ws.buffered_amount() < 1024);
    assert_eq!(ws.wss().path(), None);
}

#[test]
fn an_oversized_message_closes_with_1009_and_reports_it() {
    let log = Log::default();
    let web = web_with(WebServerOptions {
        max_message_size: 1000,
        ..Default::default()
    });
    let _wss = WebSocketServer::new(&web, Rec::new(&log), ServerOptions::default()).unwrap();
    let mut raw = raw_handshake(web.local_addr(), "/", &[]);
    write_frame(&mut raw.stream, 2, &[0u8; 2000]);
    assert_eq!(read_close(&mut raw.stream), Some(Some(1009)));
    assert!(log.wait_for("terminate:").unwrap().contains(":1009:"));
    assert!(log.wait_for("error:").unwrap().contains(":1009:HTTP:"));
    // Another client is unaffected.
    let mut c = connect(web.local_addr(), "/");
    c.send(tungstenite::Message::text("fine")).unwrap();
    assert_eq!(read_text(&mut c), "fine");
}
