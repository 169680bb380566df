//! The message-level client: echo runs with permessage-deflate (RFC 7692) and with payloads
//! that vary in length (JSON chat traffic), which the pre-masked [`Template`] path of
//! [`crate::echo`] cannot carry.
//!
//! Each connection is a client [`wss_proto::Connection`]: the generator compresses what it
//! sends and inflates what it receives with wss-proto's own deflate code (flate2 underneath),
//! so nothing of RFC 7692 is written twice. Every echo is still checked byte for byte, after
//! inflating, against the message written again from its sequence number. The price is one
//! allocation per received message (the `Message` the connection hands over); runs with
//! deflate off and chat traffic go through this same path, so "deflate off" and "deflate on"
//! differ only in compression. Fixed payloads without deflate keep the allocation-free
//! [`crate::echo`] path.
//!
//! (Over 700 lines on purpose: the handshake, the warm-up and the multi-connection run share
//! one connection type and its checks; its last 40 lines are unit tests.)
//!
//! Bytes are counted twice each way: application bytes (payloads) and wire bytes (what went
//! through the socket after the upgrade: frame headers, masks, control frames included), so
//! the compression ratio is app bytes / wire bytes.
//!
//! [`Template`]: crate::client::Template

use crate::echo::{tag, EchoConfig, EchoResult, Phase, DRAIN};
use crate::histogram::Histogram;
use crate::pattern::{ChatJson, Pattern};
use crate::target::{source_addr, Target};
use crate::window::{CpuSample, CpuSpent, Window};
use crate::BenchError;
use mio::{Events, Interest, Poll, Token};
use serde_json::{json, Map, Value};
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, TcpStream};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};
use wss_proto::handshake::deflate::DeflateConfig;
use wss_proto::handshake::ClientHandshake;
use wss_proto::{CloseCode, Config, Connection, DeflateParams, Event, Role, Scratch};

/// Read buffer of one thread, shared by all its connections.
const READ_BUF: usize = 256 * 1024;
/// Largest message accepted from the server (far above any payload sent here).
const MAX_MESSAGE: usize = 64 << 20;
/// The key nonce of every upgrade (the RFC 6455 §1.3 sample): loopback benchmarks need no
/// randomness here.
const NONCE: [u8; 16] = *b"the sample nonce";

/// What the messages carry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum PayloadKind {
    /// The fixed-size letters of [`Pattern::echo`] (`--size` bytes; compresses very well).
    #[default]
    Fixed,
    /// JSON chat messages of 80 to 300 bytes ([`ChatJson`]).
    ChatJson,
}

/// The payload of every message of a run, for any connection and sequence number.
#[derive(Clone, Debug)]
pub enum Payload {
    /// Fixed-size letters carrying the sequence number.
    Fixed(Pattern),
    /// JSON chat messages.
    Chat(ChatJson),
}

impl Payload {
    /// Replaces `out`'s content with message `seq` of connection `conn`.
    pub fn write(&self, conn: u64, seq: u64, out: &mut Vec<u8>) {
        match self {
            Payload::Fixed(p) => {
                out.clear();
                out.resize(p.len(), 0);
                p.write(seq, out);
            }
            Payload::Chat(c) => c.write(conn, seq, out),
        }
    }

    /// The name used on the command line and in the JSON line.
    pub fn name(&self) -> &'static str {
        match self {
            Payload::Fixed(_) => "fixed",
            Payload::Chat(_) => "chat-json",
        }
    }
}

