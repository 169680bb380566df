//! Property test of the read ahead: a reader that reads ahead whenever the connection offers
//! to (as wss-net's loop does), on any stream of large and small frames, control frames and
//! stray bytes, cut into any reads, sees exactly what a reader that never reads ahead sees.

use std::time::Instant;

use proptest::collection::vec;
use proptest::prelude::*;
use wss_proto::encode_frame;
use wss_proto::{Config, Connection, Event, Opcode, Role, Scratch};

/// One frame of the stream: large ones around the sizes a guess is made for, small ones,
/// pings, fragments, and now and then bytes that break the protocol.
#[derive(Debug, Clone)]
enum Piece {
    Binary(usize, u8),
    Text(usize),
    Ping,
    Fragmented(usize),
    Garbage(Vec<u8>),
}

fn piece() -> impl Strategy<Value = Piece> {
    prop_oneof![
        // Two sizes, give or take a few bytes: consecutive large frames are often nearly
        // the same length, the case a guess must get right (a few bytes more or less).
        6 => prop_oneof![Just(20_000usize), Just(65_536)]
            .prop_flat_map(|base| (base - 16..=base + 16, any::<u8>()))
            .prop_map(|(len, seed)| Piece::Binary(len, seed)),
        1 => (16_384usize..70_000, any::<u8>()).prop_map(|(len, seed)| Piece::Binary(len, seed)),
        2 => (0usize..300, any::<u8>()).prop_map(|(len, seed)| Piece::Binary(len, seed)),
        2 => (16_000usize..20_100).prop_map(Piece::Text),
        1 => Just(Piece::Ping),
        1 => (16_384usize..40_000).prop_map(Piece::Fragmented),
        1 => vec(any::<u8>(), 1..20).prop_map(Piece::Garbage),
    ]
}

fn text(len: usize) -> Vec<u8> {
    let mut s = String::new();
    while s.len() + 3 <= len {
        s.push_str(["a", "é", "€"][s.len() % 3]);
    }
    while s.len() < len {
        s.push('z');
    }
    s.into_bytes()
}

/// The stream's bytes, and where each piece ends in it.
fn wire(pieces: &[Piece]) -> (Vec<u8>, Vec<usize>) {
    let key = Some([0x37, 0xfa, 0x21, 0x3d]);
    let mut out = Vec::new();
    let mut ends = Vec::new();
    for p in pieces {
        match p {
            Piece::Binary(len, seed) => {
                let payload: Vec<u8> = (0..*len)
                    .map(|i| (i as u8).wrapping_mul(13) ^ seed)
                    .collect();
                encode_frame(&mut out, true, Opcode::Binary, &payload, key);
            }
            Piece::Text(len) => encode_frame(&mut out, true, Opcode::Text, &text(*len), key),
            Piece::Ping => encode_frame(&mut out, true, Opcode::Ping, b"ping", key),
            Piece::Fragmented(len) => {
                let payload = vec![7u8; *len];
                let (a, b) = payload.split_at(len / 2);
                encode_frame(&mut out, false, Opcode::Binary, a, key);
                encode_frame(&mut out, true, Opcode::Continuation, b, key);
            }
            Piece::Garbage(bytes) => out.extend_from_slice(bytes),
        }
        ends.push(out.len());
    }
    (out, ends)
}

/// How much one read takes: a number of bytes, or up to the end of the `k`-th piece that
/// ends after the current position (as a socket that gets one message at a time delivers).
#[derive(Debug, Clone, Copy)]
enum Step {
    Bytes(usize),
    Pieces(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (1usize..3).prop_map(Step::Pieces),
        1 => (1usize..20).prop_map(Step::Bytes),
        2 => (20usize..70_000).prop_map(Step::Bytes),
        1 => Just(Step::Bytes(1 << 18)),
    ]
}

