//! `connect` mode: K workers each repeat connect, upgrade, close handshake, and wait for the
//! server to close TCP (RFC 6455 §7.1.1: the server closes first), as fast as the server allows.
//!
//! One handshake is counted when the whole cycle is done. Workers are state machines in one mio
//! loop per thread, so K = 1000 costs no more threads than K = 1. A failed cycle is counted and
//! the worker starts again; a run where most cycles fail stops with the first failure.
//!
//! Over TLS a cycle also holds a full TLS handshake (the client never resumes a session): the
//! request is handed to rustls at once and leaves as soon as the handshake is done.

use crate::client;
use crate::echo::mask_key;
use crate::histogram::Histogram;
use crate::reader::{FrameReader, Piece};
use crate::target::{source_addr, Target};
use crate::tls::{self, TlsClient, Transport};
use crate::window::{CpuSample, CpuSpent, Window};
use crate::BenchError;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// Longest one cycle may take before it counts as failed.
pub const CYCLE_TIMEOUT: Duration = Duration::from_secs(5);

/// What a connect run does.
#[derive(Clone, Debug)]
pub struct ConnectConfig {
    /// The server.
    pub target: Target,
    /// Concurrent cycles (K).
    pub workers: usize,
    /// Client threads.
    pub threads: usize,
    /// Time before measuring starts.
    pub warmup: Duration,
    /// Length of the measured window.
    pub duration: Duration,
    /// Stop after this many handshakes (0: time bound only).
    pub max_handshakes: u64,
    /// Source addresses to rotate over.
    pub sources: usize,
    /// Server process, to report its CPU time over the window.
    pub server_pid: Option<u32>,
    /// Speak TLS (`wss://`): each cycle then holds a full TLS handshake too (no resumption).
    pub tls: Option<TlsClient>,
}

/// What a connect run measured.
#[derive(Debug)]
pub struct ConnectResult {
    /// Cycles completed inside the window.
    pub handshakes: u64,
    /// Length of the window actually measured.
    pub elapsed: Duration,
    /// Duration of each counted cycle (connect to the server's FIN).
    pub latency: Histogram,
    /// Cycles that failed (refused, timed out, bad response, no close frame).
    pub failures: u64,
    /// Why the first failed cycle failed.
    pub first_failure: Option<BenchError>,
    /// CPU seconds over the window (the server's only if its pid was given).
    pub cpu: CpuSpent,
}

/// Runs a connect benchmark.
pub fn run(config: &ConnectConfig) -> Result<ConnectResult, BenchError> {
    if config.workers == 0 || config.workers > 10_000 {
        return Err(BenchError::BadArgument("workers must be 1..=10000"));
    }
    if config.threads == 0 || config.threads > 64 {
        return Err(BenchError::BadArgument("threads must be 1..=64"));
    }
    if config.warmup + config.duration > crate::window::MAX_RUN {
        return Err(BenchError::BadArgument("warm-up plus duration over 600 s"));
    }
    let threads = config.threads.min(config.workers);
    let barrier = Arc::new(Barrier::new(threads));
    let request: Arc<[u8]> = client::request(&config.target).into();
    let close: Arc<[u8]> = client::close_frame(mask_key()).into();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let config = config.clone();
            let barrier = Arc::clone(&barrier);
            let (request, close) = (Arc::clone(&request), Arc::clone(&close));
            let tls = config.tls.clone();
            std::thread::Builder::new()
                .name(format!("connect-{t}"))
                .spawn(move || {
                    run_thread(
                        t,
                        threads,
                        &config,
                        tls.as_ref(),
                        &barrier,
                        &request,
                        &close,
                    )
                })
        })
        .collect::<Result<_, _>>()
        .map_err(BenchError::io("spawn thread"))?;
    let mut out = ConnectResult {
        handshakes: 0,
        elapsed: Duration::ZERO,
        latency: Histogram::new(),
        failures: 0,
        first_failure: None,
        cpu: CpuSpent::default(),
    };
    let mut error = None;
    for h in handles {
        match h.join() {
            Ok(Ok(part)) => {
                out.handshakes += part.handshakes;
                out.elapsed = out.elapsed.max(part.elapsed);
                out.latency.merge(&part.latency);
                out.failures += part.failures;
                out.first_failure = out.first_failure.or(part.first_failure);
                if part.cpu.is_some() {
                    out.cpu = part.cpu;
                }
            }
            Ok(Err(e)) => error = error.or(Some(e)),
            Err(_) => error = error.or(Some(BenchError::Protocol("thread panicked"))),
        }
    }
    match error {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

enum Step {
    Connecting,
    Request(usize),
    Response,
    Close(usize),
    Closing,
}

struct Slot {
    stream: Option<Transport<TcpStream>>,
    step: Step,
    started: Instant,
    head: Vec<u8>,
    reader: FrameReader,
    got_close: bool,
}

enum Progress {
    Pending,
    Done,
}

struct Shared<'a> {
    request: &'a [u8],
    close: &'a [u8],
}

