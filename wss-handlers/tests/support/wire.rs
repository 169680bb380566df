//! The wire seen from a raw `TcpStream`, for tests that must watch exact bytes: the handshake
//! response head, frame bits (RSV1, opcodes), and when the server closes the socket. The raw
//! client underneath is the testkit's.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use super::READ_TIMEOUT;

/// A TCP connection to `to` from the loopback address `from` (127.0.0.2 is another client
/// address on Linux, where all of 127/8 is local).
pub fn tcp_from(from: Ipv4Addr, to: SocketAddr) -> TcpStream {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket
        .bind(&SocketAddr::from((from, 0)).into())
        .unwrap_or_else(|e| panic!("bind {from}: {e}"));
    socket.connect(&to.into()).expect("connect");
    let stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(READ_TIMEOUT))
        .expect("timeout");
    stream.set_nodelay(true).expect("nodelay");
    stream
}

/// The frame builders and readers are the testkit's raw client: `client_frame` takes the
/// whole first byte (FIN, RSV bits, opcode), `read_frame` gives it back.
#[allow(unused_imports)]
pub use testkit::raw::{client_frame_b0 as client_frame, header, read_frame_b0 as read_frame};

/// Reads an HTTP response head (up to the blank line) and returns it; panics if the socket
/// ends or stays silent first.
pub fn read_head(stream: &mut TcpStream) -> String {
    let head = testkit::raw::read_head(stream);
    assert!(
        head.ends_with("\r\n\r\n"),
        "no whole response head: {head:?}"
    );
    head
}

/// Sends an upgrade request for `path` with `extra` header lines (each ending in `\r\n`) and
/// returns the response head.
pub fn handshake(stream: &mut TcpStream, path: &str, extra: &str) -> String {
    let host = stream.peer_addr().expect("peer addr").to_string();
    let extra: Vec<&str> = extra.split("\r\n").filter(|l| !l.is_empty()).collect();
    let request = testkit::raw::upgrade_request(&host, path, &extra);
    stream
        .write_all(request.as_bytes())
        .expect("write the request");
    read_head(stream)
}

/// What a read on a socket the server should have closed found.
#[derive(Debug, PartialEq, Eq)]
pub enum Ending {
    /// EOF or a reset: the server closed it.
    Closed,
    /// Nothing within the wait: still open.
    Open,
}

/// Reads (and drops) whatever arrives for up to `wait`; tells whether the socket ended.
pub fn ending_within(stream: &mut TcpStream, wait: Duration) -> Ending {
    let deadline = std::time::Instant::now() + wait;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Ending::Open;
        }
        stream.set_read_timeout(Some(left)).expect("timeout");
        match stream.read(&mut buf) {
            Ok(0) => return Ending::Closed,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Ending::Open
            }
            Err(_) => return Ending::Closed,
        }
    }
}
