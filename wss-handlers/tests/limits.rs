//! The binary's connection limits and timers, seen from real sockets: `--max-per-address`,
//! `--max-connections`, `--max-pending-handshakes`, `--handshake-timeout`, `--idle-timeout`,
//! `--close-timeout` and `--max-outgoing`.

mod support;

use std::io::Write;
use std::net::{Ipv4Addr, TcpStream};
use std::time::{Duration, Instant};

use support::wire::{self, client_frame, ending_within, read_frame, tcp_from, Ending};
use support::{connect, next_message, Client, Wss};
use tungstenite::Message;

const OTHER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// A WebSocket client whose socket comes from `from`.
fn client_from(from: Ipv4Addr, wss: &Wss) -> Result<Client, tungstenite::Error> {
    let stream = tcp_from(from, wss.addr);
    match tungstenite::client(wss.ws_url(""), stream) {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::HandshakeError::Failure(e)) => Err(e),
        Err(tungstenite::HandshakeError::Interrupted(_)) => Err(tungstenite::Error::Io(
            std::io::ErrorKind::WouldBlock.into(),
        )),
    }
}

/// Asserts that a fresh socket from `from` is answered with 503 before it sends anything
/// (the limits are checked at accept).
fn assert_refused_503(from: Ipv4Addr, wss: &Wss) {
    let mut raw = tcp_from(from, wss.addr);
    let head = wire::read_head(&mut raw);
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
}

fn assert_echoes(clients: &mut [Client], tag: &str) {
    for (i, ws) in clients.iter_mut().enumerate() {
        let text = format!("{tag} {i}");
        ws.send(Message::text(text.clone())).unwrap();
        assert_eq!(next_message(ws), Message::text(text));
    }
}

