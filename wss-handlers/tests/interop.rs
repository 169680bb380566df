//! Real clients against the real binary: Python `websockets` and Node `ws` (the scripts in
//! `interop/`) exchange text, binary, fragmented and 8 MiB messages, pings and close codes with
//! `wss --handler echo`.
//!
//! The clients are installed by `scripts/setup-interop`. Without them these tests print a loud
//! SKIPPED message and pass, unless `WSS_REQUIRE_INTEROP=1` (set by CI after the setup script),
//! which turns a missing client into a failure.
//!
//! `WSS_INTEROP_SERVER="CMD ARGS..."` runs another server instead of the wss binary (split on
//! spaces; it must print the readiness line `listening on ws://HOST:PORT/PATH`), to check these
//! tests themselves against a peer.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use testkit::peers;

/// Generous: a client run takes about a second, but CI machines are shared.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Collects everything a child writes to one pipe, on a thread of its own so that a full pipe
/// never blocks the child.
fn drain(mut pipe: impl Read + Send + 'static) -> (Arc<Mutex<Vec<u8>>>, JoinHandle<()>) {
    let sink = Arc::new(Mutex::new(Vec::new()));
    let out = Arc::clone(&sink);
    let reader = thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    (sink, reader)
}

fn text_of(buf: &Arc<Mutex<Vec<u8>>>) -> String {
    String::from_utf8_lossy(&buf.lock().unwrap()).into_owned()
}

/// A running echo server, killed when dropped (also when a test panics).
struct Server {
    child: Child,
    url: String,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl Server {
    fn start() -> Server {
        let mut cmd = match std::env::var("WSS_INTEROP_SERVER") {
            Ok(line) if !line.trim().is_empty() => {
                let mut words = line.split_whitespace();
                let mut cmd = Command::new(words.next().unwrap());
                cmd.args(words);
                cmd
            }
            _ => {
                let mut cmd = Command::new(env!("CARGO_BIN_EXE_wss"));
                cmd.args(["--handler", "echo", "--host", "127.0.0.1", "--port", "0"])
                    .args(["--path", "/", "--max-message-size", "16777216"]);
                cmd
            }
        };
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the server");
        let (stderr, _) = drain(child.stderr.take().unwrap());
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let first = lines.next();
            let _ = tx.send(first);
            // The contract allows nothing else on stdout; keep reading so the pipe never fills.
            for line in lines.map_while(Result::ok) {
                eprintln!("server stdout (unexpected): {line}");
            }
        });
        let mut server = Server {
            child,
            url: String::new(),
            stderr,
        };
        let line = match rx.recv_timeout(READY_TIMEOUT) {
            Ok(Some(Ok(line))) => line,
            Ok(_) => server.fail("the server closed stdout without a readiness line"),
            Err(_) => server.fail("no readiness line within 30 s"),
        };
        match line.strip_prefix("listening on ") {
            Some(url) if url.starts_with("ws://") => server.url = url.to_string(),
            _ => server.fail(&format!("unexpected readiness line {line:?}")),
        }
        server
    }

    fn fail(&mut self, what: &str) -> ! {
        let _ = self.child.kill();
        let _ = self.child.wait();
        panic!("{what}; server stderr:\n{}", text_of(&self.stderr));
    }

    fn assert_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            self.fail(&format!("the server exited during the run ({status})"));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs one client script to its end (killed past CLIENT_TIMEOUT); returns whether it passed
/// and everything it printed.
fn run_client(mut cmd: Command) -> (bool, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the client");
    let (out, out_reader) = drain(child.stdout.take().unwrap());
    let (err, err_reader) = drain(child.stderr.take().unwrap());
    let deadline = Instant::now() + CLIENT_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the client") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(20));
    };
    // The pipes close with the client, so the readers end and hold its last words.
    let _ = out_reader.join();
    let _ = err_reader.join();
    let mut output = text_of(&out);
    output.push_str(&text_of(&err));
    match status {
        Some(status) => (status.success(), output),
        None => (
            false,
            format!("{output}\nclient killed after {CLIENT_TIMEOUT:?}"),
        ),
    }
}

/// Runs the client once offering permessage-deflate (each library's default) and once without.
fn run_against_wss(name: &str, client: impl Fn(&str, bool) -> Command) {
    let mut server = Server::start();
    let mut failures = Vec::new();
    for compression in [true, false] {
        let (passed, output) = run_client(client(&server.url, compression));
        let variant = if compression {
            "offering permessage-deflate"
        } else {
            "without compression"
        };
        eprintln!("---- {name} {variant} against {}\n{output}", server.url);
        if !passed {
            failures.push(format!("{variant}:\n{output}"));
        }
        server.assert_alive();
    }
    assert!(
        failures.is_empty(),
        "{name} interop failed against wss:\n{}\nserver stderr:\n{}",
        failures.join("\n"),
        text_of(&server.stderr)
    );
}

#[test]
fn python_websockets_client_interoperates_with_wss() {
    let Some(python) = peers::require("python websockets interop", peers::python_websockets())
    else {
        return;
    };
    let root = peers::repo_root();
    let script = root.join("interop/python_client.py");
    run_against_wss("python websockets", |url, compression| {
        let mut cmd = Command::new(&python);
        cmd.arg(&script).arg(url);
        if !compression {
            cmd.arg("--no-compression");
        }
        cmd
    });
}

#[test]
fn node_ws_client_interoperates_with_wss() {
    let Some(interop) = peers::require("node ws interop", peers::node_ws()) else {
        return;
    };
    run_against_wss("node ws", |url, compression| {
        let mut cmd = Command::new("node");
        cmd.current_dir(&interop).arg("node_client.mjs").arg(url);
        if !compression {
            cmd.arg("--no-compression");
        }
        cmd
    });
}
