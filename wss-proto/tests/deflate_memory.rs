//! Memory with permessage-deflate, watched by a counting allocator (this test binary only).
//!
//! A compression bomb: 100 MiB of zeros in about 100 KiB of deflate. The receiver must fail it
//! with 1009 after inflating no more than its message limit, and its memory must stay near
//! that limit. And what an idle connection keeps once each side has compressed a message, and
//! once it has filled both windows and hibernated (its idle ping went out).
#![cfg(feature = "deflate")]

mod util;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use util::{events, header, output, with_scratch, KEY};
use wss_proto::RSV1;
use wss_proto::{Config, Connection, DeflateParams, Event, Opcode, ProtocolError, Role};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = LIVE.fetch_add(by, Ordering::SeqCst) + by;
    PEAK.fetch_max(now, Ordering::SeqCst);
}

// SAFETY: every call is forwarded unchanged to the system allocator; only counters change.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        // SAFETY: same contract as ours, passed through.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Count the worst case, old and new blocks alive together.
        grew(new_size);
        // SAFETY: `ptr` came from this allocator with `layout`.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
        new
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const MIB: usize = 1 << 20;

/// The counters are global: measurements take turns.
static SERIAL: Mutex<()> = Mutex::new(());

/// 100 MiB of zeros as one compressed message, built from 1 MiB compressed once: a sync flush
/// ends each piece on a byte boundary with no reference past it, so copies concatenate.
fn bomb_payload() -> Vec<u8> {
    let params = DeflateParams {
        server_no_context_takeover: true,
        threshold: 0,
        level: 9,
        ..DeflateParams::default()
    };
    let config = Config {
        deflate: Some(params),
        max_frame_size: usize::MAX,
        ..Config::default()
    };
    let mut s = Connection::new(Role::Server, config, Instant::now());
    s.send_binary(&vec![0; MIB]).unwrap();
    let frame = output(&mut s);
    let (h, n) = wss_proto::FrameHeader::parse(&frame).unwrap().unwrap();
    assert_eq!(h.rsv, RSV1);
    let mut piece = frame[n..].to_vec();
    piece.extend_from_slice(&[0, 0, 0xff, 0xff]); // the trailer the sender removed
    let mut payload = piece.repeat(100);
    payload.truncate(payload.len() - 4);
    payload
}

#[test]
fn compression_bomb_fails_with_1009_and_memory_stays_bounded() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let payload = bomb_payload();
    assert!(payload.len() < 200 * 1024, "{} bytes", payload.len());
    for limit in [MIB, 4 * MIB] {
        // Masked, as a client sends it, in one frame and split in 16 KiB reads.
        let mut masked = payload.clone();
        wss_proto::internal::apply_mask(&mut masked, KEY);
        let mut wire = header(true, RSV1, Opcode::Binary, Some(KEY), masked.len() as u64);
        wire.extend_from_slice(&masked);
        let config = Config {
            deflate: Some(DeflateParams::default()),
            max_message_size: limit,
            ..Config::default()
        };
        let mut server = Connection::new(Role::Server, config, Instant::now());
        let base = LIVE.load(Ordering::SeqCst);
        PEAK.store(base, Ordering::SeqCst);
        for read in wire.chunks(16 * 1024) {
            with_scratch(|s| server.receive(s, Instant::now(), read));
        }
        let peak = PEAK.load(Ordering::SeqCst) - base;
        eprintln!("limit {limit}: peak {peak} bytes while inflating");
        let got = events(&mut server);
        assert!(
            matches!(got[..], [Event::Failed(ProtocolError::MessageTooBig { max, .. })] if max == limit),
            "{got:?}"
        );
        assert_eq!(got[0].clone(), got[0]);
        if let Event::Failed(e) = &got[0] {
            assert_eq!(e.close_code().0, 1009);
        }
        // The inflated buffer (at most limit + 1, briefly twice during its last doubling)
        // plus the inflater's own state: nowhere near 100 MiB.
        assert!(
            peak < 2 * limit + 512 * 1024,
            "peak {peak} bytes for a limit of {limit}"
        );
        // Nothing is read after the failure, and the close frame says 1009.
        let out = output(&mut server);
        assert_eq!(out[..4], [0x88, 0x02, 0x03, 0xf1]);
        drop(server);
    }
}

