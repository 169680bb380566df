//! The rules of the callbacks, against servers that misbehave on purpose: the 1005/1006
//! codes, failures before the connection opens, timeouts, the message limit, panics,
//! `terminate` while connecting, and the `object` data type.

mod support;

use std::io::Write;
use std::time::Duration;

use support::{raw_server, silent_server, Ev, Recorder};
use wss_client::{
    codes, ClientHandler, ClientOptions, Data, DataType, MessageEvent, Status, WebSocket,
};

fn error_code(ev: Ev) -> (i64, String) {
    match ev {
        Ev::Error(e) => (e.err_code, e.component_signature),
        other => panic!("expected on_error, got {other:?}"),
    }
}

#[test]
fn a_close_frame_without_a_code_gives_1005_and_no_error() {
    let url = raw_server(|mut s| {
        s.write_all(&[0x88, 0x00]).unwrap();
        // Read the client's answer so our close is not reset away before it arrives.
        let _ = std::io::Read::read(&mut s, &mut [0u8; 16]);
    });
    let (rec, events) = Recorder::new();
    let _ws = WebSocket::connect(&url, rec, ClientOptions::default()).unwrap();
    events.expect_open();
    assert_eq!(events.next(), Ev::Terminate(1005, None));
    events.assert_finished();
}

#[test]
fn a_dropped_socket_gives_on_error_then_1006() {
    let url = raw_server(drop);
    let (rec, events) = Recorder::new();
    let ws = WebSocket::connect(&url, rec, ClientOptions::default()).unwrap();
    events.expect_open();
    assert_eq!(error_code(events.next()), (1006, "HTTP".to_owned()));
    assert_eq!(events.next(), Ev::Terminate(1006, None));
    assert_eq!(ws.status(), Status::Closed);
    events.assert_finished();
}

#[test]
fn a_refused_connection_gives_on_error_then_1006_without_on_open() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (rec, events) = Recorder::new();
    let ws = WebSocket::connect(
        &format!("ws://127.0.0.1:{port}/"),
        rec,
        ClientOptions::default(),
    )
    .unwrap();
    assert_eq!(
        error_code(events.next()),
        (codes::CONNECT_FAILED, codes::COMPONENT.to_owned())
    );
    assert_eq!(events.next(), Ev::Terminate(1006, None));
    assert!(ws.wait_terminated(Some(support::WAIT)));
    events.assert_finished();
}

#[test]
fn a_server_that_never_answers_hits_the_handshake_timeout() {
    let (_listener, url) = silent_server();
    let (rec, events) = Recorder::new();
    let options = ClientOptions::default().with_handshake_timeout(Duration::from_millis(300));
    let _ws = WebSocket::connect(&url, rec, options).unwrap();
    assert_eq!(
        error_code(events.next()),
        (codes::HANDSHAKE_TIMEOUT, codes::COMPONENT.to_owned())
    );
    assert_eq!(events.next(), Ev::Terminate(1006, None));
}

#[test]
fn terminate_while_connecting_ends_with_1006_and_no_error() {
    let (_listener, url) = silent_server();
    let (rec, events) = Recorder::new();
    let ws = WebSocket::connect(&url, rec, ClientOptions::default()).unwrap();
    assert_eq!(ws.status(), Status::Connecting);
    ws.terminate(None, None);
    assert_eq!(events.next(), Ev::Terminate(1006, None));
    assert_eq!(ws.status(), Status::Closed);
    events.assert_finished();
}

#[test]
fn a_message_over_the_limit_fails_with_1009() {
    let url = raw_server(|mut s| {
        // One unmasked binary frame of 2 KiB (126 form).
        let mut frame = vec![0x82, 126, 0x08, 0x00];
        frame.extend(std::iter::repeat_n(7u8, 2048));
        s.write_all(&frame).unwrap();
        let _ = std::io::Read::read(&mut s, &mut [0u8; 64]);
    });
    let (rec, events) = Recorder::new();
    let options = ClientOptions::default().with_max_message_size(1024);
    let _ws = WebSocket::connect(&url, rec, options).unwrap();
    events.expect_open();
    assert_eq!(error_code(events.next()), (1009, "HTTP".to_owned()));
    assert_eq!(events.next(), Ev::Terminate(1009, None));
}

