//! Settings of the loops.

use std::time::Duration;

use wss_proto::connection::Config as ProtoConfig;
use wss_proto::handshake::HeadLimits;

/// How the loops run and what they tolerate. `NetConfig::default()` gives the values below.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// Number of event loops, one thread each. `0` (default) = the number of available cores.
    /// At most 256 are started.
    pub threads: usize,
    /// Size and header-count limits of a request head (default 16 KiB, 64 headers).
    pub head_limits: HeadLimits,
    /// Time allowed from accept (or from the previous response on a keep-alive connection)
    /// until a full request head is in and decided. Default 10 s. A slow head is closed
    /// (408 if part of it came); a pending decision that does not arrive in time gets a 503.
    pub handshake_timeout: Duration,
    /// Settings of every upgraded connection: frame and message limits, close timeout
    /// (default 5 s) and idle timeout (default here 120 s; at half of it with nothing received a
    /// ping is sent, at all of it the connection is dropped with 1006).
    pub proto: ProtoConfig,
    /// Bytes that may wait in one connection's outgoing queue (default 16 MiB). Past it the
    /// connection is dropped and reported `Closed { code: 1006, error: OutgoingOverflow }`:
    /// a client that stops reading must not grow the process.
    pub max_outgoing: usize,
    /// Connections open at once, all loops together (default 100 000). A socket accepted past
    /// it gets a best-effort `503` and is closed; open connections are not affected.
    pub max_connections: usize,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            threads: 0,
            head_limits: HeadLimits::default(),
            handshake_timeout: Duration::from_secs(10),
            proto: ProtoConfig {
                idle_timeout: Some(Duration::from_secs(120)),
                ..ProtoConfig::default()
            },
            max_outgoing: 16 << 20,
            max_connections: 100_000,
        }
    }
}

impl NetConfig {
    /// The number of loops to start: `threads`, or the core count when it is 0, within 1..=256.
    pub(crate) fn loop_count(&self) -> usize {
        let n = if self.threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            self.threads
        };
        n.clamp(1, 256)
    }
}
