//! Outgoing connections: `NetHandle::connect` runs a socket the caller upgraded as a client,
//! on the same loops as the server's connections or on loops without a listener.

mod util;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use util::*;
use wss_net::{ClientStream, ConnId, EventSink, Net, NetConfig, NetEvent, NetHandle, Outgoing};
use wss_proto::handshake::ClientHandshake;
use wss_proto::{CloseCode, Message};
use wss_proto::{CloseReply, Config, Connection, Role, Scratch};

/// Connects to `addr` and upgrades `/ws`, blocking; returns the socket and the bytes that
/// came after the `101`.
fn upgrade(addr: SocketAddr) -> (std::net::TcpStream, Vec<u8>) {
    let mut stream = tcp(addr);
    let mut hs = ClientHandshake::new("localhost", "/ws", [3; 16], &[]);
    stream.write_all(&hs.request_bytes()).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "EOF before the 101");
        if let Some(used) = hs.feed_response(&buf[..n]).unwrap() {
            stream.set_read_timeout(None).unwrap();
            return (stream, buf[used..n].to_vec());
        }
    }
}

fn client_state() -> Connection {
    let config = Config {
        mask_seed: 0x1234_5678_9abc_def1,
        ..Config::default()
    };
    Connection::new(Role::Client, config, Instant::now())
}

/// The client side's sink: every event on a channel.
struct ClientSink(crossbeam_channel::Sender<NetEvent>);

impl EventSink for ClientSink {
    fn deliver(&self, batch: Vec<NetEvent>) {
        for event in batch {
            let _ = self.0.send(event);
        }
    }
}

fn client_sink() -> (Arc<ClientSink>, crossbeam_channel::Receiver<NetEvent>) {
    let (tx, rx) = crossbeam_channel::unbounded();
    (Arc::new(ClientSink(tx)), rx)
}

fn next(rx: &crossbeam_channel::Receiver<NetEvent>) -> NetEvent {
    rx.recv_timeout(WAIT)
        .expect("a client event within the wait")
}

fn opened(rx: &crossbeam_channel::Receiver<NetEvent>) -> ConnId {
    match next(rx) {
        NetEvent::Opened { conn, .. } => conn,
        other => panic!("expected Opened, got {other:?}"),
    }
}

fn connect(
    handle: &NetHandle,
    addr: SocketAddr,
) -> (ConnId, crossbeam_channel::Receiver<NetEvent>) {
    let (stream, early) = upgrade(addr);
    assert!(early.is_empty());
    let (sink, rx) = client_sink();
    handle.connect(ClientStream::new(stream, client_state(), sink).unwrap());
    (opened(&rx), rx)
}

#[test]
fn a_client_connection_on_the_server_loops_is_masked_echoed_and_closed() {
    let server = start(quick_config(), true);
    let (client, rx) = connect(&server.handle, server.addr);
    let on_server = server.expect_opened();
    assert_eq!(server.handle.stats().connections, 2, "both ends counted");

    server
        .handle
        .send(client, Outgoing::Text("from the client".into()));
    // The server accepted the frame (an unmasked one fails with 1002) and echoed it.
    match server.next_event() {
        NetEvent::Message { message, .. } => {
            assert_eq!(message, Message::Text("from the client".into()))
        }
        other => panic!("{other:?}"),
    }
    match next(&rx) {
        NetEvent::Message { conn, message } => {
            assert_eq!(conn, client);
            assert_eq!(message, Message::Text("from the client".into()));
        }
        other => panic!("{other:?}"),
    }
    server.handle.send(client, Outgoing::Binary(vec![0, 255]));
    match next(&rx) {
        NetEvent::Message { message, .. } => assert_eq!(message, Message::Binary(vec![0, 255])),
        other => panic!("{other:?}"),
    }

    server
        .handle
        .close(client, CloseCode(4001), "client done".into());
    let (code, reason, error) = server.expect_closed(on_server);
    assert_eq!(
        (code, reason.as_str(), error),
        (CloseCode(4001), "client done", None)
    );
    loop {
        match next(&rx) {
            NetEvent::Closed {
                conn, code, error, ..
            } => {
                assert_eq!((conn, code, error), (client, CloseCode(4001), None));
                break;
            }
            NetEvent::Message { .. } => {}
            other => panic!("{other:?}"),
        }
    }
    let deadline = Instant::now() + WAIT;
    while server.handle.stats().connections != 0 {
        assert!(Instant::now() < deadline, "connections not released");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// RFC 6455 §7.1.1: the server closes TCP first, a client waits for it. The server's
/// shortcut (closing at once after a clean closing handshake) is not the client's: after the
/// handshake, whose close frame was the server's last byte, a client connection half-closes
/// and keeps its socket until the server's EOF.
#[test]
fn a_client_keeps_its_socket_until_the_server_closes_tcp() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // A raw server that answers the upgrade and the close, then keeps its socket open.
    let peer = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        let head = read_head(&mut s);
        let key = testkit::raw::header(&head, "sec-websocket-key").expect("a key");
        let accept = wss_proto::handshake::accept_key(key);
        let response = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
        );
        s.write_all(response.as_bytes()).unwrap();
        // The client's close: 2 header bytes, 4 mask bytes, the 2-byte code.
        let mut close = [0u8; 8];
        s.read_exact(&mut close).unwrap();
        assert_eq!(close[0], 0x88, "a close frame");
        s.write_all(&[0x88, 0x02, 0x03, 0xe8]).unwrap();
        s
    });
    let (stream, early) = upgrade(addr);
    assert!(early.is_empty());
    let client_port = stream.local_addr().unwrap().port();
    let net = Net::start(NetConfig {
        threads: 1,
        ..NetConfig::default()
    })
    .unwrap();
    let (sink, rx) = client_sink();
    net.handle()
        .connect(ClientStream::new(stream, client_state(), sink).unwrap());
    let client = opened(&rx);
    net.handle().close(client, CloseCode::NORMAL, String::new());
    let mut s = peer.join().unwrap();
    // The client's FIN comes after the handshake; its socket stays open meanwhile.
    let mut buf = [0u8; 16];
    assert_eq!(s.read(&mut buf).unwrap(), 0, "the client's FIN");
    assert!(
        socket_held(client_port, addr.port()),
        "the client closed its socket before the server's EOF"
    );
    match next(&rx) {
        NetEvent::Closed {
            conn, code, error, ..
        } => {
            assert_eq!((conn, code, error), (client, CloseCode::NORMAL, None))
        }
        other => panic!("{other:?}"),
    }
    drop(s);
    let deadline = Instant::now() + WAIT;
    while socket_held(client_port, addr.port()) && Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(!socket_held(client_port, addr.port()), "closed on our EOF");
    net.shutdown(None);
}