#[test]
fn a_server_frame_with_a_mask_fails_with_1002() {
    let url = raw_server(|mut s| {
        // A masked text frame "hi" from a server breaks RFC 6455 §5.1.
        s.write_all(&[0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2])
            .unwrap();
        let _ = std::io::Read::read(&mut s, &mut [0u8; 64]);
    });
    let (rec, events) = Recorder::new();
    let _ws = WebSocket::connect(&url, rec, ClientOptions::default()).unwrap();
    events.expect_open();
    assert_eq!(error_code(events.next()), (1002, "HTTP".to_owned()));
    assert_eq!(events.next(), Ev::Terminate(1002, None));
}

/// Panics on every message; records the rest.
struct Panicky(std::sync::mpsc::Sender<Ev>);

impl ClientHandler for Panicky {
    fn on_message(&mut self, _: &WebSocket, event: &MessageEvent) {
        panic!("handler broke on {:?}", event.data);
    }
    fn on_error(&mut self, _: &WebSocket, event: &wss_client::ErrorEvent) {
        let _ = self.0.send(Ev::Error(event.errors[0].clone()));
    }
    fn on_terminate(&mut self, _: &WebSocket, event: &wss_client::TerminateEvent) {
        let _ = self.0.send(Ev::Terminate(event.code, event.reason.clone()));
    }
}

#[test]
fn a_panic_in_a_callback_goes_to_on_error_and_the_connection_stays_open() {
    let url = raw_server(|mut s| {
        s.write_all(&[0x81, 0x01, b'a', 0x81, 0x01, b'b']).unwrap();
        // Then a normal close once the client has had time to fail twice.
        std::thread::sleep(Duration::from_millis(200));
        s.write_all(&[0x88, 0x02, 0x03, 0xe8]).unwrap();
        let _ = std::io::Read::read(&mut s, &mut [0u8; 64]);
    });
    let (tx, rx) = std::sync::mpsc::channel();
    let _ws = WebSocket::connect(&url, Panicky(tx), ClientOptions::default()).unwrap();
    let events = support::Events(rx);
    for data in ["a", "b"] {
        match events.next() {
            Ev::Error(e) => {
                assert_eq!(e.err_code, codes::CALLBACK_PANICKED);
                assert!(e.message.contains(data), "{}", e.message);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(events.next(), Ev::Terminate(1000, None));
}

#[test]
fn object_data_type_parses_json_and_reports_bad_json_without_closing() {
    let url = raw_server(|mut s| {
        s.write_all(&[0x81, 0x07]).unwrap();
        s.write_all(br#"{"a":1}"#).unwrap();
        s.write_all(&[0x81, 0x01, b'{']).unwrap();
        s.write_all(&[0x81, 0x01, b'2']).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        s.write_all(&[0x88, 0x02, 0x03, 0xe8]).unwrap();
        let _ = std::io::Read::read(&mut s, &mut [0u8; 64]);
    });
    let (rec, events) = Recorder::new();
    let options = ClientOptions::default().with_data_type(DataType::Object);
    let ws = WebSocket::connect(&url, rec, options).unwrap();
    assert_eq!(ws.data_type(), DataType::Object);
    events.expect_open();
    assert_eq!(events.message(), Data::Object(serde_json::json!({"a": 1})));
    assert_eq!(error_code(events.next()), (1007, "JSON".to_owned()));
    assert_eq!(events.message(), Data::Object(serde_json::json!(2)));
    assert_eq!(events.next(), Ev::Terminate(1000, None));
}

#[test]
fn invalid_urls_are_refused_before_anything_runs() {
    let (rec, _events) = Recorder::new();
    match WebSocket::connect("http://127.0.0.1/", rec, ClientOptions::default()) {
        Err(wss_client::ConnectError::InvalidUrl(why)) => assert!(why.contains("scheme"), "{why}"),
        other => panic!("{other:?}"),
    }
}
