//! Hostile use of resources (issue 6 item 4), against the real `wss` binary: clients that
//! vanish mid-frame leak no descriptor or memory, a reader that never reads is dropped alone,
//! and running out of descriptors only pauses accepting.
//!
//! `WSS_HOSTILE_VANISH=N` changes the number of vanishing clients (default 2000). Ignored by
//! default, run with `cargo test -p wss-handlers --test hostile_resources -- --ignored`: the
//! issue's 10 000 vanishing clients.

#[path = "support/raw.rs"]
mod raw;
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use raw::{fin, frame, header, masked, upgrade_request, wait_until, Server};
use tungstenite::Message;

/// Opens `n` WebSockets (in batches of 500: requests pipelined, then the 101s read), leaves
/// each in the middle of a frame, and makes them all vanish at once: the even ones with a
/// FIN, the odd ones with a reset (they leave an echo unread, and Linux resets a socket closed
/// with unread data).
fn vanish_mid_frame(server: &Server, n: usize) {
    let request = upgrade_request(server.addr, &server.path, "");
    let mut socks: Vec<TcpStream> = Vec::with_capacity(n);
    while socks.len() < n {
        let batch = socks.len();
        for _ in batch..n.min(batch + 500) {
            let mut s = TcpStream::connect(server.addr).expect("connect");
            // Generous: a debug build's worker takes a while for thousands of opens.
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            s.write_all(request.as_bytes()).unwrap();
            socks.push(s);
        }
        for (i, s) in socks.iter_mut().enumerate().skip(batch) {
            let head = raw::read_head(s);
            assert_eq!(head.status, 101, "connection {i}: {}", head.text);
        }
    }
    for (i, s) in socks.iter_mut().enumerate() {
        let mut bytes = Vec::new();
        if i % 2 == 1 {
            bytes.extend(frame(fin(0x2), b"unread echo"));
        }
        // 1000 bytes announced, 10 sent.
        bytes.extend(header(fin(0x2), 1000, true, false));
        bytes.extend(masked(&[0x55; 10], 0));
        s.write_all(&bytes).unwrap();
    }
    // Let the odd ones' echoes arrive, so that closing them resets.
    let mut missing = Vec::new();
    for (i, s) in socks.iter_mut().enumerate() {
        if i % 2 == 1 {
            let mut b = [0u8; 1];
            if !matches!(s.peek(&mut b), Ok(1)) {
                missing.push(i);
            }
        }
    }
    assert!(
        missing.is_empty(),
        "{} echoes missing, first {:?}",
        missing.len(),
        &missing[..missing.len().min(20)]
    );
    drop(socks);
}

fn vanishing_clients_leak_nothing(n: usize) {
    let mut server = Server::start(&[
        "--handler",
        "echo",
        "--threads",
        "1",
        "--max-connections",
        &(n + 100).to_string(),
    ]);
    // Warm up first, so that lazily created buffers and threads count in the baseline.
    vanish_mid_frame(&server, 200);
    assert!(wait_until(Duration::from_secs(10), || server.fd_count() < 50));
    server.assert_still_serves();
    thread::sleep(Duration::from_millis(200));
    let fds = server.fd_count();
    let rss = server.rss_kib();
    let started = Instant::now();
    vanish_mid_frame(&server, n);
    let opened = started.elapsed();
    let back = wait_until(Duration::from_secs(20), || server.fd_count() <= fds);
    let after_fds = server.fd_count();
    let after_rss = server.rss_kib();
    eprintln!(
        "{n} vanishing clients: opened in {opened:?}, fds {fds} -> {after_fds} after {:?}, \
         RSS {rss} KiB -> {after_rss} KiB",
        started.elapsed()
    );
    assert!(back, "fd count stayed at {after_fds}, baseline {fds}");
    // Freed buffers may stay with the allocator, but not one per vanished client: 16 KiB per
    // connection would already be 32 MiB for 2000.
    let bound = 8 * 1024 + n as u64 * 2;
    assert!(
        after_rss <= rss + bound,
        "RSS grew from {rss} KiB to {after_rss} KiB (bound +{bound} KiB)"
    );
    server.assert_still_serves();
}

