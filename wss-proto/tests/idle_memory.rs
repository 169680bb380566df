//! What an idle connection keeps on the heap, counted by a global allocator. A server holds
//! one connection per client, so memory that outlives a message is paid per client.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;
use std::time::Instant;

use wss_proto::encode_frame;
use wss_proto::{Config, Connection, Event, Opcode, Role, Scratch};

/// Counts the bytes live on the heap that this thread allocated (other tests' threads do not
/// disturb it).
struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
}

fn add(n: isize) {
    let _ = LIVE.try_with(|live| live.set(live.get() + n));
}

// SAFETY: every call forwards to `System` unchanged; the counter is a const-initialized
// thread-local `Cell`, which never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        add(layout.size() as isize);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        add(-(layout.size() as isize));
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        add(new_size as isize - layout.size() as isize);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live() -> isize {
    LIVE.with(Cell::get)
}

fn client_frame(fin: bool, opcode: Opcode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(&mut out, fin, opcode, payload, Some([1, 2, 3, 4]));
    out
}

/// Feeds `wire` in `pieces`, drains every event and the output the way a network layer
/// does (handing over an empty `Vec`, so the buffers are swapped), and drops it all.
fn exchange(scratch: &mut Scratch, conn: &mut Connection, wire: &[u8], piece: usize) -> usize {
    let now = Instant::now();
    let mut messages = 0;
    for chunk in wire.chunks(piece) {
        conn.receive(scratch, now, chunk);
        while let Some(event) = conn.poll_event(scratch) {
            if let Event::Message(_) = event {
                messages += 1;
            }
        }
        let mut out = Vec::new();
        conn.poll_transmit(&mut out);
    }
    messages
}

/// A burst of whole messages and pings in one read, then a fragmented text and a big binary
/// message cut into small reads.
fn traffic(scratch: &mut Scratch, conn: &mut Connection) {
    let mut wire = Vec::new();
    for i in 0..20u8 {
        wire.extend(client_frame(true, Opcode::Binary, &[i; 100]));
        wire.extend(client_frame(true, Opcode::Ping, b"p"));
    }
    assert_eq!(exchange(scratch, conn, &wire, wire.len()), 20);
    drop(wire);
    let mut wire = client_frame(false, Opcode::Text, "héllo ".as_bytes());
    wire.extend(client_frame(true, Opcode::Ping, b"in between"));
    wire.extend(client_frame(true, Opcode::Continuation, "wörld".as_bytes()));
    wire.extend(client_frame(true, Opcode::Binary, &[7; 70_000]));
    assert_eq!(exchange(scratch, conn, &wire, 1000), 2);
}

#[test]
fn an_idle_connection_keeps_no_heap_after_messages() {
    // The caller shares one config between its connections (as wss-net's loop does).
    let config = Arc::new(Config::default());
    // The same traffic on another connection first: it fills the thread's scratch (an event
    // ring, a partial-frame state), which is the thread's, bounded, and not per connection.
    let mut scratch = Scratch::new();
    let mut warm = Connection::new(Role::Server, Arc::clone(&config), Instant::now());
    traffic(&mut scratch, &mut warm);
    let before = live();
    let mut conn = Connection::new(Role::Server, config, Instant::now());
    assert_eq!(live(), before, "a shared config is not copied");

    traffic(&mut scratch, &mut conn);
    assert_eq!(
        live(),
        before,
        "heap bytes left behind by a drained connection"
    );
    drop(conn);
    assert_eq!(live(), before);
}
