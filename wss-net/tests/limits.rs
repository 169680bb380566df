//! Connection limits: total, per remote address, handshakes in progress. A refused socket gets
//! a 503 (a TLS one is closed at once), is counted, and no open connection notices.

mod util;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};
use tungstenite::Message as TMessage;
use util::tls::{pki, wss_client, ServerPki};
use util::*;
use wss_net::NetConfig;

fn refused_with_503(addr: SocketAddr) -> String {
    let mut s = tcp(addr);
    let answer = String::from_utf8(read_to_eof(&mut s)).unwrap();
    assert!(answer.starts_with("HTTP/1.1 503 "), "{answer:?}");
    answer
}

fn echo(client: &mut Client, text: &str) {
    client.send(TMessage::text(text)).unwrap();
    assert_eq!(client.read().unwrap(), TMessage::text(text));
}

fn wait_for(mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "condition not reached in time");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A client socket bound to `from` (127.0.0.2, say) before connecting to `to`.
fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let from: SocketAddr = format!("{from}:0").parse().unwrap();
    socket.bind(&from.into()).unwrap();
    socket.connect(&to.into()).unwrap();
    let s: TcpStream = socket.into();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s
}

#[test]
fn the_51st_socket_is_refused_while_the_first_50_still_echo() {
    let config = NetConfig {
        max_connections: 50,
        ..quick_config()
    };
    let server = start(config, true);
    let mut clients: Vec<Client> = (0..50).map(|_| ws_client(server.addr, "/ws")).collect();
    for _ in 0..50 {
        server.expect_opened();
    }
    let answer = refused_with_503(server.addr);
    assert!(answer.contains("too many connections"), "{answer}");
    let stats = server.handle.stats();
    assert_eq!((stats.connections, stats.refused_connections), (50, 1));
    for (i, c) in clients.iter_mut().enumerate() {
        echo(c, &format!("still here {i}"));
    }
    // A slot that frees up is usable again.
    drop(clients.pop());
    wait_for(|| server.handle.stats().connections == 49);
    let mut again = ws_client(server.addr, "/ws");
    echo(&mut again, "back in");
}

#[test]
fn an_11th_connection_from_one_address_is_refused_while_another_address_is_served() {
    let config = NetConfig {
        max_per_address: Some(10),
        ..quick_config()
    };
    let server = start(config, true);
    let mut local: Vec<Client> = (0..10).map(|_| ws_client(server.addr, "/ws")).collect();
    let answer = refused_with_503(server.addr);
    assert!(answer.contains("from this address"), "{answer}");

    let stream = connect_from("127.0.0.2", server.addr);
    let (mut other, response) =
        tungstenite::client(format!("ws://{}/ws", server.addr), stream).unwrap();
    assert_eq!(response.status(), 101);
    echo(&mut other, "from 127.0.0.2");
    for c in &mut local {
        echo(c, "unaffected");
    }
    let stats = server.handle.stats();
    assert_eq!((stats.connections, stats.refused_per_address), (11, 1));
}

#[test]
fn handshakes_in_progress_are_limited_and_free_their_slot_once_answered() {
    let config = NetConfig {
        max_pending_handshakes: Some(3),
        ..quick_config()
    };
    let server = start(config, true);
    let mut upgraded = ws_client(server.addr, "/ws");
    let mut silent: Vec<TcpStream> = (0..3).map(|_| tcp(server.addr)).collect();
    wait_for(|| server.handle.stats().handshakes == 3);
    let answer = refused_with_503(server.addr);
    assert!(answer.contains("handshakes in progress"), "{answer}");
    assert_eq!(server.handle.stats().refused_handshakes, 1);
    echo(&mut upgraded, "an upgraded connection is not a handshake");

    // One of the three completes its upgrade: its slot is free for the next socket.
    let mut first = silent.remove(0);
    first.write_all(upgrade_request("/ws").as_bytes()).unwrap();
    assert!(read_head(&mut first).starts_with("HTTP/1.1 101 "));
    wait_for(|| server.handle.stats().handshakes == 2);
    let mut next = ws_client(server.addr, "/ws");
    echo(&mut next, "admitted");
}

#[test]
fn a_refused_tls_socket_is_closed_without_a_word() {
    let pki = pki();
    let config = NetConfig {
        max_connections: 1,
        tls: Some(pki.server_config()),
        ..quick_config()
    };
    let server = start(config, true);
    let client_config = pki.client_config();
    let mut held = wss_client(server.addr, "/ws", &client_config);
    let mut refused = tcp(server.addr);
    assert!(read_to_eof(&mut refused).is_empty());
    assert_eq!(server.handle.stats().refused_connections, 1);
    held.send(TMessage::text("held")).unwrap();
    assert_eq!(held.read().unwrap(), TMessage::text("held"));
}

#[test]
fn the_default_connection_limit_leaves_descriptors_free() {
    // SAFETY: getrlimit writes only the struct passed by pointer.
    let soft = unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur
    };
    let max = wss_net::default_max_connections();
    assert_eq!(NetConfig::default().max_connections, max);
    if soft != libc::RLIM_INFINITY {
        assert!(
            max >= 16 && (max as u64) + 64 <= soft.max(80),
            "{max} of {soft}"
        );
    }
}
