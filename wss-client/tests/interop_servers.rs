//! The client against real servers of other projects: Node `ws` and Python `websockets`
//! (`interop/node_server.mjs`, `interop/python_server.py`): text, binary, 8 MiB, fragmented
//! messages, a server ping, close codes both ways, permessage-deflate, headers and
//! subprotocols.
//!
//! The servers are installed by `scripts/setup-interop`. Without them these tests print a loud
//! SKIPPED message and pass, unless `WSS_REQUIRE_INTEROP=1` (set by CI after the setup
//! script), which turns a missing server into a failure.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use wss_client::{ClientOptions, Data, ErrorInfo, RecvError, WebSocket};

const WAIT: Option<Duration> = Some(Duration::from_secs(20));
const READY: Duration = Duration::from_secs(30);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("wss-client sits in the workspace root")
        .to_path_buf()
}

/// A running peer server, killed when dropped (also when a test panics).
struct Peer {
    child: Child,
    url: String,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `program args` in `interop/` and waits for its readiness line; `None` (after a loud
/// SKIPPED line) when the peer is not installed.
fn start(name: &str, program: &Path, args: &[&str], installed: &Path) -> Option<Peer> {
    if !installed.exists() {
        let message = format!(
            "{name} interop: {} missing; run scripts/setup-interop",
            installed.display()
        );
        if std::env::var("WSS_REQUIRE_INTEROP").is_ok_and(|v| v == "1") {
            panic!("{message} (WSS_REQUIRE_INTEROP=1 makes this a failure)");
        }
        let _ = writeln!(
            std::io::stderr(),
            "\n!!!!!!!! SKIPPED: {message} !!!!!!!!\n"
        );
        return None;
    }
    let mut child = Command::new(program)
        .args(args)
        .current_dir(repo_root().join("interop"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {name}: {e}"));
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let mut peer = Peer {
        child,
        url: String::new(),
    };
    let line = rx
        .recv_timeout(READY)
        .unwrap_or_else(|_| panic!("{name} printed no readiness line"));
    peer.url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("{name}: unexpected first line {line:?}"))
        .to_owned();
    Some(peer)
}

fn node(deflate: bool) -> Option<Peer> {
    let root = repo_root();
    let args: &[&str] = if deflate {
        &["node_server.mjs", "--deflate"]
    } else {
        &["node_server.mjs"]
    };
    start(
        "Node ws",
        Path::new("node"),
        args,
        &root.join("interop/node_modules/ws"),
    )
}

fn python(deflate: bool) -> Option<Peer> {
    let root = repo_root();
    let python = root.join(".venv/bin/python");
    let args: &[&str] = if deflate {
        &["python_server.py"]
    } else {
        &["python_server.py", "--no-deflate"]
    };
    start("Python websockets", &python, args, &python)
}

fn text(s: &str) -> Data {
    Data::Text(s.to_owned())
}

/// Every check against one server, each on its own connection.
fn run_checks(peer: &Peer, deflate: bool) {
    let url = &peer.url;

    // Text (empty, non-ASCII, across the 125/126 and 64 KiB length forms) and every byte value.
    let ws = WebSocket::connect_blocking(url).unwrap();
    assert_eq!(
        ws.websocket().extensions().is_some(),
        deflate,
        "permessage-deflate agreed exactly when the server has it on: {:?}",
        ws.websocket().extensions()
    );
    for sample in [
        String::new(),
        "héllo wörld ✓".to_owned(),
        "a".repeat(125),
        "b".repeat(126),
        "c".repeat(65_536),
    ] {
        ws.send(sample.as_str()).unwrap();
        assert_eq!(ws.recv(WAIT).unwrap(), Data::Text(sample));
    }
    let every_byte: Vec<u8> = (0..=255).collect();
    ws.send(every_byte.clone()).unwrap();
    assert_eq!(ws.recv(WAIT).unwrap(), Data::Blob(every_byte));

    // A fragmented message (a code point split across fragments) arrives whole.
    ws.send("frag:5:fragmented ✓ message").unwrap();
    assert_eq!(ws.recv(WAIT).unwrap(), text("fragmented ✓ message"));

    // The server's ping is answered with its payload.
    ws.send("ping").unwrap();
    assert_eq!(ws.recv(WAIT).unwrap(), text("pong:p1"));

    // 8 MiB both ways, binary and text.
    let big: Vec<u8> = (0..8 << 20).map(|i: u32| (i % 251) as u8).collect();
    ws.send(big.clone()).unwrap();
    assert_eq!(ws.recv(WAIT).unwrap(), Data::Blob(big));
    let big_text = "wss client ".repeat((8 << 20) / 11);
    ws.send(big_text.as_str()).unwrap();
    assert_eq!(ws.recv(WAIT).unwrap(), Data::Text(big_text));

    // Our close with a code: the server answers it; on_terminate has the server's code.
    let end = ws.close_with(3001, "done").expect("closed in time");
    assert_eq!(end.code, 3001);

    // The server's close with a code and reason: a code other than 1000 reaches on_error
    // first, with the code, as on the server.
    let ws = WebSocket::connect_blocking(url).unwrap();
    ws.send("close:4001:going ✓").unwrap();
    assert_eq!(
        ws.recv(WAIT).unwrap_err(),
        RecvError::Closed {
            code: 4001,
            reason: Some("going ✓".to_owned()),
            error: Some(ErrorInfo::new(
                4001,
                "Closed with an application-defined code.",
                "HTTP"
            ))
        }
    );

    // Extra headers and a subprotocol.
    let options = ClientOptions::default()
        .with_header("X-Client-Test", "yes")
        .with_protocol("chat");
    let ws = WebSocket::connect_blocking_with(url, options)
        .unwrap_or_else(|e| panic!("with a header and a subprotocol: {e}"));
    assert_eq!(ws.websocket().protocol(), Some("chat"));
    ws.send("headers").unwrap();
    let Data::Text(reply) = ws.recv(WAIT).unwrap() else {
        panic!("headers reply is not text")
    };
    let reply: serde_json::Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(reply["headers"]["x-client-test"], "yes");
    assert_eq!(reply["protocol"], "chat");
    ws.close();

    // Without the offer, no compression even where the server has it on.
    let ws = WebSocket::connect_blocking_with(url, ClientOptions::default().with_deflate(false))
        .unwrap();
    assert_eq!(ws.websocket().extensions(), None);
    ws.send("plain").unwrap();
    assert_eq!(ws.recv(WAIT).unwrap(), text("plain"));
    ws.close();
}

#[test]
fn node_ws_server_with_deflate() {
    if let Some(peer) = node(true) {
        run_checks(&peer, true);
    }
}

#[test]
fn node_ws_server_without_deflate() {
    if let Some(peer) = node(false) {
        run_checks(&peer, false);
    }
}

#[test]
fn python_websockets_server_with_deflate() {
    if let Some(peer) = python(true) {
        run_checks(&peer, true);
    }
}

#[test]
fn python_websockets_server_without_deflate() {
    if let Some(peer) = python(false) {
        run_checks(&peer, false);
    }
}
