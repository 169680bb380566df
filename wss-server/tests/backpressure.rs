//! Clients that send faster than a server's callbacks run are slowed down by TCP, not
//! buffered (SPEC Part A point 6): memory stays bounded, and the others (their echoes, a
//! newcomer's handshake) do not wait behind the backlog.

mod support;

use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use support::*;
use wss_server::*;

/// Sleeps `delay` on every binary message (counting them), echoes text at once.
struct Slow {
    delay: Duration,
    seen: Arc<AtomicUsize>,
}

struct SlowConn {
    delay: Duration,
    seen: Arc<AtomicUsize>,
}

impl ServerHandler for Slow {
    type Connection = SlowConn;
    fn on_connection(&mut self, _: &WebSocketServer, _: &ConnectionEvent) -> Option<SlowConn> {
        Some(SlowConn {
            delay: self.delay,
            seen: self.seen.clone(),
        })
    }
}

impl ConnectionHandler for SlowConn {
    fn on_message(&mut self, ws: &WebSocketConnection, event: &MessageEvent) {
        match &event.data {
            Data::Blob(_) => {
                self.seen.fetch_add(1, Ordering::SeqCst);
                thread::sleep(self.delay);
            }
            Data::Text(t) => {
                let _ = ws.send(t.clone());
            }
            Data::Object(_) => {}
        }
    }
}

fn slow_server(
    delay: Duration,
    options: ServerOptions,
) -> (WebServer, WebSocketServer, Arc<AtomicUsize>) {
    let web = web();
    let seen = Arc::new(AtomicUsize::new(0));
    let wss = WebSocketServer::new(
        &web,
        Slow {
            delay,
            seen: seen.clone(),
        },
        options.with_path("/ws").with_data_type(DataType::Text),
    )
    .unwrap();
    (web, wss, seen)
}

/// A masked binary frame, any length.
fn binary_frame(payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0x82];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= 0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    // A zero mask leaves the payload as it is.
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(payload);
    out
}

/// A client writing `bytes` over and over until its socket is shut down.
struct Flooder {
    stream: TcpStream,
    writer: Option<thread::JoinHandle<()>>,
}

impl Flooder {
    fn start(addr: SocketAddr, bytes: Vec<u8>) -> Flooder {
        let raw = raw_handshake(addr, "/ws", &[]);
        assert_eq!(status_of(&raw.head), 101, "{}", raw.head);
        let mut out = raw.stream.try_clone().unwrap();
        let writer = thread::spawn(move || while out.write_all(&bytes).is_ok() {});
        Flooder {
            stream: raw.stream,
            writer: Some(writer),
        }
    }
}

impl Drop for Flooder {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Both);
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

/// This process's resident memory, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Sends a text and waits for its echo; returns how long that took.
fn echo_time(client: &mut Client, text: &str) -> Duration {
    let started = Instant::now();
    client.send(tungstenite::Message::text(text)).unwrap();
    assert_eq!(read_text(client), text);
    started.elapsed()
}

