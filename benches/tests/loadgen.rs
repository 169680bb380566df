//! The load generator against real peers on loopback: every mode completes with exact counts,
//! and a server that corrupts or drops messages makes the run fail.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;
use wss_benches::client::ACCEPT;
use wss_benches::peers::{self, Mode};
use wss_benches::{broadcast, connect, echo, idle, BenchError, Target};

fn target(addr: SocketAddr) -> Target {
    Target::parse(&format!("ws://{addr}/")).unwrap()
}

fn echo_config(
    addr: SocketAddr,
    size: usize,
    in_flight: usize,
    text: bool,
    n: u64,
) -> echo::EchoConfig {
    echo::EchoConfig {
        target: target(addr),
        connections: 3,
        size,
        in_flight,
        text,
        threads: 2,
        warmup: Duration::ZERO,
        duration: Duration::from_secs(20),
        max_messages: n,
        sources: 2,
        server_pid: Some(std::process::id()),
        tls: None,
    }
}

#[test]
fn echo_counts_every_verified_message_against_tokio_tungstenite() {
    let addr = peers::spawn_local(peers::tt::serve, Mode::Echo).unwrap();
    for (size, in_flight, text) in [
        (16, 1, false),
        (1000, 8, true),
        (70_000, 3, false),
        (0, 2, false),
    ] {
        let r = echo::run(&echo_config(addr, size, in_flight, text, 300)).unwrap();
        assert_eq!(
            (r.sent, r.received, r.messages),
            (300, 300, 300),
            "size {size}"
        );
        assert_eq!(r.latency.count(), 300);
        assert!(r.elapsed > Duration::ZERO && r.elapsed < Duration::from_secs(20));
    }
}

#[test]
fn echo_works_against_fastwebsockets() {
    let addr = peers::spawn_local(peers::fws::serve, Mode::Echo).unwrap();
    let r = echo::run(&echo_config(addr, 125, 4, false, 200)).unwrap();
    assert_eq!(r.received, 200);
}

#[test]
fn connect_completes_exactly_the_handshakes_asked_for() {
    let addr = peers::spawn_local(peers::tt::serve, Mode::Echo).unwrap();
    let r = connect::run(&connect::ConnectConfig {
        target: target(addr),
        workers: 4,
        threads: 1,
        warmup: Duration::ZERO,
        duration: Duration::from_secs(20),
        max_handshakes: 40,
        sources: 3,
        server_pid: None,
        tls: None,
    })
    .unwrap();
    assert_eq!(r.handshakes, 40);
    assert_eq!(r.failures, 0, "{:?}", r.first_failure);
}

#[test]
fn idle_holds_connections_that_still_answer_pings() {
    let addr = peers::spawn_local(peers::fws::serve, Mode::Echo).unwrap();
    let r = idle::run(&idle::IdleConfig {
        target: target(addr),
        connections: 60,
        settle: Duration::ZERO,
        sources: 2,
        server_pid: Some(std::process::id()),
    })
    .unwrap();
    assert_eq!((r.connected, r.alive, r.sources), (60, 60, 2));
    assert!(r.rss_after_kib.unwrap() > 0);
}

#[test]
fn broadcast_delivers_every_message_to_every_receiver_in_order() {
    let addr = peers::spawn_local(peers::tt::serve, Mode::Broadcast).unwrap();
    let r = broadcast::run(&broadcast::BroadcastConfig {
        target: target(addr),
        receivers: 5,
        size: 40,
        window: 16,
        text: true,
        threads: 2,
        warmup: Duration::ZERO,
        duration: Duration::from_secs(20),
        max_messages: 200,
        sources: 1,
        server_pid: None,
    })
    .unwrap();
    assert_eq!(r.sent, 200);
    assert_eq!(r.deliveries, 1000);
    assert_eq!(r.foreign, 0);
}

/// A server that upgrades, then answers each 16-byte binary frame with `reply(payload)`.
fn fake_server(reply: fn(&mut Vec<u8>) -> Option<Vec<u8>>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && s.read_exact(&mut b).is_ok() {
                    head.push(b[0]);
                }
                let resp = format!(
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                     Connection: Upgrade\r\nSec-WebSocket-Accept: {ACCEPT}\r\n\r\n"
                );
                s.write_all(resp.as_bytes()).unwrap();
                let mut frame = [0u8; 22];
                while s.read_exact(&mut frame).is_ok() {
                    let key = [frame[2], frame[3], frame[4], frame[5]];
                    let mut payload: Vec<u8> = frame[6..]
                        .iter()
                        .enumerate()
                        .map(|(i, b)| b ^ key[i % 4])
                        .collect();
                    match reply(&mut payload) {
                        Some(out) => s.write_all(&out).unwrap(),
                        None => return,
                    }
                }
            });
        }
    });
    addr
}

fn single_conn(addr: SocketAddr) -> echo::EchoConfig {
    echo::EchoConfig {
        connections: 1,
        threads: 1,
        sources: 1,
        server_pid: None,
        ..echo_config(addr, 16, 1, false, 50)
    }
}

#[test]
fn a_corrupted_echo_fails_the_run() {
    let addr = fake_server(|p| {
        p[12] ^= 1;
        let mut out = vec![0x82, 16];
        out.extend_from_slice(p);
        Some(out)
    });
    let err = echo::run(&single_conn(addr)).unwrap_err();
    assert!(
        matches!(err, BenchError::Mismatch { conn: 0, seq: 0 }),
        "{err}"
    );
}

#[test]
fn a_reordered_echo_fails_the_run() {
    // Each echo carries the next message's sequence number: the bytes are plausible, the
    // order is not.
    let addr = fake_server(|p| {
        p[7] += 1;
        let mut out = vec![0x82, 16];
        out.extend_from_slice(p);
        Some(out)
    });
    assert!(matches!(
        echo::run(&single_conn(addr)),
        Err(BenchError::Mismatch { .. })
    ));
}

#[test]
fn a_server_that_hangs_up_fails_the_run() {
    let addr = fake_server(|_| None);
    assert!(matches!(
        echo::run(&single_conn(addr)),
        Err(BenchError::ServerClosed(0))
    ));
}

#[test]
fn a_text_echo_of_a_binary_message_fails_the_run() {
    let addr = fake_server(|p| {
        let mut out = vec![0x81, 16];
        out.extend_from_slice(p);
        Some(out)
    });
    assert!(matches!(
        echo::run(&single_conn(addr)),
        Err(BenchError::Mismatch { .. })
    ));
}
