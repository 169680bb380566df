//! Graceful and immediate shutdown.

mod util;

use std::collections::HashSet;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use util::*;
use wss_net::{ConnError, NetEvent};
use wss_proto::CloseCode;

#[test]
fn graceful_shutdown_sends_close_frames_then_fin() {
    let server = start(quick_config(), false);
    let mut clients: Vec<_> = (0..20).map(|_| ws_client(server.addr, "/ws")).collect();
    let ids: HashSet<_> = (0..20).map(|_| server.expect_opened()).collect();
    let events = server.events.clone();
    let addr = server.addr;
    // The clients answer on their own threads, as real peers would.
    let readers: Vec<_> = clients
        .drain(..)
        .map(|mut c| {
            std::thread::spawn(move || {
                let mut saw_close = None;
                loop {
                    match c.read() {
                        Ok(tungstenite::Message::Close(frame)) => {
                            saw_close = frame.map(|f| u16::from(f.code));
                        }
                        Ok(other) => panic!("{other:?}"),
                        Err(tungstenite::Error::ConnectionClosed) => return saw_close,
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        })
        .collect();
    server.shutdown(Some((CloseCode::GOING_AWAY, Duration::from_secs(5))));
    for r in readers {
        assert_eq!(r.join().unwrap(), Some(1001), "close frame, then FIN");
    }
    let mut closed = HashSet::new();
    while let Ok(event) = events.try_recv() {
        if let NetEvent::Closed {
            conn, code, error, ..
        } = event
        {
            assert_eq!(code, CloseCode::GOING_AWAY);
            assert_eq!(error, None);
            closed.insert(conn);
        }
    }
    assert_eq!(closed, ids, "one Closed per Opened");
    assert!(TcpStream::connect(addr).is_err(), "no longer accepting");
}

#[test]
fn graceful_shutdown_destroys_silent_peers_at_the_deadline() {
    let server = start(quick_config(), false);
    let mut s = raw_ws(server.addr, "/ws");
    let conn = server.expect_opened();
    let events = server.events.clone();
    let started = Instant::now();
    server.shutdown(Some((CloseCode::GOING_AWAY, Duration::from_millis(300))));
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(250), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    let (op, payload) = read_frame(&mut s).unwrap();
    assert_eq!(op, 8);
    assert_eq!(&payload[..2], &1001u16.to_be_bytes());
    assert!(read_to_eof(&mut s).is_empty());
    let closed = events.try_iter().find_map(|e| match e {
        NetEvent::Closed {
            conn: c,
            code,
            error,
            ..
        } if c == conn => Some((code, error)),
        _ => None,
    });
    assert_eq!(
        closed,
        Some((CloseCode::ABNORMAL, Some(ConnError::Shutdown)))
    );
}

#[test]
fn immediate_shutdown_sends_no_close_frame() {
    let server = start(quick_config(), false);
    let mut s = raw_ws(server.addr, "/ws");
    let conn = server.expect_opened();
    let events = server.events.clone();
    let addr = server.addr;
    server.shutdown(None);
    assert!(read_to_eof(&mut s).is_empty(), "nothing before EOF");
    let closed = events.try_iter().find_map(|e| match e {
        NetEvent::Closed {
            conn: c,
            code,
            error,
            ..
        } if c == conn => Some((code, error)),
        _ => None,
    });
    assert_eq!(
        closed,
        Some((CloseCode::ABNORMAL, Some(ConnError::Shutdown)))
    );
    assert!(TcpStream::connect(addr).is_err(), "no longer accepting");
}

#[test]
fn shutdown_from_a_handle_stops_accepting_at_once() {
    let server = start(quick_config(), false);
    let mut client = ws_client(server.addr, "/ws");
    let _conn = server.expect_opened();
    server
        .handle
        .shutdown(Some((CloseCode::GOING_AWAY, Duration::from_secs(5))));
    // The open client has not answered yet, so the loops still run; new connections are
    // refused all the same.
    let deadline = Instant::now() + WAIT;
    while TcpStream::connect(server.addr).is_ok() {
        assert!(Instant::now() < deadline, "still accepting");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(matches!(
        client.read(),
        Ok(tungstenite::Message::Close(Some(_)))
    ));
    server.shutdown(None);
}