/// The bytes the next read takes at `at`.
fn want(step: Step, at: usize, ends: &[usize]) -> usize {
    match step {
        Step::Bytes(n) => n,
        Step::Pieces(k) => {
            let next = ends.iter().position(|&end| end > at).unwrap_or(ends.len());
            let end = ends
                .get(next + k - 1)
                .or(ends.last())
                .copied()
                .unwrap_or(at);
            end.saturating_sub(at).max(1)
        }
    }
}

/// What a reader saw: the events (message payloads recycled, as an echo does once it has
/// written them), the output, and how the connection ended.
#[derive(Debug, PartialEq)]
struct Seen {
    events: Vec<Event>,
    out: Vec<u8>,
    state: wss_proto::State,
    error: Option<wss_proto::ProtocolError>,
}

/// Reads `wire` in reads of the given steps (cycled); with `ahead`, reads ahead whenever the
/// connection offers to. Returns what it saw and how many reads took a payload in place.
fn read(wire: &[u8], ends: &[usize], steps: &[Step], ahead: bool) -> (Seen, usize) {
    let now = Instant::now();
    let mut scratch = Scratch::new();
    let mut conn = Connection::new(Role::Server, Config::default(), now);
    let mut events = Vec::new();
    let mut taken = 0;
    let mut at = 0;
    let mut k = 0;
    let mut buf = vec![0u8; 1 << 18];
    while at < wire.len() {
        let want = want(steps[k % steps.len()], at, ends);
        k += 1;
        let offer = if ahead {
            conn.read_ahead(&mut scratch)
        } else {
            None
        };
        match offer {
            Some(mut a) => {
                // A readv of at most `want` bytes into (head, payload, rest).
                let limit = want.min(wire.len() - at);
                let mut src = &wire[at..at + limit];
                let (head, rest) = buf.split_at_mut(a.head_len());
                for dst in [head, a.payload(), rest] {
                    let n = src.len().min(dst.len());
                    dst[..n].copy_from_slice(&src[..n]);
                    src = &src[n..];
                }
                let n = limit - src.len();
                let (head, rest) = buf.split_at(a.head_len());
                taken += usize::from(conn.receive_ahead(&mut scratch, now, a, n, head, rest));
                at += n;
            }
            None => {
                let n = want.min(buf.len()).min(wire.len() - at);
                conn.receive(&mut scratch, now, &wire[at..at + n]);
                at += n;
            }
        }
        while let Some(event) = conn.poll_event(&mut scratch) {
            if let Event::Message(m) = &event {
                // An echo would write it and give it back; the copy keeps what was seen.
                let payload = m.as_bytes().to_vec();
                scratch.recycle(payload);
            }
            events.push(event);
        }
    }
    let mut out = Vec::new();
    conn.poll_transmit(&mut out);
    let seen = Seen {
        events,
        out,
        state: conn.state(),
        error: conn.error().cloned(),
    };
    (seen, taken)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn reading_ahead_changes_nothing_a_reader_sees(
        pieces in vec(piece(), 1..10),
        steps in vec(step(), 1..6),
    ) {
        let (wire, ends) = wire(&pieces);
        let (plain, _) = read(&wire, &ends, &steps, false);
        let (ahead, _) = read(&wire, &ends, &steps, true);
        prop_assert_eq!(ahead, plain);
    }
}

/// The property test above must exercise the path it is about: on a plain stream of equal
/// large frames read a frame at a time, every read after the first takes its payload in place.
#[test]
fn equal_large_frames_are_read_ahead() {
    let pieces: Vec<Piece> = (0..6).map(|i| Piece::Binary(65_536, i)).collect();
    let (wire, ends) = wire(&pieces);
    let steps = [Step::Pieces(1)];
    let (seen, taken) = read(&wire, &ends, &steps, true);
    assert_eq!(seen.events.len(), 6);
    assert_eq!(taken, 5);
    assert_eq!(seen, read(&wire, &ends, &steps, false).0);
}