/// Bytes a server connection still holds after one compressed message each way.
fn idle_bytes(params: &DeflateParams) -> usize {
    let config = Config {
        deflate: Some(params.clone()),
        ..Config::default()
    };
    let now = Instant::now();
    let mut client = Connection::new(Role::Client, config.clone(), now);
    let text =
        "{\"type\":\"message\",\"user\":\"alice\",\"text\":\"hello everyone, how are you?\"}";
    client.send_text(text).unwrap();
    let wire = output(&mut client);
    assert_eq!(wire[0], 0xc1, "compressed");
    // Warm this thread's caches of context-free compressors and inflaters: shared, not per
    // connection.
    let mut warm = Connection::new(Role::Server, config.clone(), now);
    with_scratch(|s| warm.receive(s, now, &wire));
    warm.send_text(text).unwrap();
    // Its event is taken, so its ring goes back to the scratch (a dropped connection frees
    // what it borrowed instead).
    assert_eq!(events(&mut warm).len(), 1);
    drop(warm);
    let before = LIVE.load(Ordering::SeqCst);
    let mut server = Connection::new(Role::Server, config, now);
    with_scratch(|s| server.receive(s, now, &wire));
    assert_eq!(events(&mut server).len(), 1);
    server.send_text(text).unwrap();
    let mut out = Vec::new();
    server.poll_transmit(&mut out);
    drop(out);
    let held = LIVE.load(Ordering::SeqCst).saturating_sub(before);
    drop(server);
    held
}

#[test]
fn idle_connection_memory_with_deflate() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let plain = {
        // Connection::new keeps the thread's last config shared: make it this one first, so
        // replacing an older cached config cannot count as memory given back.
        drop(Connection::new(
            Role::Server,
            Config::default(),
            Instant::now(),
        ));
        let before = LIVE.load(Ordering::SeqCst);
        let c = Connection::new(Role::Server, Config::default(), Instant::now());
        let held = LIVE.load(Ordering::SeqCst).saturating_sub(before);
        drop(c);
        held
    };
    let takeover = idle_bytes(&DeflateParams::default());
    let no_takeover = idle_bytes(&DeflateParams {
        server_no_context_takeover: true,
        client_no_context_takeover: true,
        ..DeflateParams::default()
    });
    let small_windows = idle_bytes(&DeflateParams {
        server_max_window_bits: 10,
        client_max_window_bits: 10,
        ..DeflateParams::default()
    });
    eprintln!(
        "held by an idle server connection: plain {plain} B, deflate with context takeover \
         {takeover} B, without {no_takeover} B, takeover with 2^10 windows {small_windows} B"
    );
    // Context takeover keeps a compressor (window, hash chains) and an inflater window.
    assert!(takeover > no_takeover, "{takeover} vs {no_takeover}");
    assert!(small_windows < takeover, "{small_windows} vs {takeover}");
    // Without it the compressor and the inflater go back to the thread between messages.
    assert!(no_takeover < 1024, "{no_takeover}");
}

/// A chat message of about 150 bytes, different each time.
fn chat(i: usize) -> String {
    format!(
        "{{\"type\":\"message\",\"room\":\"general\",\"user\":\"user{}\",\"seq\":{i},\
         \"text\":\"message number {} about the weather in town today, and more\"}}",
        i % 37,
        i * 7919 % 100_000
    )
}

