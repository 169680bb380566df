//! `idle` mode: opens N connections, leaves them quiet, and reads the server's resident memory
//! before and after, giving its cost per idle connection. Then every connection is pinged to
//! show the server still holds it.
//!
//! One source address offers about 28 000 ephemeral ports towards one server port, so
//! connections are spread over 127.0.0.1, 127.0.0.2, … (one per 20 000 connections unless more
//! are asked for).

use crate::client::{self, OP_PING};
use crate::echo::mask_key;
use crate::reader::{FrameReader, Piece};
use crate::target::{source_addr, Target};
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
}

/// Runs an idle benchmark.
pub fn run(config: &IdleConfig) -> Result<IdleResult, BenchError> {
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
    for i in 0..n {
        let source = (sources > 1).then(|| source_addr(&config.target.addr, i % sources));
        let (stream, _early) =
            client::connect_blocking(&config.target, source, Duration::from_secs(5))?;
        conns.push(stream);
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
    })
}

/// Pings every connection, then counts the pongs that come back before the deadline.
fn ping_all(conns: &mut [TcpStream]) -> Result<usize, BenchError> {
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
            if left.is_zero() || c.set_read_timeout(Some(left)).is_err() {
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
