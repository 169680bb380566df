//! The peer binaries keep the `wss` binary's contract: `--port 0`, then one readiness line
//! `listening on ws://HOST:PORT/` on stdout, then a working WebSocket echo on that address.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(exe: &str, extra: &[&str]) -> (Kill, String) {
    let mut child = Command::new(exe)
        .args(["--port", "0"])
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let guard = Kill(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    (guard, line)
}

fn check_echo(url: &str) {
    let (mut ws, _) = tungstenite::connect(url).unwrap();
    ws.send(tungstenite::Message::text("hello")).unwrap();
    assert_eq!(ws.read().unwrap(), tungstenite::Message::text("hello"));
    ws.send(tungstenite::Message::binary(vec![0u8, 255, 7]))
        .unwrap();
    assert_eq!(
        ws.read().unwrap(),
        tungstenite::Message::binary(vec![0u8, 255, 7])
    );
    ws.close(None).unwrap();
}

fn url_of(line: &str) -> &str {
    let url = line
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("bad readiness line {line:?}"))
        .trim_end();
    assert!(
        url.starts_with("ws://127.0.0.1:") && url.ends_with('/'),
        "{url}"
    );
    assert!(!url.ends_with(":0/"), "port 0 was not replaced: {url}");
    url
}

#[test]
fn tt_echo_prints_its_address_then_echoes() {
    let (_child, line) = start(env!("CARGO_BIN_EXE_tt-echo"), &[]);
    check_echo(url_of(&line));
}

#[test]
fn fws_echo_prints_its_address_then_echoes() {
    let (_child, line) = start(env!("CARGO_BIN_EXE_fws-echo"), &["--threads", "2"]);
    check_echo(url_of(&line));
}

#[test]
fn tt_broadcast_relays_to_others_but_not_to_the_sender() {
    let (_child, line) = start(env!("CARGO_BIN_EXE_tt-echo"), &["--mode", "broadcast"]);
    let url = url_of(&line);
    let (mut a, _) = tungstenite::connect(url).unwrap();
    let (mut b, _) = tungstenite::connect(url).unwrap();
    // Both are registered once a message sent after both connected reaches the other.
    std::thread::sleep(std::time::Duration::from_millis(100));
    a.send(tungstenite::Message::text("one")).unwrap();
    assert_eq!(b.read().unwrap(), tungstenite::Message::text("one"));
    b.send(tungstenite::Message::text("two")).unwrap();
    assert_eq!(a.read().unwrap(), tungstenite::Message::text("two"));
}

#[test]
fn wsbench_refuses_a_non_loopback_target_with_one_json_line() {
    let out = Command::new(env!("CARGO_BIN_EXE_wsbench"))
        .args(["echo", "--url", "ws://192.168.1.1:80/", "--duration", "1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["ok"], false);
    assert!(v["error"].as_str().unwrap().contains("refusing"), "{v}");
}

#[test]
fn wsbench_echo_prints_one_json_line_with_its_figures() {
    let (_child, line) = start(env!("CARGO_BIN_EXE_tt-echo"), &[]);
    let out = Command::new(env!("CARGO_BIN_EXE_wsbench"))
        .args([
            "echo",
            "--url",
            url_of(&line),
            "-c",
            "2",
            "-s",
            "32",
            "-d",
            "2",
        ])
        .args(["--warmup", "0", "--duration", "10", "--messages", "100"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{text}");
    let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(v["mode"], "echo");
    assert_eq!(v["messages"], 100);
    assert!(v["msg_per_s"].as_f64().unwrap() > 0.0);
    assert!(v["latency_us"]["p99"].as_f64().unwrap() > 0.0);
}
