//! The client side of the wire, reduced to what a load generator needs: one upgrade request,
//! a check of the 101, and frames masked once up front.
//!
//! Every connection sends the RFC 6455 §1.3 sample key, so the expected accept value is a
//! constant and the generator spends no SHA-1 per connection; servers cannot tell the difference.
//! The mask key is fixed for a run for the same reason (one masked copy of the payload serves
//! every message): fine on loopback, where no proxy can be confused by predictable masks.

use crate::pattern::Pattern;
use crate::target::Target;
use crate::BenchError;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// The `Sec-WebSocket-Key` every connection sends (RFC 6455 §1.3).
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
/// The `Sec-WebSocket-Accept` that [`KEY`] must produce.
pub const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
/// Largest response head accepted.
pub const MAX_RESPONSE_HEAD: usize = 8 * 1024;

/// Opcode of a text frame.
pub const OP_TEXT: u8 = 0x1;
/// Opcode of a binary frame.
pub const OP_BINARY: u8 = 0x2;
/// Opcode of a close frame.
pub const OP_CLOSE: u8 = 0x8;
/// Opcode of a ping frame.
pub const OP_PING: u8 = 0x9;
/// Opcode of a pong frame.
pub const OP_PONG: u8 = 0xA;

/// The upgrade request for `target`.
pub fn request(target: &Target) -> Vec<u8> {
    format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n",
        target.path, target.host
    )
    .into_bytes()
}

/// Checks a (possibly partial) response head. `Ok(None)`: need more bytes.
/// `Ok(Some(n))`: a valid 101 of `n` bytes; bytes after it are already WebSocket frames.
pub fn check_response(buf: &[u8]) -> Result<Option<usize>, BenchError> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let n = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_RESPONSE_HEAD => {
            return Err(BenchError::Handshake("response head too large"))
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(BenchError::Handshake("malformed response head")),
    };
    if resp.code != Some(101) {
        return Err(BenchError::Handshake("status is not 101"));
    }
    let accept = resp
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-accept"))
        .ok_or(BenchError::Handshake("no Sec-WebSocket-Accept"))?;
    if accept.value != ACCEPT.as_bytes() {
        return Err(BenchError::Handshake("wrong Sec-WebSocket-Accept"));
    }
    Ok(Some(n))
}

/// Opens a TCP connection from `source` (port chosen by the kernel) to `addr`.
pub fn tcp_connect(
    addr: SocketAddr,
    source: Option<IpAddr>,
    timeout: Duration,
) -> Result<TcpStream, BenchError> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)
        .map_err(BenchError::io("socket"))?;
    if let Some(ip) = source {
        // Without this the kernel reserves a port at bind time from the (small) range of
        // ports free on every address, defeating the point of using several source addresses.
        crate::sys::set_bind_no_port(&socket);
        socket
            .bind(&SocketAddr::new(ip, 0).into())
            .map_err(BenchError::io("bind source address"))?;
    }
    socket
        .connect_timeout(&addr.into(), timeout)
        .map_err(BenchError::io("connect"))?;
    socket
        .set_nodelay(true)
        .map_err(BenchError::io("nodelay"))?;
    Ok(socket.into())
}

/// Connects and upgrades with blocking I/O (setup phases, not the measured loops).
/// Returns the stream (still blocking, no read timeout) and any frame bytes that came
/// with the 101.
pub fn connect_blocking(
    target: &Target,
    source: Option<IpAddr>,
    timeout: Duration,
) -> Result<(TcpStream, Vec<u8>), BenchError> {
    let deadline = Instant::now() + timeout;
    let mut stream = tcp_connect(target.addr, source, timeout)?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(BenchError::io("set timeout"))?;
    stream
        .write_all(&request(target))
        .map_err(BenchError::io("write request"))?;
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        if Instant::now() > deadline {
            return Err(BenchError::Handshake("timed out"));
        }
        let n = stream
            .read(&mut chunk)
            .map_err(BenchError::io("read response"))?;
        if n == 0 {
            return Err(BenchError::Handshake(
                "connection closed before the response",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(used) = check_response(&buf)? {
            stream
                .set_read_timeout(None)
                .map_err(BenchError::io("clear timeout"))?;
            return Ok((stream, buf.split_off(used)));
        }
    }
}

/// Appends one masked frame (FIN set) to `out`: control frames and tests; data frames in the
/// measured loops come from a [`Template`].
pub fn encode_masked(out: &mut Vec<u8>, opcode: u8, payload: &[u8], key: [u8; 4]) {
    let mut header = [0u8; 14];
    let n = write_header(&mut header, opcode, payload.len() as u64, key);
    out.extend_from_slice(&header[..n]);
    let start = out.len();
    out.extend_from_slice(payload);
    mask(&mut out[start..], key, 0);
}

/// The masked close frame with code 1000 and no reason.
pub fn close_frame(key: [u8; 4]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8);
    encode_masked(&mut out, OP_CLOSE, &1000u16.to_be_bytes(), key);
    out
}

fn write_header(out: &mut [u8; 14], opcode: u8, len: u64, key: [u8; 4]) -> usize {
    out[0] = 0x80 | opcode;
    let n = if len < 126 {
        out[1] = 0x80 | len as u8;
        2
    } else if len <= u64::from(u16::MAX) {
        out[1] = 0x80 | 126;
        out[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        4
    } else {
        out[1] = 0x80 | 127;
        out[2..10].copy_from_slice(&len.to_be_bytes());
        10
    };
    out[n..n + 4].copy_from_slice(&key);
    n + 4
}

/// XORs `buf` with `key`, as if `buf` started at byte `phase` of a payload.
pub fn mask(buf: &mut [u8], key: [u8; 4], phase: usize) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b ^= key[(phase + i) & 3];
    }
}

