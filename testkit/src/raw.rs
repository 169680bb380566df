//! A raw WebSocket client over a blocking `std::net::TcpStream`: the handshake written by
//! hand and frames built and read byte by byte, for tests that must see (or send) exactly
//! what goes over the wire.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// The read timeout of [`tcp`]: long enough for a loaded shared machine; a test only waits
/// this long when something is broken (or to see that nothing comes).
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// The `Sec-WebSocket-Key` of RFC 6455's example (its accept value is known).
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// The masking key of [`client_frame`].
pub const MASK: [u8; 4] = [0x12, 0x34, 0x56, 0x78];

/// A TCP connection to `addr` with [`READ_TIMEOUT`] and `TCP_NODELAY`.
pub fn tcp(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("tcp connect");
    s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// An upgrade request for `path` with `Host: host`, plus `extra` header lines (no CRLF).
pub fn upgrade_request(host: &str, path: &str, extra: &[&str]) -> String {
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n"
    );
    for line in extra {
        req.push_str(line);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    req
}

/// Reads one byte at a time to the end of a response head (so no byte after it is taken);
/// returns what came if the peer closes or the read fails first.
pub fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// The status code of a response head (0 when there is none).
pub fn status_of(head: &str) -> u16 {
    head.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// The value of header `name` (any case) in a request or response head.
pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Connects, sends an upgrade request for `path` with `extra` header lines, and returns the
/// socket and the response head (whatever its status).
pub fn handshake(addr: SocketAddr, path: &str, extra: &[&str]) -> (TcpStream, String) {
    let mut s = tcp(addr);
    s.write_all(upgrade_request(&addr.to_string(), path, extra).as_bytes())
        .unwrap();
    let head = read_head(&mut s);
    (s, head)
}

/// A socket upgraded to WebSocket on `path` (asserts the 101): the test speaks frames itself.
pub fn upgraded(addr: SocketAddr, path: &str) -> TcpStream {
    let (s, head) = handshake(addr, path, &[]);
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    s
}

/// A masked client frame of any length.
pub fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    client_frame_b0((u8::from(fin) << 7) | opcode, payload)
}

/// A masked client frame whose first byte is `b0` as given (FIN, RSV bits, opcode): for
/// tests that send what a well-behaved client would not.
pub fn client_frame_b0(b0: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![b0];
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= 0xffff {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&MASK);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    out
}

/// Writes one final masked client frame.
pub fn write_frame(s: &mut TcpStream, opcode: u8, payload: &[u8]) {
    s.write_all(&client_frame(true, opcode, payload)).unwrap();
}

/// A close frame's payload: the code, then the reason.
pub fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason);
    p
}

/// Reads one server frame: `Some((opcode, payload))`, `None` on EOF or a read error before a
/// whole frame. Panics on a masked frame (a server never masks).
pub fn read_frame(s: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    read_frame_b0(s).map(|(b0, payload)| (b0 & 0x0f, payload))
}

/// As [`read_frame`], with the frame's whole first byte (FIN, RSV bits, opcode).
pub fn read_frame_b0(s: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    let mut h = [0u8; 2];
    s.read_exact(&mut h).ok()?;
    assert_eq!(h[1] & 0x80, 0, "server frames are unmasked");
    let len = match h[1] & 0x7f {
        126 => {
            let mut b = [0u8; 2];
            s.read_exact(&mut b).ok()?;
            u64::from(u16::from_be_bytes(b))
        }
        127 => {
            let mut b = [0u8; 8];
            s.read_exact(&mut b).ok()?;
            u64::from_be_bytes(b)
        }
        n => u64::from(n),
    };
    let mut payload = vec![0u8; usize::try_from(len).expect("frame length")];
    s.read_exact(&mut payload).ok()?;
    Some((h[0], payload))
}

/// Reads frames until a close frame; returns its code (`None`: empty payload), or `None` on
/// EOF before one.
pub fn read_close(s: &mut TcpStream) -> Option<Option<u16>> {
    loop {
        let (op, payload) = read_frame(s)?;
        if op == 8 {
            return Some(
                (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]])),
            );
        }
    }
}

/// Reads until EOF (or a reset); returns what came. Panics on another read error (a
/// timeout: the peer never closed).
pub fn read_to_eof(s: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return all,
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return all,
            Err(e) => panic!("read error before EOF: {e}"),
        }
    }
}

/// True when the peer closed the socket (EOF or reset) within the read timeout without
/// sending a byte.
pub fn closed_without_bytes(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => matches!(
            e.kind(),
            ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
        ),
    }
}