/// Command-line options of the message-level client, shared by `echo` and `idle`.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct MessageArgs {
    /// Message payloads: `fixed` (`--size` bytes of letters) or `chat-json` (JSON chat
    /// messages of 80 to 300 bytes; `--size` is ignored).
    #[arg(long, value_enum, default_value = "fixed")]
    pub payload: PayloadKind,
    /// Seed of the chat-json messages: runs with the same seed send the same bytes.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Offer permessage-deflate, compress what is sent and inflate what comes back; the run
    /// fails when the server declines.
    #[arg(long)]
    pub deflate: bool,
    /// With --deflate: offer client_no_context_takeover (this client resets its compressor
    /// after every message).
    #[arg(long, requires = "deflate")]
    pub client_no_context_takeover: bool,
    /// With --deflate: offer server_no_context_takeover (ask the server to reset after every
    /// message, so it keeps no compressor per connection).
    #[arg(long, requires = "deflate")]
    pub server_no_context_takeover: bool,
    /// With --deflate: offer server_max_window_bits=N (8..=15; the server's window, hence its
    /// memory per connection).
    #[arg(long, requires = "deflate", value_parser = clap::value_parser!(u8).range(8..=15))]
    pub server_window_bits: Option<u8>,
    /// With --deflate: offer client_max_window_bits=N (8..=15) instead of a bare
    /// client_max_window_bits.
    #[arg(long, requires = "deflate", value_parser = clap::value_parser!(u8).range(8..=15))]
    pub client_window_bits: Option<u8>,
    /// With --deflate: zlib level (0..=9) of what this client sends.
    #[arg(long, requires = "deflate", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(0..=9))]
    pub deflate_level: u32,
}

impl MessageArgs {
    /// Whether the run needs this module (deflate, or payloads the template path cannot send).
    pub fn message_level(&self) -> bool {
        self.deflate || self.payload != PayloadKind::Fixed
    }

    /// What to offer, when --deflate is given. The client compresses every message (as
    /// browsers do): its threshold is 0.
    pub fn offer(&self) -> Option<DeflateConfig> {
        self.deflate.then(|| DeflateConfig {
            enabled: true,
            server_max_window_bits: self.server_window_bits.unwrap_or(15),
            client_max_window_bits: self.client_window_bits.unwrap_or(15),
            server_no_context_takeover: self.server_no_context_takeover,
            client_no_context_takeover: self.client_no_context_takeover,
            threshold: 0,
            level: self.deflate_level,
        })
    }

    /// The payloads of an echo run with `size`-byte fixed messages.
    pub fn payload(&self, size: usize) -> Payload {
        match self.payload {
            PayloadKind::Fixed => Payload::Fixed(Pattern::echo(size)),
            PayloadKind::ChatJson => Payload::Chat(ChatJson::new(self.seed)),
        }
    }
}

/// Bytes counted by a message-level run, and what was negotiated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ByteCounts {
    /// Payload bytes of the messages sent.
    pub app_out: u64,
    /// Bytes written to the sockets after the upgrade.
    pub wire_out: u64,
    /// Payload bytes of the echoes received (after inflating).
    pub app_in: u64,
    /// Bytes read from the sockets after the upgrade.
    pub wire_in: u64,
}

impl ByteCounts {
    pub(crate) fn add(&mut self, other: &ByteCounts) {
        self.app_out += other.app_out;
        self.wire_out += other.wire_out;
        self.app_in += other.app_in;
        self.wire_in += other.wire_in;
    }
}

/// What a message-level echo run reports besides the [`EchoResult`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeflateStats {
    /// Payload name (`fixed`, `chat-json`).
    pub payload: &'static str,
    /// The `Sec-WebSocket-Extensions` offer sent, if any.
    pub offered: Option<String>,
    /// The server's answer (the first connection's), if it accepted.
    pub response: Option<String>,
    /// Bytes over the whole run (warm-up and drain included).
    pub bytes: ByteCounts,
    /// Messages sent over the whole run.
    pub sent: u64,
}

fn ratio(app: u64, wire: u64) -> f64 {
    if wire == 0 {
        0.0
    } else {
        (app as f64 / wire as f64 * 1000.0).round() / 1000.0
    }
}

