//! The upgraded phase: echo, close codes, misbehaving peers, slow readers, many connections.

mod util;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use testkit::raw::close_payload;
use tungstenite::protocol::frame::coding::CloseCode as TCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::Message as TMessage;
use util::*;
use wss_net::{ConnError, NetConfig, NetEvent, Outgoing};
use wss_proto::{CloseCode, Message, ProtocolError};

#[test]
fn echo_keeps_text_and_binary_and_reports_the_peer_close_code() {
    let server = start(quick_config(), true);
    let mut client = ws_client(server.addr, "/ws");
    let conn = server.expect_opened();
    client.send(TMessage::text("héllo")).unwrap();
    assert_eq!(client.read().unwrap(), TMessage::text("héllo"));
    client.send(TMessage::binary(vec![0u8, 1, 2, 255])).unwrap();
    assert_eq!(
        client.read().unwrap(),
        TMessage::binary(vec![0u8, 1, 2, 255])
    );
    match server.next_event() {
        NetEvent::Message { message, .. } => assert_eq!(message, Message::Text("héllo".into())),
        other => panic!("{other:?}"),
    }
    client
        .close(Some(CloseFrame {
            code: TCode::Library(4001),
            reason: "bye".into(),
        }))
        .unwrap();
    // The echo of our close comes back, then the server closes TCP.
    loop {
        match client.read() {
            Ok(TMessage::Close(Some(frame))) => assert_eq!(u16::from(frame.code), 4001),
            Ok(_) => {}
            Err(tungstenite::Error::ConnectionClosed) => break,
            Err(e) => panic!("{e}"),
        }
    }
    let (code, reason, error) = server.expect_closed(conn);
    assert_eq!(code, CloseCode(4001));
    assert_eq!(reason, "bye");
    assert_eq!(error, None);
}

#[test]
fn close_frame_without_code_is_reported_as_1005() {
    let server = start(quick_config(), false);
    let mut s = raw_ws(server.addr, "/ws");
    let conn = server.expect_opened();
    s.write_all(&client_frame(true, 8, b"")).unwrap();
    assert_eq!(read_frame(&mut s), Some((8, Vec::new())));
    assert!(read_to_eof(&mut s).is_empty(), "FIN after the echo");
    let (code, _, error) = server.expect_closed(conn);
    assert_eq!(code, CloseCode::NO_STATUS);
    assert_eq!(error, None);
}

/// RFC 6455 §7.1.1: after the closing handshake the server closes TCP first. When the peer's
/// close frame was the last thing it sent, the server closes the socket at once: the close
/// frame, then EOF, while the client has not closed its side, and the server holds no
/// descriptor any more (a FIN then a wait for the client's FIN would keep it).
#[test]
fn a_close_that_ends_the_peer_input_closes_the_socket_at_once() {
    let server = start(quick_config(), false);
    let mut s = raw_ws(server.addr, "/ws");
    let conn = server.expect_opened();
    s.write_all(&client_frame(true, 8, &close_payload(1000, b"done")))
        .unwrap();
    assert_eq!(
        read_frame(&mut s),
        Some((8, 1000u16.to_be_bytes().to_vec()))
    );
    expect_fin(&mut s);
    assert!(
        !server_holds_socket(server.addr, &s),
        "the server still holds the socket, waiting for the client's FIN"
    );
    let (code, reason, error) = server.expect_closed(conn);
    assert_eq!(
        (code, reason.as_str(), error),
        (CloseCode::NORMAL, "done", None)
    );
}

/// The same when the server began the handshake: the client's answer ends it.
#[test]
fn a_close_answered_as_the_last_bytes_closes_the_socket_at_once() {
    let server = start(quick_config(), false);
    let mut s = raw_ws(server.addr, "/ws");
    let conn = server.expect_opened();
    server
        .handle
        .close(conn, CloseCode::GOING_AWAY, "bye".to_owned());
    let (op, payload) = read_frame(&mut s).expect("the server's close");
    assert_eq!((op, &payload[..2]), (8, &1001u16.to_be_bytes()[..]));
    s.write_all(&client_frame(true, 8, &close_payload(1001, b"")))
        .unwrap();
    expect_fin(&mut s);
    assert!(!server_holds_socket(server.addr, &s));
    let (code, _, error) = server.expect_closed(conn);
    assert_eq!((code, error), (CloseCode::GOING_AWAY, None));
}

