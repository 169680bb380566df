//! The HTTP phase: heads split anywhere, slow heads, keep-alive, pipelining, pending
//! decisions, limits.

mod util;

use std::io::{Read, Write};
use std::thread;
use std::time::{Duration, Instant};

use util::*;
use wss_net::{Decision, NetConfig};
use wss_proto::handshake::{validate_upgrade, Response};

#[test]
fn head_sent_one_byte_at_a_time_is_answered() {
    let server = start(quick_config(), false);
    let mut s = tcp(server.addr);
    for b in b"GET /slow?x=1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" {
        s.write_all(&[*b]).unwrap();
        thread::sleep(Duration::from_millis(1));
    }
    let reply = String::from_utf8(read_to_eof(&mut s)).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200 "), "{reply}");
    assert!(reply.ends_with("GET /slow?x=1"), "{reply}");
    assert!(reply.contains("Connection: close"), "{reply}");
}

#[test]
fn head_that_never_ends_is_closed_at_the_handshake_timeout() {
    let config = NetConfig {
        handshake_timeout: Duration::from_millis(300),
        ..quick_config()
    };
    let server = start(config, false);
    let mut partial = tcp(server.addr);
    let mut silent = tcp(server.addr);
    let started = Instant::now();
    partial.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n").unwrap();
    let reply = String::from_utf8(read_to_eof(&mut partial)).unwrap();
    let waited = started.elapsed();
    assert!(reply.starts_with("HTTP/1.1 408 "), "{reply}");
    assert!(waited >= Duration::from_millis(250), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    // A connection that sent nothing is closed without a response.
    assert!(read_to_eof(&mut silent).is_empty());
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn keep_alive_pipelined_requests_are_answered_in_order() {
    let server = start(quick_config(), false);
    let mut s = tcp(server.addr);
    let mut wire = String::new();
    for i in 0..50 {
        wire.push_str(&format!("GET /r{i} HTTP/1.1\r\nHost: a\r\n\r\n"));
    }
    wire.push_str("GET /last HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    s.write_all(wire.as_bytes()).unwrap();
    let reply = String::from_utf8(read_to_eof(&mut s)).unwrap();
    let mut at = 0;
    for i in 0..50 {
        let body = format!("GET /r{i}");
        let found = reply[at..]
            .find(&body)
            .unwrap_or_else(|| panic!("{body} in order"));
        at += found + body.len();
    }
    assert!(reply[at..].contains("GET /last"));
    assert_eq!(reply.matches("HTTP/1.1 200 ").count(), 51);
}

#[test]
fn keep_alive_connection_serves_sequential_requests() {
    let server = start(quick_config(), false);
    let mut s = tcp(server.addr);
    for i in 0..3 {
        s.write_all(format!("GET /n{i} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes())
            .unwrap();
        let head = read_head(&mut s);
        assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
        let mut body = vec![0u8; format!("GET /n{i}").len()];
        s.read_exact(&mut body).unwrap();
        assert_eq!(body, format!("GET /n{i}").as_bytes());
    }
}

#[test]
fn http10_request_is_closed_after_its_response() {
    let server = start(quick_config(), false);
    let mut s = tcp(server.addr);
    s.write_all(b"GET /old HTTP/1.0\r\n\r\nGET /ignored HTTP/1.0\r\n\r\n")
        .unwrap();
    let reply = String::from_utf8(read_to_eof(&mut s)).unwrap();
    assert_eq!(reply.matches("HTTP/1.1 200 ").count(), 1, "{reply}");
    assert!(reply.contains("Connection: close"));
    assert!(reply.ends_with("GET /old"));
}

#[test]
fn client_half_close_after_request_still_gets_the_response() {
    let server = start(quick_config(), false);
    let mut s = tcp(server.addr);
    s.write_all(b"GET /half HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let reply = String::from_utf8(read_to_eof(&mut s)).unwrap();
    assert!(reply.ends_with("GET /half"), "{reply}");
}

#[test]
fn oversized_head_gets_431_and_close() {
    let config = NetConfig {
        head_limits: wss_proto::handshake::HeadLimits {
            max_head_bytes: 1024,
            max_headers: 64,
        },
        ..quick_config()
    };
    let server = start(config, false);
    let mut s = tcp(server.addr);
    let big = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(4000));
    let _ = s.write_all(big.as_bytes());
    let reply = String::from_utf8_lossy(&read_to_eof(&mut s)).into_owned();
    assert!(reply.starts_with("HTTP/1.1 431 "), "{reply}");
}

#[test]
fn pending_decision_answered_from_another_thread_upgrades() {
    let server = start(quick_config(), true);
    let mut s = tcp(server.addr);
    // The client's first frame travels with the head: it must wait for the decision.
    let mut wire = upgrade_request("/pending").into_bytes();
    wire.extend(client_frame(true, 1, b"early"));
    s.write_all(&wire).unwrap();
    let (conn, request) = server.pending.recv_timeout(WAIT).unwrap();
    let handle = server.handle.clone();
    let sink = server.sink.clone();
    let decider = thread::spawn(move || {
        thread::sleep(Duration::from_millis(50));
        let upgrade = validate_upgrade(&request).unwrap();
        handle.decide(
            conn,
            Decision::Upgrade {
                upgrade,
                extra_headers: Vec::new(),
                sink,
            },
        );
    });
    let head = read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert_eq!(read_frame(&mut s), Some((1, b"early".to_vec())));
    decider.join().unwrap();
    assert_eq!(server.expect_opened(), conn);
}

#[test]
fn pending_decision_can_be_a_plain_response_on_a_kept_alive_connection() {
    let server = start(quick_config(), false);
    let mut s = tcp(server.addr);
    s.write_all(b"GET /pending HTTP/1.1\r\nHost: a\r\n\r\nGET /after HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (conn, _) = server.pending.recv_timeout(WAIT).unwrap();
    let mut response = Response::new(403);
    response.body = b"no".to_vec();
    server.handle.decide(
        conn,
        Decision::Respond {
            response,
            keep_alive: true,
        },
    );
    let reply = String::from_utf8(read_to_eof(&mut s)).unwrap();
    let forbidden = reply.find("HTTP/1.1 403 ").expect("the decided response");
    let after = reply
        .find("GET /after")
        .expect("the pipelined request after it");
    assert!(forbidden < after, "{reply}");
}

#[test]
fn pending_decision_that_never_comes_gets_503_at_the_timeout() {
    let config = NetConfig {
        handshake_timeout: Duration::from_millis(300),
        ..quick_config()
    };
    let server = start(config, false);
    let mut s = tcp(server.addr);
    s.write_all(upgrade_request("/pending").as_bytes()).unwrap();
    let started = Instant::now();
    let reply = String::from_utf8(read_to_eof(&mut s)).unwrap();
    assert!(reply.starts_with("HTTP/1.1 503 "), "{reply}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // A decision arriving late is ignored.
    let (conn, _) = server.pending.recv_timeout(WAIT).unwrap();
    server.handle.decide(
        conn,
        Decision::Respond {
            response: Response::new(200),
            keep_alive: false,
        },
    );
}

#[test]
fn connections_past_max_connections_get_503_and_existing_ones_are_unaffected() {
    let config = NetConfig {
        max_connections: 2,
        ..quick_config()
    };
    let server = start(config, true);
    let mut a = ws_client(server.addr, "/ws");
    let mut b = tcp(server.addr);
    // Make sure both are accepted before the third arrives.
    b.write_all(b"GET /b HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    let head = read_head(&mut b);
    assert!(head.starts_with("HTTP/1.1 200 "));
    let mut c = tcp(server.addr);
    let reply = String::from_utf8_lossy(&read_to_eof(&mut c)).into_owned();
    assert!(reply.starts_with("HTTP/1.1 503 "), "{reply}");
    a.send(tungstenite::Message::text("still here")).unwrap();
    assert_eq!(a.read().unwrap(), tungstenite::Message::text("still here"));
    assert_eq!(server.handle.stats().connections, 2);
}
