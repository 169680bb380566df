//! `broadcast` mode: R receivers and one sender. The server under test must relay every text
//! or binary message a client sends to every other connected client, unchanged or wrapped
//! (a chat server may add the sender's name around it). Receivers find the bench payload by its
//! `wsb:` marker, check it byte for byte and check that sequence numbers arrive in order with
//! none missing; messages without the marker (join notices, welcomes) are counted as foreign
//! and skipped.
//!
//! The sender stays at most `window` messages ahead of the slowest receiver, so a server that
//! queues without bound is measured at the rate it delivers, not the rate it accepts.
//!
//! [`Topology`] spreads the receivers over several servers (the nodes of a cluster; the sender
//! stays on the first) and switches to Socket.IO framing ([`socketio`]), so that one load
//! generator measures wss on one node, on two nodes, and a Socket.IO cluster alike.

#[path = "socketio.rs"]
pub mod socketio;

use crate::client::{self, Template, OP_BINARY, OP_TEXT};
use crate::echo::mask_key;
use crate::histogram::Histogram;
use crate::pattern::{wire_seq, Pattern, MAX_DIGITS};
use crate::reader::{FrameReader, Piece};
use crate::target::{source_addr, Target};
use crate::window::{CpuSample, CpuSpent, Window};
use crate::writer::Tx;
use crate::BenchError;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use socketio::Outbox;
use std::io::{ErrorKind, Read};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// Time for the server to register the last receiver before the sender starts.
pub const SETTLE: Duration = Duration::from_millis(300);
/// Longest wrapper a server may put around a payload.
pub const MAX_WRAPPER: usize = 4096;
/// Longest message a receiver accepts at all (longer ones break the run).
pub const NOTICE_LIMIT: usize = 16 << 20;

/// What a broadcast run does.
#[derive(Clone, Debug)]
pub struct BroadcastConfig {
    /// The server.
    pub target: Target,
    /// Receivers (R).
    pub receivers: usize,
    /// Payload bytes of each message.
    pub size: usize,
    /// How far the sender may run ahead of the slowest receiver.
    pub window: usize,
    /// Text frames (chat-style servers expect them) instead of binary.
    pub text: bool,
    /// Client threads; the sender lives on the first.
    pub threads: usize,
    /// Time before measuring starts.
    pub warmup: Duration,
    /// Length of the measured window.
    pub duration: Duration,
    /// Stop after this many messages sent (0: time bound only).
    pub max_messages: u64,
    /// Source addresses to spread receivers over.
    pub sources: usize,
    /// Server process, to report its CPU time over the window.
    pub server_pid: Option<u32>,
}

/// Where the receivers connect and what they speak, beyond [`BroadcastConfig`].
#[derive(Clone, Debug, Default)]
pub struct Topology {
    /// Servers the receivers are spread over, receiver `i` on `receivers[i % len]` (a cluster's
    /// nodes). Empty: all on [`BroadcastConfig::target`], where the sender always is.
    pub receivers: Vec<Target>,
    /// Speak Socket.IO (Engine.IO v4 over WebSocket): join the default namespace, send events
    /// `42["msg","<payload>"]`, answer pings. The targets' paths must be Socket.IO's
    /// ([`socketio::PATH`]).
    pub socketio: bool,
}

impl Topology {
    /// Where receiver `i` connects.
    fn receiver<'a>(&'a self, config: &'a BroadcastConfig, i: usize) -> &'a Target {
        match self.receivers.len() {
            0 => &config.target,
            n => &self.receivers[i % n],
        }
    }
}

/// What a broadcast run measured.
#[derive(Clone, Debug)]
pub struct BroadcastResult {
    /// Messages the sender sent in all.
    pub sent: u64,
    /// Messages received (and checked) inside the window, summed over receivers.
    pub deliveries: u64,
    /// Length of the window actually measured.
    pub elapsed: Duration,
    /// Send-to-receive time of each counted delivery.
    pub latency: Histogram,
    /// Messages without the bench marker (notices from the server), skipped.
    pub foreign: u64,
    /// CPU seconds over the window (the server's only if its pid was given).
    pub cpu: CpuSpent,
}

struct Shared {
    config: BroadcastConfig,
    topology: Topology,
    /// Mask key of the Socket.IO pongs.
    key: [u8; 4],
    pattern: Pattern,
    epoch: Instant,
    /// Send time of message `seq` at `seq % window`, in ns since `epoch`.
    sent_at: Box<[AtomicU64]>,
    /// Per thread: the lowest count of messages any of its receivers has got.
    progress: Box<[AtomicU64]>,
    sent: AtomicU64,
    stopped: AtomicBool,
    setup: Barrier,
    connected: Barrier,
}

