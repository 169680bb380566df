//! A client that breaks the protocol right after valid messages (Autobahn 3.2, 4.1.3, 5.15):
//! the handler's answers to the messages before the violation reach it, then the 1002 close.

mod support;

use std::io::Write;
use std::time::Duration;

use support::deflate::{is_compressed, DeflateClient};
use support::*;
use wss_server::*;

/// A masked client frame with the given first byte (FIN, RSV bits, opcode).
fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [9u8, 8, 7, 6];
    let mut out = vec![first, 0x80 | payload.len() as u8];
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// A handler slow enough that its echo comes well after the loop saw the violation.
fn slow_echo(log: &Log) -> Rec {
    Rec::new(log).on_message(|ws, e| {
        std::thread::sleep(Duration::from_millis(100));
        let _ = ws.send(e.data.clone());
    })
}

#[test]
fn echo_of_the_message_before_a_bad_frame_precedes_the_1002_close() {
    let log = Log::default();
    let web = web();
    let _wss = WebSocketServer::new(&web, slow_echo(&log), ServerOptions::default()).unwrap();
    let mut raw = raw_handshake(web.local_addr(), "/", &[]);
    assert!(raw.head.starts_with("HTTP/1.1 101"), "{}", raw.head);
    // Text, then a text frame with RSV2 set, then a ping: one write.
    let mut bytes = frame(0x81, b"first");
    bytes.extend_from_slice(&frame(0x81 | 0x20, b"bad"));
    bytes.extend_from_slice(&frame(0x89, b""));
    raw.stream.write_all(&bytes).unwrap();
    assert_eq!(read_frame(&mut raw.stream), Some((1, b"first".to_vec())));
    assert_eq!(
        read_frame(&mut raw.stream),
        Some((8, 1002u16.to_be_bytes().to_vec()))
    );
    assert!(closed_without_bytes(&mut raw.stream));
    let term = log.wait_for("terminate:").unwrap();
    assert!(term.contains(":1002:"), "{term}");
    assert_eq!(log.count("message:"), 1);
}

#[test]
fn several_messages_before_a_bad_frame_are_all_echoed_in_order() {
    let log = Log::default();
    let web = web();
    let _wss = WebSocketServer::new(&web, slow_echo(&log), ServerOptions::default()).unwrap();
    let mut raw = raw_handshake(web.local_addr(), "/", &[]);
    let mut bytes = Vec::new();
    for text in ["a", "b", "c"] {
        bytes.extend_from_slice(&frame(0x81, text.as_bytes()));
    }
    // A continuation with no message started.
    bytes.extend_from_slice(&frame(0x80, b"x"));
    raw.stream.write_all(&bytes).unwrap();
    for text in ["a", "b", "c"] {
        assert_eq!(
            read_frame(&mut raw.stream),
            Some((1, text.as_bytes().to_vec()))
        );
    }
    assert_eq!(read_close(&mut raw.stream), Some(Some(1002)));
}

#[test]
fn a_compressed_echo_also_precedes_the_close() {
    let log = Log::default();
    let web = web_with(WebServerOptions::default().with_deflate(DeflateConfig::default()));
    let _wss = WebSocketServer::new(&web, slow_echo(&log), ServerOptions::default()).unwrap();
    let mut client =
        DeflateClient::connect(web.local_addr(), "/", Some(&DeflateConfig::default()), &[])
            .unwrap();
    assert!(client.params().is_some());
    let text = "compress me, compress me, compress me, compress me, compress me".repeat(8);
    client.send_text(&text);
    client.write_raw(&frame(0x81 | 0x10, b"bad"));
    let echo = client.next_frame().expect("the echo");
    assert!(is_compressed(&echo));
    assert_eq!(client.read_text(), text);
    assert_eq!(client.read_close_code(), Some(1002));
}

/// A message and the peer's close frame in one read: the protocol queues the close reply at
/// once, but the loop holds it until the worker has run `on_message` for that message, so the
/// echo (sent later from the worker) is not dropped and goes out first.
#[test]
fn echo_of_a_message_read_with_the_close_precedes_the_close_reply() {
    let log = Log::default();
    let web = web();
    let _wss = WebSocketServer::new(&web, slow_echo(&log), ServerOptions::default()).unwrap();
    let mut raw = raw_handshake(web.local_addr(), "/", &[]);
    assert!(raw.head.starts_with("HTTP/1.1 101"), "{}", raw.head);
    let mut bytes = frame(0x81, b"last words");
    bytes.extend_from_slice(&frame(0x88, &1000u16.to_be_bytes()));
    raw.stream.write_all(&bytes).unwrap();
    assert_eq!(
        read_frame(&mut raw.stream),
        Some((1, b"last words".to_vec()))
    );
    assert_eq!(read_frame(&mut raw.stream), Some((8, close_payload(1000))));
    assert!(closed_without_bytes(&mut raw.stream));
    let term = log.wait_for("terminate:").unwrap();
    assert!(term.contains(":1000:"), "{term}");
}

