//! wsbench over TLS (issue 9) against real servers on loopback: tokio-tungstenite with
//! tokio-rustls (`tt-echo --cert --key`) and the `wss` binary (`--cert --key`), every echo
//! verified, and the ways a TLS run must fail clearly (wrong CA, plain server, no --ca).
//!
//! The `wss` binary belongs to another package: these tests run the one the workspace build
//! left in the target directory (`cargo test --workspace` builds it first), or `$WSS_BIN`.
//! When neither exists the wss test says so on stderr and passes without running.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use wss_benches::tls::{self, TlsClient, CA_FILE, CERT_FILE, KEY_FILE};
use wss_benches::{connect, echo, idle, BenchError, Target};

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A scratch directory with a fresh CA, cert and key (removed on drop).
struct Pki(PathBuf);

impl Pki {
    fn new(tag: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!("wsbench-tls-{tag}-{}", std::process::id()));
        tls::write_bench_pki(&dir).unwrap();
        Pki(dir)
    }
    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    fn client(&self) -> TlsClient {
        TlsClient::from_ca_file(&self.file(CA_FILE)).unwrap()
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Starts `exe args`, returns it and the first URL of its `listening on URL` lines.
fn start(exe: &Path, args: &[&str], scheme: &str) -> (Kill, String) {
    let mut child = Command::new(exe)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let guard = Kill(child);
    let mut lines = BufReader::new(stdout).lines();
    let prefix = format!("listening on {scheme}://");
    loop {
        let line = lines
            .next()
            .expect("server exited before its readiness line")
            .unwrap();
        if let Some(rest) = line.strip_prefix("listening on ") {
            if line.starts_with(&prefix) {
                let url = rest.split_whitespace().next().unwrap().to_string();
                return (guard, url);
            }
        }
    }
}

fn tt_echo(pki: &Pki) -> (Kill, String) {
    let (cert, key) = (pki.file(CERT_FILE), pki.file(KEY_FILE));
    let args = [
        "--port",
        "0",
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ];
    start(Path::new(env!("CARGO_BIN_EXE_tt-echo")), &args, "wss")
}

fn target(url: &str) -> Target {
    Target::parse(&url.replacen("wss://", "ws://", 1)).unwrap()
}

fn echo_config(url: &str, tls: Option<TlsClient>, size: usize, n: u64) -> echo::EchoConfig {
    echo::EchoConfig {
        target: target(url),
        connections: 3,
        size,
        in_flight: 8,
        text: false,
        threads: 2,
        warmup: Duration::ZERO,
        duration: Duration::from_secs(20),
        max_messages: n,
        sources: 2,
        server_pid: None,
        tls,
    }
}

fn connect_config(url: &str, tls: Option<TlsClient>, n: u64) -> connect::ConnectConfig {
    connect::ConnectConfig {
        target: target(url),
        workers: 4,
        threads: 1,
        warmup: Duration::ZERO,
        duration: Duration::from_secs(20),
        max_handshakes: n,
        sources: 2,
        server_pid: None,
        tls,
    }
}

/// Runs the wsbench binary; returns its JSON line and whether it exited with success.
fn wsbench(args: &[&str]) -> (serde_json::Value, bool) {
    let out = Command::new(env!("CARGO_BIN_EXE_wsbench"))
        .args(args)
        .output()
        .unwrap();
    let line = String::from_utf8(out.stdout).unwrap();
    (
        serde_json::from_str(line.trim()).unwrap(),
        out.status.success(),
    )
}

#[test]
fn echo_connect_and_idle_over_tls_against_tokio_rustls() {
    let pki = Pki::new("tt");
    let (_server, url) = tt_echo(&pki);
    assert!(url.starts_with("wss://127.0.0.1:"), "{url}");
    // Sizes that fit one record, span several records (16 KiB each), and need 64-bit lengths.
    for (size, n) in [(16, 400), (1024, 400), (40_000, 60), (70_000, 30)] {
        let r = echo::run(&echo_config(&url, Some(pki.client()), size, n)).unwrap();
        assert_eq!((r.sent, r.received, r.messages), (n, n, n), "size {size}");
    }
    let r = connect::run(&connect_config(&url, Some(pki.client()), 40)).unwrap();
    assert_eq!((r.handshakes, r.failures), (40, 0), "{:?}", r.first_failure);
    let config = idle::IdleConfig {
        target: target(&url),
        connections: 30,
        settle: Duration::ZERO,
        sources: 2,
        server_pid: None,
    };
    let r = idle::run_over(&config, &pki.client()).unwrap();
    assert_eq!((r.connected, r.alive), (30, 30));
}

#[test]
fn a_wrong_ca_is_refused_with_a_clear_error() {
    let (pki, other) = (Pki::new("right"), Pki::new("wrong"));
    let (_server, url) = tt_echo(&pki);
    let err = echo::run(&echo_config(&url, Some(other.client()), 16, 10)).unwrap_err();
    assert!(
        matches!(err, BenchError::Handshake(m) if m.contains("not signed by the --ca")),
        "{err}"
    );
    // connect mode fails every cycle for the same reason, and says so.
    let err = connect::run(&connect_config(&url, Some(other.client()), 0)).unwrap_err();
    assert!(err.to_string().contains("--ca"), "{err}");
    // The command line: exit status 1 and the reason in the JSON line.
    let ca = other.file(CA_FILE);
    let (json, ok) = wsbench(&[
        "echo",
        "--url",
        &url,
        "--ca",
        ca.to_str().unwrap(),
        "-c",
        "1",
    ]);
    assert!(!ok);
    assert_eq!(json["ok"], false);
    assert!(
        json["error"]
            .as_str()
            .unwrap()
            .contains("not signed by the --ca"),
        "{json}"
    );
}

#[test]
fn tls_to_a_plain_server_and_tls_without_a_ca_fail_clearly() {
    let pki = Pki::new("plain");
    let (_server, url) = start(
        Path::new(env!("CARGO_BIN_EXE_tt-echo")),
        &["--port", "0"],
        "ws",
    );
    let err = echo::run(&echo_config(&url, Some(pki.client()), 16, 10)).unwrap_err();
    assert!(
        matches!(err, BenchError::Handshake(m) if m.starts_with("TLS")),
        "{err}"
    );
    let tls_url = url.replacen("ws://", "wss://", 1);
    let (json, ok) = wsbench(&["echo", "--url", &tls_url, "-c", "1"]);
    assert!(!ok);
    assert!(json["error"].as_str().unwrap().contains("--ca"), "{json}");
    // And plain still works on the same server: TLS is chosen per run, not per build.
    let r = echo::run(&echo_config(&url, None, 100, 50)).unwrap();
    assert_eq!(r.received, 50);
}

fn wss_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("WSS_BIN") {
        return Some(PathBuf::from(p));
    }
    // target/<profile>/deps/<this test> -> target/<profile>/wss
    let exe = std::env::current_exe().ok()?;
    let candidate = exe.parent()?.parent()?.join("wss");
    candidate.is_file().then_some(candidate)
}