/// Runs a broadcast benchmark, every receiver on the sender's server, plain WebSocket.
pub fn run(config: &BroadcastConfig) -> Result<BroadcastResult, BenchError> {
    run_with(config, &Topology::default())
}

/// Runs a broadcast benchmark with the receivers placed (and the protocol chosen) by
/// `topology`.
pub fn run_with(
    config: &BroadcastConfig,
    topology: &Topology,
) -> Result<BroadcastResult, BenchError> {
    if topology.receivers.len() > 64 {
        return Err(BenchError::BadArgument("at most 64 receiver servers"));
    }
    if config.receivers == 0 || config.receivers > 100_000 {
        return Err(BenchError::BadArgument("receivers must be 1..=100000"));
    }
    if config.window == 0 || config.window > 1 << 20 {
        return Err(BenchError::BadArgument("window must be 1..=1048576"));
    }
    if config.threads == 0 || config.threads > 64 {
        return Err(BenchError::BadArgument("threads must be 1..=64"));
    }
    if config.warmup + config.duration > crate::window::MAX_RUN {
        return Err(BenchError::BadArgument("warm-up plus duration over 600 s"));
    }
    let pattern = Pattern::broadcast(config.size).ok_or(BenchError::BadArgument(
        "broadcast size must be at least 12",
    ))?;
    if config.size > 16 << 20 {
        return Err(BenchError::BadArgument("size must be at most 16 MiB"));
    }
    let threads = config.threads.min(config.receivers);
    let shared = Arc::new(Shared {
        config: config.clone(),
        topology: topology.clone(),
        key: mask_key(),
        pattern,
        epoch: Instant::now(),
        sent_at: (0..config.window).map(|_| AtomicU64::new(0)).collect(),
        progress: (0..threads).map(|_| AtomicU64::new(0)).collect(),
        sent: AtomicU64::new(0),
        stopped: AtomicBool::new(false),
        setup: Barrier::new(threads),
        connected: Barrier::new(threads),
    });
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(format!("broadcast-{t}"))
                .spawn(move || run_thread(t, threads, &shared))
        })
        .collect::<Result<_, _>>()
        .map_err(BenchError::io("spawn thread"))?;
    let mut out = BroadcastResult {
        sent: 0,
        deliveries: 0,
        elapsed: Duration::ZERO,
        latency: Histogram::new(),
        foreign: 0,
        cpu: CpuSpent::default(),
    };
    let mut error = None;
    for h in handles {
        match h.join() {
            Ok(Ok(part)) => {
                out.deliveries += part.deliveries;
                out.elapsed = out.elapsed.max(part.elapsed);
                out.latency.merge(&part.latency);
                out.foreign += part.foreign;
                if part.cpu.is_some() {
                    out.cpu = part.cpu;
                }
            }
            Ok(Err(e)) => error = error.or(Some(e)),
            Err(_) => error = error.or(Some(BenchError::Protocol("thread panicked"))),
        }
    }
    out.sent = shared.sent.load(Ordering::Acquire);
    match error {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

struct Receiver {
    stream: TcpStream,
    reader: FrameReader,
    message: Vec<u8>,
    overflow: bool,
    got: u64,
    /// Socket.IO pongs not written yet.
    outbox: Outbox,
}

struct Sender {
    stream: TcpStream,
    tx: Tx,
    reader: FrameReader,
    template: Template,
    /// Socket.IO mode: events are framed per message into `outbox` (their JSON wrapper does
    /// not fit the template), `scratch` holding the unmasked packet.
    sio: Option<SioSender>,
}

struct SioSender {
    outbox: Outbox,
    scratch: Vec<u8>,
    /// Start of the data message being read (only pings matter, so a few bytes are enough).
    message: Vec<u8>,
}

impl Sender {
    fn flush(&mut self) -> Result<(), BenchError> {
        match &mut self.sio {
            Some(sio) => sio.outbox.flush(&mut self.stream),
            None => self.tx.flush(&mut self.stream, &self.template),
        }
    }
}

const SENDER: Token = Token(usize::MAX - 1);

fn open(
    shared: &Shared,
    target: &Target,
    i: usize,
    poll: &Poll,
    token: Token,
) -> Result<TcpStream, BenchError> {
    let config = &shared.config;
    let source = (config.sources > 1).then(|| source_addr(&target.addr, i % config.sources));
    let (mut std_stream, early) = client::connect_blocking(target, source, Duration::from_secs(5))?;
    if shared.topology.socketio {
        socketio::handshake(&mut std_stream, &early, mask_key(), Duration::from_secs(5))?;
    }
    std_stream
        .set_nonblocking(true)
        .map_err(BenchError::io("nonblocking"))?;
    let mut stream = TcpStream::from_std(std_stream);
    poll.registry()
        .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
        .map_err(BenchError::io("register"))?;
    // Bytes that came with the 101 (or the Socket.IO join) are notices: the sender has not
    // sent anything yet.
    Ok(stream)
}

fn run_thread(
    index: usize,
    threads: usize,
    shared: &Shared,
) -> Result<BroadcastResult, BenchError> {
    let config = &shared.config;
    let setup = (|| {
        let poll = Poll::new().map_err(BenchError::io("epoll"))?;
        let mut receivers = Vec::new();
        for (local, i) in (index..config.receivers).step_by(threads).enumerate() {
            let target = shared.topology.receiver(config, i);
            receivers.push(Receiver {
                stream: open(shared, target, i, &poll, Token(local))?,
                // Notices (a roster of every user, say) may be long: they are skipped, not refused.
                reader: FrameReader::new(NOTICE_LIMIT),
                message: Vec::with_capacity(config.size + MAX_WRAPPER),
                overflow: false,
                got: 0,
                outbox: Outbox::default(),
            });
        }
        Ok((poll, receivers))
    })();
    shared.setup.wait();
    let sender = if index == 0 && setup.is_ok() {
        let opcode = if config.text { OP_TEXT } else { OP_BINARY };
        setup
            .as_ref()
            .ok()
            .map(|(poll, _)| -> Result<Sender, BenchError> {
                Ok(Sender {
                    stream: open(shared, &config.target, config.receivers, poll, SENDER)?,
                    tx: Tx::default(),
                    reader: FrameReader::new(NOTICE_LIMIT),
                    template: Template::new(shared.pattern.clone(), opcode, mask_key()),
                    sio: shared.topology.socketio.then(|| SioSender {
                        outbox: Outbox::default(),
                        scratch: Vec::new(),
                        message: Vec::new(),
                    }),
                })
            })
    } else {
        None
    };
    shared.connected.wait();
    let (mut poll, mut receivers) = setup?;
    let mut sender = sender.transpose()?;
    std::thread::sleep(SETTLE);
    let clock = Window::after(Instant::now(), config.warmup, config.duration);
    let limit = if config.max_messages == 0 {
        u64::MAX
    } else {
        config.max_messages
    };
    let mut out = BroadcastResult {
        sent: 0,
        deliveries: 0,
        elapsed: config.duration,
        latency: Histogram::new(),
        foreign: 0,
        cpu: CpuSpent::default(),
    };
    let mut cpu_start = None;
    let mut last_in_window = clock.start;
    let mut drain_deadline = None;
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 256 * 1024];
    let poll_wait = if threads > 1 {
        Duration::from_millis(1)
    } else {
        Duration::from_millis(20)
    };
    loop {
        let now = Instant::now();
        let mine = receivers.iter().map(|r| r.got).min().unwrap_or(u64::MAX);
        shared.progress[index].store(mine, Ordering::Release);
        if let Some(s) = sender.as_mut() {
            if cpu_start.is_none() && now >= clock.start {
                cpu_start = Some(CpuSample::take(config.server_pid));
            }
            let slowest = shared
                .progress
                .iter()
                .map(|p| p.load(Ordering::Acquire))
                .min()
                .unwrap_or(0);
            if !shared.stopped.load(Ordering::Relaxed) {
                if now >= clock.end || s.tx.queued >= limit {
                    if let Some(c) = &cpu_start {
                        out.cpu = CpuSample::take(config.server_pid).since(c);
                    }
                    shared.stopped.store(true, Ordering::Release);
                } else {
                    let mut queued = false;
                    while s.tx.queued < limit && s.tx.queued < slowest + config.window as u64 {
                        let seq = s.tx.queue();
                        let ns = now.duration_since(shared.epoch).as_nanos() as u64;
                        shared.sent_at[(seq % config.window as u64) as usize]
                            .store(ns, Ordering::Relaxed);
                        if let Some(sio) = &mut s.sio {
                            let key = s.template.key();
                            socketio::encode_event(
                                &mut sio.outbox.buf,
                                &mut sio.scratch,
                                &shared.pattern,
                                seq,
                                key,
                            );
                        }
                        queued = true;
                    }
                    if queued {
                        shared.sent.store(s.tx.queued, Ordering::Release);
                        s.flush()?;
                    }
                }
            }
        }
        if shared.stopped.load(Ordering::Acquire) {
            let sent = shared.sent.load(Ordering::Acquire);
            let deadline = *drain_deadline.get_or_insert(now + crate::echo::DRAIN);
            if receivers.iter().all(|r| r.got >= sent) {
                break;
            }
            if now >= deadline {
                let lost = receivers.iter().map(|r| sent.saturating_sub(r.got)).sum();
                return Err(BenchError::Lost(lost));
            }
        }
        poll.poll(&mut events, Some(poll_wait))
            .map_err(BenchError::io("epoll wait"))?;
        for ev in events.iter() {
            if ev.token() == SENDER {
                if let Some(s) = sender.as_mut() {
                    drain_sender(s, &mut buf)?;
                    s.flush()?;
                }
                continue;
            }
            let Some(r) = receivers.get_mut(ev.token().0) else {
                continue;
            };
            let t = read_receiver(r, &mut buf, shared, &clock, &mut out).map_err(|e| match e {
                BenchError::Mismatch { seq, .. } => BenchError::Mismatch {
                    conn: index + ev.token().0 * threads,
                    seq,
                },
                other => other,
            })?;
            if let Some(t) = t {
                last_in_window = last_in_window.max(t);
            }
        }
    }
    if Instant::now() < clock.end && limit != u64::MAX {
        out.elapsed = last_in_window.saturating_duration_since(clock.start);
    }
    Ok(out)
}