fn close_payload(code: u16) -> Vec<u8> {
    code.to_be_bytes().to_vec()
}

/// A handler that takes `delay` over each message before echoing it.
fn echo_after(log: &Log, delay: Duration) -> Rec {
    Rec::new(log).on_message(move |ws, e| {
        std::thread::sleep(delay);
        let _ = ws.send(e.data.clone());
    })
}

/// The close comes in its own read while the worker is still in `on_message`: the reply waits
/// for the worker like any other (one rule), so the echo of the message in progress still
/// reaches the peer, before the close reply.
#[test]
fn a_close_read_on_its_own_still_follows_the_answer_in_progress() {
    let log = Log::default();
    let web = web();
    let handler = echo_after(&log, Duration::from_millis(300));
    let _wss = WebSocketServer::new(&web, handler, ServerOptions::default()).unwrap();
    let mut raw = raw_handshake(web.local_addr(), "/", &[]);
    raw.stream.write_all(&frame(0x81, b"busy")).unwrap();
    // The worker is in the handler now, well before it echoes.
    log.wait_for("message:").unwrap();
    raw.stream
        .write_all(&frame(0x88, &1000u16.to_be_bytes()))
        .unwrap();
    assert_eq!(
        read_frame(&mut raw.stream),
        Some((1, b"busy".to_vec())),
        "the echo first"
    );
    assert_eq!(read_frame(&mut raw.stream), Some((8, close_payload(1000))));
    assert!(
        closed_without_bytes(&mut raw.stream),
        "nothing after the close"
    );
    let term = log.wait_for("terminate:").unwrap();
    assert!(term.contains(":1000:"), "{term}");
}

/// Two messages and the close in one write, a handler that takes 200 ms per message: both
/// echoes, in order, then the close reply; `on_terminate` sees the peer's code and reason.
#[test]
fn slow_echoes_of_messages_read_with_the_close_precede_the_close_reply() {
    let log = Log::default();
    let web = web();
    let handler = echo_after(&log, Duration::from_millis(200));
    let _wss = WebSocketServer::new(&web, handler, ServerOptions::default()).unwrap();
    let mut raw = raw_handshake(web.local_addr(), "/", &[]);
    let mut bytes = frame(0x81, b"one");
    bytes.extend_from_slice(&frame(0x81, b"two"));
    let mut close = 1000u16.to_be_bytes().to_vec();
    close.extend_from_slice(b"done");
    bytes.extend_from_slice(&frame(0x88, &close));
    raw.stream.write_all(&bytes).unwrap();
    assert_eq!(read_frame(&mut raw.stream), Some((1, b"one".to_vec())));
    assert_eq!(read_frame(&mut raw.stream), Some((1, b"two".to_vec())));
    assert_eq!(read_frame(&mut raw.stream), Some((8, close_payload(1000))));
    assert!(closed_without_bytes(&mut raw.stream));
    let term = log.wait_for("terminate:").unwrap();
    assert!(term.contains(":1000:Some(\"done\"):"), "{term}");
    assert_eq!(log.count("error:"), 0, "a clean close raises no on_error");
}

/// A handler that blocks past the close timeout (1 s here): the close reply goes out by that
/// deadline, and the echo sent after it never reaches the wire.
#[test]
fn a_handler_blocked_past_the_close_timeout_does_not_keep_the_close_reply() {
    let log = Log::default();
    let web = web_with(WebServerOptions {
        close_timeout: Duration::from_secs(1),
        ..WebServerOptions::default()
    });
    let handler = echo_after(&log, Duration::from_millis(1600));
    // Worker dispatch only: in loop dispatch a handler that blocks holds its loop, close
    // timer included (the price `Dispatch::Loop` documents).
    let options = ServerOptions::default().with_dispatch(Dispatch::Worker);
    let _wss = WebSocketServer::new(&web, handler, options).unwrap();
    let mut raw = raw_handshake(web.local_addr(), "/", &[]);
    let mut bytes = frame(0x81, b"stuck");
    bytes.extend_from_slice(&frame(0x88, &1000u16.to_be_bytes()));
    let sent = std::time::Instant::now();
    raw.stream.write_all(&bytes).unwrap();
    assert_eq!(
        read_frame(&mut raw.stream),
        Some((8, close_payload(1000))),
        "the close reply, without the echo"
    );
    let waited = sent.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_millis(1500),
        "held up to the bound: {waited:?}"
    );
    assert!(closed_without_bytes(&mut raw.stream), "nothing after it");
    let term = log.wait_for("terminate:").unwrap();
    assert!(term.contains(":1000:"), "{term}");
}
