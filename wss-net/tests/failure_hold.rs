//! A peer that breaks the protocol, or sends its close, right after valid messages: with a
//! sink whose close reply is `Deferred`, the answers its consumer sends (from another
//! thread, later) still reach the peer, before the 1002 close or the close reply.

mod util;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use util::{
    client_frame, expect_fin, quick_config, raw_ws, read_frame, read_to_eof, server_holds_socket,
};
use wss_net::{
    CloseReply, ConnError, ConnId, Decision, EventSink, Net, NetEvent, NetHandle, Outgoing, Service,
};
use wss_proto::handshake::{validate_upgrade, Request};
use wss_proto::Message;

/// Hands batches to a consumer thread, as a server running callbacks elsewhere does.
struct Mailbox {
    tx: Sender<Vec<NetEvent>>,
    hold: bool,
}

impl EventSink for Mailbox {
    fn deliver(&self, batch: Vec<NetEvent>) {
        let _ = self.tx.send(batch);
    }

    fn close_reply(&self) -> CloseReply {
        if self.hold {
            CloseReply::Deferred
        } else {
            CloseReply::Auto
        }
    }
}

struct Upgrades(Arc<Mailbox>);

impl Service for Upgrades {
    fn on_request(&self, _conn: ConnId, _peer: SocketAddr, request: Request) -> Decision {
        match validate_upgrade(&request) {
            Ok(upgrade) => Decision::Upgrade {
                upgrade,
                extra_headers: Vec::new(),
                sink: self.0.clone(),
            },
            Err(e) => Decision::Respond {
                response: e.response(),
                keep_alive: false,
            },
        }
    }
}

/// What the consumer saw of a connection's end.
type Ends = Receiver<(ConnId, Option<ConnError>)>;

/// A slow consumer: echoes each message after `delay`, and calls `answered` after every
/// `Closed` when `release` is set.
fn consumer(net: NetHandle, rx: Receiver<Vec<NetEvent>>, delay: Duration, release: bool) -> Ends {
    let (ends_tx, ends) = crossbeam_channel::unbounded();
    thread::spawn(move || {
        for batch in rx {
            let mut sends = Vec::new();
            let mut released = Vec::new();
            for event in batch {
                match event {
                    NetEvent::Message { conn, message } => {
                        thread::sleep(delay);
                        let out = match message {
                            Message::Text(t) => Outgoing::Text(t),
                            Message::Binary(b) => Outgoing::Binary(b),
                        };
                        sends.push((conn, out));
                    }
                    NetEvent::Closed { conn, error, .. } => {
                        if release {
                            released.push(conn);
                        }
                        let _ = ends_tx.send((conn, error));
                    }
                    NetEvent::Opened { .. } => {}
                }
            }
            net.send_batch(sends);
            for conn in released {
                net.answered(conn);
            }
        }
    });
    ends
}

fn start(hold: bool, delay: Duration, release: bool) -> (Net, Ends) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let sink = Arc::new(Mailbox { tx, hold });
    let net = Net::bind(
        "127.0.0.1:0".parse().unwrap(),
        quick_config(),
        Arc::new(Upgrades(sink)),
    )
    .unwrap();
    let ends = consumer(net.handle(), rx, delay, release);
    (net, ends)
}

/// A text message, a frame with RSV2 set, a ping: one write, as Autobahn's case 3.2 sends.
fn message_then_violation() -> Vec<u8> {
    let mut bytes = client_frame(true, 0x1, b"Hello, world!");
    let mut bad = client_frame(true, 0x1, b"Hello, world!");
    bad[0] |= 0x20;
    bytes.extend_from_slice(&bad);
    bytes.extend_from_slice(&client_frame(true, 0x9, b""));
    bytes
}

fn expect_close_1002(s: &mut std::net::TcpStream) {
    let (op, payload) = read_frame(s).expect("a close frame");
    assert_eq!(op, 8, "expected the close frame");
    assert_eq!(payload, 1002u16.to_be_bytes());
    assert!(read_to_eof(s).is_empty(), "nothing after the close frame");
}

#[test]
fn echo_of_a_message_before_the_violation_precedes_the_close() {
    let (net, ends) = start(true, Duration::from_millis(100), true);
    let mut s = raw_ws(net.local_addr(), "/");
    let started = Instant::now();
    s.write_all(&message_then_violation()).unwrap();
    assert_eq!(
        read_frame(&mut s),
        Some((0x1, b"Hello, world!".to_vec())),
        "the echo comes first"
    );
    expect_close_1002(&mut s);
    // Sent on the consumer's answer, not at the deadline.
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    let (_, error) = ends.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(matches!(error, Some(ConnError::Protocol(_))), "{error:?}");
    // Reported once: no second Closed follows when the socket goes.
    assert!(ends.recv_timeout(Duration::from_millis(300)).is_err());
    net.shutdown(None);
}