impl DeflateStats {
    /// Adds the figures to a JSON line: payload, deflate offer and answer, bytes each way,
    /// and `compression_out` / `compression_in` = app bytes / wire bytes.
    pub fn add_json(&self, out: &mut Map<String, Value>) {
        let b = &self.bytes;
        out.insert("payload".into(), json!(self.payload));
        out.insert("deflate".into(), json!(self.offered.is_some()));
        if let Some(o) = &self.offered {
            out.insert("deflate_offer".into(), json!(o));
        }
        if let Some(r) = &self.response {
            out.insert("deflate_response".into(), json!(r));
        }
        out.insert("app_bytes_out".into(), json!(b.app_out));
        out.insert("wire_bytes_out".into(), json!(b.wire_out));
        out.insert("app_bytes_in".into(), json!(b.app_in));
        out.insert("wire_bytes_in".into(), json!(b.wire_in));
        out.insert(
            "compression_out".into(),
            json!(ratio(b.app_out, b.wire_out)),
        );
        out.insert("compression_in".into(), json!(ratio(b.app_in, b.wire_in)));
        if self.payload != "fixed" && self.sent > 0 {
            // Sizes vary: MB/s from the mean payload instead of the --size that was ignored.
            let mean = b.app_out as f64 / self.sent as f64;
            out.insert("size".into(), json!((mean * 10.0).round() / 10.0));
            if let Some(rate) = out.get("msg_per_s").and_then(Value::as_f64) {
                let mb = (rate * mean / 1e4).round() / 100.0;
                out.insert("mb_per_s".into(), json!(mb));
            }
        }
    }
}

/// A connection just upgraded with wss-proto's client handshake.
#[derive(Debug)]
pub struct Upgraded {
    /// The socket (blocking, no read timeout).
    pub stream: TcpStream,
    /// Frame bytes that came with the `101`.
    pub early: Vec<u8>,
    /// What the server agreed to, when deflate was offered.
    pub params: Option<DeflateParams>,
    /// The server's `Sec-WebSocket-Extensions` answer, if any.
    pub response: Option<String>,
}

impl Upgraded {
    /// A client protocol state for this connection, compressing as agreed.
    pub fn connection(&self, seed: u64) -> Connection {
        let config = Config {
            max_frame_size: MAX_MESSAGE,
            max_message_size: MAX_MESSAGE,
            mask_seed: mix_seed(seed),
            deflate: self.params.clone(),
            ..Config::default()
        };
        Connection::new(Role::Client, config, Instant::now())
    }
}

/// Mask seeds differ per connection and per run; never zero.
fn mix_seed(seed: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    (seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ u64::from(nanos)) | 1
}

/// Connects and upgrades (blocking), offering permessage-deflate as `offer` says. With an
/// offer, a server that declines it is an error: a compression benchmark must not quietly
/// run uncompressed.
pub fn connect_upgrade(
    target: &Target,
    source: Option<IpAddr>,
    timeout: Duration,
    offer: Option<&DeflateConfig>,
) -> Result<Upgraded, BenchError> {
    let deadline = Instant::now() + timeout;
    let mut stream = crate::client::tcp_connect(target.addr, source, timeout)?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(BenchError::io("set timeout"))?;
    let mut hs = ClientHandshake::new(&target.host, &target.path, NONCE, &[]);
    if let Some(offer) = offer {
        hs = hs.with_deflate(offer);
    }
    stream
        .write_all(&hs.request_bytes())
        .map_err(BenchError::io("write request"))?;
    let mut chunk = [0u8; 2048];
    loop {
        if Instant::now() > deadline {
            return Err(BenchError::Handshake("timed out"));
        }
        let n = stream
            .read(&mut chunk)
            .map_err(BenchError::io("read response"))?;
        if n == 0 {
            return Err(BenchError::Handshake(
                "connection closed before the response",
            ));
        }
        let data = &chunk[..n];
        let used = hs.feed_response(data).map_err(|e| {
            BenchError::Handshake(match e {
                wss_proto::handshake::ClientHandshakeError::InvalidDeflateResponse(_)
                | wss_proto::handshake::ClientHandshakeError::UnofferedExtension(_) => {
                    "server answered permessage-deflate with parameters not offered"
                }
                wss_proto::handshake::ClientHandshakeError::UnexpectedStatus(_) => {
                    "status is not 101"
                }
                _ => "invalid 101 response",
            })
        })?;
        let Some(used) = used else { continue };
        let params = hs.deflate_params().cloned();
        if offer.is_some() && params.is_none() {
            return Err(BenchError::Handshake("server declined permessage-deflate"));
        }
        let response = hs
            .response_headers()
            .get(wss_proto::handshake::deflate::HEADER_NAME)
            .map(str::to_owned);
        stream
            .set_read_timeout(None)
            .map_err(BenchError::io("clear timeout"))?;
        return Ok(Upgraded {
            stream,
            early: data.get(used..).unwrap_or_default().to_vec(),
            params,
            response,
        });
    }
}

