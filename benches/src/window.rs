//! The time frame every mode shares: warm-up, then the measured window, then a bounded drain.

use crate::sys;
use std::time::{Duration, Instant};

/// Longest run the tools accept, warm-up included: runs are bounded by construction.
pub const MAX_RUN: Duration = Duration::from_secs(600);

/// When the warm-up ends and the measured window closes.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    /// Start of the measured window (end of warm-up).
    pub start: Instant,
    /// End of the measured window.
    pub end: Instant,
}

impl Window {
    /// A window that opens `warmup` after `now` and lasts `duration`.
    pub fn after(now: Instant, warmup: Duration, duration: Duration) -> Window {
        let start = now + warmup;
        Window {
            start,
            end: start + duration,
        }
    }

    /// True while `t` is inside the measured window.
    pub fn contains(&self, t: Instant) -> bool {
        t >= self.start && t < self.end
    }
}

/// CPU counters read at one instant: the server's (if its pid is known), the server's worker
/// threads' and this process's, in seconds.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuSample {
    server: Option<f64>,
    worker: Option<f64>,
    client: Option<f64>,
}

/// CPU seconds spent over the window. Each figure is `None` when it could not be read.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CpuSpent {
    /// The whole server process, all threads.
    pub server: Option<f64>,
    /// The server's threads named `wss-worker-*` (wss in worker dispatch): the thread that runs
    /// every callback of one WebSocket server, so its CPU per message is the most one server
    /// can carry in that mode, whatever the core count. `None` for servers without them.
    pub worker: Option<f64>,
    /// This process (the load generator).
    pub client: Option<f64>,
}

impl CpuSpent {
    /// True when at least one figure was read.
    pub fn is_some(&self) -> bool {
        self.server.is_some() || self.worker.is_some() || self.client.is_some()
    }
}

impl CpuSample {
    /// Reads the counters now; a missing or unreadable pid just leaves that figure out.
    pub fn take(server_pid: Option<u32>) -> CpuSample {
        CpuSample {
            server: server_pid.and_then(|p| sys::cpu_seconds(p).ok()),
            worker: server_pid.and_then(|p| sys::threads_cpu_seconds(p, WORKER_THREAD_PREFIX)),
            client: sys::own_cpu_seconds().ok(),
        }
    }

    /// CPU seconds spent between `earlier` and `self`.
    pub fn since(&self, earlier: &CpuSample) -> CpuSpent {
        let diff = |a: Option<f64>, b: Option<f64>| Some(a? - b?);
        CpuSpent {
            server: diff(self.server, earlier.server),
            worker: diff(self.worker, earlier.worker),
            client: diff(self.client, earlier.client),
        }
    }
}

/// The name wss-server gives its worker threads (`wss-worker-PATH`, cut to 15 bytes by Linux).
pub const WORKER_THREAD_PREFIX: &str = "wss-worker";
