//! Codec benches: wss-proto against tungstenite on the same bytes, with a plain copy of the same
//! size as the ceiling. One criterion group per operation and payload size, so each report
//! shows the three side by side:
//!
//! - `parse_unmask/N`: a masked client frame, from bytes in memory to an unmasked payload in the
//!   codec's own buffer (wss: header parse and fused copy-and-unmask; `wss_in_place`: header
//!   parse and unmask where the bytes lie). tungstenite does not expose its unmasking: its entry,
//!   `tungstenite_no_unmask`, is `FrameSocket::read` (copy from its reader and header parse,
//!   payload left masked), a lower bound of its cost, so the ratio read here understates ours.
//!   The full like-for-like path, unmasking included, is the `receive` group.
//! - `encode/N`, `encode_masked/N`: one binary frame appended to a reused buffer, as a server
//!   (unmasked) and as a client (masked).
//! - `utf8/N`: validation of mixed ASCII and multi-byte text (tungstenite validates a text
//!   frame with `Utf8Bytes::try_from`).
//! - `receive/N`, `receive_text/N`: a server connection fed one masked frame and asked for the
//!   message (wss: `Connection::receive` + `poll_event` on bytes already in memory;
//!   tungstenite: `WebSocket::read` over an in-memory stream, so it also pays the copy from
//!   the stream into its buffer, amortized over a 128 KiB read).
//! - `receive_stream/N`, `receive_stream_text/N`: the same work on both sides, as a server
//!   does it: 128 KiB socket reads (a copy from the in-memory stream) into the reader's
//!   buffer, then unmask and an owned message. Frames that straddle reads take the partial
//!   paths.
//!
//! Run: `cargo bench -p wss-benches --bench codec` (add `-- --quick` for a smoke run).

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use std::io::{self, Cursor, Read, Write};
use std::time::Instant;
use tungstenite::protocol::frame::coding::{Data, OpCode};
use tungstenite::protocol::frame::{Frame, FrameSocket, Utf8Bytes};
use tungstenite::protocol::{Role as TRole, WebSocket};
use wss_proto::frame::encode_frame;
use wss_proto::mask::{apply_mask, extend_masked};
use wss_proto::utf8::Utf8Validator;
use wss_proto::{Config, Connection, Event, FrameHeader, Opcode, Role};

const SIZES: [usize; 5] = [16, 125, 1024, 64 * 1024, 1024 * 1024];
const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn binary_payload(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i * 31 + 7) as u8).collect()
}

/// Valid UTF-8 of exactly `size` bytes, about a third of it in 2- and 3-byte sequences.
fn text_payload(size: usize) -> Vec<u8> {
    let piece = "héllo wörld, ça va? — ✓ plain ascii words ";
    let mut s = String::with_capacity(size + piece.len());
    while s.len() < size {
        s.push_str(piece);
    }
    while s.len() > size {
        s.pop();
    }
    while s.len() < size {
        s.push('.');
    }
    s.into_bytes()
}

fn masked_frame(opcode: Opcode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(&mut out, true, opcode, payload, Some(KEY));
    out
}

/// An in-memory stream that yields the same bytes over and over and swallows writes: a socket
/// whose peer keeps sending one frame.
struct Repeat {
    data: Vec<u8>,
    pos: usize,
}

impl Read for Repeat {
    /// Fills `buf` completely, wrapping around: a socket with many frames already queued.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut filled = 0;
        while filled < buf.len() {
            let n = (buf.len() - filled).min(self.data.len() - self.pos);
            buf[filled..filled + n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos = (self.pos + n) % self.data.len();
            filled += n;
        }
        Ok(filled)
    }
}