/// Sends `count` messages on a fresh connection, one at a time, and checks each echo; then
/// drops the protocol state, keeping only the socket. Used by idle runs so the server holds
/// its deflate state (allocated on the first compressed message) while the client holds none.
pub fn warm(
    up: &mut Upgraded,
    payload: &Payload,
    conn: u64,
    count: u32,
    timeout: Duration,
) -> Result<ByteCounts, BenchError> {
    let mut counts = ByteCounts::default();
    if count == 0 {
        return Ok(counts);
    }
    let mut proto = up.connection(conn);
    let mut scratch = Scratch::new();
    let early = std::mem::take(&mut up.early);
    proto.receive(&mut scratch, Instant::now(), &early);
    let deadline = Instant::now() + timeout;
    let (mut msg, mut out, mut buf) = (Vec::new(), Vec::new(), [0u8; 4096]);
    for seq in 0..u64::from(count) {
        payload.write(conn, seq, &mut msg);
        counts.app_out += msg.len() as u64;
        send(&mut proto, &msg)?;
        proto.poll_transmit(&mut out);
        up.stream.write_all(&out).map_err(BenchError::io("write"))?;
        counts.wire_out += out.len() as u64;
        out.clear();
        let mut echoed = false;
        while !echoed {
            while let Some(ev) = proto.poll_event(&mut scratch) {
                match ev {
                    Event::Message(m) if m.as_bytes() == msg.as_slice() => {
                        counts.app_in += m.len() as u64;
                        echoed = true;
                    }
                    Event::Message(_) => {
                        return Err(BenchError::Mismatch {
                            conn: conn as usize,
                            seq,
                        })
                    }
                    Event::Ping(_) | Event::Pong(_) => {}
                    _ => return Err(BenchError::ServerClosed(conn as usize)),
                }
            }
            if echoed {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(BenchError::Lost(1));
            }
            up.stream
                .set_read_timeout(Some(left))
                .map_err(BenchError::io("set timeout"))?;
            let n = match up.stream.read(&mut buf) {
                Ok(0) => return Err(BenchError::ServerClosed(conn as usize)),
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(BenchError::Io(e.kind(), "read")),
            };
            counts.wire_in += n as u64;
            proto.receive(&mut scratch, Instant::now(), &buf[..n]);
        }
    }
    // Pongs the server's pings asked for go out before the state is dropped.
    proto.poll_transmit(&mut out);
    if !out.is_empty() {
        up.stream.write_all(&out).map_err(BenchError::io("write"))?;
    }
    up.stream
        .set_read_timeout(None)
        .map_err(BenchError::io("clear timeout"))?;
    Ok(counts)
}

/// Queues `msg` as text when it is UTF-8 (every payload here is ASCII), else as binary.
fn send(proto: &mut Connection, msg: &[u8]) -> Result<(), BenchError> {
    let sent = match std::str::from_utf8(msg) {
        Ok(text) => proto.send_text(text),
        Err(_) => proto.send_binary(msg),
    };
    sent.map_err(|_| BenchError::Protocol("the connection refused to send"))
}