#[test]
fn a_consumer_that_never_answers_gets_the_close_at_the_close_timeout() {
    let (net, ends) = start(true, Duration::ZERO, false);
    let mut s = raw_ws(net.local_addr(), "/");
    let started = Instant::now();
    s.write_all(&message_then_violation()).unwrap();
    assert_eq!(read_frame(&mut s), Some((0x1, b"Hello, world!".to_vec())));
    expect_close_1002(&mut s);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    assert!(ends.recv_timeout(Duration::from_secs(5)).is_ok());
    assert!(ends.recv_timeout(Duration::from_millis(200)).is_err());
    net.shutdown(None);
}

#[test]
fn with_auto_close_reply_the_close_goes_at_once_and_a_late_echo_is_dropped() {
    let (net, _ends) = start(false, Duration::from_millis(100), false);
    let mut s = raw_ws(net.local_addr(), "/");
    s.write_all(&message_then_violation()).unwrap();
    expect_close_1002(&mut s);
    net.shutdown(None);
}

#[test]
fn a_deferred_close_is_sent_when_the_net_shuts_down() {
    let (net, _ends) = start(true, Duration::ZERO, false);
    let mut s = raw_ws(net.local_addr(), "/");
    s.write_all(&message_then_violation()).unwrap();
    assert_eq!(read_frame(&mut s), Some((0x1, b"Hello, world!".to_vec())));
    let started = Instant::now();
    net.handle().shutdown(Some((
        wss_proto::CloseCode::GOING_AWAY,
        Duration::from_secs(5),
    )));
    expect_close_1002(&mut s);
    assert!(
        started.elapsed() < Duration::from_millis(800),
        "{:?}",
        started.elapsed()
    );
    net.shutdown(None);
}

/// A text message and the peer's close, one write: the close reply waits like a failure's.
fn message_then_close() -> Vec<u8> {
    let mut bytes = client_frame(true, 0x1, b"last words");
    bytes.extend_from_slice(&client_frame(true, 0x8, &1000u16.to_be_bytes()));
    bytes
}

fn expect_close_reply(s: &mut std::net::TcpStream) {
    let (op, payload) = read_frame(s).expect("a close frame");
    assert_eq!(op, 8, "expected the close frame");
    assert_eq!(payload, 1000u16.to_be_bytes());
    assert!(read_to_eof(s).is_empty(), "nothing after the close frame");
}

#[test]
fn echo_of_a_message_read_with_the_close_precedes_the_close_reply() {
    let (net, ends) = start(true, Duration::from_millis(100), true);
    let mut s = raw_ws(net.local_addr(), "/");
    let started = Instant::now();
    s.write_all(&message_then_close()).unwrap();
    assert_eq!(
        read_frame(&mut s),
        Some((0x1, b"last words".to_vec())),
        "the echo comes first"
    );
    expect_close_reply(&mut s);
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "sent on the consumer's answer, not at the deadline: {:?}",
        started.elapsed()
    );
    let (_, error) = ends.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(error, None, "a clean close");
    assert!(ends.recv_timeout(Duration::from_millis(300)).is_err());
    net.shutdown(None);
}

#[test]
fn a_deferred_close_reply_goes_at_the_close_timeout_without_an_answer() {
    let (net, ends) = start(true, Duration::ZERO, false);
    let mut s = raw_ws(net.local_addr(), "/");
    let started = Instant::now();
    s.write_all(&message_then_close()).unwrap();
    assert_eq!(read_frame(&mut s), Some((0x1, b"last words".to_vec())));
    expect_close_reply(&mut s);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    assert_eq!(ends.recv_timeout(Duration::from_secs(5)).unwrap().1, None);
    assert!(ends.recv_timeout(Duration::from_millis(200)).is_err());
    net.shutdown(None);
}

/// A close reply the consumer released ends the socket at once when the peer's close frame
/// was the last thing it sent: the echo, the close, then the FIN, while the client's side is
/// still open and the server holds no descriptor for it any more.
#[test]
fn a_released_close_reply_closes_the_socket_without_waiting_for_the_peer() {
    let (net, ends) = start(true, Duration::ZERO, true);
    let mut s = raw_ws(net.local_addr(), "/");
    s.write_all(&message_then_close()).unwrap();
    assert_eq!(read_frame(&mut s), Some((0x1, b"last words".to_vec())));
    let (op, payload) = read_frame(&mut s).expect("a close frame");
    assert_eq!((op, payload), (8, 1000u16.to_be_bytes().to_vec()));
    expect_fin(&mut s);
    assert!(
        !server_holds_socket(net.local_addr(), &s),
        "the server waits for the client's FIN"
    );
    assert_eq!(ends.recv_timeout(Duration::from_secs(5)).unwrap().1, None);
    net.shutdown(None);
}

/// One rule: a close that came alone waits for the consumer too, which answers at once.
#[test]
fn a_close_alone_is_answered_when_the_consumer_says_so() {
    let (net, ends) = start(true, Duration::ZERO, true);
    let mut s = raw_ws(net.local_addr(), "/");
    let started = Instant::now();
    s.write_all(&client_frame(true, 0x8, &1000u16.to_be_bytes()))
        .unwrap();
    expect_close_reply(&mut s);
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(ends.recv_timeout(Duration::from_secs(5)).unwrap().1, None);
    net.shutdown(None);
}
