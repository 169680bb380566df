//! `echo` mode: C connections each keep D messages of S bytes in flight; every echo is checked
//! byte for byte against what was sent, and its round trip is timed.
//!
//! Each thread runs one mio loop over its share of the connections. A message costs no
//! allocation: frames are written with `writev` from a [`Template`] (a per-message prefix of at
//! most 30 bytes built on the stack, plus the shared masked tail), and echoes are checked as
//! they stream through one read buffer per thread.

use crate::client::{self, Template, OP_BINARY, OP_PONG, OP_TEXT};
use crate::histogram::Histogram;
use crate::pattern::Pattern;
use crate::reader::{FrameReader, Piece};
use crate::target::{source_addr, Target};
use crate::tls::{self, TlsClient, Transport};
use crate::window::{CpuSample, CpuSpent, Window};
use crate::writer::Tx;
use crate::BenchError;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use std::io::{ErrorKind, Read};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// Read buffer of one thread, shared by all its connections.
const READ_BUF: usize = 256 * 1024;
/// How long in-flight echoes may take to come back after the window closes.
pub const DRAIN: Duration = Duration::from_secs(3);

/// What an echo run does.
#[derive(Clone, Debug)]
pub struct EchoConfig {
    /// The server.
    pub target: Target,
    /// Connections (C).
    pub connections: usize,
    /// Payload bytes per message (S).
    pub size: usize,
    /// Messages in flight per connection (D).
    pub in_flight: usize,
    /// Text frames instead of binary.
    pub text: bool,
    /// Client threads (one mio loop each).
    pub threads: usize,
    /// Time before measuring starts.
    pub warmup: Duration,
    /// Length of the measured window.
    pub duration: Duration,
    /// Stop after this many messages in all (0: time bound only).
    pub max_messages: u64,
    /// Source addresses to spread connections over (127.0.0.1, .2, …).
    pub sources: usize,
    /// Server process, to report its CPU time over the window.
    pub server_pid: Option<u32>,
    /// Speak TLS (`wss://`) with this client configuration.
    pub tls: Option<TlsClient>,
}

/// What an echo run measured.
#[derive(Clone, Debug)]
pub struct EchoResult {
    /// Echoes received (and verified) inside the window.
    pub messages: u64,
    /// Length of the window actually measured (shorter when the count bound ended it).
    pub elapsed: Duration,
    /// Round trips of the echoes counted in `messages`.
    pub latency: Histogram,
    /// Messages sent over the whole run.
    pub sent: u64,
    /// Echoes received over the whole run.
    pub received: u64,
    /// Pings the server sent (answered).
    pub pings: u64,
    /// CPU seconds over the window (the server's only if its pid was given).
    pub cpu: CpuSpent,
}

impl EchoConfig {
    pub(crate) fn check(&self) -> Result<(), BenchError> {
        if self.connections == 0 || self.connections > 100_000 {
            return Err(BenchError::BadArgument("connections must be 1..=100000"));
        }
        if self.in_flight == 0 || self.in_flight > 4096 {
            return Err(BenchError::BadArgument("in-flight must be 1..=4096"));
        }
        if self.size > 64 << 20 {
            return Err(BenchError::BadArgument("size must be at most 64 MiB"));
        }
        if self.threads == 0 || self.threads > 64 {
            return Err(BenchError::BadArgument("threads must be 1..=64"));
        }
        if self.warmup + self.duration > crate::window::MAX_RUN {
            return Err(BenchError::BadArgument("warm-up plus duration over 600 s"));
        }
        Ok(())
    }
}