/// Runs an echo benchmark through client [`Connection`]s: `config` as for [`crate::echo`]
/// (its `size` applies to fixed payloads only, `text` picks the frame type), `args` the
/// payload and deflate offer.
pub fn run_echo(
    config: &EchoConfig,
    args: &MessageArgs,
) -> Result<(EchoResult, DeflateStats), BenchError> {
    config.check()?;
    if config.tls.is_some() {
        return Err(BenchError::BadArgument(
            "deflate and chat-json runs do not speak TLS",
        ));
    }
    let payload = Arc::new(args.payload(config.size));
    let offer = args.offer();
    let threads = config.threads.min(config.connections);
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let config = config.clone();
            let payload = Arc::clone(&payload);
            let barrier = Arc::clone(&barrier);
            let offer = offer.clone();
            std::thread::Builder::new()
                .name(format!("msg-echo-{t}"))
                .spawn(move || {
                    let setup = Setup {
                        index: t,
                        threads,
                        config: &config,
                        payload: &payload,
                        offer: offer.as_ref(),
                    };
                    run_thread(&setup, &barrier)
                })
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
    let mut stats = DeflateStats {
        payload: payload.name(),
        offered: offer
            .as_ref()
            .map(wss_proto::handshake::deflate::client_offer),
        ..DeflateStats::default()
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
                stats.bytes.add(&part.bytes);
                stats.response = stats.response.or(part.response);
            }
            Ok(Err(e)) => first_error = first_error.or(Some(e)),
            Err(_) => first_error = first_error.or(Some(BenchError::Protocol("thread panicked"))),
        }
    }
    stats.sent = out.sent;
    match first_error {
        Some(e) => Err(e),
        None => Ok((out, stats)),
    }
}

struct Setup<'a> {
    index: usize,
    threads: usize,
    config: &'a EchoConfig,
    payload: &'a Payload,
    offer: Option<&'a DeflateConfig>,
}

struct ThreadOut {
    messages: u64,
    elapsed: Duration,
    latency: Histogram,
    sent: u64,
    received: u64,
    pings: u64,
    cpu: CpuSpent,
    bytes: ByteCounts,
    response: Option<String>,
}

struct Conn {
    /// Index of the connection in the whole run (chat messages depend on it).
    id: u64,
    stream: mio::net::TcpStream,
    proto: Connection,
    out: Vec<u8>,
    out_off: usize,
    queued: u64,
    received: u64,
    limit: u64,
    sent_at: Box<[Instant]>,
    closed: bool,
}

/// What the read and send helpers share within one thread.
struct Ctx<'a> {
    payload: &'a Payload,
    in_flight: usize,
    scratch: Vec<u8>,
    /// The protocol core's working memory for this thread's connections.
    proto_scratch: Scratch,
    bytes: ByteCounts,
}

impl Ctx<'_> {
    fn queue(&mut self, c: &mut Conn, now: Instant) -> Result<(), BenchError> {
        self.payload.write(c.id, c.queued, &mut self.scratch);
        self.bytes.app_out += self.scratch.len() as u64;
        send(&mut c.proto, &self.scratch)?;
        let slot = (c.queued % self.in_flight as u64) as usize;
        c.sent_at[slot] = now;
        c.queued += 1;
        Ok(())
    }
}