#[test]
fn a_flood_of_large_messages_to_a_slow_handler_keeps_memory_bounded() {
    let (web, wss, seen) = slow_server(Duration::from_millis(5), ServerOptions::default());
    let addr = web.local_addr();
    let mut bystander = connect(addr, "/ws");
    let before = rss_kib();
    let flooder = Flooder::start(addr, binary_frame(&vec![0xAB; 256 << 10]));
    let started = Instant::now();
    let (mut peak_rss, mut peak_backlog, mut slowest_echo) =
        (before, Backlog::default(), Duration::ZERO);
    let mut newcomer = None;
    while started.elapsed() < Duration::from_secs(2) {
        thread::sleep(Duration::from_millis(50));
        let rss = rss_kib();
        peak_rss = peak_rss.max(rss);
        // Without backpressure the process grows by hundreds of MiB a second: stop early.
        assert!(
            rss < before + 512 * 1024,
            "RSS {rss} KiB, {before} KiB before"
        );
        let backlog = wss.backlog();
        peak_backlog.bytes = peak_backlog.bytes.max(backlog.bytes);
        peak_backlog.messages = peak_backlog.messages.max(backlog.messages);
        slowest_echo = slowest_echo.max(echo_time(&mut bystander, "still there?"));
        if newcomer.is_none() && started.elapsed() > Duration::from_secs(1) {
            let t = Instant::now();
            let joined = try_connect(addr, "/ws");
            newcomer = Some((joined.is_ok(), t.elapsed()));
        }
    }
    drop(flooder);
    let taken = seen.load(Ordering::SeqCst);
    eprintln!(
        "2 s of 256 KiB messages to a 5 ms handler: {taken} handled, peak backlog \
         {peak_backlog:?}, RSS {before} -> peak {peak_rss} KiB, slowest echo {slowest_echo:?}, \
         newcomer {newcomer:?}"
    );
    assert!(taken > 10, "the handler got only {taken} messages");
    // `backlog()` is the server-wide count, released once per batch when the batch is
    // dropped, while the connection's own credit (1 MiB plus the message that crosses it) is
    // released after each callback. So a new batch can arrive while the last one still counts:
    // at most twice the connection's bound. Unbounded buffering would show hundreds of messages.
    assert!(
        peak_backlog.bytes <= 2 * ((1 << 20) + (256 << 10)),
        "{peak_backlog:?} waited for the worker"
    );
    assert!(
        peak_rss < before + 64 * 1024,
        "RSS grew from {before} KiB to {peak_rss} KiB"
    );
    assert!(
        slowest_echo < Duration::from_secs(1),
        "an echo took {slowest_echo:?}"
    );
    let (joined, join_time) = newcomer.expect("a newcomer tried");
    assert!(
        joined && join_time < Duration::from_secs(1),
        "newcomer: {newcomer:?}"
    );
    // Everything handed over is given back: nothing leaks in the count.
    let deadline = Instant::now() + WAIT;
    while wss.backlog() != Backlog::default() {
        assert!(
            Instant::now() < deadline,
            "backlog stuck at {:?}",
            wss.backlog()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn small_messages_wait_at_most_the_message_limits() {
    let limits = InboundLimits {
        connection_messages: 32,
        total_messages: 64,
        ..InboundLimits::default()
    };
    let (web, wss, seen) = slow_server(
        Duration::from_millis(1),
        // The worker's queue and its limits: loop dispatch has no queue (a loop runs the
        // callbacks of what it read before it reads again).
        ServerOptions::default()
            .with_inbound_limits(limits)
            .with_dispatch(Dispatch::Worker),
    );
    let addr = web.local_addr();
    let mut bystander = connect(addr, "/ws");
    let burst: Vec<u8> = (0..1000).flat_map(|_| binary_frame(b"tiny")).collect();
    let flooders: Vec<Flooder> = (0..3)
        .map(|_| Flooder::start(addr, burst.clone()))
        .collect();
    let started = Instant::now();
    let (mut peak, mut slowest_echo) = (0, Duration::ZERO);
    while started.elapsed() < Duration::from_millis(1500) {
        thread::sleep(Duration::from_millis(20));
        peak = peak.max(wss.backlog().messages);
        slowest_echo = slowest_echo.max(echo_time(&mut bystander, "hi"));
    }
    drop(flooders);
    let taken = seen.load(Ordering::SeqCst);
    eprintln!("3 flooders of tiny messages to a 1 ms handler: {taken} handled, at most {peak} waiting, slowest echo {slowest_echo:?}");
    assert!(taken > 100, "the handler got only {taken} messages");
    // One network thread: the total plus the message that crossed it.
    assert!(peak <= 65, "{peak} messages waited for the worker");
    assert!(
        peak > 32,
        "the flooders together never passed one connection's limit"
    );
    assert!(
        slowest_echo < Duration::from_secs(1),
        "an echo took {slowest_echo:?}"
    );
}

#[test]
fn a_handshake_does_not_wait_behind_queued_messages() {
    // Six seconds of work queued by one client.
    // In worker dispatch only: in loop dispatch a handshake on the slow connection's loop
    // waits for its callbacks, the price `Dispatch::Loop` documents.
    let (web, _wss, seen) = slow_server(
        Duration::from_millis(200),
        ServerOptions::default().with_dispatch(Dispatch::Worker),
    );
    let addr = web.local_addr();
    let mut raw = raw_handshake(addr, "/ws", &[]);
    assert_eq!(status_of(&raw.head), 101);
    let burst: Vec<u8> = (0..30).flat_map(|_| binary_frame(b"work")).collect();
    raw.stream.write_all(&burst).unwrap();
    let deadline = Instant::now() + WAIT;
    while seen.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the handler never started");
        thread::sleep(Duration::from_millis(5));
    }
    let t = Instant::now();
    let newcomer = try_connect(addr, "/ws");
    let join_time = t.elapsed();
    assert!(newcomer.is_ok(), "{:?}", newcomer.err());
    assert!(
        join_time < Duration::from_secs(2),
        "the handshake waited {join_time:?} behind the queued messages"
    );
    assert!(
        seen.load(Ordering::SeqCst) < 30,
        "the backlog was already gone"
    );
}
