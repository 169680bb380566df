//! `idle` mode: opens N connections, leaves them quiet, and reads the server's resident memory
//! before and after, giving its cost per idle connection. Then every connection is pinged to
//! show the server still holds it.
//!
//! One source address offers about 28 000 ephemeral ports towards one server port, so
//! connections are spread over 127.0.0.1, 127.0.0.2, … (one per 20 000 connections unless more
//! are asked for).
//!
//! With [`IdleDeflate`] ([`run_with`]) the connections offer permessage-deflate and each sends
//! a few chat messages first: a server allocates its compression state on the first compressed
//! message, so only then does the memory reading show what deflate costs per connection.

use crate::client::{self, OP_PING};
use crate::deflate::{self, ByteCounts, Payload};
use crate::echo::mask_key;
use crate::pattern::ChatJson;
use crate::reader::{FrameReader, Piece};
use crate::target::{source_addr, Target};
use crate::tls::{self, TlsClient, Transport};
use crate::{sys, BenchError};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Connections per source address when the count is chosen automatically.
pub const PER_SOURCE: usize = 20_000;
/// How long the final ping round may take in all.
pub const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// What an idle run does.
#[derive(Clone, Debug)]
pub struct IdleConfig {
    /// The server.
    pub target: Target,
    /// Connections to hold (N).
    pub connections: usize,
    /// Wait after the last connect before reading the server's memory.
    pub settle: Duration,
    /// Source addresses (0 or 1: as many as N needs).
    pub sources: usize,
    /// Server process whose memory is read.
    pub server_pid: Option<u32>,
}

/// What an idle run measured.
#[derive(Clone, Debug)]
pub struct IdleResult {
    /// Connections upgraded.
    pub connected: usize,
    /// Connections that answered the final ping.
    pub alive: usize,
    /// Time to open and upgrade all of them.
    pub connect_time: Duration,
    /// Source addresses used.
    pub sources: usize,
    /// Server RSS before the first connection, KiB.
    pub rss_before_kib: Option<u64>,
    /// Server RSS with every connection held, KiB.
    pub rss_after_kib: Option<u64>,
    /// Connections on which the server accepted permessage-deflate.
    pub deflate_negotiated: usize,
    /// The server's `Sec-WebSocket-Extensions` answer (the first connection's), if any.
    pub deflate_response: Option<String>,
    /// Bytes of the warm-up messages, all connections together.
    pub warm_bytes: ByteCounts,
}

/// Deflate and warm-up messages of an idle run.
#[derive(Clone, Debug, Default)]
pub struct IdleDeflate {
    /// What to offer (`None`: no `Sec-WebSocket-Extensions`).
    pub offer: Option<wss_proto::handshake::deflate::DeflateConfig>,
    /// Chat messages each connection sends (and gets back) before going quiet. Needs a
    /// server that echoes.
    pub warm: u32,
    /// Seed of the chat messages.
    pub seed: u64,
}

impl IdleResult {
    /// Adds the deflate figures of a run with [`IdleDeflate`] to a JSON line.
    pub fn add_deflate_json(&self, out: &mut serde_json::Map<String, serde_json::Value>) {
        use serde_json::json;
        let b = &self.warm_bytes;
        out.insert("deflate_negotiated".into(), json!(self.deflate_negotiated));
        if let Some(r) = &self.deflate_response {
            out.insert("deflate_response".into(), json!(r));
        }
        out.insert("warm_app_bytes_out".into(), json!(b.app_out));
        out.insert("warm_wire_bytes_out".into(), json!(b.wire_out));
        out.insert("warm_app_bytes_in".into(), json!(b.app_in));
        out.insert("warm_wire_bytes_in".into(), json!(b.wire_in));
    }
}

/// Runs an idle benchmark.
pub fn run(config: &IdleConfig) -> Result<IdleResult, BenchError> {
    run_with(config, &IdleDeflate::default())
}