#[test]
fn frames_received_before_the_hand_over_come_after_opened() {
    let server = start(quick_config(), true);
    let (stream, _) = upgrade(server.addr);
    let mut ws = client_state();
    // As if these bytes had come in the same read as the 101.
    ws.receive(
        &mut Scratch::new(),
        Instant::now(),
        &[0x81, 0x02, b'h', b'i'],
    );
    let (sink, rx) = client_sink();
    server
        .handle
        .connect(ClientStream::new(stream, ws, sink).unwrap());
    let conn = opened(&rx);
    match next(&rx) {
        NetEvent::Message { conn: c, message } => {
            assert_eq!(c, conn);
            assert_eq!(message, Message::Text("hi".into()));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn loops_without_a_listener_run_client_connections() {
    let server = start(quick_config(), true);
    let net = Net::start(NetConfig {
        threads: 1,
        ..NetConfig::default()
    })
    .unwrap();
    assert_eq!(net.local_addr().port(), 0);
    let (client, rx) = connect(&net.handle(), server.addr);
    net.handle().send(client, Outgoing::Text("echo".into()));
    match next(&rx) {
        NetEvent::Message { message, .. } => assert_eq!(message, Message::Text("echo".into())),
        other => panic!("{other:?}"),
    }
    // Shutting the client loops down reports the connection's end.
    net.shutdown(None);
    match next(&rx) {
        NetEvent::Closed { conn, code, .. } => {
            assert_eq!((conn, code), (client, CloseCode::ABNORMAL))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_server_side_protocol_state_is_refused() {
    let server = start(quick_config(), true);
    let (stream, _) = upgrade(server.addr);
    let ws = Connection::new(Role::Server, Config::default(), Instant::now());
    let (sink, _rx) = client_sink();
    let err = ClientStream::new(stream, ws, sink).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

#[test]
fn a_failure_in_the_bytes_before_the_hand_over_defers_its_close_like_any_other() {
    let server = start(quick_config(), false);
    let (stream, _) = upgrade(server.addr);
    // An outgoing connection's own config decides: its close reply waits for the consumer.
    let config = Config {
        mask_seed: 0x1234_5678_9abc_def1,
        close_reply: CloseReply::Deferred,
        ..Config::default()
    };
    let mut ws = Connection::new(Role::Client, config, Instant::now());
    // A whole message, then a continuation frame with nothing to continue (1002), as if both
    // had come in the read that brought the 101.
    let early = [0x81, 0x02, b'h', b'i', 0x80, 0x00];
    ws.receive(&mut Scratch::new(), Instant::now(), &early);
    let (tx, rx) = crossbeam_channel::unbounded();
    let sink = Arc::new(ClientSink(tx));
    server
        .handle
        .connect(ClientStream::new(stream, ws, sink).unwrap());
    let on_server = server.expect_opened();
    let client = opened(&rx);
    match next(&rx) {
        NetEvent::Message { message, .. } => assert_eq!(message, Message::Text("hi".into())),
        other => panic!("{other:?}"),
    }
    match next(&rx) {
        NetEvent::Closed { code, .. } => assert_eq!(code, CloseCode::PROTOCOL_ERROR),
        other => panic!("{other:?}"),
    }
    // The answer to the message goes out before the deferred close frame.
    server.handle.send(client, Outgoing::Text("answer".into()));
    server.handle.answered(client);
    match server.next_event() {
        NetEvent::Message { message, .. } => assert_eq!(message, Message::Text("answer".into())),
        other => panic!("the answer must come before the close: {other:?}"),
    }
    let (code, _, _) = server.expect_closed(on_server);
    assert_eq!(code, CloseCode::PROTOCOL_ERROR);
}
