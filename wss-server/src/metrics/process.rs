//! The standard `process_*` metrics, from `/proc` (Linux; absent elsewhere).

use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

use super::families::to_i64;

/// The standard process metrics (`process_*`), from `/proc/self` (Linux; absent elsewhere).
#[derive(Debug)]
pub(super) struct ProcessCollector {
    pub(super) started: SystemTime,
}

/// Linux reports CPU time in clock ticks of USER_HZ, which is 100 on every architecture Linux
/// runs on (the kernel converts for user space), so no `sysconf` call is needed.
const USER_HZ: f64 = 100.0;

impl Collector for ProcessCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let start = start_seconds().unwrap_or_else(|| {
            self.started
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64())
        });
        let mut m = enc.encode_descriptor(
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch, in seconds.",
            None,
            MetricType::Gauge,
        )?;
        m.encode_gauge(&start)?;
        if let Some(cpu) = cpu_seconds() {
            let mut m = enc.encode_descriptor(
                "process_cpu_seconds",
                "User and system CPU time spent, in seconds.",
                None,
                MetricType::Counter,
            )?;
            m.encode_counter::<NoLabelSet, _, f64>(&cpu, None)?;
        }
        if let Some(rss) = rss_bytes() {
            let mut m = enc.encode_descriptor(
                "process_resident_memory_bytes",
                "Resident memory size, in bytes.",
                None,
                MetricType::Gauge,
            )?;
            m.encode_gauge(&to_i64(rss))?;
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            let mut m = enc.encode_descriptor(
                "process_open_fds",
                "Open file descriptors.",
                None,
                MetricType::Gauge,
            )?;
            m.encode_gauge(&to_i64(dir.count()))?;
        }
        Ok(())
    }
}

/// utime + stime from `/proc/self/stat` (fields 14 and 15, counted after the command name,
/// which may hold spaces and parentheses, so the split starts after its last `)`).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / USER_HZ)
}

/// When the process started, in seconds since the epoch: boot time (`btime` in `/proc/stat`)
/// plus its start in ticks after boot (field 22 of `/proc/self/stat`).
fn start_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let ticks: f64 = rest.split_whitespace().nth(19)?.parse().ok()?;
    let boot = std::fs::read_to_string("/proc/stat").ok()?;
    let btime: f64 = boot
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    Some(btime + ticks / USER_HZ)
}

/// `VmRSS` from `/proc/self/status` (in kB there).
fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