/// Bytes behind the close frame: the peer is not done sending, and a socket closed now would
/// answer its next bytes with a reset. The safe path stays: the close frame, a FIN (not a
/// reset), the rest drained until the client's EOF.
#[test]
fn bytes_after_the_close_frame_keep_the_fin_and_drain_ending() {
    let server = start(quick_config(), false);
    let mut s = raw_ws(server.addr, "/ws");
    let conn = server.expect_opened();
    let mut bytes = client_frame(true, 8, &close_payload(1000, b""));
    bytes.extend_from_slice(&client_frame(true, 1, b"after the close"));
    s.write_all(&bytes).unwrap();
    assert_eq!(
        read_frame(&mut s),
        Some((8, 1000u16.to_be_bytes().to_vec()))
    );
    expect_fin(&mut s);
    assert!(
        server_holds_socket(server.addr, &s),
        "the server closed at once despite bytes after the close frame"
    );
    // More bytes are still taken (discarded), not answered with a reset.
    s.write_all(&client_frame(true, 1, b"still talking"))
        .unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    expect_fin(&mut s);
    let deadline = Instant::now() + WAIT;
    while server_holds_socket(server.addr, &s) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    assert!(
        !server_holds_socket(server.addr, &s),
        "closed after our FIN"
    );
    let (code, _, error) = server.expect_closed(conn);
    assert_eq!((code, error), (CloseCode::NORMAL, None));
}

#[test]
fn frames_in_the_same_packet_as_the_head_are_delivered() {
    let server = start(quick_config(), true);
    let mut s = tcp(server.addr);
    let mut wire = upgrade_request("/ws").into_bytes();
    wire.extend(client_frame(true, 1, b"one"));
    wire.extend(client_frame(true, 1, b"two"));
    s.write_all(&wire).unwrap();
    let head = read_head(&mut s);
    assert!(
        head.contains("X-Test: yes"),
        "extra headers are sent: {head}"
    );
    assert_eq!(read_frame(&mut s), Some((1, b"one".to_vec())));
    assert_eq!(read_frame(&mut s), Some((1, b"two".to_vec())));
}

#[test]
fn one_deliver_per_turn_carries_many_messages_in_order() {
    let server = start(quick_config(), false);
    let mut s = raw_ws(server.addr, "/ws");
    let conn = server.expect_opened();
    let before = server.sink.delivers.load(Ordering::Relaxed);
    let mut wire = Vec::new();
    for i in 0..200 {
        wire.extend(client_frame(true, 1, format!("m{i}").as_bytes()));
    }
    s.write_all(&wire).unwrap();
    for i in 0..200 {
        match server.next_event() {
            NetEvent::Message { conn: c, message } => {
                assert_eq!(c, conn);
                assert_eq!(message, Message::Text(format!("m{i}")));
            }
            other => panic!("{other:?}"),
        }
    }
    let delivers = server.sink.delivers.load(Ordering::Relaxed) - before;
    assert!(
        delivers < 20,
        "{delivers} deliver calls for 200 messages in one write"
    );
}

#[test]
fn protocol_violation_sends_1002_and_reports_it_with_the_error() {
    let server = start(quick_config(), false);
    let mut s = raw_ws(server.addr, "/ws");
    let conn = server.expect_opened();
    // An unmasked client frame.
    s.write_all(&[0x81, 0x02, b'h', b'i']).unwrap();
    let (op, payload) = read_frame(&mut s).unwrap();
    assert_eq!(op, 8);
    assert_eq!(&payload[..2], &1002u16.to_be_bytes());
    assert!(read_to_eof(&mut s).is_empty());
    let (code, _, error) = server.expect_closed(conn);
    assert_eq!(code, CloseCode::PROTOCOL_ERROR);
    assert_eq!(
        error,
        Some(ConnError::Protocol(ProtocolError::UnmaskedFrameFromClient))
    );
}

#[test]
fn abrupt_reset_mid_frame_is_reported_as_1006() {
    let server = start(quick_config(), false);
    let s = raw_ws(server.addr, "/ws");
    let conn = server.expect_opened();
    let frame = client_frame(true, 2, &[7u8; 1000]);
    (&s).write_all(&frame[..300]).unwrap();
    thread::sleep(Duration::from_millis(20));
    // Linger zero: close() sends RST instead of FIN.
    socket2::SockRef::from(&s)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(s);
    let (code, _, error) = server.expect_closed(conn);
    assert_eq!(code, CloseCode::ABNORMAL);
    assert_eq!(error, Some(ConnError::ResetByPeer));
}