/// Runs an idle benchmark whose connections offer permessage-deflate and send warm-up
/// messages as `extra` says. Without either, the same as [`run`].
pub fn run_with(config: &IdleConfig, extra: &IdleDeflate) -> Result<IdleResult, BenchError> {
    run_inner(config, extra, None)
}

/// As [`run`], every connection over TLS (`wss://`) with `tls`.
pub fn run_over(config: &IdleConfig, tls: &TlsClient) -> Result<IdleResult, BenchError> {
    run_inner(config, &IdleDeflate::default(), Some(tls))
}

fn run_inner(
    config: &IdleConfig,
    extra: &IdleDeflate,
    tls: Option<&TlsClient>,
) -> Result<IdleResult, BenchError> {
    let n = config.connections;
    if n == 0 || n > 1_000_000 {
        return Err(BenchError::BadArgument("connections must be 1..=1000000"));
    }
    let limit = sys::raise_nofile(n as u64 + 1024);
    if limit < n as u64 + 64 {
        return Err(BenchError::BadArgument(
            "open-file limit too low for that many connections (raise ulimit -n)",
        ));
    }
    let sources = config.sources.max(n.div_ceil(PER_SOURCE)).max(1);
    let rss_before = config.server_pid.map(sys::rss_kib).transpose()?;
    let t0 = Instant::now();
    let mut conns = Vec::with_capacity(n);
    let message_level = extra.offer.is_some() || extra.warm > 0;
    let payload = Payload::Chat(ChatJson::new(extra.seed));
    let (mut negotiated, mut response, mut warm_bytes) = (0, None, ByteCounts::default());
    for i in 0..n {
        let source = (sources > 1).then(|| source_addr(&config.target.addr, i % sources));
        let timeout = Duration::from_secs(5);
        if !message_level {
            let (stream, _early) = tls::connect_blocking(&config.target, source, timeout, tls)?;
            conns.push(stream);
            continue;
        }
        if tls.is_some() {
            return Err(BenchError::BadArgument(
                "idle: deflate or warm-up over TLS is not supported",
            ));
        }
        let mut up =
            deflate::connect_upgrade(&config.target, source, timeout, extra.offer.as_ref())?;
        negotiated += usize::from(up.params.is_some());
        response = response.or(up.response.take());
        let bytes = deflate::warm(&mut up, &payload, i as u64, extra.warm, timeout)?;
        warm_bytes.add(&bytes);
        conns.push(Transport::Plain(up.stream));
    }
    let connect_time = t0.elapsed();
    std::thread::sleep(config.settle);
    let rss_after = config.server_pid.map(sys::rss_kib).transpose()?;
    let alive = ping_all(&mut conns)?;
    Ok(IdleResult {
        connected: conns.len(),
        alive,
        connect_time,
        sources,
        rss_before_kib: rss_before,
        rss_after_kib: rss_after,
        deflate_negotiated: negotiated,
        deflate_response: response,
        warm_bytes,
    })
}

/// Pings every connection, then counts the pongs that come back before the deadline.
fn ping_all(conns: &mut [Transport<TcpStream>]) -> Result<usize, BenchError> {
    let mut ping = Vec::with_capacity(16);
    client::encode_masked(&mut ping, OP_PING, b"wsbench", mask_key());
    for c in conns.iter_mut() {
        // A failed write shows up as a missing pong below.
        let _ = c.write_all(&ping);
    }
    let deadline = Instant::now() + PING_TIMEOUT;
    let mut alive = 0;
    let mut buf = [0u8; 1024];
    for c in conns.iter_mut() {
        let mut reader = FrameReader::new(1 << 20);
        let mut ponged = false;
        while !ponged {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || c.socket().set_read_timeout(Some(left)).is_err() {
                break;
            }
            let n = match c.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            let fed = reader.feed(&buf[..n], |p| {
                if matches!(p, Piece::Pong(b"wsbench")) {
                    ponged = true;
                }
                Ok(())
            });
            if fed.is_err() {
                break;
            }
        }
        alive += usize::from(ponged);
    }
    Ok(alive)
}
