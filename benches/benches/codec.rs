//! Codec benches: wss-proto against tungstenite on the same bytes, with a plain copy of the same
//! size as the ceiling. One criterion group per operation and payload size, so each report
//! shows the lines side by side:
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
//! - `receive/N`, `receive_text/N`: the receive path of a server, like for like. Every line
//!   reads the same stream of identical masked client frames from the same in-memory "socket"
//!   (`Repeat`, whose `read` is the kernel's copy into the reader's buffer), and does the same
//!   work on it: parse each header, check it, unmask the payload, validate text as UTF-8, and
//!   hand the message to the caller. One iteration is one read's worth of frames (see
//!   [`Reads`]): wss reads into its caller-owned buffer, tungstenite into its own
//!   (`WebSocket::read`, default 128 KiB reads, called once per frame of the same read).
//!   - `wss_in_place`: `Connection::receive_in_place`, the borrowed API: payload unmasked in
//!     the read buffer, `&[u8]` / `&str` handed to a closure. No copy, no allocation.
//!   - `wss_owned`: `Connection::receive` + `poll_event`: payload copied (and unmasked on the
//!     way) into an owned `Vec`/`String` per message.
//!   - `tungstenite`: `WebSocket::read`: payload split off its read buffer (`Bytes`, shared,
//!     no copy), unmasked in place, `Message` handed back.
//!   - `memcpy`: the copy of one read, the floor that every line pays.
//!
//!   An earlier `receive` gave wss its frame already in memory while tungstenite paid the
//!   copy out of its stream (unfair to tungstenite), and an earlier `receive_stream` fed wss
//!   128 KiB reads but counted one `poll_event` per iteration, so the read, the decode of a
//!   whole read and the growth of the event queue to thousands of owned messages landed in
//!   one iteration out of thousands (the 0.7-1.0x figures). Both are replaced by this group.
//!
//! Run: `cargo bench -p wss-benches --bench codec` (add `-- --quick` for a smoke run, or a group
//! name such as `receive` to run only it).

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use std::io::{self, Cursor, Read, Write};
use std::time::Instant;
use tungstenite::protocol::frame::coding::{Data, OpCode};
use tungstenite::protocol::frame::{Frame, FrameSocket, Utf8Bytes};
use tungstenite::protocol::{Role as TRole, WebSocket};
use wss_proto::encode_frame;
use wss_proto::internal::Utf8Validator;
use wss_proto::internal::{apply_mask, extend_masked};
use wss_proto::{Config, Connection, Event, EventRef, FrameHeader, Opcode, Role, Scratch};

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

/// Bytes a server reads from its socket at a time: tungstenite's default read buffer.
const READ: usize = 128 * 1024;

/// How the wss lines read the stream: reads of whole frames, as many as fit in [`READ`] (at
/// least one), so one iteration is the same number of messages on every line. (With reads
/// that cut frames, wss gathers a cut frame in its reassembly buffer: one extra copy of one
/// frame per read.)
struct Reads {
    frames: usize,
    bytes: usize,
}

impl Reads {
    fn of(frame_len: usize) -> Reads {
        let frames = (READ / frame_len).max(1);
        Reads {
            frames,
            bytes: frames * frame_len,
        }
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
            let reads = Reads::of(frame.len());
            let mut g = c.benchmark_group(format!("{name}/{size}"));
            g.throughput(Throughput::Bytes((reads.frames * size) as u64));
            g.bench_function("wss_in_place", |b| {
                let now = Instant::now();
                let mut conn = Connection::new(Role::Server, Config::default(), now);
                let mut scratch = Scratch::new();
                let mut socket = Repeat {
                    data: frame.clone(),
                    pos: 0,
                };
                let mut buf = vec![0u8; reads.bytes];
                b.iter(|| {
                    let n = socket.read(&mut buf).unwrap_or(0);
                    let mut got = 0;
                    conn.receive_in_place(
                        &mut scratch,
                        now,
                        &mut buf[..n],
                        |_, event| match event {
                            EventRef::Message(m) => {
                                black_box(m);
                                got += 1;
                            }
                            other => panic!("expected a message, got {other:?}"),
                        },
                    );
                    assert_eq!(got, reads.frames);
                });
            });
            g.bench_function("wss_owned", |b| {
                let now = Instant::now();
                let mut conn = Connection::new(Role::Server, Config::default(), now);
                let mut scratch = Scratch::new();
                let mut socket = Repeat {
                    data: frame.clone(),
                    pos: 0,
                };
                let mut buf = vec![0u8; reads.bytes];
                b.iter(|| {
                    let n = socket.read(&mut buf).unwrap_or(0);
                    conn.receive(&mut scratch, now, &buf[..n]);
                    for _ in 0..reads.frames {
                        match conn.poll_event(&mut scratch) {
                            Some(Event::Message(m)) => black_box(m),
                            other => panic!("expected a message, got {other:?}"),
                        };
                    }
                });
            });
            g.bench_function("tungstenite", |b| {
                let stream = Repeat {
                    data: frame.clone(),
                    pos: 0,
                };
                let mut ws = WebSocket::from_raw_socket(stream, TRole::Server, None);
                b.iter(|| {
                    for _ in 0..reads.frames {
                        match ws.read() {
                            Ok(m) => black_box(m),
                            Err(e) => panic!("tungstenite failed: {e}"),
                        };
                    }
                });
            });
            g.bench_function("memcpy", |b| memcpy(b, &frame.repeat(reads.frames)));
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
        let mut scratch = Scratch::new();
        conn.receive(&mut scratch, now, &frame);
        match conn.poll_event(&mut scratch) {
            Some(Event::Message(m)) => assert_eq!(m.as_bytes(), &payload[..], "wss, size {size}"),
            other => panic!("wss gave {other:?} for size {size}"),
        }
        let mut in_place = frame.clone();
        let mut seen = Vec::new();
        conn = Connection::new(Role::Server, Config::default(), now);
        conn.receive_in_place(&mut scratch, now, &mut in_place, |_, e| {
            seen.push(e.to_event())
        });
        assert_eq!(
            seen,
            [Event::Message(wss_proto::Message::Binary(payload.clone()))],
            "wss in place, size {size}"
        );
        let mut ours = Vec::new();
        encode_frame(&mut ours, true, Opcode::Binary, &payload, None);
        let mut theirs = Vec::new();
        let _ = Frame::message(bytes_of(&payload), OpCode::Data(Data::Binary), true)
            .format(&mut theirs);
        assert_eq!(ours, theirs, "encode, size {size}");
        assert!(std::str::from_utf8(&text_payload(size)).is_ok());
    }
}

criterion_group!(benches, sanity, parse_unmask, encode, utf8, receive);
criterion_main!(benches);