#[test]
fn vanishing_clients_leak_no_fd_or_memory() {
    let n = std::env::var("WSS_HOSTILE_VANISH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    vanishing_clients_leak_nothing(n);
}

/// The issue's full count; a few seconds more, and 10 000 descriptors on each side.
#[test]
#[ignore = "10 000 connections: run with --ignored"]
fn ten_thousand_vanishing_clients_leak_no_fd_or_memory() {
    vanishing_clients_leak_nothing(10_000);
}

/// One client floods the server with 1 MiB messages and never reads the echoes while
/// `chatter` keeps chatting; returns the MiB written before the server dropped the flooder and
/// the server's peak RSS meanwhile. Fails if `chatter` misses an echo or waits 5 s for one
/// (a generous bound: on a loaded 2-core machine a debug build can take a second or so).
fn flood(server: &Server, chatter: &mut support::Client) -> (usize, u64) {
    let mut flooder = raw::upgrade(server.addr, &server.path);
    flooder
        .set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let message = {
        let mut m = header(fin(0x2), 1 << 20, true, false);
        m.extend(masked(&vec![0xAB; 1 << 20], 0));
        m
    };
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let done = done.clone();
        thread::spawn(move || {
            // 256 MiB is far past any bound the server may keep for one peer.
            let mut sent = 0usize;
            let end = loop {
                if sent >= 256 {
                    break None;
                }
                match flooder.write_all(&message) {
                    Ok(()) => sent += 1,
                    Err(e) => break Some(e),
                }
            };
            done.store(true, Ordering::SeqCst);
            (sent, end, flooder)
        })
    };
    let mut echoed = 0;
    let mut peak = server.rss_kib();
    let started = Instant::now();
    while !done.load(Ordering::SeqCst) || echoed < 20 {
        let text = format!("message {echoed}");
        let sent_at = Instant::now();
        chatter.send(Message::text(text.clone())).unwrap();
        assert_eq!(support::next_message(chatter), Message::text(text));
        assert!(
            sent_at.elapsed() < Duration::from_secs(5),
            "echo {echoed} took {:?} during the flood",
            sent_at.elapsed()
        );
        echoed += 1;
        peak = peak.max(server.rss_kib());
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the flood was not stopped within 60 s"
        );
    }
    let (sent, end, mut flooder) = writer.join().unwrap();
    let end = end
        .unwrap_or_else(|| panic!("the server took all {sent} MiB from a peer that never reads"));
    assert!(
        matches!(
            end.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
        ),
        "the flooder's write ended with {end} ({:?}), not a dropped connection",
        end.kind()
    );
    // Reading now yields what was still in flight, then the end, without any close frame
    // having been owed (the queue was full).
    flooder
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut sink = vec![0u8; 1 << 20];
    let mut read = 0usize;
    let tail = loop {
        match flooder.read(&mut sink) {
            Ok(0) => break "EOF".to_string(),
            Ok(k) => read += k,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break format!("{e}"),
            Err(e) => panic!("the dropped flooder's socket did not end: {e}"),
        }
    };
    eprintln!(
        "flooder: {sent} MiB written, then {end}; then read {read} bytes and {tail}; \
         chatter: {echoed} echoes meanwhile; server peak RSS {peak} KiB"
    );
    (sent, peak)
}

/// A client that floods the server and never reads the echoes is dropped past the outgoing
/// bound (16 MiB plus the kernel's buffers) while another client keeps chatting without
/// missing an echo; the server's memory stays near one queue's bound, and a second flood
/// leaves it where the first did (nothing kept per dropped peer).
#[test]
fn slow_reader_is_dropped_alone() {
    let mut server = Server::start(&[
        "--handler",
        "echo",
        "--threads",
        "1",
        "--max-message-size",
        "1048576",
    ]);
    server.assert_still_serves();
    let before = server.rss_kib();
    let mut chatter = support::connect(&server.url());
    let (_, peak1) = flood(&server, &mut chatter);
    let after1 = server.rss_kib();
    let (_, peak2) = flood(&server, &mut chatter);
    let (_, peak3) = flood(&server, &mut chatter);
    let after3 = server.rss_kib();
    eprintln!("RSS {before} KiB; after flood 1: {after1} KiB; after flood 3: {after3} KiB");
    // The kernel's socket buffers absorb part of a flood (tens of MiB on loopback), so the
    // bytes written say little; the server itself must hold no more than one queue's bound
    // (16 MiB), the message in hand and allocator slack, far from the 256 MiB offered.
    for peak in [peak1, peak2, peak3] {
        assert!(
            peak < before + 64 * 1024,
            "RSS peaked at {peak} KiB during a flood (before: {before} KiB)"
        );
    }
    // The wss binary lets glibc keep up to 8 MiB of freed memory per heap (src/bin/wss/malloc.rs),
    // and the loop and the worker free on different heaps: up to 16 MiB may stay after any
    // flood. A leaked queue (16 MiB per dropped flooder) would pass that over two more floods.
    assert!(
        after3 < after1 + 16 * 1024,
        "RSS went from {after1} KiB to {after3} KiB over two more dropped flooders"
    );
    chatter.send(Message::text("after the flood")).unwrap();
    assert_eq!(
        support::next_message(&mut chatter),
        Message::text("after the flood")
    );
    support::close(chatter);
    server.assert_still_serves();
}