#[test]
fn wsbench_over_tls_against_the_wss_binary() {
    let Some(wss) = wss_binary() else {
        eprintln!("SKIPPED: no wss binary (build it: cargo build -p wss-handlers --bin wss)");
        return;
    };
    let pki = Pki::new("wss");
    let (cert, key) = (pki.file(CERT_FILE), pki.file(KEY_FILE));
    let args = [
        "--handler",
        "echo",
        "--port",
        "0",
        "--path",
        "/",
        "--threads",
        "1",
        "--log-level",
        "off",
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ];
    let (_server, url) = start(&wss, &args, "wss");
    let ca = pki.file(CA_FILE);
    let ca = ca.to_str().unwrap();
    let (json, ok) = wsbench(&[
        "echo",
        "--url",
        &url,
        "--ca",
        ca,
        "-c",
        "4",
        "-s",
        "1024",
        "-d",
        "8",
        "--messages",
        "800",
        "--warmup",
        "0",
        "--duration",
        "20",
    ]);
    assert!(ok, "{json}");
    assert_eq!(
        (json["received"].as_u64(), json["messages"].as_u64()),
        (Some(800), Some(800))
    );
    assert_eq!(json["tls"], true);
    assert_eq!(json["tls_version"], "TLSv1_3", "{json}");
    assert_eq!(json["tls_alpn"], "http/1.1");
    for (size, n) in [(16, 300), (70_000, 20)] {
        let r = echo::run(&echo_config(&url, Some(pki.client()), size, n)).unwrap();
        assert_eq!((r.sent, r.received), (n, n), "size {size}");
    }
    let r = connect::run(&connect_config(&url, Some(pki.client()), 30)).unwrap();
    assert_eq!((r.handshakes, r.failures), (30, 0), "{:?}", r.first_failure);
}