fn run_thread(setup: &Setup<'_>, barrier: &Barrier) -> Result<ThreadOut, BenchError> {
    let config = setup.config;
    let mine: Vec<usize> = (setup.index..config.connections)
        .step_by(setup.threads)
        .collect();
    let poll = Poll::new().map_err(BenchError::io("epoll"));
    let connected = poll.and_then(|poll| connect_all(setup, &mine, &poll).map(|c| (poll, c)));
    // Every thread reaches the barrier, even after a failed setup, so none waits forever.
    barrier.wait();
    let (mut poll, (mut conns, response)) = connected?;
    let clock = Window::after(Instant::now(), config.warmup, config.duration);
    let mut out = ThreadOut {
        messages: 0,
        elapsed: Duration::ZERO,
        latency: Histogram::new(),
        sent: 0,
        received: 0,
        pings: 0,
        cpu: CpuSpent::default(),
        bytes: ByteCounts::default(),
        response,
    };
    let mut ctx = Ctx {
        payload: setup.payload,
        in_flight: config.in_flight,
        scratch: Vec::with_capacity(1024),
        proto_scratch: Scratch::new(),
        bytes: ByteCounts::default(),
    };
    let mut cpu_start = None;
    let mut last_in_window = clock.start;
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; READ_BUF];
    let first_now = Instant::now();
    for (i, c) in conns.iter_mut().enumerate() {
        while c.queued < c.limit && c.queued < config.in_flight as u64 {
            ctx.queue(c, first_now)?;
        }
        flush(c, &mut ctx.bytes).map_err(|e| tag(e, mine[i]))?;
    }
    let mut phase = Phase::Running;
    loop {
        let now = Instant::now();
        if setup.index == 0 && cpu_start.is_none() && now >= clock.start {
            cpu_start = Some(CpuSample::take(config.server_pid));
        }
        let counted = config.max_messages > 0;
        let all_done = counted && conns.iter().all(|c| c.received >= c.limit);
        let all_back =
            matches!(phase, Phase::Draining(_)) && conns.iter().all(|c| c.received == c.queued);
        match phase {
            Phase::Running if now >= clock.end || all_done => {
                if setup.index == 0 {
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
                    // A refused close or a failed write only means the server is gone.
                    let _ = c.proto.close(now, CloseCode::NORMAL, "");
                    let _ = flush(c, &mut ctx.bytes);
                }
                phase = Phase::Closing(now + Duration::from_secs(1));
                continue;
            }
            Phase::Draining(deadline) if now >= deadline => {
                let lost: u64 = conns.iter().map(|c| c.queued - c.received).sum();
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
            let r = read_all(c, &mut buf, &mut ctx, running, closing, &clock, &mut out);
            match r {
                Ok(Some(t)) => last_in_window = last_in_window.max(t),
                Ok(None) => {}
                Err(e) => return Err(tag(e, mine[i])),
            }
            if !c.closed {
                if let Err(e) = flush(c, &mut ctx.bytes) {
                    if !closing {
                        return Err(tag(e, mine[i]));
                    }
                }
            }
        }
    }
    for c in &conns {
        out.sent += c.queued;
        out.received += c.received;
    }
    out.bytes = ctx.bytes;
    Ok(out)
}

type Connected = (Vec<Conn>, Option<String>);

fn connect_all(setup: &Setup<'_>, mine: &[usize], poll: &Poll) -> Result<Connected, BenchError> {
    let config = setup.config;
    let total_limit = |i: usize| -> u64 {
        if config.max_messages == 0 {
            u64::MAX
        } else {
            let c = config.connections as u64;
            config.max_messages / c + u64::from((i as u64) < config.max_messages % c)
        }
    };
    let mut conns = Vec::with_capacity(mine.len());
    let mut response = None;
    for (local, &i) in mine.iter().enumerate() {
        let source =
            (config.sources > 1).then(|| source_addr(&config.target.addr, i % config.sources));
        let up = connect_upgrade(&config.target, source, Duration::from_secs(5), setup.offer)?;
        if !up.early.is_empty() {
            return Err(BenchError::Protocol("data before the first message"));
        }
        let proto = up.connection(i as u64);
        response = response.or(up.response);
        up.stream
            .set_nonblocking(true)
            .map_err(BenchError::io("nonblocking"))?;
        let mut stream = mio::net::TcpStream::from_std(up.stream);
        poll.registry()
            .register(
                &mut stream,
                Token(local),
                Interest::READABLE | Interest::WRITABLE,
            )
            .map_err(BenchError::io("register"))?;
        let now = Instant::now();
        conns.push(Conn {
            id: i as u64,
            stream,
            proto,
            out: Vec::new(),
            out_off: 0,
            queued: 0,
            received: 0,
            limit: total_limit(i),
            sent_at: vec![now; config.in_flight].into_boxed_slice(),
            closed: false,
        });
    }
    Ok((conns, response))
}