fn run_thread(
    index: usize,
    threads: usize,
    config: &ConnectConfig,
    tls: Option<&TlsClient>,
    barrier: &Barrier,
    request: &[u8],
    close: &[u8],
) -> Result<ConnectResult, BenchError> {
    let poll = Poll::new().map_err(BenchError::io("epoll"));
    barrier.wait();
    let mut poll = poll?;
    let shared = Shared { request, close };
    let count = (index..config.workers).step_by(threads).count();
    let clock = Window::after(Instant::now(), config.warmup, config.duration);
    let mut out = ConnectResult {
        handshakes: 0,
        elapsed: config.duration,
        latency: Histogram::new(),
        failures: 0,
        first_failure: None,
        cpu: CpuSpent::default(),
    };
    let mut started_total = 0usize;
    let mut done_total = 0u64;
    let limit = if config.max_handshakes == 0 {
        u64::MAX
    } else {
        let t = threads as u64;
        config.max_handshakes / t + u64::from((index as u64) < config.max_handshakes % t)
    };
    let mut slots: Vec<Slot> = (0..count)
        .map(|_| Slot {
            stream: None,
            step: Step::Connecting,
            started: clock.start,
            head: Vec::with_capacity(512),
            reader: FrameReader::new(64 * 1024),
            got_close: false,
        })
        .collect();
    let mut issued = 0u64;
    for (i, slot) in slots.iter_mut().enumerate() {
        if issued < limit {
            start(slot, i, &poll, config, tls, &mut started_total)?;
            issued += 1;
        }
    }
    let mut cpu_start = None;
    let mut events = Events::with_capacity(1024);
    let mut stop_at: Option<Instant> = None;
    let mut last_done = clock.start;
    loop {
        let now = Instant::now();
        if index == 0 && cpu_start.is_none() && now >= clock.start {
            cpu_start = Some(CpuSample::take(config.server_pid));
        }
        let running = stop_at.is_none();
        if running && (now >= clock.end || done_total >= limit) {
            if index == 0 {
                if let Some(s) = &cpu_start {
                    out.cpu = CpuSample::take(config.server_pid).since(s);
                }
            }
            if now < clock.end {
                out.elapsed = last_done.saturating_duration_since(clock.start);
            }
            stop_at = Some(now + Duration::from_secs(2));
        }
        if let Some(deadline) = stop_at {
            if now >= deadline || slots.iter().all(|s| s.stream.is_none()) {
                break;
            }
        }
        if out.failures >= 1000 || (out.failures >= 50 && done_total == 0) {
            return Err(out
                .first_failure
                .take()
                .unwrap_or(BenchError::Handshake("too many failures")));
        }
        for (i, slot) in slots.iter_mut().enumerate() {
            if slot.stream.is_some() && now.duration_since(slot.started) > CYCLE_TIMEOUT {
                fail(&mut out, BenchError::Handshake("cycle timed out"));
                slot.stream = None;
                if stop_at.is_none() && issued < limit {
                    start(slot, i, &poll, config, tls, &mut started_total)?;
                    issued += 1;
                }
            }
        }
        let wait = if now < clock.start {
            clock.start - now
        } else {
            Duration::from_millis(20)
        };
        poll.poll(&mut events, Some(wait.min(Duration::from_millis(20))))
            .map_err(BenchError::io("epoll wait"))?;
        for ev in events.iter() {
            let i = ev.token().0;
            let Some(slot) = slots.get_mut(i) else {
                continue;
            };
            if slot.stream.is_none() {
                continue;
            }
            let finished = match advance(slot, &shared) {
                Ok(Progress::Pending) => continue,
                Ok(Progress::Done) => {
                    let now = Instant::now();
                    done_total += 1;
                    if clock.contains(now) && stop_at.is_none() {
                        out.handshakes += 1;
                        out.latency.record(now.duration_since(slot.started));
                        last_done = now;
                    }
                    true
                }
                Err(e) => {
                    fail(&mut out, e);
                    true
                }
            };
            if finished {
                slot.stream = None;
                if stop_at.is_none() && issued < limit {
                    start(slot, i, &poll, config, tls, &mut started_total)?;
                    issued += 1;
                }
            }
        }
    }
    Ok(out)
}