/// Clients that send faster than the handler's worker takes their messages must be slowed
/// down (TCP backpressure), not buffered: four clients flood the chat with 1 MiB messages
/// (each read by its worker, relayed cut to 2000 characters, so almost nothing goes out) and
/// read everything sent to them. The server's memory must stay bounded.
///
/// Before the worker's inbound budget existed, the messages waited in an unbounded channel and
/// the server's RSS grew past 1 GiB in 15 s (release build); now the loop stops reading.
#[test]
fn flooding_a_slower_handler_keeps_memory_bounded() {
    let server = Server::start(&["--handler", "chat", "--max-message-size", "1048576"]);
    let before = server.rss_kib();
    let body = format!(
        r#"{{"type":"message","text":"{}"}}"#,
        "a".repeat((1 << 20) - 40)
    );
    let mut message = header(fin(0x1), body.len() as u64, true, false);
    message.extend(masked(body.as_bytes(), 0));
    let message = Arc::new(message);
    let stop = Arc::new(AtomicBool::new(false));
    let socks: Vec<TcpStream> = (0..4)
        .map(|_| raw::upgrade(server.addr, &server.path))
        .collect();
    for mut s in socks {
        let mut drain = s.try_clone().unwrap();
        drain.set_read_timeout(None).unwrap();
        thread::spawn(move || {
            let mut sink = vec![0u8; 1 << 16];
            while matches!(drain.read(&mut sink), Ok(n) if n > 0) {}
        });
        let (message, stop) = (message.clone(), stop.clone());
        thread::spawn(
            move || {
                while !stop.load(Ordering::SeqCst) && s.write_all(&message).is_ok() {}
            },
        );
    }
    let mut peak = before;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(8) {
        thread::sleep(Duration::from_millis(250));
        peak = peak.max(server.rss_kib());
    }
    // Meanwhile a newcomer must still get in (its `on_connection` runs on the same worker).
    let joined = Instant::now();
    let newcomer = support::try_connect(&server.url(), &[]);
    let join_time = joined.elapsed();
    stop.store(true, Ordering::SeqCst);
    eprintln!(
        "4 clients flooding the chat for 8 s: RSS {before} KiB, peak {peak} KiB; a newcomer's \
         handshake: {:?} after {join_time:?}",
        newcomer.as_ref().map(|_| "101")
    );
    // A few messages in hand per connection and the queues' bounds; not hundreds of MiB.
    assert!(
        peak < before + 64 * 1024,
        "RSS grew from {before} KiB to {peak} KiB"
    );
    assert!(
        newcomer.is_ok() && join_time < Duration::from_secs(2),
        "a newcomer waited {join_time:?} for its handshake during the flood"
    );
}

/// Under `ulimit -n 64`, clients connect until the server cannot accept any more (their
/// handshakes stall in the backlog). The server neither dies nor spins, keeps serving the
/// connections it has, and accepts again once descriptors are free.
#[test]
fn fd_exhaustion_pauses_accepting_and_recovers() {
    const LIMIT: u32 = 64;
    let mut server = Server::start_with_fd_limit(
        LIMIT,
        &[
            "--handler",
            "echo",
            "--threads",
            "1",
            "--max-connections",
            "1000",
        ],
    );
    let baseline = server.fd_count();
    assert!(baseline < 40, "{baseline} fds before any client");
    let mut first = support::connect(&server.url());
    let request = upgrade_request(server.addr, &server.path, "");
    let mut socks = Vec::new();
    let mut upgraded = 0u32;
    let mut stalled = 0;
    // Three handshakes in a row left unanswered: the server has stopped accepting.
    while stalled < 3 && socks.len() < 4 * LIMIT as usize {
        let mut s = TcpStream::connect(server.addr).expect("the kernel backlog takes it");
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut b = [0u8; 12];
        match s.read_exact(&mut b) {
            Ok(()) => {
                assert_eq!(&b, b"HTTP/1.1 101");
                upgraded += 1;
                stalled = 0;
            }
            Err(_) => stalled += 1,
        }
        socks.push(s);
    }
    assert_eq!(
        stalled, 3,
        "all {upgraded} handshakes succeeded under ulimit -n {LIMIT}"
    );
    assert!(
        upgraded < LIMIT,
        "{upgraded} connections under ulimit -n {LIMIT}"
    );
    // Exhausted indeed (a descriptor inherited above the limit may add one).
    let held = server.fd_count();
    assert!(
        held >= LIMIT as usize - 2,
        "only {held} fds open when handshakes stalled"
    );
    // Out of descriptors, the server must back off rather than retry accept() in a loop.
    let cpu = server.cpu_ticks();
    thread::sleep(Duration::from_secs(2));
    let spent = server.cpu_ticks() - cpu;
    assert!(
        spent < 50,
        "{spent} ticks of CPU in 2 s while out of descriptors"
    );
    // The connections it has still work.
    first.send(Message::text("during")).unwrap();
    assert_eq!(support::next_message(&mut first), Message::text("during"));
    eprintln!(
        "ulimit -n {LIMIT}: {upgraded} of {} handshakes answered, {spent} CPU ticks in 2 s \
         while exhausted",
        socks.len()
    );
    drop(socks);
    assert!(
        wait_until(Duration::from_secs(10), || server.fd_count()
            <= baseline + 2),
        "fds stayed at {} after the clients left (baseline {baseline})",
        server.fd_count()
    );
    server.assert_still_serves();
    first.send(Message::text("after")).unwrap();
    assert_eq!(support::next_message(&mut first), Message::text("after"));
    support::close(first);
}