impl Write for Repeat {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn memcpy(b: &mut criterion::Bencher<'_>, src: &[u8]) {
    let mut dst = Vec::with_capacity(src.len());
    b.iter(|| {
        dst.clear();
        dst.extend_from_slice(black_box(src));
        black_box(&dst);
    });
}

fn parse_unmask(c: &mut Criterion) {
    for size in SIZES {
        let frame = masked_frame(Opcode::Binary, &binary_payload(size));
        let mut g = c.benchmark_group(format!("parse_unmask/{size}"));
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function("wss", |b| {
            let mut payload = Vec::with_capacity(size);
            b.iter(|| {
                let input = black_box(&frame[..]);
                let Ok(Some((h, n))) = FrameHeader::parse(input) else {
                    unreachable!("bench frame is valid")
                };
                payload.clear();
                extend_masked(&mut payload, &input[n..], h.mask.unwrap_or_default(), 0);
                black_box(&payload);
            });
        });
        g.bench_function("wss_in_place", |b| {
            let mut buf = frame.clone();
            b.iter(|| {
                let Ok(Some((h, n))) = FrameHeader::parse(black_box(&buf[..])) else {
                    unreachable!("bench frame is valid")
                };
                // Unmasking twice restores the bytes, so every iteration sees the same input.
                apply_mask(&mut buf[n..], h.mask.unwrap_or_default());
                black_box(&buf);
            });
        });
        g.bench_function("tungstenite_no_unmask", |b| {
            let mut socket = FrameSocket::new(Repeat {
                data: frame.clone(),
                pos: 0,
            });
            b.iter(|| {
                let f = socket.read(None).ok().flatten();
                black_box(f.map(|f| f.len()));
            });
        });
        g.bench_function("memcpy", |b| memcpy(b, &frame[frame.len() - size..]));
        g.finish();
    }
}

fn encode(c: &mut Criterion) {
    for (name, mask) in [("encode", None), ("encode_masked", Some(KEY))] {
        for size in SIZES {
            let payload = binary_payload(size);
            let shared = bytes_of(&payload);
            let mut g = c.benchmark_group(format!("{name}/{size}"));
            g.throughput(Throughput::Bytes(size as u64));
            g.bench_function("wss", |b| {
                let mut out = Vec::with_capacity(size + 14);
                b.iter(|| {
                    out.clear();
                    encode_frame(&mut out, true, Opcode::Binary, black_box(&payload), mask);
                    black_box(&out);
                });
            });
            g.bench_function("tungstenite", |b| {
                let mut out = Vec::with_capacity(size + 14);
                b.iter(|| {
                    out.clear();
                    let mut f =
                        Frame::message(black_box(shared.clone()), OpCode::Data(Data::Binary), true);
                    f.header_mut().mask = mask;
                    let _ = f.format(&mut out);
                    black_box(&out);
                });
            });
            g.bench_function("memcpy", |b| memcpy(b, &payload));
            g.finish();
        }
    }
}

/// tungstenite's payload type, from its own dependency (no extra crate for the benches).
fn bytes_of(payload: &[u8]) -> tungstenite::Bytes {
    tungstenite::Bytes::copy_from_slice(payload)
}

fn utf8(c: &mut Criterion) {
    for size in SIZES {
        let text = text_payload(size);
        let shared = bytes_of(&text);
        let mut g = c.benchmark_group(format!("utf8/{size}"));
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function("wss", |b| {
            b.iter(|| {
                let mut v = Utf8Validator::new();
                let ok = v.feed(black_box(&text)).is_ok() && v.finish().is_ok();
                black_box(ok)
            });
        });
        g.bench_function("tungstenite", |b| {
            b.iter(|| black_box(Utf8Bytes::try_from(black_box(shared.clone())).is_ok()));
        });
        g.bench_function("memcpy", |b| memcpy(b, &text));
        g.finish();
    }
}

fn receive(c: &mut Criterion) {
    for (name, opcode) in [("receive", Opcode::Binary), ("receive_text", Opcode::Text)] {
        for size in SIZES {
            let payload = if opcode == Opcode::Text {
                text_payload(size)
            } else {
                binary_payload(size)
            };
            let frame = masked_frame(opcode, &payload);
            let mut g = c.benchmark_group(format!("{name}/{size}"));
            g.throughput(Throughput::Bytes(size as u64));
            g.bench_function("wss", |b| {
                let now = Instant::now();
                let mut conn = Connection::new(Role::Server, Config::default(), now);
                b.iter(|| {
                    conn.receive(now, black_box(&frame));
                    match conn.poll_event() {
                        Some(Event::Message(m)) => black_box(m),
                        other => panic!("expected a message, got {other:?}"),
                    };
                });
            });
            g.bench_function("tungstenite", |b| {
                let stream = Repeat {
                    data: frame.clone(),
                    pos: 0,
                };
                let mut ws = WebSocket::from_raw_socket(stream, TRole::Server, None);
                b.iter(|| match ws.read() {
                    Ok(m) => black_box(m),
                    Err(e) => panic!("tungstenite failed: {e}"),
                });
            });
            g.bench_function("memcpy", |b| memcpy(b, &payload));
            g.finish();
        }
    }
}

/// Bytes a network layer reads from the socket at a time: tungstenite's default read buffer.
const READ: usize = 128 * 1024;

/// Like `receive`, but both sides get their bytes the way a server does: from a socket, in
/// 128 KiB reads of a stream of identical frames. Both then pay the same "kernel copy" (the
/// in-memory source copying into the reader's buffer), both unmask, and both hand over an
/// owned message; frames that straddle two reads take the partial paths (for wss, the
/// buffer growth of a 1 MiB message arriving in pieces).
fn receive_stream(c: &mut Criterion) {
    for (name, opcode) in [
        ("receive_stream", Opcode::Binary),
        ("receive_stream_text", Opcode::Text),
    ] {
        for size in SIZES {
            let payload = if opcode == Opcode::Text {
                text_payload(size)
            } else {
                binary_payload(size)
            };
            let frame = masked_frame(opcode, &payload);
            let mut g = c.benchmark_group(format!("{name}/{size}"));
            g.throughput(Throughput::Bytes(size as u64));
            g.bench_function("wss", |b| {
                let now = Instant::now();
                let mut conn = Connection::new(Role::Server, Config::default(), now);
                let mut socket = Repeat {
                    data: frame.clone(),
                    pos: 0,
                };
                let mut buf = vec![0u8; READ];
                b.iter(|| loop {
                    match conn.poll_event() {
                        Some(Event::Message(m)) => break black_box(m),
                        Some(other) => panic!("expected a message, got {other:?}"),
                        None => {
                            let n = socket.read(&mut buf).unwrap_or(0);
                            conn.receive(now, &buf[..n]);
                        }
                    }
                });
            });
            g.bench_function("tungstenite", |b| {
                let stream = Repeat {
                    data: frame.clone(),
                    pos: 0,
                };
                let mut ws = WebSocket::from_raw_socket(stream, TRole::Server, None);
                b.iter(|| match ws.read() {
                    Ok(m) => black_box(m),
                    Err(e) => panic!("tungstenite failed: {e}"),
                });
            });
            g.bench_function("memcpy", |b| memcpy(b, &payload));
            g.finish();
        }
    }
}

/// Checks, before timing anything, that both codecs decode the bench input to the same bytes:
/// a bench of code that fails fast would be meaningless.
fn sanity(_: &mut Criterion) {
    for size in SIZES {
        let payload = binary_payload(size);
        let frame = masked_frame(Opcode::Binary, &payload);
        // FrameSocket leaves the payload masked: unmask it here to compare.
        let mut socket = FrameSocket::new(Cursor::new(frame.clone()));
        let f = socket.read(None).ok().flatten().map(|f| {
            assert_eq!(f.header().mask, Some(KEY));
            let mut p = f.into_payload().to_vec();
            apply_mask(&mut p, KEY);
            p
        });
        assert_eq!(
            f.as_deref(),
            Some(&payload[..]),
            "tungstenite frame, size {size}"
        );
        let mut ws = WebSocket::from_raw_socket(Cursor::new(frame.clone()), TRole::Server, None);
        let m = ws.read().map(|m| m.into_data().to_vec()).ok();
        assert_eq!(
            m.as_deref(),
            Some(&payload[..]),
            "tungstenite message, size {size}"
        );
        let now = Instant::now();
        let mut conn = Connection::new(Role::Server, Config::default(), now);
        conn.receive(now, &frame);
        match conn.poll_event() {
            Some(Event::Message(m)) => assert_eq!(m.as_bytes(), &payload[..], "wss, size {size}"),
            other => panic!("wss gave {other:?} for size {size}"),
        }
        let mut ours = Vec::new();
        encode_frame(&mut ours, true, Opcode::Binary, &payload, None);
        let mut theirs = Vec::new();
        let _ = Frame::message(bytes_of(&payload), OpCode::Data(Data::Binary), true)
            .format(&mut theirs);
        assert_eq!(ours, theirs, "encode, size {size}");
        assert!(std::str::from_utf8(&text_payload(size)).is_ok());
    }
}

criterion_group!(
    benches,
    sanity,
    parse_unmask,
    encode,
    utf8,
    receive,
    receive_stream
);
criterion_main!(benches);
