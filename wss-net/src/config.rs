//! Settings of the loops.

use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use wss_proto::handshake::HeadLimits;
use wss_proto::Config as ProtoConfig;
use wss_proto::DeflateConfig;

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
    /// Connections open at once, all loops together, in every phase. Default:
    /// [`default_max_connections`] (from the descriptor limit). A socket accepted past it gets a
    /// best-effort `503` (a TLS socket is closed at once) and open connections are not affected.
    pub max_connections: usize,
    /// Connections open at once from one remote IP address (IPv4-mapped IPv6 counts as IPv4).
    /// Default `None` (no per-address limit): behind a proxy or a large NAT every client shares
    /// one address. Past it the new socket is refused as for `max_connections`.
    pub max_per_address: Option<usize>,
    /// Connections still in their handshake at once: from accept until the first request head
    /// is answered (upgraded or responded to), the TLS handshake included. Default `None` (only
    /// `max_connections` bounds them). Past it the new socket is refused as for
    /// `max_connections`. Keeps a flood of slow or half-open handshakes, each holding parser
    /// and TLS state, from crowding out the sockets that finish theirs.
    pub max_pending_handshakes: Option<usize>,
    /// TLS for the listeners that use it: with `Some`, [`Net::bind`](crate::Net::bind)'s
    /// listener speaks TLS, and [`Net::bind_all`](crate::Net::bind_all) uses it for its
    /// [`Listen::tls`](crate::Listen::tls) entries. Build it with
    /// [`tls::server_config_from_pem_files`](crate::tls::server_config_from_pem_files) (ALPN
    /// `http/1.1`, ring). Default `None`: plain TCP.
    pub tls: Option<Arc<ServerConfig>>,
    /// permessage-deflate (RFC 7692): which client offers are accepted at upgrade, and the
    /// local knobs (window bits, context takeover, level, the size under which messages go
    /// out plain). Default: [`DeflateConfig::default`] with `enabled: false`, so a bare loop
    /// compresses nothing unless asked. With it on, a connection that negotiated it costs a
    /// compressor window (about 380 KB at 2^15 with context takeover, none without) once it
    /// sends a compressed message; [`NetEvent::Opened`](crate::NetEvent::Opened) reports the
    /// agreed parameters.
    pub deflate: DeflateConfig,
}

/// Descriptors kept free for the rest of the process (listeners, pollers, wakers, log and
/// static files) by [`default_max_connections`]: this many, plus 1/16 of the limit.
const FD_RESERVE: usize = 64;

/// The default `max_connections` where the descriptor limit is unknown or unlimited: the
/// process's descriptor limit unset (`RLIM_INFINITY`), or a platform without `RLIMIT_NOFILE`
/// (Windows, whose handle limit is in the millions).
const UNBOUNDED_DEFAULT: usize = 100_000;

/// The default `max_connections`: the process's soft descriptor limit (`RLIMIT_NOFILE`) less
/// room for the rest of the process (64 plus 1/16 of the limit), at least 16. One connection
/// holds one descriptor, so past this value `accept` would start failing with `EMFILE`
/// instead of the clear refusal a limit gives. Read when called: raise the limit first
/// (`ulimit -n`, or `setrlimit` at start) to get a higher default. Where the limit is
/// unlimited or cannot be read, and on platforms without one (Windows), 100 000.
pub fn default_max_connections() -> usize {
    match soft_descriptor_limit() {
        Some(soft) => soft.saturating_sub(FD_RESERVE + soft / 16).max(16),
        None => UNBOUNDED_DEFAULT,
    }
}

/// The soft `RLIMIT_NOFILE`, or `None` when it is unlimited or unreadable.
#[cfg(unix)]
#[allow(unsafe_code)] // the crate denies it; this is its one use
fn soft_descriptor_limit() -> Option<usize> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only the struct passed by pointer, which outlives the call.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0;
    if !ok || lim.rlim_cur == libc::RLIM_INFINITY {
        return None;
    }
    Some(usize::try_from(lim.rlim_cur).unwrap_or(usize::MAX))
}

/// No `RLIMIT_NOFILE` on this platform.
#[cfg(not(unix))]
fn soft_descriptor_limit() -> Option<usize> {
    None
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
            max_connections: default_max_connections(),
            max_per_address: None,
            max_pending_handshakes: None,
            tls: None,
            deflate: DeflateConfig {
                enabled: false,
                ..DeflateConfig::default()
            },
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
