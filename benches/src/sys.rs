//! The few OS facts the tools need: process memory and CPU from /proc, the fd limit, and one
//! socket option std does not offer. Every `unsafe` of the crate is here.

use crate::BenchError;
use std::os::fd::AsRawFd;

/// Resident set size of process `pid`, in KiB (`VmRSS` of /proc/PID/status).
pub fn rss_kib(pid: u32) -> Result<u64, BenchError> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|_| BenchError::Proc("cannot read status of the server pid"))?;
    parse_vm_rss(&status).ok_or(BenchError::Proc("no VmRSS line"))
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line["VmRSS:".len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// CPU time (user + system, all threads) of process `pid` so far, in seconds.
pub fn cpu_seconds(pid: u32) -> Result<f64, BenchError> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|_| BenchError::Proc("cannot read stat of the pid"))?;
    let ticks = parse_cpu_ticks(&stat).ok_or(BenchError::Proc("unexpected stat format"))?;
    Ok(ticks as f64 / clock_ticks_per_second())
}

/// CPU time (user + system) so far of the threads of process `pid` whose name starts with
/// `prefix`, in seconds; `None` when the process has no such thread or /proc cannot be read.
pub fn threads_cpu_seconds(pid: u32, prefix: &str) -> Option<f64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut ticks = None;
    for task in tasks.flatten() {
        // A thread may end between the listing and the read: skip it.
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        if thread_name(&stat).is_some_and(|name| name.starts_with(prefix)) {
            *ticks.get_or_insert(0) += parse_cpu_ticks(&stat)?;
        }
    }
    Some(ticks? as f64 / clock_ticks_per_second())
}

/// The command name of a stat line: between the first '(' and the last ')'.
fn thread_name(stat: &str) -> Option<&str> {
    stat.get(stat.find('(')? + 1..stat.rfind(')')?)
}

/// CPU time of this process so far, in seconds.
pub fn own_cpu_seconds() -> Result<f64, BenchError> {
    cpu_seconds(std::process::id())
}

fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_whitespace();
    // After the name: state is field 3, utime field 14, stime field 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// Raises this process's open-file limit to its hard limit (or `want`, if lower) and returns
/// the new soft limit. Idle runs hold one fd per connection.
pub fn raise_nofile(want: u64) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a pointer to a live rlimit struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        let target = want.min(lim.rlim_max);
        if target > lim.rlim_cur {
            let new = libc::rlimit {
                rlim_cur: target,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &new) == 0 {
                lim.rlim_cur = target;
            }
        }
    }
    lim.rlim_cur
}

/// Asks the kernel to pick the source port at connect time, not bind time
/// (`IP_BIND_ADDRESS_NO_PORT`), so each source address gets the whole ephemeral range.
/// Failure is harmless (the port is then picked at bind), so it is ignored.
pub fn set_bind_no_port(socket: &impl AsRawFd) {
    let one: libc::c_int = 1;
    // SAFETY: a valid fd, a pointer to a live c_int and its exact size.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_read_from_status_text() {
        let status = "Name:\tx\nVmPeak:\t  9 kB\nVmRSS:\t   12345 kB\nThreads: 1\n";
        assert_eq!(parse_vm_rss(status), Some(12345));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
    }

    #[test]
    fn cpu_ticks_survive_a_command_name_with_spaces_and_parens() {
        let stat = "42 (a b) c) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0";
        assert_eq!(parse_cpu_ticks(stat), Some(300));
    }

    #[test]
    fn thread_name_is_the_parenthesised_field() {
        let stat = "42 (wss-worker-/ws) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0";
        assert_eq!(thread_name(stat), Some("wss-worker-/ws"));
        assert_eq!(thread_name("42 (a (b)) c) S"), Some("a (b)) c"));
        assert_eq!(thread_name("no parens"), None);
    }

    #[test]
    fn named_threads_cpu_is_summed_and_absent_names_give_none() {
        // The thread stays alive until its CPU has been read: on a loaded machine it could
        // otherwise end before /proc is looked at.
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let (started, ready) = std::sync::mpsc::channel::<()>();
        let spin = std::thread::Builder::new()
            .name("sys-test-spin".into())
            .spawn(move || {
                let end = std::time::Instant::now() + std::time::Duration::from_millis(50);
                let mut x = 0u64;
                while std::time::Instant::now() < end {
                    x = x.wrapping_add(1);
                }
                started.send(()).unwrap();
                wait.recv().unwrap();
                x
            })
            .unwrap();
        ready.recv().unwrap();
        let pid = std::process::id();
        let spent = threads_cpu_seconds(pid, "sys-test-spin");
        release.send(()).unwrap();
        spin.join().unwrap();
        assert!(spent.is_some_and(|s| s >= 0.0), "{spent:?}");
        assert_eq!(threads_cpu_seconds(pid, "no-thread-has-this-name"), None);
    }

    #[test]
    fn own_process_figures_are_readable() {
        assert!(rss_kib(std::process::id()).unwrap() > 0);
        assert!(own_cpu_seconds().unwrap() >= 0.0);
        assert!(raise_nofile(64) >= 1);
    }
}