/// Bytes a server connection holds after `messages` chat messages each way (enough to fill
/// both windows), awake, then once its idle ping went out (hibernated).
fn full_window_bytes(params: &DeflateParams, messages: usize) -> (usize, usize) {
    let idle = Duration::from_secs(10);
    let config = std::sync::Arc::new(Config {
        deflate: Some(params.clone()),
        idle_timeout: Some(idle),
        ..Config::default()
    });
    let now = Instant::now();
    let mut client = Connection::new(Role::Client, std::sync::Arc::clone(&config), now);
    let wire: Vec<Vec<u8>> = (0..messages)
        .map(|i| {
            client.send_text(&chat(i)).unwrap();
            output(&mut client)
        })
        .collect();
    // Each message in, its echo out; the echoes are returned for the client to read later.
    let exchange = |server: &mut Connection| -> Vec<u8> {
        let mut echoes = Vec::new();
        for (i, w) in wire.iter().enumerate() {
            with_scratch(|s| server.receive(s, now, w));
            let got = events(server);
            assert!(
                matches!(&got[..], [Event::Message(wss_proto::Message::Text(t))] if *t == chat(i)),
                "{got:?}"
            );
            server.send_text(&chat(i)).unwrap();
            echoes.extend(output(server));
        }
        echoes
    };
    // The same exchange once first, so that per-thread caches and pools are warm.
    let mut warm = Connection::new(Role::Server, std::sync::Arc::clone(&config), now);
    drop(exchange(&mut warm));
    warm.handle_timeout(now + idle / 2);
    drop(warm);
    let before = LIVE.load(Ordering::SeqCst);
    let mut server = Connection::new(Role::Server, config, now);
    let echoes = exchange(&mut server);
    let awake = LIVE
        .load(Ordering::SeqCst)
        .saturating_sub(before + echoes.capacity());
    // Quiet for half the idle timeout: the ping goes out and the deflate state sleeps.
    server.handle_timeout(now + idle / 2);
    let ping = output(&mut server);
    assert_eq!(ping, [0x89, 0x00], "the idle ping");
    let hibernated = LIVE
        .load(Ordering::SeqCst)
        .saturating_sub(before + echoes.capacity() + ping.capacity());
    // And it wakes: the next message each way still decodes exactly, each referring back into
    // what the other end's state holds (the client's never slept).
    with_scratch(|s| client.receive(s, now, &echoes));
    assert_eq!(events(&mut client).len(), messages);
    client.send_text(&chat(0)).unwrap();
    let input = output(&mut client);
    with_scratch(|s| server.receive(s, now + idle / 2, &input));
    let got = events(&mut server);
    assert!(
        matches!(&got[..], [Event::Message(wss_proto::Message::Text(t))] if *t == chat(0)),
        "{got:?}"
    );
    server.send_text(&chat(messages)).unwrap();
    let input = output(&mut server);
    with_scratch(|s| client.receive(s, now, &input));
    let got = events(&mut client);
    let want = chat(messages);
    assert!(
        matches!(&got[..], [Event::Message(wss_proto::Message::Text(t))] if *t == want),
        "{got:?}"
    );
    drop(server);
    (awake, hibernated)
}

#[test]
fn a_hibernated_connection_with_full_windows_holds_at_most_128_kib() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // 300 messages of about 150 bytes: 45 KB each way, past the 32 KiB windows.
    let mut report = Vec::new();
    for (what, params) in [
        ("takeover, 2^15 windows", DeflateParams::default()),
        (
            "takeover, server window 2^12",
            DeflateParams {
                server_max_window_bits: 12,
                ..DeflateParams::default()
            },
        ),
        (
            "takeover, server window 2^10",
            DeflateParams {
                server_max_window_bits: 10,
                ..DeflateParams::default()
            },
        ),
        (
            "takeover, server window 2^9",
            DeflateParams {
                server_max_window_bits: 9,
                ..DeflateParams::default()
            },
        ),
        (
            "takeover, 2^10 windows both ways",
            DeflateParams {
                server_max_window_bits: 10,
                client_max_window_bits: 10,
                ..DeflateParams::default()
            },
        ),
        (
            "server_no_context_takeover",
            DeflateParams {
                server_no_context_takeover: true,
                ..DeflateParams::default()
            },
        ),
    ] {
        // On a thread of its own, joined under the lock: its per-thread caches are freed
        // before another measurement starts.
        let (awake, hibernated) = std::thread::scope(|scope| {
            scope
                .spawn(|| full_window_bytes(&params, 300))
                .join()
                .expect("the measurement")
        });
        report.push(format!(
            "{what}: awake {awake} B, hibernated {hibernated} B"
        ));
        assert!(
            hibernated <= 128 * 1024,
            "{what}: {hibernated} bytes after hibernation"
        );
        assert!(hibernated < awake, "{what}: {hibernated} vs {awake}");
        // What stays is the client's window and the end of the server's (at most 8 KiB: a
        // rebuilt compressor needs no more than it refers to), little else.
        let windows = (1usize << params.client_max_window_bits)
            + if params.server_no_context_takeover {
                0
            } else {
                (1 << params.server_max_window_bits).min(8192)
            };
        assert!(
            hibernated <= windows + 4096,
            "{what}: {hibernated} bytes, windows {windows}"
        );
    }
    eprintln!("held by a server connection after 300 messages each way: {report:#?}");
}