#[test]
fn eof_mid_frame_is_reported_as_1006() {
    let server = start(quick_config(), false);
    let mut s = raw_ws(server.addr, "/ws");
    let conn = server.expect_opened();
    let frame = client_frame(true, 2, &[7u8; 1000]);
    s.write_all(&frame[..300]).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let (code, _, error) = server.expect_closed(conn);
    assert_eq!(code, CloseCode::ABNORMAL);
    assert_eq!(
        error,
        Some(ConnError::Io(std::io::ErrorKind::UnexpectedEof))
    );
}

#[test]
fn unanswered_close_is_destroyed_at_the_close_timeout() {
    let mut config = quick_config();
    config.proto.close_timeout = Duration::from_millis(300);
    let server = start(config, false);
    let mut s = raw_ws(server.addr, "/ws");
    let conn = server.expect_opened();
    let started = Instant::now();
    server
        .handle
        .close(conn, CloseCode::NORMAL, "going".to_owned());
    let (op, payload) = read_frame(&mut s).unwrap();
    assert_eq!(op, 8);
    assert_eq!(&payload[..2], &1000u16.to_be_bytes());
    assert_eq!(&payload[2..], b"going");
    // We never answer: the server destroys the socket at the close timeout.
    assert!(read_to_eof(&mut s).is_empty());
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(250), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    let (code, _, error) = server.expect_closed(conn);
    assert_eq!(code, CloseCode::ABNORMAL);
    assert_eq!(error, Some(ConnError::CloseTimeout));
}

#[test]
fn answered_close_reports_the_peer_code() {
    let server = start(quick_config(), false);
    let mut client = ws_client(server.addr, "/ws");
    let conn = server.expect_opened();
    server
        .handle
        .close(conn, CloseCode::GOING_AWAY, "later".to_owned());
    // tungstenite answers the close and then sees the server's FIN.
    loop {
        match client.read() {
            Ok(TMessage::Close(Some(frame))) => {
                assert_eq!(frame.code, TCode::Away);
                assert_eq!(frame.reason.as_str(), "later");
            }
            Ok(other) => panic!("{other:?}"),
            Err(tungstenite::Error::ConnectionClosed) => break,
            Err(e) => panic!("{e}"),
        }
    }
    let (code, _, error) = server.expect_closed(conn);
    assert_eq!(code, CloseCode::GOING_AWAY);
    assert_eq!(error, None);
}

#[test]
fn abort_drops_without_a_close_frame() {
    let server = start(quick_config(), false);
    let mut s = raw_ws(server.addr, "/ws");
    let conn = server.expect_opened();
    server.handle.abort(conn);
    assert!(read_to_eof(&mut s).is_empty(), "no close frame");
    let (code, _, error) = server.expect_closed(conn);
    assert_eq!(code, CloseCode::ABNORMAL);
    assert_eq!(error, Some(ConnError::Aborted));
}

#[test]
fn idle_connection_is_pinged_then_dropped_at_the_idle_timeout() {
    let mut config = quick_config();
    config.proto.idle_timeout = Some(Duration::from_millis(400));
    let server = start(config, false);
    let mut s = raw_ws(server.addr, "/ws");
    let conn = server.expect_opened();
    let (op, _) = read_frame(&mut s).expect("a ping at half the idle timeout");
    assert_eq!(op, 9);
    assert!(read_to_eof(&mut s).is_empty());
    let (code, _, error) = server.expect_closed(conn);
    assert_eq!(code, CloseCode::ABNORMAL);
    assert_eq!(error, Some(ConnError::IdleTimeout));
}

#[test]
fn slow_reader_is_dropped_at_the_outgoing_bound_and_others_still_echo() {
    const LIMIT: usize = 2 << 20;
    let config = NetConfig {
        max_outgoing: LIMIT,
        ..quick_config()
    };
    let server = start(config, true);
    let stalled = raw_ws(server.addr, "/ws");
    socket2::SockRef::from(&stalled)
        .set_recv_buffer_size(64 * 1024)
        .unwrap();
    let stalled_id = server.expect_opened();
    let mut other = ws_client(server.addr, "/ws");
    let other_id = server.expect_opened();

    // 100 MB towards a client that reads nothing, shared frames and owned ones mixed.
    let chunk = vec![0u8; 1 << 20];
    let mut frame = vec![0x82, 127];
    frame.extend_from_slice(&(chunk.len() as u64).to_be_bytes());
    frame.extend_from_slice(&chunk);
    let shared: std::sync::Arc<[u8]> = frame.into();
    for i in 0..100 {
        let msg = if i % 2 == 0 {
            Outgoing::Shared(shared.clone())
        } else {
            Outgoing::Binary(chunk.clone())
        };
        server.handle.send(stalled_id, msg);
    }
    let (code, _, error) = server.expect_closed(stalled_id);
    assert_eq!(code, CloseCode::ABNORMAL);
    assert_eq!(error, Some(ConnError::OutgoingOverflow { limit: LIMIT }));

    other.send(TMessage::text("alive")).unwrap();
    assert_eq!(other.read().unwrap(), TMessage::text("alive"));
    let _ = other_id;
    drop(stalled);
}