/// Moves what the connection queued to its output and writes until done or the socket is
/// full (edge-triggered WRITABLE calls again).
fn flush(c: &mut Conn, bytes: &mut ByteCounts) -> Result<(), BenchError> {
    c.proto.poll_transmit(&mut c.out);
    while c.out_off < c.out.len() {
        match c.stream.write(&c.out[c.out_off..]) {
            Ok(0) => return Err(BenchError::Io(ErrorKind::WriteZero, "write")),
            Ok(n) => {
                c.out_off += n;
                bytes.wire_out += n as u64;
            }
            Err(e) => match e.kind() {
                ErrorKind::WouldBlock => return Ok(()),
                ErrorKind::Interrupted => continue,
                kind => return Err(BenchError::Io(kind, "write")),
            },
        }
    }
    c.out.clear();
    c.out_off = 0;
    Ok(())
}

/// Reads until the socket is drained, checking every echo after inflating. Returns the
/// receive time of the last echo counted inside the window, if any.
fn read_all(
    c: &mut Conn,
    buf: &mut [u8],
    ctx: &mut Ctx<'_>,
    sending: bool,
    closing: bool,
    clock: &Window,
    out: &mut ThreadOut,
) -> Result<Option<Instant>, BenchError> {
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
            Err(e) => return Err(BenchError::Io(e.kind(), "read")),
        };
        let now = Instant::now();
        ctx.bytes.wire_in += n as u64;
        c.proto.receive(&mut ctx.proto_scratch, now, &buf[..n]);
        while let Some(ev) = c.proto.poll_event(&mut ctx.proto_scratch) {
            match ev {
                Event::Message(_) if closing => {}
                Event::Message(m) => {
                    let seq = c.received;
                    ctx.payload.write(c.id, seq, &mut ctx.scratch);
                    if seq >= c.queued || m.as_bytes() != ctx.scratch.as_slice() {
                        return Err(BenchError::Mismatch { conn: 0, seq });
                    }
                    ctx.bytes.app_in += m.len() as u64;
                    let slot = (seq % ctx.in_flight as u64) as usize;
                    if clock.contains(now) {
                        out.latency
                            .record(now.saturating_duration_since(c.sent_at[slot]));
                        out.messages += 1;
                        last = Some(now);
                    }
                    c.received += 1;
                    if sending && c.queued < c.limit {
                        ctx.queue(c, now)?;
                    }
                }
                // The connection queued the pong already.
                Event::Ping(_) => out.pings += 1,
                Event::Pong(_) => {}
                Event::CloseReceived { .. } if closing => c.closed = true,
                Event::CloseReceived { .. } => return Err(BenchError::ServerClosed(0)),
                Event::Failed(_) | Event::TimedOut(_) if closing => c.closed = true,
                Event::Failed(_) => {
                    return Err(BenchError::Protocol(
                        "server broke the protocol (bad frame or compressed data)",
                    ))
                }
                Event::TimedOut(_) => return Err(BenchError::Protocol("close timed out")),
            }
        }
        // A short read drained the socket: epoll (edge-triggered) reports any later bytes.
        if c.closed || n < buf.len() {
            return Ok(last);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offer_reflects_the_options() {
        let mut args = MessageArgs {
            deflate: true,
            deflate_level: 1,
            ..MessageArgs::default()
        };
        let offer = |a: &MessageArgs| {
            wss_proto::handshake::deflate::client_offer(&a.offer().expect("deflate"))
        };
        assert_eq!(offer(&args), "permessage-deflate; client_max_window_bits");
        args.server_no_context_takeover = true;
        args.client_no_context_takeover = true;
        args.server_window_bits = Some(10);
        args.client_window_bits = Some(9);
        assert_eq!(
            offer(&args),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=10; client_max_window_bits=9"
        );
        args.deflate = false;
        assert!(args.offer().is_none());
        assert!(!args.message_level());
        args.payload = PayloadKind::ChatJson;
        assert!(args.message_level());
    }

    #[test]
    fn fixed_payload_matches_the_template_pattern() {
        let p = Payload::Fixed(Pattern::echo(20));
        let mut a = Vec::new();
        p.write(3, 0x1234, &mut a);
        let mut b = vec![0u8; 20];
        Pattern::echo(20).write(0x1234, &mut b);
        assert_eq!(a, b);
    }
}
