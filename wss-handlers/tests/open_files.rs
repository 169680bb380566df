//! `wss` raises its own open-file limit: started with a soft limit far below the connections
//! it must hold, it still serves them all, without the caller's `ulimit -n`.
#![cfg(target_os = "linux")]

mod support;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{connect, next_message, parse_ready_line};
use tungstenite::Message;

/// The soft limit `wss` is started with.
const SOFT: u64 = 128;
/// Connections held at once: well past `SOFT`.
const CONNECTIONS: usize = 400;

/// (soft, hard) "Max open files" of process `pid`.
fn open_file_limits(pid: &str) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let line = text
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("a Max open files line");
    let numbers: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert!(numbers.len() >= 2, "{line}");
    (numbers[0], numbers[1])
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn serves_past_a_low_soft_limit_by_raising_it_to_the_hard_limit() {
    let (_, hard) = open_file_limits("self");
    if hard < (CONNECTIONS as u64) * 2 {
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            format!(
                "\n!!! SKIPPED: the hard open-file limit here is {hard}, too low to show a raise \
                 past {CONNECTIONS} connections. !!!\n"
            )
            .as_bytes(),
        );
        return;
    }
    // The shell lowers only the soft limit, then becomes wss.
    let mut child = Killed(
        Command::new("sh")
            .arg("-c")
            .arg(format!("ulimit -Sn {SOFT} && exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_wss"))
            .args(["--handler", "echo", "--host", "127.0.0.1", "--port", "0"])
            .args(["--threads", "1", "--log-level", "debug"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sh"),
    );
    let stderr = Arc::new(Mutex::new(String::new()));
    let sink = stderr.clone();
    let err = child.0.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        let mut text = String::new();
        let mut reader = BufReader::new(err);
        while matches!(reader.read_line(&mut text), Ok(n) if n > 0) {
            if let Ok(mut s) = sink.lock() {
                s.push_str(&text);
            }
            text.clear();
        }
    });
    let mut stdout = BufReader::new(child.0.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("readiness line");
    let (addr, path) = parse_ready_line(line.trim_end()).unwrap_or_else(|| {
        panic!(
            "readiness line {line:?}; stderr:\n{}",
            stderr.lock().unwrap()
        )
    });
    std::thread::spawn(move || {
        let mut rest = Vec::new();
        let _ = stdout.read_to_end(&mut rest);
    });

    let pid = child.0.id().to_string();
    assert_eq!(
        open_file_limits(&pid),
        (hard, hard),
        "the soft limit went up to the hard one"
    );
    let logged = stderr.lock().unwrap().clone();
    assert!(
        logged.contains(&format!("open-file limit raised from {SOFT} to {hard}")),
        "debug log names the raise:\n{logged}"
    );

    let url = format!("ws://{addr}{path}");
    let started = Instant::now();
    let mut clients: Vec<_> = (0..CONNECTIONS).map(|_| connect(&url)).collect();
    for (i, ws) in clients.iter_mut().enumerate().step_by(57) {
        ws.send(Message::text(format!("n{i}"))).expect("send");
        assert_eq!(next_message(ws), Message::text(format!("n{i}")));
    }
    let last = clients.last_mut().expect("clients");
    last.send(Message::text("last")).expect("send");
    assert_eq!(next_message(last), Message::text("last"));
    assert!(started.elapsed() < Duration::from_secs(30));
}