/// The sender reads only to keep its socket drained (a server may relay to it too) and, with
/// Socket.IO, to answer pings.
fn drain_sender(s: &mut Sender, buf: &mut [u8]) -> Result<(), BenchError> {
    let key = s.template.key();
    loop {
        match s.stream.read(buf) {
            Ok(0) => return Err(BenchError::ServerClosed(usize::MAX)),
            Ok(n) => s.reader.feed(&buf[..n], |p| match (p, &mut s.sio) {
                (Piece::Close(_), _) => Err(BenchError::ServerClosed(usize::MAX)),
                (Piece::Data { bytes, .. }, Some(sio)) => {
                    let room = 8usize.saturating_sub(sio.message.len());
                    sio.message
                        .extend_from_slice(&bytes[..bytes.len().min(room)]);
                    Ok(())
                }
                (Piece::End { len, .. }, Some(sio)) => {
                    if len == sio.message.len() && socketio::is_ping(&sio.message) {
                        socketio::pong(&mut sio.outbox.buf, key);
                    }
                    sio.message.clear();
                    Ok(())
                }
                _ => Ok(()),
            })?,
            Err(e) => match e.kind() {
                ErrorKind::WouldBlock => return Ok(()),
                ErrorKind::Interrupted => {}
                kind => return Err(BenchError::Io(kind, "read")),
            },
        }
    }
}

