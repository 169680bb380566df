//! The borrowed receive path allocates nothing per message once warm, counted by a global
//! allocator: whole messages are used where they lie, and messages that need reassembly
//! (fragmented, or split across reads) reuse the thread's spare buffer.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Instant;

use wss_proto::encode_frame;
use wss_proto::{Config, Connection, Event, EventRef, MessageRef, Opcode, Role, Scratch};

/// Counts the allocations (and reallocations) made by this thread, so that other tests'
/// threads do not disturb it.
struct Counting;

thread_local! {
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

fn count() {
    let _ = ALLOCS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: every call forwards to `System` unchanged; the counter is a const-initialized
// thread-local `Cell`, which never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn allocs() -> usize {
    ALLOCS.with(Cell::get)
}

fn client_frame(out: &mut Vec<u8>, fin: bool, opcode: Opcode, payload: &[u8]) {
    encode_frame(out, fin, opcode, payload, Some([0x37, 0xfa, 0x21, 0x3d]));
}

/// Valid UTF-8 text of `len` bytes with multi-byte characters in it.
fn text(len: usize) -> Vec<u8> {
    let mut s = "é✓ text ".repeat(len / 8 + 1).into_bytes();
    s.truncate(len);
    while std::str::from_utf8(&s).is_err() {
        s.pop();
    }
    s.resize(len, b'.');
    s
}

/// One read's worth of client frames: unfragmented text and binary messages of several sizes
/// (the 64 KiB text takes the block-wise validation path), with pings and pongs between them.
fn whole_messages() -> (Vec<u8>, usize) {
    let mut wire = Vec::new();
    let mut messages = 0;
    for len in [0, 16, 125, 126, 1024, 65535, 70_000] {
        client_frame(&mut wire, true, Opcode::Text, &text(len));
        client_frame(&mut wire, true, Opcode::Ping, b"are you there");
        client_frame(&mut wire, true, Opcode::Binary, &vec![7u8; len]);
        client_frame(&mut wire, true, Opcode::Pong, b"");
        messages += 2;
    }
    (wire, messages)
}

/// A server loop as a network layer runs it: read, `receive_in_place`, echo each message from
/// inside the callback, then move the output to a reused write buffer and "write" it.
struct Echo {
    conn: Connection,
    scratch: Scratch,
    read_buf: Vec<u8>,
    write_buf: Vec<u8>,
}

impl Echo {
    fn new() -> Echo {
        Echo {
            conn: Connection::new(Role::Server, Config::default(), Instant::now()),
            scratch: Scratch::new(),
            read_buf: Vec::with_capacity(256 * 1024),
            write_buf: Vec::new(),
        }
    }

    /// Feeds `wire` in reads of `read` bytes; returns the messages echoed.
    fn run(&mut self, wire: &[u8], read: usize) -> usize {
        let now = Instant::now();
        let mut messages = 0;
        for chunk in wire.chunks(read) {
            self.read_buf.clear();
            self.read_buf.extend_from_slice(chunk); // the socket read
            self.conn.receive_in_place(
                &mut self.scratch,
                now,
                &mut self.read_buf,
                |conn, event| match event {
                    EventRef::Message(MessageRef::Text(t)) => {
                        messages += 1;
                        conn.send_text(t).unwrap();
                    }
                    EventRef::Message(MessageRef::Binary(b)) => {
                        messages += 1;
                        conn.send_binary(b).unwrap();
                    }
                    EventRef::Ping(_) | EventRef::Pong(_) => {}
                    other => panic!("unexpected {other:?}"),
                },
            );
            self.conn.poll_transmit(&mut self.write_buf);
            self.write_buf.clear(); // the socket write
        }
        assert_eq!(
            self.conn.poll_event(&mut self.scratch),
            None,
            "nothing goes to the queue"
        );
        messages
    }
}

#[test]
fn whole_messages_cost_no_allocation_after_warm_up() {
    let (wire, expected) = whole_messages();
    let mut echo = Echo::new();
    // Two warm-up rounds: `poll_transmit` swaps the write buffer with the connection's, so
    // both must have grown once.
    for _ in 0..2 {
        assert_eq!(echo.run(&wire, wire.len()), expected, "warm-up");
    }
    let before = allocs();
    for _ in 0..10 {
        assert_eq!(echo.run(&wire, wire.len()), expected);
    }
    assert_eq!(
        allocs() - before,
        0,
        "allocations for {} messages",
        10 * expected
    );
}

#[test]
fn the_owned_path_allocates_per_message_so_the_counter_sees_it() {
    let (wire, expected) = whole_messages();
    let mut conn = Connection::new(Role::Server, Config::default(), Instant::now());
    let mut scratch = Scratch::new();
    let before = allocs();
    conn.receive(&mut scratch, Instant::now(), &wire);
    let got = std::iter::from_fn(|| conn.poll_event(&mut scratch))
        .filter(|e| matches!(e, Event::Message(_)))
        .count();
    assert_eq!(got, expected);
    assert!(
        allocs() - before >= expected,
        "one buffer per message at least"
    );
}

#[test]
fn fragmented_and_split_messages_reuse_the_spare_buffer_after_warm_up() {
    let mut wire = Vec::new();
    let body = text(50_000);
    for piece in [&body[..10], &body[10..30_000], &body[30_000..]] {
        let (fin, op) = match piece.len() {
            10 => (false, Opcode::Text),
            20_000 => (true, Opcode::Continuation),
            _ => (false, Opcode::Continuation),
        };
        client_frame(&mut wire, fin, op, piece);
        client_frame(&mut wire, true, Opcode::Ping, b"between fragments");
    }
    client_frame(&mut wire, true, Opcode::Binary, &vec![1u8; 100_000]);
    client_frame(&mut wire, true, Opcode::Text, &text(300));
    // Reads of 4099 bytes: every large frame arrives split, headers are cut too.
    let read = 4099;
    let mut echo = Echo::new();
    for _ in 0..2 {
        assert_eq!(echo.run(&wire, read), 3, "warm-up (twice, as above)");
    }
    let before = allocs();
    for _ in 0..10 {
        assert_eq!(echo.run(&wire, read), 3);
    }
    assert_eq!(allocs() - before, 0);
}
