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

/// CPU seconds used by the server (if its pid is known) and by this process over the window.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuSample {
    server: Option<f64>,
    client: Option<f64>,
}

impl CpuSample {
    /// Reads both counters now; a missing or unreadable pid just leaves that figure out.
    pub fn take(server_pid: Option<u32>) -> CpuSample {
        CpuSample {
            server: server_pid.and_then(|p| sys::cpu_seconds(p).ok()),
            client: sys::own_cpu_seconds().ok(),
        }
    }

    /// (server, client) CPU seconds spent between `earlier` and `self`.
    pub fn since(&self, earlier: &CpuSample) -> (Option<f64>, Option<f64>) {
        let diff = |a: Option<f64>, b: Option<f64>| Some(a? - b?);
        (
            diff(self.server, earlier.server),
            diff(self.client, earlier.client),
        )
    }
}