fn fail(out: &mut ConnectResult, e: BenchError) {
    out.failures += 1;
    if out.first_failure.is_none() {
        out.first_failure = Some(e);
    }
}

fn start(
    slot: &mut Slot,
    token: usize,
    poll: &Poll,
    config: &ConnectConfig,
    tls: Option<&TlsClient>,
    started_total: &mut usize,
) -> Result<(), BenchError> {
    let source = (config.sources > 1)
        .then(|| source_addr(&config.target.addr, *started_total % config.sources));
    *started_total += 1;
    let socket = nonblocking_connect(config.target.addr, source)?;
    let mut stream = match tls {
        None => Transport::Plain(socket),
        Some(tls) => Transport::tls(tls.start(&config.target)?, socket),
    };
    poll.registry()
        .register(
            stream.socket_mut(),
            Token(token),
            Interest::READABLE | Interest::WRITABLE,
        )
        .map_err(BenchError::io("register"))?;
    slot.stream = Some(stream);
    slot.step = Step::Connecting;
    slot.started = Instant::now();
    slot.head.clear();
    slot.reader = FrameReader::new(64 * 1024);
    slot.got_close = false;
    Ok(())
}

fn nonblocking_connect(
    addr: SocketAddr,
    source: Option<std::net::IpAddr>,
) -> Result<TcpStream, BenchError> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)
        .map_err(BenchError::io("socket"))?;
    socket
        .set_nonblocking(true)
        .map_err(BenchError::io("nonblocking"))?;
    socket
        .set_nodelay(true)
        .map_err(BenchError::io("nodelay"))?;
    if let Some(ip) = source {
        crate::sys::set_bind_no_port(&socket);
        socket
            .bind(&SocketAddr::new(ip, 0).into())
            .map_err(BenchError::io("bind source address"))?;
    }
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(BenchError::Io(e.kind(), "connect")),
    }
    Ok(TcpStream::from_std(socket.into()))
}

/// Moves one cycle as far as the socket allows.
fn advance(slot: &mut Slot, shared: &Shared<'_>) -> Result<Progress, BenchError> {
    let Some(stream) = slot.stream.as_mut() else {
        return Ok(Progress::Pending);
    };
    let mut buf = [0u8; 2048];
    loop {
        match slot.step {
            Step::Connecting => {
                if let Ok(Some(e)) | Err(e) = stream.socket().take_error() {
                    return Err(BenchError::Io(e.kind(), "connect"));
                }
                match stream.socket().peer_addr() {
                    Ok(_) => slot.step = Step::Request(0),
                    Err(e) if e.kind() == ErrorKind::NotConnected => return Ok(Progress::Pending),
                    Err(e) => return Err(BenchError::Io(e.kind(), "connect")),
                }
            }
            Step::Request(off) | Step::Close(off) => {
                let (bytes, is_request) = match slot.step {
                    Step::Request(_) => (shared.request, true),
                    _ => (shared.close, false),
                };
                match stream.write(&bytes[off..]) {
                    Ok(n) if off + n == bytes.len() => {
                        slot.step = if is_request {
                            Step::Response
                        } else {
                            Step::Closing
                        };
                    }
                    Ok(n) => {
                        slot.step = if is_request {
                            Step::Request(off + n)
                        } else {
                            Step::Close(off + n)
                        };
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(Progress::Pending),
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(tls::io_error(&e, "write")),
                }
            }
            Step::Response | Step::Closing => {
                let n = match stream.read(&mut buf) {
                    Ok(n) => n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(Progress::Pending),
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => return Err(tls::io_error(&e, "read")),
                };
                let got_close = &mut slot.got_close;
                let mut on_piece = |p: Piece<'_>| {
                    if matches!(p, Piece::Close(_)) {
                        *got_close = true;
                    }
                    Ok(())
                };
                if matches!(slot.step, Step::Closing) {
                    if n == 0 {
                        return if slot.got_close {
                            Ok(Progress::Done)
                        } else {
                            Err(BenchError::Protocol("TCP closed without a close frame"))
                        };
                    }
                    slot.reader.feed(&buf[..n], &mut on_piece)?;
                    continue;
                }
                if n == 0 {
                    return Err(BenchError::Handshake("closed before the response"));
                }
                slot.head.extend_from_slice(&buf[..n]);
                if let Some(used) = client::check_response(&slot.head)? {
                    slot.reader.feed(&slot.head[used..], &mut on_piece)?;
                    slot.step = Step::Close(0);
                }
            }
        }
    }
}
