//! The wire seen from a raw `TcpStream`, for tests that must watch exact bytes: the handshake
//! response head, frame bits (RSV1, opcodes), and when the server closes the socket.

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

/// Reads an HTTP response head (up to the blank line) and returns it; panics if the socket
/// ends or stays silent first.
pub fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            Ok(_) => panic!(
                "the socket ended inside a head: {:?}",
                String::from_utf8_lossy(&head)
            ),
            Err(e) => panic!(
                "no response head ({e}); got {:?}",
                String::from_utf8_lossy(&head)
            ),
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// Sends an upgrade request for `path` with `extra` header lines (each ending in `\r\n`) and
/// returns the response head.
pub fn handshake(stream: &mut TcpStream, path: &str, extra: &str) -> String {
    let host = stream.peer_addr().expect("peer addr");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
    .expect("write the request");
    read_head(stream)
}

/// The value of header `name` in a response head (case-insensitive), if present.
pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// A client frame: first byte `b0` (FIN, RSV bits, opcode), masked payload.
pub fn client_frame(b0: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37u8, 0xfa, 0x21, 0x3d];
    let mut out = vec![b0];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= 0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// One server frame: its first byte and its (unmasked) payload. `None` if the socket ended.
pub fn read_frame(stream: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).ok()?;
    assert_eq!(head[1] & 0x80, 0, "server frames are never masked");
    let len = match head[1] & 0x7f {
        126 => {
            let mut b = [0u8; 2];
            stream.read_exact(&mut b).ok()?;
            u64::from(u16::from_be_bytes(b))
        }
        127 => {
            let mut b = [0u8; 8];
            stream.read_exact(&mut b).ok()?;
            u64::from_be_bytes(b)
        }
        n => u64::from(n),
    };
    let mut payload = vec![0u8; usize::try_from(len).expect("frame length")];
    stream.read_exact(&mut payload).ok()?;
    Some((head[0], payload))
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
