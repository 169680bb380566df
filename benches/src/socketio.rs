//! The Engine.IO v4 / Socket.IO v5 framing that the broadcast mode speaks with `--socketio`, so
//! that one load generator measures wss and a Socket.IO server the same way.
//!
//! Only the WebSocket transport is used (no HTTP long-polling first): the client connects to
//! [`PATH`], the server sends the Engine.IO open packet `0{...}`, the client joins the default
//! namespace with `40` and the server confirms with `40{...}`. Events travel as
//! `42["msg","<payload>"]`; the server's pings (`2`) are answered with pongs (`3`). The bench
//! payload is plain ASCII letters and `:`, so inside the JSON string it needs no escaping and
//! the receivers find it with the same marker search as in plain WebSocket mode.

use crate::client::{encode_masked, OP_TEXT};
use crate::pattern::Pattern;
use crate::reader::{FrameReader, Piece};
use crate::BenchError;
use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

/// The request target of a Socket.IO connection over WebSocket only.
pub const PATH: &str = "/socket.io/?EIO=4&transport=websocket";
/// What comes before the payload in every event the sender emits.
pub const EVENT_PREFIX: &[u8] = b"42[\"msg\",\"";
/// What comes after it.
pub const EVENT_SUFFIX: &[u8] = b"\"]";
/// Longest handshake packet accepted (the open packet is about 100 bytes).
const MAX_HANDSHAKE_PACKET: usize = 4096;

/// True for an Engine.IO ping packet, which must be answered with [`pong`].
pub fn is_ping(message: &[u8]) -> bool {
    message == b"2"
}

/// Appends the masked pong packet (`3`).
pub fn pong(out: &mut Vec<u8>, key: [u8; 4]) {
    encode_masked(out, OP_TEXT, b"3", key);
}

/// Appends the masked frame of event `seq`: `42["msg","<payload of seq>"]`. `scratch` holds
/// the unmasked packet between calls so that the steady state allocates nothing.
pub fn encode_event(
    out: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
    pattern: &Pattern,
    seq: u64,
    key: [u8; 4],
) {
    scratch.clear();
    scratch.extend_from_slice(EVENT_PREFIX);
    let at = scratch.len();
    scratch.resize(at + pattern.len(), 0);
    pattern.write(seq, &mut scratch[at..]);
    scratch.extend_from_slice(EVENT_SUFFIX);
    encode_masked(out, OP_TEXT, scratch, key);
}

/// Joins the default namespace on a freshly upgraded blocking `stream`: waits for the open
/// packet, sends `40`, waits for the server's `40`. `early` holds the frame bytes that came
/// with the 101. Pings met on the way are answered. Bounded by `timeout`.
pub fn handshake(
    stream: &mut std::net::TcpStream,
    early: &[u8],
    key: [u8; 4],
    timeout: Duration,
) -> Result<(), BenchError> {
    let deadline = Instant::now() + timeout;
    let mut reader = FrameReader::new(MAX_HANDSHAKE_PACKET);
    let mut message = Vec::new();
    let mut opened = false;
    let mut pending = early.to_vec();
    let mut chunk = [0u8; 4096];
    loop {
        let mut packets = Vec::new();
        reader.feed(&pending, |p| {
            match p {
                Piece::Data { bytes, .. } => message.extend_from_slice(bytes),
                Piece::End { .. } => packets.push(std::mem::take(&mut message)),
                Piece::Close(_) => return Err(BenchError::Handshake("closed by Socket.IO")),
                Piece::Ping(_) | Piece::Pong(_) => {}
            }
            Ok(())
        })?;
        pending.clear();
        for packet in packets {
            let mut reply = Vec::new();
            match packet.first() {
                Some(b'0') if !opened => {
                    opened = true;
                    encode_masked(&mut reply, OP_TEXT, b"40", key);
                }
                Some(b'4') if packet.starts_with(b"40") && opened => return Ok(()),
                Some(b'4') if packet.starts_with(b"44") => {
                    return Err(BenchError::Handshake("Socket.IO refused the namespace"))
                }
                _ if is_ping(&packet) => pong(&mut reply, key),
                _ => return Err(BenchError::Handshake("unexpected Engine.IO packet")),
            }
            stream
                .write_all(&reply)
                .map_err(BenchError::io("write handshake"))?;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(BenchError::Handshake("Socket.IO handshake timed out"));
        }
        stream
            .set_read_timeout(Some(left))
            .map_err(BenchError::io("set timeout"))?;
        let n = match stream.read(&mut chunk) {
            Ok(0) => return Err(BenchError::Handshake("closed during Socket.IO handshake")),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(BenchError::Io(e.kind(), "read handshake")),
        };
        pending.extend_from_slice(&chunk[..n]);
    }
}

/// Bytes waiting to go out on a non-blocking socket, written in order.
#[derive(Debug, Default)]
pub struct Outbox {
    /// The frames, masked.
    pub buf: Vec<u8>,
    off: usize,
}

