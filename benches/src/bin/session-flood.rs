//! `session-flood`: what a client that never keeps cookies costs once the session store is full
//! (issue 20 item 5).
//!
//! Starts a `wss_server::WebServer` in-process on loopback with scalable sessions on and an
//! HTML page at `/`, then sends `--gets` cookieless `GET /` over `--connections` keep-alive
//! connections. Every answer must open a new session (a `Set-Cookie`), so past
//! `--max-sessions` GETs each one also evicts the least recently seen session. Prints one JSON
//! line: the cost per GET (wall time / GETs, all connections together) of the first 10 000,
//! after the store is full (every GET past `--max-sessions`; also the median and the worst
//! 10 000-GET batch), and the ratio full / first; then the same as CPU time spent by the
//! server's threads per GET, which other loads on the machine do not inflate.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use wss_server::{BuiltinFile, WebServer, WebServerOptions};

/// GETs per timing batch; the first batch is the baseline.
const BATCH: u64 = 10_000;

#[derive(Parser)]
#[command(about = "Cost per cookieless page GET with the session store empty and full")]
struct Args {
    /// Cookieless GETs to send in all.
    #[arg(long, default_value_t = 1_000_000)]
    gets: u64,
    /// Keep-alive connections sending them, one thread each.
    #[arg(long, default_value_t = 2)]
    connections: usize,
    /// The store's bound (`WebServerOptions::max_sessions`).
    #[arg(long, default_value_t = 100_000)]
    max_sessions: usize,
}

/// Nanoseconds the server's own threads (`wss-*`: the network loop, the listener) have spent
/// on a CPU so far, from `/proc/self/task/*/schedstat`; `None` where there is no such file.
/// Unlike wall time, this does not grow when other processes take the CPU away.
fn server_cpu_ns() -> Option<u64> {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let path = task.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if !comm.starts_with("wss-") {
            continue;
        }
        let stat = std::fs::read_to_string(path.join("schedstat")).ok()?;
        total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total)
}

/// One GET and its answer; returns whether the answer opened a session.
fn get(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<bool> {
    stream.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")?;
    buf.clear();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end]).unwrap_or("");
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                if !head.starts_with("HTTP/1.1 200") {
                    return Err(std::io::Error::other(format!("answer: {head}")));
                }
                return Ok(head.contains("\r\nSet-Cookie: "));
            }
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::Error::other("server closed the connection"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.gets < BATCH || args.connections == 0 {
        eprintln!("session-flood: --gets must be at least {BATCH} and --connections at least 1");
        return ExitCode::FAILURE;
    }
    let page = BuiltinFile::new(
        "text/html; charset=utf-8",
        &b"<!doctype html><title>flood</title><p>a page that opens a session</p>"[..],
    );
    let web = match WebServer::start(WebServerOptions {
        port: 0,
        threads: 1,
        scalable_session: true,
        max_sessions: args.max_sessions,
        ..WebServerOptions::default().with_file("/", page)
    }) {
        Ok(web) => web,
        Err(e) => {
            eprintln!("session-flood: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = web.local_addr();
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let cookies = Arc::new(AtomicU64::new(0));
    // (GETs completed, when, server CPU ns): one mark per batch.
    let marks = Arc::new(Mutex::new(Vec::with_capacity(
        (args.gets / BATCH) as usize + 1,
    )));
    let start = Instant::now();
    marks
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((0, start, server_cpu_ns()));
    let threads: Vec<_> = (0..args.connections)
        .map(|_| {
            let (next, done, cookies, marks) =
                (next.clone(), done.clone(), cookies.clone(), marks.clone());
            let gets = args.gets;
            std::thread::spawn(move || -> std::io::Result<()> {
                let mut stream = TcpStream::connect(addr)?;
                stream.set_nodelay(true)?;
                stream.set_read_timeout(Some(Duration::from_secs(10)))?;
                let mut buf = Vec::with_capacity(1024);
                while next.fetch_add(1, Ordering::Relaxed) < gets {
                    if get(&mut stream, &mut buf)? {
                        cookies.fetch_add(1, Ordering::Relaxed);
                    }
                    let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                    if n % BATCH == 0 {
                        marks.lock().unwrap_or_else(|e| e.into_inner()).push((
                            n,
                            Instant::now(),
                            server_cpu_ns(),
                        ));
                    }
                }
                Ok(())
            })
        })
        .collect();
    for t in threads {
        match t.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                eprintln!("session-flood: {e}");
                return ExitCode::FAILURE;
            }
            Err(_) => {
                eprintln!("session-flood: a client thread panicked");
                return ExitCode::FAILURE;
            }
        }
    }
    let total = start.elapsed();
    let mut marks = marks.lock().unwrap_or_else(|e| e.into_inner()).clone();
    marks.sort_by_key(|m| m.0);
    let per_get = |from: usize, to: usize| -> Option<f64> {
        let (a, b) = (marks.get(from)?, marks.get(to)?);
        Some(b.1.duration_since(a.1).as_secs_f64() * 1e6 / (b.0 - a.0) as f64)
    };
    let cpu_per_get = |from: usize, to: usize| -> Option<f64> {
        let (a, b) = (marks.get(from)?, marks.get(to)?);
        Some(b.2?.saturating_sub(a.2?) as f64 / 1e3 / (b.0 - a.0) as f64)
    };
    let first = per_get(0, 1).unwrap_or(f64::NAN);
    // The first mark at or past the point where the store is full.
    let full_from = marks
        .iter()
        .position(|m| m.0 >= args.max_sessions as u64)
        .unwrap_or(marks.len());
    let full = per_get(full_from, marks.len() - 1).unwrap_or(f64::NAN);
    let batches: Vec<f64> = (full_from..marks.len() - 1)
        .filter_map(|i| per_get(i, i + 1))
        .collect();
    let worst = batches.iter().cloned().fold(f64::NAN, f64::max);
    // The median batch says what a typical GET costs, whatever the other loads on the machine
    // did to a few batches.
    let mut sorted = batches.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN);
    let cpu_first = cpu_per_get(0, 1).unwrap_or(f64::NAN);
    let cpu_full = cpu_per_get(full_from, marks.len() - 1).unwrap_or(f64::NAN);
    let minted = cookies.load(Ordering::Relaxed);
    println!(
        "{{\"bench\":\"session-flood\",\"gets\":{},\"connections\":{},\"max_sessions\":{},\
         \"sessions_opened\":{minted},\"first_10k_us_per_get\":{first:.2},\
         \"full_store_us_per_get\":{full:.2},\"median_full_batch_us_per_get\":{median:.2},\
         \"worst_full_batch_us_per_get\":{worst:.2},\
         \"ratio\":{:.3},\"server_cpu_first_10k_us_per_get\":{cpu_first:.2},\
         \"server_cpu_full_store_us_per_get\":{cpu_full:.2},\"server_cpu_ratio\":{:.3},\
         \"seconds\":{:.1}}}",
        args.gets,
        args.connections,
        args.max_sessions,
        full / first,
        cpu_full / cpu_first,
        total.as_secs_f64()
    );
    if minted != args.gets {
        eprintln!(
            "session-flood: only {minted} of {} GETs opened a session",
            args.gets
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