/// Runs an echo benchmark and returns its figures; any mismatch or loss is an error.
pub fn run(config: &EchoConfig) -> Result<EchoResult, BenchError> {
    config.check()?;
    let opcode = if config.text { OP_TEXT } else { OP_BINARY };
    let key = mask_key();
    let template = Arc::new(Template::new(Pattern::echo(config.size), opcode, key));
    let threads = config.threads.min(config.connections);
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let config = config.clone();
            let template = Arc::clone(&template);
            let barrier = Arc::clone(&barrier);
            std::thread::Builder::new()
                .name(format!("echo-{t}"))
                .spawn(move || run_thread(t, threads, &config, &template, &barrier))
        })
        .collect::<Result<_, _>>()
        .map_err(BenchError::io("spawn thread"))?;
    let mut out = EchoResult {
        messages: 0,
        elapsed: Duration::ZERO,
        latency: Histogram::new(),
        sent: 0,
        received: 0,
        pings: 0,
        cpu: CpuSpent::default(),
    };
    let mut first_error = None;
    for h in handles {
        match h.join() {
            Ok(Ok(part)) => {
                out.messages += part.messages;
                out.elapsed = out.elapsed.max(part.elapsed);
                out.latency.merge(&part.latency);
                out.sent += part.sent;
                out.received += part.received;
                out.pings += part.pings;
                if part.cpu.is_some() {
                    out.cpu = part.cpu;
                }
            }
            Ok(Err(e)) => first_error = first_error.or(Some(e)),
            Err(_) => first_error = first_error.or(Some(BenchError::Protocol("thread panicked"))),
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// A mask key that differs between runs; never all zero (that would make masking a no-op).
pub fn mask_key() -> [u8; 4] {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    (nanos ^ 0x5ac3_963c | 0x0101_0101).to_le_bytes()
}

struct ThreadOut {
    messages: u64,
    elapsed: Duration,
    latency: Histogram,
    sent: u64,
    received: u64,
    pings: u64,
    cpu: CpuSpent,
}

struct Conn {
    stream: Transport<TcpStream>,
    reader: FrameReader,
    tx: Tx,
    limit: u64,
    received: u64,
    sent_at: Box<[Instant]>,
    closed: bool,
}

/// Where a load thread stands: sending, waiting for the last echoes, or closing.
#[derive(PartialEq, Eq)]
pub(crate) enum Phase {
    Running,
    Draining(Instant),
    Closing(Instant),
}

impl Phase {
    /// How long the thread may sleep in `poll` before the phase needs a look again.
    pub(crate) fn wait(&self, now: Instant, clock: &Window) -> Duration {
        let wait = match *self {
            Phase::Running if now < clock.start => clock.start - now,
            Phase::Running => clock.end.saturating_duration_since(now),
            Phase::Draining(d) | Phase::Closing(d) => d.saturating_duration_since(now),
        };
        wait.min(Duration::from_millis(50))
    }
}

fn run_thread(
    index: usize,
    threads: usize,
    config: &EchoConfig,
    template: &Template,
    barrier: &Barrier,
) -> Result<ThreadOut, BenchError> {
    let poll = Poll::new().map_err(BenchError::io("epoll"));
    let mine: Vec<usize> = (index..config.connections).step_by(threads).collect();
    let setup =
        poll.and_then(|poll| connect_all(config, template, &mine, &poll).map(|c| (poll, c)));
    // Every thread reaches the barrier, even after a failed setup, so none waits forever.
    barrier.wait();
    let (mut poll, mut conns) = setup?;
    let clock = Window::after(Instant::now(), config.warmup, config.duration);
    let mut out = ThreadOut {
        messages: 0,
        elapsed: Duration::ZERO,
        latency: Histogram::new(),
        sent: 0,
        received: 0,
        pings: 0,
        cpu: CpuSpent::default(),
    };
    let mut cpu_start = None;
    let mut last_in_window = clock.start;
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; READ_BUF];
    let first_now = Instant::now();
    for (i, c) in conns.iter_mut().enumerate() {
        while c.tx.queued < c.limit && c.tx.queued < config.in_flight as u64 {
            queue(c, first_now, config.in_flight);
        }
        c.tx.flush(&mut c.stream, template)
            .map_err(|e| tag(e, mine[i]))?;
    }
    let mut phase = Phase::Running;
    loop {
        let now = Instant::now();
        if index == 0 && cpu_start.is_none() && now >= clock.start {
            cpu_start = Some(CpuSample::take(config.server_pid));
        }
        // Scans of every connection only when they can change the phase.
        let counted = config.max_messages > 0;
        let all_done = counted && conns.iter().all(|c| c.received >= c.limit);
        let all_back =
            matches!(phase, Phase::Draining(_)) && conns.iter().all(|c| c.received == c.tx.queued);
        match phase {
            Phase::Running if now >= clock.end || all_done => {
                if index == 0 {
                    if let Some(start) = &cpu_start {
                        out.cpu = CpuSample::take(config.server_pid).since(start);
                    }
                }
                out.elapsed = if all_done && now < clock.end {
                    last_in_window.saturating_duration_since(clock.start)
                } else {
                    clock.end - clock.start
                };
                phase = Phase::Draining(now + DRAIN);
                continue;
            }
            Phase::Draining(_) if all_back => {
                for c in conns.iter_mut() {
                    c.tx.control()
                        .extend_from_slice(&client::close_frame(template.key()));
                    // A failed close write only means the server is already gone.
                    let _ = c.tx.flush(&mut c.stream, template);
                }
                phase = Phase::Closing(now + Duration::from_secs(1));
                continue;
            }
            Phase::Draining(deadline) if now >= deadline => {
                let lost: u64 = conns.iter().map(|c| c.tx.queued - c.received).sum();
                return Err(BenchError::Lost(lost));
            }
            Phase::Closing(deadline) if now >= deadline || conns.iter().all(|c| c.closed) => {
                break;
            }
            _ => {}
        }
        poll.poll(&mut events, Some(phase.wait(now, &clock)))
            .map_err(BenchError::io("epoll wait"))?;
        for ev in events.iter() {
            let i = ev.token().0;
            let Some(c) = conns.get_mut(i) else { continue };
            if c.closed {
                continue;
            }
            let running = phase == Phase::Running;
            let closing = matches!(phase, Phase::Closing(_));
            let r = read_all(
                c, &mut buf, template, config, running, closing, &clock, &mut out,
            );
            match r {
                Ok(Some(t)) => last_in_window = last_in_window.max(t),
                Ok(None) => {}
                Err(e) => return Err(tag(e, mine[i])),
            }
            if !c.closed {
                if let Err(e) = c.tx.flush(&mut c.stream, template) {
                    if !closing {
                        return Err(tag(e, mine[i]));
                    }
                }
            }
        }
    }
    for c in &conns {
        out.sent += c.tx.queued;
        out.received += c.received;
    }
    Ok(out)
}

/// Names the connection in an error raised by its reader.
pub(crate) fn tag(e: BenchError, conn: usize) -> BenchError {
    match e {
        BenchError::Mismatch { seq, .. } => BenchError::Mismatch { conn, seq },
        BenchError::ServerClosed(_) => BenchError::ServerClosed(conn),
        other => other,
    }
}

fn connect_all(
    config: &EchoConfig,
    template: &Template,
    mine: &[usize],
    poll: &Poll,
) -> Result<Vec<Conn>, BenchError> {
    let total_limit = |i: usize| -> u64 {
        if config.max_messages == 0 {
            u64::MAX
        } else {
            let c = config.connections as u64;
            config.max_messages / c + u64::from((i as u64) < config.max_messages % c)
        }
    };
    let mut conns = Vec::with_capacity(mine.len());
    for (local, &i) in mine.iter().enumerate() {
        let source =
            (config.sources > 1).then(|| source_addr(&config.target.addr, i % config.sources));
        let (std_stream, early) = tls::connect_blocking(
            &config.target,
            source,
            Duration::from_secs(5),
            config.tls.as_ref(),
        )?;
        if !early.is_empty() {
            return Err(BenchError::Protocol("data before the first message"));
        }
        std_stream
            .socket()
            .set_nonblocking(true)
            .map_err(BenchError::io("nonblocking"))?;
        let mut stream = std_stream.map_socket(TcpStream::from_std);
        poll.registry()
            .register(
                stream.socket_mut(),
                Token(local),
                Interest::READABLE | Interest::WRITABLE,
            )
            .map_err(BenchError::io("register"))?;
        let now = Instant::now();
        conns.push(Conn {
            stream,
            reader: FrameReader::new(template.pattern().len()),
            tx: Tx::default(),
            limit: total_limit(i),
            received: 0,
            sent_at: vec![now; config.in_flight].into_boxed_slice(),
            closed: false,
        });
    }
    Ok(conns)
}

fn queue(c: &mut Conn, now: Instant, in_flight: usize) {
    let slot = (c.tx.queued % in_flight as u64) as usize;
    c.sent_at[slot] = now;
    c.tx.queue();
}

/// Reads until the socket is drained, checking every echo. Returns the receive time of the
/// last echo counted inside the window, if any.
#[allow(clippy::too_many_arguments)]
fn read_all(
    c: &mut Conn,
    buf: &mut [u8],
    template: &Template,
    config: &EchoConfig,
    sending: bool,
    closing: bool,
    clock: &Window,
    out: &mut ThreadOut,
) -> Result<Option<Instant>, BenchError> {
    let pattern = template.pattern();
    let want_opcode = if config.text { OP_TEXT } else { OP_BINARY };
    let mut last = None;
    loop {
        let n = match c.stream.read(buf) {
            Ok(0) if closing => {
                c.closed = true;
                return Ok(last);
            }
            Ok(0) => return Err(BenchError::ServerClosed(0)),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(last),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) if closing => {
                c.closed = true;
                return Ok(last);
            }
            Err(e) => return Err(tls::io_error(&e, "read")),
        };
        let now = Instant::now();
        let Conn {
            reader,
            tx,
            limit,
            received,
            sent_at,
            closed,
            ..
        } = c;
        reader.feed(&buf[..n], |piece| match piece {
            Piece::Data { .. } | Piece::End { .. } if closing => Ok(()),
            Piece::Data {
                opcode,
                offset,
                bytes,
            } => {
                if opcode != want_opcode || !pattern.matches_at(*received, offset, bytes) {
                    return Err(BenchError::Mismatch {
                        conn: 0,
                        seq: *received,
                    });
                }
                Ok(())
            }
            Piece::End { opcode, len } => {
                if opcode != want_opcode || len != pattern.len() || *received >= tx.queued {
                    return Err(BenchError::Mismatch {
                        conn: 0,
                        seq: *received,
                    });
                }
                let slot = (*received % config.in_flight as u64) as usize;
                if clock.contains(now) {
                    out.latency
                        .record(now.saturating_duration_since(sent_at[slot]));
                    out.messages += 1;
                    last = Some(now);
                }
                *received += 1;
                if sending && tx.queued < *limit {
                    sent_at[slot] = now;
                    tx.queue();
                }
                Ok(())
            }
            Piece::Ping(payload) => {
                out.pings += 1;
                client::encode_masked(tx.control(), OP_PONG, payload, template.key());
                Ok(())
            }
            Piece::Pong(_) => Ok(()),
            Piece::Close(_) if closing => {
                *closed = true;
                Ok(())
            }
            Piece::Close(_) => Err(BenchError::ServerClosed(0)),
        })?;
        // A short read drained the socket: epoll (edge-triggered) reports any later bytes, so
        // the read that would only say EAGAIN is saved. Not so over TLS: a read returns one
        // batch of records, and more may wait in the socket or in rustls.
        if c.closed || (n < buf.len() && !c.stream.is_tls()) {
            return Ok(last);
        }
    }
}