#[test]
fn eleventh_connection_from_one_address_gets_503_while_another_address_is_served() {
    let wss = Wss::start(&["--handler", "echo", "--max-per-address", "10"]);
    let mut ten: Vec<Client> = (0..10).map(|_| connect(&wss.ws_url(""))).collect();
    assert_refused_503(Ipv4Addr::LOCALHOST, &wss);
    let mut other = vec![client_from(OTHER, &wss).expect("127.0.0.2 has its own count")];
    assert_echoes(&mut other, "other");
    assert_echoes(&mut ten, "first ten");

    // A closed connection gives its slot back.
    support::close(ten.pop().expect("ten clients"));
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut again = loop {
        match support::try_connect(&wss.ws_url(""), &[]) {
            Ok(ws) => break vec![ws],
            Err(e) => {
                assert!(Instant::now() < deadline, "the slot never came back: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    assert_echoes(&mut again, "again");
}

#[test]
fn fifty_first_connection_gets_503_while_the_first_fifty_still_echo() {
    let wss = Wss::start(&["--handler", "echo", "--max-connections", "50"]);
    let mut fifty: Vec<Client> = (0..50).map(|_| connect(&wss.ws_url(""))).collect();
    assert_refused_503(Ipv4Addr::LOCALHOST, &wss);
    // The total counts every address.
    assert_refused_503(OTHER, &wss);
    assert_echoes(&mut fifty, "still here");
}

/// A socket that connects and never sends a byte.
fn silent(wss: &Wss) -> TcpStream {
    let s = TcpStream::connect(wss.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

#[test]
fn pending_handshakes_are_bounded_and_time_out() {
    let wss = Wss::start(&[
        "--handler",
        "echo",
        "--max-pending-handshakes",
        "2",
        "--handshake-timeout",
        "1",
    ]);
    let mut open = vec![connect(&wss.ws_url(""))];
    let started = Instant::now();
    let mut stalled = [silent(&wss), silent(&wss)];
    assert_refused_503(Ipv4Addr::LOCALHOST, &wss);
    assert_echoes(&mut open, "unaffected");

    // --handshake-timeout 1 closes the silent ones (the default would wait 10 s)...
    for s in &mut stalled {
        assert_eq!(ending_within(s, Duration::from_secs(4)), Ending::Closed);
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "closed too early: {took:?}"
    );
    // ... which frees their places.
    let mut later = vec![connect(&wss.ws_url(""))];
    assert_echoes(&mut later, "later");
}

#[test]
fn handshake_timeout_is_the_flag_not_the_default() {
    let wss = Wss::start(&["--handler", "echo", "--handshake-timeout", "0.3"]);
    let mut s = silent(&wss);
    let started = Instant::now();
    assert_eq!(
        ending_within(&mut s, Duration::from_secs(3)),
        Ending::Closed
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

/// A raw WebSocket connection (101 read) on `wss`.
fn upgraded(wss: &Wss) -> TcpStream {
    let mut s = TcpStream::connect(wss.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let head = wire::handshake(&mut s, &wss.path, "");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    s
}

#[test]
fn idle_timeout_pings_then_drops_a_silent_peer_and_spares_a_live_one() {
    let wss = Wss::start(&["--handler", "echo", "--idle-timeout", "1"]);
    let mut mute = upgraded(&wss);
    let live = connect(&wss.ws_url(""));
    let started = Instant::now();

    // tungstenite answers pings while it reads: reading from the start (the server pings at half
    // the idle timeout) keeps the connection alive while the mute one is watched.
    let reader = std::thread::spawn(move || {
        let mut live = live;
        live.get_ref()
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        while started.elapsed() < Duration::from_millis(2500) {
            match live.read() {
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("the live client was dropped: {e}"),
            }
            let _ = live.flush();
        }
        live
    });

    let (b0, _) = read_frame(&mut mute).expect("a ping before the drop");
    assert_eq!(b0 & 0x0f, 0x9, "first frame is a ping, got {b0:#x}");
    assert_eq!(
        ending_within(&mut mute, Duration::from_secs(4)),
        Ending::Closed
    );
    assert!(started.elapsed() < Duration::from_secs(4));

    let mut live = reader.join().expect("the live client kept answering pings");
    live.get_ref()
        .set_read_timeout(Some(support::READ_TIMEOUT))
        .unwrap();
    assert_echoes(std::slice::from_mut(&mut live), "alive");
}

/// A peer that never answers: on SIGTERM the server sends it a close frame (1001) and waits
/// for an answer that never comes, at most `--close-timeout` (here under
/// `--shutdown-timeout`, which bounds the whole stop).
fn unanswered_close(close_timeout: &str) -> (Wss, TcpStream) {
    let wss = Wss::start(&[
        "--handler",
        "echo",
        "--shutdown-timeout",
        "20",
        "--close-timeout",
        close_timeout,
    ]);
    let mut s = upgraded(&wss);
    wss.signal("TERM");
    let (b0, payload) = read_frame(&mut s).expect("a close frame");
    assert_eq!(b0, 0x88, "close frame");
    assert_eq!(&payload[..2], &1001u16.to_be_bytes());
    (wss, s)
}

#[test]
fn close_timeout_bounds_the_wait_for_the_peers_close_frame() {
    let (_quick, mut q) = unanswered_close("0.5");
    // Wide margins on both sides: a loaded CI machine can starve the servers for seconds.
    let (_patient, mut p) = unanswered_close("15");
    assert_eq!(
        ending_within(&mut q, Duration::from_millis(5000)),
        Ending::Closed,
        "--close-timeout 0.5"
    );
    assert_eq!(
        ending_within(&mut p, Duration::from_millis(1000)),
        Ending::Open,
        "--close-timeout 15 still waits for our close frame"
    );
}

/// Far more than all the kernel buffers between the server and a client can hold (each
/// socket's send and receive buffers, autotuned up to `tcp_wmem`/`tcp_rmem` max: 4 + 32 + 4 MiB
/// on a default Linux): a server still accepting more than this from a client that reads
/// nothing holds the echoes in its own queue, unbounded.
const NEVER_READ_CAP: usize = 64 << 20;

#[test]
fn max_outgoing_drops_a_reader_that_does_not_read_and_only_it() {
    let wss = Wss::start(&["--handler", "echo", "--max-outgoing", "65536"]);
    let mut other = vec![connect(&wss.ws_url(""))];
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    // A small receive window makes the kernel's share of the echoes small.
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&wss.addr.into()).unwrap();
    let mut slow: TcpStream = socket.into();
    slow.set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let head = wire::handshake(&mut slow, &wss.path, "");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");

    // The client writes and never reads, until the server drops it. Reading once the writes
    // are done would not do: the writes land in kernel buffers within milliseconds, often
    // before the first echo is produced, and a client reading from then on keeps up with
    // every echo: it is not a slow reader, and the server rightly keeps it.
    let chunk = client_frame(0x82, &vec![7u8; 256 << 10]);
    let mut written = 0;
    let error = loop {
        assert!(
            written < NEVER_READ_CAP,
            "{written} bytes to echo to a client that reads nothing, and it is still served \
             through a 64 KiB --max-outgoing"
        );
        match slow.write_all(&chunk) {
            Ok(()) => written += chunk.len(),
            Err(e) => break e,
        }
    };
    assert!(
        matches!(
            error.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
        ),
        "after {written} bytes the server should have dropped the client, not stopped \
         reading it: {error}"
    );
    assert_eq!(
        ending_within(&mut slow, Duration::from_secs(2)),
        Ending::Closed
    );
    assert_echoes(&mut other, "others unaffected");
    let mut later = vec![connect(&wss.ws_url(""))];
    assert_echoes(&mut later, "later");
}