#[test]
fn buffered_amount_follows_the_queue() {
    let server = start(quick_config(), false);
    let s = raw_ws(server.addr, "/ws");
    socket2::SockRef::from(&s)
        .set_recv_buffer_size(16 * 1024)
        .unwrap();
    let (conn, buffered) = match server.next_event() {
        NetEvent::Opened { conn, buffered, .. } => (conn, buffered),
        other => panic!("{other:?}"),
    };
    for _ in 0..16 {
        server
            .handle
            .send(conn, Outgoing::Binary(vec![1u8; 1 << 20]));
    }
    let deadline = Instant::now() + WAIT;
    while buffered.get() < 4 << 20 {
        assert!(Instant::now() < deadline, "buffered never grew");
        thread::sleep(Duration::from_millis(5));
    }
    // Read everything: the amount drops back to zero.
    let mut s = s;
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    while got < 16 * ((1 << 20) + 10) {
        got += s.read(&mut buf).unwrap();
    }
    let deadline = Instant::now() + WAIT;
    while buffered.get() != 0 {
        assert!(Instant::now() < deadline, "buffered never drained");
        thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn thousand_concurrent_connections_echo() {
    raise_fd_limit();
    let server = start(quick_config(), true);
    let clients: Vec<_> = (0..1000).map(|_| raw_ws(server.addr, "/ws")).collect();
    // Every client sends, then every client reads: all 1000 are open at once.
    for (i, s) in clients.iter().enumerate() {
        (&*s)
            .write_all(&client_frame(true, 1, format!("c{i}").as_bytes()))
            .unwrap();
    }
    for (i, mut s) in clients.into_iter().enumerate() {
        assert_eq!(read_frame(&mut s), Some((1, format!("c{i}").into_bytes())));
    }
}

#[test]
fn accepted_connections_are_spread_evenly_over_the_loops() {
    let server = start(quick_config(), false);
    let _clients: Vec<_> = (0..10).map(|_| raw_ws(server.addr, "/ws")).collect();
    let mut per_loop = [0usize; 2];
    for _ in 0..10 {
        // The loop index is the top byte of the id (see `ConnId`).
        per_loop[(server.expect_opened().as_u64() >> 56) as usize] += 1;
    }
    assert_eq!(per_loop, [5, 5]);
}

#[test]
fn shared_frame_reaches_every_receiver_unchanged() {
    let server = start(quick_config(), false);
    let mut clients: Vec<_> = (0..3).map(|_| ws_client(server.addr, "/ws")).collect();
    let ids: Vec<_> = (0..3).map(|_| server.expect_opened()).collect();
    let mut frame = Vec::new();
    wss_proto::encode_frame(&mut frame, true, wss_proto::Opcode::Text, b"to all", None);
    let shared: std::sync::Arc<[u8]> = frame.into();
    server.handle.send_batch(
        ids.iter()
            .map(|id| (*id, Outgoing::Shared(shared.clone())))
            .collect(),
    );
    for c in &mut clients {
        assert_eq!(c.read().unwrap(), TMessage::text("to all"));
    }
}

#[test]
fn a_burst_of_small_and_large_shared_frames_arrives_complete_and_in_order() {
    // One batch queues hundreds of frames per receiver, interleaved with owned sends:
    // each receiver is flushed once for all of them, small shared frames are copied
    // into its buffer, large ones queued as they are; the order must hold through both.
    let server = start(quick_config(), false);
    let mut clients: Vec<_> = (0..2).map(|_| ws_client(server.addr, "/ws")).collect();
    let ids: Vec<_> = (0..2).map(|_| server.expect_opened()).collect();
    let frame = |text: &str| -> std::sync::Arc<[u8]> {
        let mut v = Vec::new();
        wss_proto::encode_frame(&mut v, true, wss_proto::Opcode::Text, text.as_bytes(), None);
        v.into()
    };
    let large = "L".repeat(2000);
    let mut batch = Vec::new();
    for i in 0..600 {
        let shared = if i % 50 == 0 {
            frame(&format!("{i}{large}"))
        } else {
            frame(&format!("{i}"))
        };
        for id in &ids {
            batch.push((*id, Outgoing::Shared(shared.clone())));
            if i % 100 == 7 {
                batch.push((*id, Outgoing::Text(format!("own{i}"))));
            }
        }
    }
    server.handle.send_batch(batch);
    for c in &mut clients {
        for i in 0..600 {
            let want = if i % 50 == 0 {
                format!("{i}{large}")
            } else {
                format!("{i}")
            };
            assert_eq!(c.read().unwrap(), TMessage::text(want));
            if i % 100 == 7 {
                assert_eq!(c.read().unwrap(), TMessage::text(format!("own{i}")));
            }
        }
    }
}

#[test]
fn large_messages_echo_intact() {
    let server = start(quick_config(), true);
    let mut client = ws_client(server.addr, "/ws");
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    client.send(TMessage::binary(big.clone())).unwrap();
    client.send(TMessage::text("after")).unwrap();
    assert_eq!(client.read().unwrap(), TMessage::binary(big));
    assert_eq!(client.read().unwrap(), TMessage::text("after"));
}

/// After a large whole message the loop reads the next payload straight into its message
/// buffer (wss-proto's `ReadAhead`): whatever actually comes next (the same size, another
/// size, the other header size, text, a ping, several at once) must echo byte for byte.
#[test]
fn large_messages_read_ahead_echo_intact_whatever_follows() {
    let server = start(quick_config(), true);
    let mut client = ws_client(server.addr, "/ws");
    let payload = |len: usize, seed: u32| -> Vec<u8> {
        (0..len as u32)
            .map(|i| (i.wrapping_mul(7) ^ seed) as u8)
            .collect()
    };
    for round in 0..16 {
        let message = TMessage::binary(payload(65_536, round));
        client.send(message.clone()).unwrap();
        assert_eq!(client.read().unwrap(), message, "round {round}");
    }
    // One at a time: each read usually ends with its frame, and the echo's buffer is back
    // before the next arrives, so from the second on most are read ahead. Not all: a frame
    // the kernel hands over in two reads ends the guessing until a read ends with a frame.
    let ahead = server.handle.stats().reads_ahead;
    assert!(ahead >= 1, "{ahead} of 15 read ahead");
    let text: String = "aé€".repeat(7_000);
    let steps = [
        TMessage::binary(payload(20_000, 1)),
        TMessage::binary(payload(30_000, 2)),
        TMessage::binary(payload(20_000, 3)),
        TMessage::text(text.clone()),
        TMessage::text(text),
        TMessage::binary(payload(100, 4)),
        TMessage::binary(payload(70_000, 5)),
        TMessage::binary(payload(70_000, 6)),
        TMessage::Ping(vec![1, 2, 3].into()),
        TMessage::binary(payload(65_536, 7)),
    ];
    for message in steps {
        client.send(message.clone()).unwrap();
        match client.read().unwrap() {
            TMessage::Pong(p) => assert_eq!(&p[..], [1, 2, 3]),
            echoed => assert_eq!(echoed, message),
        }
    }
    // Several in flight: reads end anywhere, not at the end of a frame.
    let burst: Vec<TMessage> = (0..6)
        .map(|i| TMessage::binary(payload(40_000 + i * 3, i as u32)))
        .collect();
    for message in &burst {
        client.send(message.clone()).unwrap();
    }
    for message in burst {
        assert_eq!(client.read().unwrap(), message);
    }
}

#[test]
fn write_error_closes_only_that_connection() {
    let server = start(quick_config(), true);
    let victim = raw_ws(server.addr, "/ws");
    let victim_id = server.expect_opened();
    let mut other = ws_client(server.addr, "/ws");
    let _other_id = server.expect_opened();
    socket2::SockRef::from(&victim)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(victim);
    thread::sleep(Duration::from_millis(20));
    for _ in 0..10 {
        server
            .handle
            .send(victim_id, Outgoing::Binary(vec![0u8; 256 * 1024]));
    }
    let (code, _, error) = server.expect_closed(victim_id);
    assert_eq!(code, CloseCode::ABNORMAL);
    assert_eq!(error, Some(ConnError::ResetByPeer));
    other.send(TMessage::text("fine")).unwrap();
    assert_eq!(other.read().unwrap(), TMessage::text("fine"));
}