/// Largest prefix (header plus masked sequence head) a [`Template`] writes.
pub const MAX_PREFIX: usize = 14 + 16;

/// A data frame masked once: per message only the short sequence head is masked again; the
/// tail, the same for every message, is written from this one copy.
#[derive(Debug)]
pub struct Template {
    header: [u8; 14],
    header_len: usize,
    key: [u8; 4],
    pattern: Pattern,
    masked_tail: Box<[u8]>,
}

impl Template {
    /// Frames carrying `pattern`'s payloads with `opcode`, masked with `key`.
    pub fn new(pattern: Pattern, opcode: u8, key: [u8; 4]) -> Template {
        let mut header = [0u8; 14];
        let header_len = write_header(&mut header, opcode, pattern.len() as u64, key);
        let mut masked_tail: Box<[u8]> = pattern.tail().into();
        mask(&mut masked_tail, key, pattern.head_len());
        Template {
            header,
            header_len,
            key,
            pattern,
            masked_tail,
        }
    }

    /// Writes the frame's first bytes for message `seq` into `out`; returns how many.
    pub fn prefix(&self, seq: u64, out: &mut [u8; MAX_PREFIX]) -> usize {
        let h = self.header_len;
        out[..h].copy_from_slice(&self.header[..h]);
        let head_len = self.pattern.head_len();
        let head = self.pattern.head(seq);
        for i in 0..head_len {
            out[h + i] = head[i] ^ self.key[i & 3];
        }
        h + head_len
    }

    /// The rest of every frame, after its prefix.
    pub fn tail(&self) -> &[u8] {
        &self.masked_tail
    }

    /// Whole frame length in bytes.
    pub fn frame_len(&self) -> usize {
        self.header_len + self.pattern.len()
    }

    /// The mask key of every frame.
    pub fn key(&self) -> [u8; 4] {
        self.key
    }

    /// The payloads this template carries.
    pub fn pattern(&self) -> &Pattern {
        &self.pattern
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_5_7_masked_hello_is_encoded_exactly() {
        let mut out = Vec::new();
        encode_masked(&mut out, OP_TEXT, b"Hello", [0x37, 0xfa, 0x21, 0x3d]);
        assert_eq!(
            out,
            [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
        );
    }

    #[test]
    fn template_frames_equal_frames_encoded_from_scratch() {
        let key = [1, 2, 3, 0xf0];
        for size in [0, 3, 8, 16, 125, 126, 1000, 65535, 65536, 70000] {
            let t = Template::new(Pattern::echo(size), OP_BINARY, key);
            for seq in [0u64, 1, 0xdead_beef] {
                let mut payload = vec![0u8; size];
                t.pattern().write(seq, &mut payload);
                let mut expected = Vec::new();
                encode_masked(&mut expected, OP_BINARY, &payload, key);
                let mut prefix = [0u8; MAX_PREFIX];
                let n = t.prefix(seq, &mut prefix);
                let mut got = prefix[..n].to_vec();
                got.extend_from_slice(t.tail());
                assert_eq!(got, expected, "size {size} seq {seq}");
                assert_eq!(t.frame_len(), expected.len());
            }
        }
    }

    #[test]
    fn response_check_accepts_only_a_101_with_the_right_accept() {
        let good = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nsec-websocket-accept: {ACCEPT}\r\n\r\n"
        );
        let mut with_frame = good.clone().into_bytes();
        with_frame.extend_from_slice(&[0x81, 0x00]);
        let n = check_response(&with_frame).unwrap().unwrap();
        assert_eq!(&with_frame[n..], &[0x81, 0x00]);
        assert_eq!(check_response(&good.as_bytes()[..20]).unwrap(), None);
        let wrong = good.replace(ACCEPT, "AAAAAAAAAAAAAAAAAAAAAAAAAAA=");
        assert!(check_response(wrong.as_bytes()).is_err());
        assert!(check_response(b"HTTP/1.1 404 Not Found\r\n\r\n").is_err());
        assert!(check_response(&[b'x'; MAX_RESPONSE_HEAD]).is_err());
    }
}
