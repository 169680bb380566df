//! Shared test helpers: raw frame builders and a client/server `Pair` driven in memory
//! with a fake clock.
#![allow(dead_code)]

use std::borrow::BorrowMut;
use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use wss_proto::{encode_frame, FrameHeader};
use wss_proto::{Config, Connection, Event, Opcode, Role, Scratch};

/// A fixed mask key, so expected bytes can be written by hand.
pub const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A frame as a client sends it (masked).
pub fn client_frame(fin: bool, opcode: Opcode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(&mut out, fin, opcode, payload, Some(KEY));
    out
}

/// A frame as a server sends it (unmasked).
pub fn server_frame(fin: bool, opcode: Opcode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(&mut out, fin, opcode, payload, None);
    out
}

/// Just a header, for frames whose payload is never sent in full.
pub fn header(fin: bool, rsv: u8, opcode: Opcode, mask: Option<[u8; 4]>, len: u64) -> Vec<u8> {
    let mut out = Vec::new();
    FrameHeader {
        fin,
        rsv,
        opcode,
        mask,
        payload_len: len,
    }
    .encode(&mut out);
    out
}

/// A close payload: code then reason bytes.
pub fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason);
    p
}

pub fn server(config: Config) -> (Connection, Instant) {
    let now = Instant::now();
    (Connection::new(Role::Server, config, now), now)
}

/// Whether this test binary runs the behaviour tests through the borrowed API: `tests/borrowed.rs`
/// includes the behaviour test files again, and its crate name switches every
/// [`receive`] below to `Connection::receive_in_place`.
pub fn borrowed_api() -> bool {
    env!("CARGO_CRATE_NAME") == "borrowed"
}

thread_local! {
    /// The test thread's scratch, as a network layer keeps one per loop thread (a
    /// convenience of these helpers: the library itself has no per-thread state).
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::new());
    /// Events `receive_in_place` handed over and `events` has not returned yet, per
    /// connection (by address: a test's connections stay put while it feeds them).
    static PENDING: RefCell<HashMap<usize, Vec<Event>>> = RefCell::new(HashMap::new());
}

fn key(conn: &Connection) -> usize {
    conn as *const Connection as usize
}

/// Runs `f` with the test thread's scratch.
pub fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    SCRATCH.with(|s| f(&mut s.borrow_mut()))
}

/// Feeds `bytes` to `conn` through the API this test binary exercises: `receive`, or
/// `receive_in_place` on a copy of `bytes` (checked to be consumed: events are kept, as owned
/// copies, for [`events`]).
pub fn receive<C: BorrowMut<Connection>>(mut conn: C, now: Instant, bytes: &[u8]) {
    let conn = conn.borrow_mut();
    if !borrowed_api() {
        return with_scratch(|s| conn.receive(s, now, bytes));
    }
    let mut buf = bytes.to_vec();
    let mut got = Vec::new();
    let mut failed = false;
    with_scratch(|s| {
        conn.receive_in_place(s, now, &mut buf, |_, event| {
            assert!(!failed, "an event after Failed: {event:?}");
            failed = matches!(event, wss_proto::EventRef::Failed(_));
            got.push(event.to_event());
        })
    });
    PENDING.with(|p| p.borrow_mut().entry(key(conn)).or_default().extend(got));
}

/// Every event: what the borrowed API reported (kept by [`receive`]), then the queue.
pub fn events(conn: &mut Connection) -> Vec<Event> {
    let mut all = PENDING.with(|p| p.borrow_mut().remove(&key(conn)).unwrap_or_default());
    with_scratch(|s| all.extend(std::iter::from_fn(|| conn.poll_event(s))));
    all
}

/// Every queued output byte.
pub fn output(conn: &mut Connection) -> Vec<u8> {
    let mut out = Vec::new();
    conn.poll_transmit(&mut out);
    out
}

/// Decodes frames written by a connection: (fin, opcode, unmasked payload).
pub fn parse_frames(mut bytes: &[u8]) -> Vec<(bool, Opcode, Vec<u8>)> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        let (h, n) = FrameHeader::parse(bytes).unwrap().expect("whole frame");
        let len = h.payload_len as usize;
        let mut payload = bytes[n..n + len].to_vec();
        if let Some(key) = h.mask {
            wss_proto::internal::apply_mask(&mut payload, key);
        }
        frames.push((h.fin, h.opcode, payload));
        bytes = &bytes[n + len..];
    }
    frames
}

/// A client and a server connected in memory, with a fake clock.
pub struct Pair {
    pub client: Connection,
    pub server: Connection,
    pub now: Instant,
    pub client_events: Vec<Event>,
    pub server_events: Vec<Event>,
    /// Bytes each side wrote, for tests that watch the wire.
    pub client_wire: Vec<u8>,
    pub server_wire: Vec<u8>,
}

impl Pair {
    pub fn new(config: Config) -> Pair {
        let now = Instant::now();
        Pair {
            client: Connection::new(Role::Client, config.clone(), now),
            server: Connection::new(Role::Server, config, now),
            now,
            client_events: Vec::new(),
            server_events: Vec::new(),
            client_wire: Vec::new(),
            server_wire: Vec::new(),
        }
    }

    /// Moves what each side has written to the other once. True if any byte moved.
    pub fn step(&mut self) -> bool {
        let mut c2s = Vec::new();
        self.client.poll_transmit(&mut c2s);
        let mut s2c = Vec::new();
        self.server.poll_transmit(&mut s2c);
        receive(&mut self.server, self.now, &c2s);
        receive(&mut self.client, self.now, &s2c);
        self.client_wire.extend_from_slice(&c2s);
        self.server_wire.extend_from_slice(&s2c);
        self.client_events.extend(events(&mut self.client));
        self.server_events.extend(events(&mut self.server));
        !c2s.is_empty() || !s2c.is_empty()
    }

    /// Steps until nothing moves.
    pub fn drive(&mut self) {
        for _ in 0..100 {
            if !self.step() {
                return;
            }
        }
        panic!("pair never went quiet");
    }

    /// Moves the clock forward, fires due timers on both sides, then drives.
    pub fn advance(&mut self, by: Duration) {
        self.now += by;
        for conn in [&mut self.client, &mut self.server] {
            if conn.poll_timeout().is_some_and(|t| t <= self.now) {
                conn.handle_timeout(self.now);
            }
        }
        self.client_events.extend(events(&mut self.client));
        self.server_events.extend(events(&mut self.server));
        self.drive();
    }

    /// Moves the clock forward without delivering any bytes (a silent network).
    pub fn advance_silent(&mut self, by: Duration) {
        self.now += by;
        for conn in [&mut self.client, &mut self.server] {
            if conn.poll_timeout().is_some_and(|t| t <= self.now) {
                conn.handle_timeout(self.now);
            }
        }
        self.client_events.extend(events(&mut self.client));
        self.server_events.extend(events(&mut self.server));
    }
}