impl Outbox {
    /// Writes until done or the socket is full (then WRITABLE calls again).
    pub fn flush(&mut self, stream: &mut impl Write) -> Result<(), BenchError> {
        while self.off < self.buf.len() {
            match stream.write(&self.buf[self.off..]) {
                Ok(0) => return Err(BenchError::Io(ErrorKind::WriteZero, "write")),
                Ok(n) => self.off += n,
                Err(e) => match e.kind() {
                    ErrorKind::WouldBlock => return Ok(()),
                    ErrorKind::Interrupted => {}
                    kind => return Err(BenchError::Io(kind, "write")),
                },
            }
        }
        self.buf.clear();
        self.off = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{check_response, mask, ACCEPT};
    use std::net::{TcpListener, TcpStream};

    /// Unmasks one client frame from the front of `bytes`: (payload, frame length).
    fn unmask(bytes: &[u8]) -> (Vec<u8>, usize) {
        assert_eq!(bytes[0], 0x80 | OP_TEXT);
        let len = (bytes[1] & 0x7f) as usize;
        assert!(len < 126);
        let key = [bytes[2], bytes[3], bytes[4], bytes[5]];
        let mut payload = bytes[6..6 + len].to_vec();
        mask(&mut payload, key, 0);
        (payload, 6 + len)
    }

    fn server_text(payload: &[u8]) -> Vec<u8> {
        let mut out = vec![0x80 | OP_TEXT, payload.len() as u8];
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn events_wrap_the_bench_payload_as_a_json_string() {
        let pattern = Pattern::broadcast(20).expect("pattern");
        let (mut out, mut scratch) = (Vec::new(), Vec::new());
        encode_event(&mut out, &mut scratch, &pattern, 5, [1, 2, 3, 4]);
        let (packet, used) = unmask(&out);
        assert_eq!(used, out.len());
        let text = std::str::from_utf8(&packet).expect("utf-8");
        assert_eq!(text, "42[\"msg\",\"wsb:aaaaaaafMNOPQRST\"]");
        let v: serde_json::Value = serde_json::from_str(&text[2..]).expect("json");
        assert_eq!(v[0], "msg");
        assert_eq!(pattern.find_in(&packet), Some(Ok(5)));
        let mut p = Vec::new();
        pong(&mut p, [9, 9, 9, 9]);
        assert_eq!(unmask(&p).0, b"3");
        assert!(is_ping(b"2") && !is_ping(b"3") && !is_ping(b"2probe"));
    }

    /// A scripted Engine.IO server: 101, open packet, a ping, then `reply` to the client's
    /// `40`; returns what the client sent after the upgrade.
    fn scripted(reply: &'static [u8]) -> (std::net::SocketAddr, std::thread::JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().expect("accept");
            s.set_read_timeout(Some(Duration::from_secs(5))).ok();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                s.read_exact(&mut byte).expect("request");
                head.push(byte[0]);
            }
            let mut out = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Accept: {ACCEPT}\r\n\r\n"
            )
            .into_bytes();
            out.extend(server_text(br#"0{"sid":"x","pingInterval":25000}"#));
            out.extend(server_text(b"2"));
            s.write_all(&out).expect("write");
            // The client's join (40) and pong (3): 8 + 7 bytes.
            let mut got = vec![0u8; 15];
            s.read_exact(&mut got).expect("client packets");
            s.write_all(&server_text(reply)).expect("write");
            got
        });
        (addr, server)
    }

    fn upgrade(addr: std::net::SocketAddr) -> (TcpStream, Vec<u8>) {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.write_all(b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("request");
        let mut buf = Vec::new();
        let mut chunk = [0u8; 512];
        loop {
            let n = s.read(&mut chunk).expect("response");
            buf.extend_from_slice(&chunk[..n]);
            if let Some(used) = check_response(&buf).expect("101") {
                return (s, buf.split_off(used));
            }
        }
    }

    #[test]
    fn handshake_answers_pings_and_joins_the_namespace() {
        let (addr, server) = scripted(br#"40{"sid":"y"}"#);
        let (mut s, early) = upgrade(addr);
        handshake(&mut s, &early, [7, 7, 7, 7], Duration::from_secs(5)).expect("joined");
        let sent = server.join().expect("server");
        let (first, used) = unmask(&sent);
        assert_eq!(first, b"40", "the open packet is answered first");
        assert_eq!(unmask(&sent[used..]).0, b"3", "then the ping");
    }

    #[test]
    fn handshake_reports_a_refused_namespace() {
        let (addr, server) = scripted(br#"44{"message":"no"}"#);
        let (mut s, early) = upgrade(addr);
        let err =
            handshake(&mut s, &early, [7, 7, 7, 7], Duration::from_secs(5)).expect_err("refused");
        assert!(matches!(err, BenchError::Handshake(_)), "{err}");
        server.join().expect("server");
    }
}