fn read_receiver(
    r: &mut Receiver,
    buf: &mut [u8],
    shared: &Shared,
    clock: &Window,
    out: &mut BroadcastResult,
) -> Result<Option<Instant>, BenchError> {
    let mut last = None;
    let window = shared.config.window as u64;
    if !r.outbox.buf.is_empty() {
        r.outbox.flush(&mut r.stream)?;
    }
    loop {
        let n = match r.stream.read(buf) {
            Ok(0) => return Err(BenchError::ServerClosed(0)),
            Ok(n) => n,
            Err(e) => match e.kind() {
                ErrorKind::WouldBlock => return Ok(last),
                ErrorKind::Interrupted => continue,
                kind => return Err(BenchError::Io(kind, "read")),
            },
        };
        let now = Instant::now();
        let socketio = shared.topology.socketio;
        let key = shared.key;
        let Receiver {
            reader,
            message,
            overflow,
            got,
            outbox,
            ..
        } = r;
        reader.feed(&buf[..n], |p| {
            match p {
                Piece::Data { bytes, .. } => {
                    if message.len() + bytes.len() > message.capacity() {
                        *overflow = true;
                    } else {
                        message.extend_from_slice(bytes);
                    }
                }
                Piece::End { .. } => {
                    if socketio && !*overflow && socketio::is_ping(message) {
                        socketio::pong(&mut outbox.buf, key);
                    }
                    let found = if *overflow {
                        None
                    } else {
                        shared.pattern.find_in(message)
                    };
                    message.clear();
                    *overflow = false;
                    match found {
                        None => out.foreign += 1,
                        Some(Ok(seq)) if seq == wire_seq(*got, MAX_DIGITS) => {
                            let sent_ns =
                                shared.sent_at[(*got % window) as usize].load(Ordering::Relaxed);
                            if clock.contains(now) {
                                let at = shared.epoch + Duration::from_nanos(sent_ns);
                                out.latency.record(now.saturating_duration_since(at));
                                out.deliveries += 1;
                                last = Some(now);
                            }
                            *got += 1;
                        }
                        Some(_) => return Err(BenchError::Mismatch { conn: 0, seq: *got }),
                    }
                }
                Piece::Close(_) => return Err(BenchError::ServerClosed(0)),
                Piece::Ping(_) | Piece::Pong(_) => {}
            }
            Ok(())
        })?;
        if !r.outbox.buf.is_empty() {
            r.outbox.flush(&mut r.stream)?;
        }
        // A short read drained the socket; edge-triggered epoll reports later bytes.
        if n < buf.len() {
            return Ok(last);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peers::{self, Mode};
    use std::io::{BufRead, BufReader};
    use std::process::{Child, Command, Stdio};

    fn config(target: Target, receivers: usize, messages: u64) -> BroadcastConfig {
        BroadcastConfig {
            target,
            receivers,
            size: 64,
            window: 16,
            text: true,
            threads: 1,
            warmup: Duration::ZERO,
            duration: Duration::from_secs(20),
            max_messages: messages,
            sources: 1,
            server_pid: None,
        }
    }

    fn tt_broadcast() -> u16 {
        peers::spawn_local(peers::tt::serve, Mode::Broadcast)
            .expect("tt peer")
            .port()
    }

    fn url(host: &str, port: u16, path: &str) -> Target {
        Target::parse(&format!("ws://{host}:{port}{path}")).expect("url")
    }

    #[test]
    fn receivers_spread_over_the_given_servers() {
        // Two URLs of one server: every receiver is reached wherever it connected.
        let port = tt_broadcast();
        let topology = Topology {
            receivers: vec![url("127.0.0.1", port, "/"), url("localhost", port, "/")],
            socketio: false,
        };
        let r = run_with(&config(url("127.0.0.1", port, "/"), 6, 50), &topology).expect("run");
        assert_eq!((r.sent, r.deliveries), (50, 300));

        // Two servers that do not talk to each other: the receivers placed on the second one
        // miss everything, and the run says so.
        let (a, b) = (tt_broadcast(), tt_broadcast());
        let topology = Topology {
            receivers: vec![url("127.0.0.1", a, "/"), url("127.0.0.1", b, "/")],
            socketio: false,
        };
        let mut c = config(url("127.0.0.1", a, "/"), 4, 10);
        c.duration = Duration::from_secs(1);
        match run_with(&c, &topology) {
            Err(BenchError::Lost(n)) => assert_eq!(n, 20, "2 receivers x 10 messages"),
            other => panic!("expected lost messages, got {other:?}"),
        }
    }

    /// `node socketio/server.js` on a free port, killed on drop.
    struct SocketIo(Child);

    impl Drop for SocketIo {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    impl SocketIo {
        /// Starts the peer, or `None` (said loudly) when node or its packages are missing.
        fn start() -> Option<(SocketIo, Target)> {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("socketio");
            if !dir.join("node_modules/socket.io").is_dir() {
                eprintln!(
                    "\n!!! SKIPPED: run `npm ci` in {} to test the Socket.IO mode !!!",
                    dir.display()
                );
                return None;
            }
            let mut child = Command::new("node")
                .arg(dir.join("server.js"))
                .args(["--port", "0"])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .ok()?;
            let stdout = child.stdout.take()?;
            let server = SocketIo(child);
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).ok()?;
            let url = line.trim().strip_prefix("listening on ")?;
            Some((server, Target::parse(url).expect("readiness line URL")))
        }
    }

    #[test]
    fn socketio_mode_joins_emits_and_checks_every_event() {
        let Some((_server, target)) = SocketIo::start() else {
            return;
        };
        assert_eq!(target.path, socketio::PATH);
        let topology = Topology {
            receivers: Vec::new(),
            socketio: true,
        };
        let r = run_with(&config(target, 4, 100), &topology).expect("run");
        assert_eq!((r.sent, r.deliveries, r.foreign), (100, 400, 0));
    }
}
