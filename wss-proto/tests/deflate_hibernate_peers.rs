//! Hibernation against real peers: Python `websockets` and Node `ws` clients with
//! permessage-deflate talk to a wss-proto server over loopback TCP, and the server drops its
//! compression state after every message it reads and every echo it writes
//! (`Connection::hibernate`), so each message in is inflated by a rebuilt inflater and each
//! echo compressed by a rebuilt compressor. The clients keep their own state throughout and
//! refer back to earlier messages; they check every echo byte for byte.
//!
//! The clients are installed by `scripts/setup-test-peers` (the repo's `.venv` and
//! `interop/node_modules`). Without them these tests print a loud SKIPPED message and pass,
//! unless `WSS_REQUIRE_INTEROP=1`, which turns a missing client into a failure.
#![cfg(feature = "deflate")]

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use testkit::peers;
use wss_proto::handshake::deflate::negotiate;
use wss_proto::handshake::{validate_upgrade, HeadLimits, RequestParser, Response};
use wss_proto::{Config, Connection, DeflateConfig, Event, Message, Role, Scratch, State};

const TIMEOUT: Duration = Duration::from_secs(30);

/// What the server saw of one conversation.
#[derive(Debug, Default)]
struct Served {
    messages: usize,
    /// Echoes of a message seen before: their compressed payload sizes and text sizes.
    repeats: Vec<(usize, usize)>,
    response: String,
}

/// Serves one client: the handshake, then an echo of every message, hibernating after each
/// read and each write, until the client closes.
fn serve(listener: TcpListener) -> Served {
    let (mut s, _) = listener.accept().expect("accept");
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut parser = RequestParser::new(HeadLimits::default());
    let mut buf = vec![0u8; 64 * 1024];
    let (config, early, response) = loop {
        let n = s.read(&mut buf).expect("read the head");
        assert!(n > 0, "closed during the handshake");
        if let Some((request, used)) = parser.feed(&buf[..n]).expect("a valid head") {
            let upgrade = validate_upgrade(&request).expect("an upgrade");
            let accepted = negotiate(&upgrade.extensions, &DeflateConfig::default())
                .expect("permessage-deflate offered and accepted");
            let response = accepted.response.clone();
            let head = Response::switching_protocols(&upgrade, &[accepted.header()]).to_bytes();
            s.write_all(&head).unwrap();
            let config = Config {
                deflate: Some(accepted.params),
                max_message_size: 1 << 20,
                ..Config::default()
            };
            break (config, buf[used..n].to_vec(), response);
        }
    };
    let mut served = Served {
        response,
        ..Served::default()
    };
    let mut conn = Connection::new(Role::Server, config, Instant::now());
    let mut scratch = Scratch::default();
    let mut seen = HashSet::new();
    let mut input = early;
    loop {
        conn.receive(&mut scratch, Instant::now(), &input);
        // The inflater sleeps between messages (one part-way through keeps it).
        conn.hibernate();
        while let Some(event) = conn.poll_event(&mut scratch) {
            match event {
                Event::Message(Message::Text(text)) => {
                    served.messages += 1;
                    conn.send_text(&text).unwrap();
                    let mut wire = Vec::new();
                    conn.poll_transmit(&mut wire);
                    if !seen.insert(text.clone()) {
                        let (h, n) = wss_proto::FrameHeader::parse(&wire).unwrap().unwrap();
                        assert_eq!(h.rsv, wss_proto::RSV1, "a compressed echo");
                        served.repeats.push((wire.len() - n, text.len()));
                    }
                    s.write_all(&wire).unwrap();
                    conn.hibernate();
                }
                Event::Failed(e) => panic!("the server failed the connection: {e}"),
                _ => {}
            }
        }
        let mut wire = Vec::new();
        conn.poll_transmit(&mut wire);
        s.write_all(&wire).unwrap();
        if conn.state() == State::Closed {
            return served;
        }
        let n = s.read(&mut buf).expect("read");
        if n == 0 {
            return served;
        }
        input = buf[..n].to_vec();
    }
}

/// Runs `client` (given the URL) against a hibernating server; returns what the server saw
/// and the client's output.
fn converse(client: impl FnOnce(&str) -> Command) -> (Served, String) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let server = thread::spawn(move || serve(listener));
    let out = client(&url)
        .stdin(Stdio::null())
        .output()
        .expect("start the client");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        // Unblock the server if the client never connected.
        let _ = TcpStream::connect(url.trim_start_matches("ws://").trim_end_matches('/'));
        panic!("client failed: {text}");
    }
    let served = server.join().expect("the server thread");
    (served, text)
}

/// The messages every client sends (also written out in the scripts below): chat lines that
/// repeat, and one of about 40 KB so that the 2^15 windows wrap.
const MESSAGES: usize = 61;

/// `takeover`: the server keeps its context, so a line sent before goes out as
/// back-references into what its compressor slept on.
fn check(what: &str, served: &Served, out: &str, takeover: bool) {
    assert!(out.contains(&format!("OK {MESSAGES}")), "{what}: {out}");
    assert_eq!(served.messages, MESSAGES, "{what}");
    assert_eq!(served.repeats.len(), MESSAGES - 28 - 1, "{what}");
    let (wire, text) = served
        .repeats
        .iter()
        .fold((0, 0), |(w, t), (a, b)| (w + a, t + b));
    if takeover {
        assert!(
            wire * 3 < text,
            "{what}: repeated lines took {wire} bytes for {text} ({})",
            served.response
        );
    } else {
        assert!(wire * 3 > text, "{what}: {wire} bytes for {text}");
    }
}

const PYTHON: &str = r#"
import sys
from websockets.sync.client import connect
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory as F
url, mode = sys.argv[1], sys.argv[2]
ext = {"takeover": F(), "no-takeover": F(server_no_context_takeover=True,
       client_no_context_takeover=True), "window-10": F(server_max_window_bits=10,
       client_max_window_bits=10)}[mode]
def line(i):
    return '{"type":"message","user":"user%d","text":"the weather in town is fine today, %d"}' % (i % 4, i % 7)
msgs = [line(i) for i in range(30)] + ["".join(line(i) for i in range(500))] + [line(i) for i in range(30)]
with connect(url, extensions=[ext], compression=None, max_size=1 << 20, open_timeout=20) as ws:
    for i, m in enumerate(msgs):
        ws.send(m)
        got = ws.recv(timeout=20)
        if got != m:
            sys.exit("echo %d differs: %r" % (i, got[:80]))
    ws.close()
print("OK %d" % len(msgs))
"#;

const NODE: &str = r#"
import WebSocket from 'ws';
const url = process.env.WSS_URL, mode = process.env.WSS_MODE;
const opts = { threshold: 0 };
if (mode === 'no-takeover') Object.assign(opts, { serverNoContextTakeover: true, clientNoContextTakeover: true });
if (mode === 'window-10') Object.assign(opts, { serverMaxWindowBits: 10, clientMaxWindowBits: 10 });
const line = (i) => `{"type":"message","user":"user${i % 4}","text":"the weather in town is fine today, ${i % 7}"}`;
const msgs = [];
for (let i = 0; i < 30; i++) msgs.push(line(i));
let big = ''; for (let i = 0; i < 500; i++) big += line(i);
msgs.push(big);
for (let i = 0; i < 30; i++) msgs.push(line(i));
const ws = new WebSocket(url, { perMessageDeflate: opts, maxPayload: 1 << 20 });
let n = 0;
const timer = setTimeout(() => { console.error('timeout'); process.exit(1); }, 20000);
ws.on('open', () => ws.send(msgs[0]));
ws.on('message', (data) => {
  if (data.toString() !== msgs[n]) { console.error(`echo ${n} differs`); process.exit(1); }
  n += 1;
  if (n < msgs.length) ws.send(msgs[n]); else ws.close(1000);
});
ws.on('close', () => { clearTimeout(timer); if (n === msgs.length) console.log(`OK ${n}`); else process.exit(1); });
ws.on('error', (e) => { console.error(String(e)); process.exit(1); });
"#;

#[test]
fn python_websockets_against_a_server_that_hibernates_after_every_message() {
    let Some(python) = peers::require("python websockets", peers::python_websockets()) else {
        return;
    };
    for mode in ["takeover", "no-takeover", "window-10"] {
        let (served, out) = converse(|url| {
            let mut cmd = Command::new(&python);
            cmd.args(["-c", PYTHON, url, mode]);
            cmd
        });
        check(
            &format!("python {mode}"),
            &served,
            &out,
            mode != "no-takeover",
        );
        if mode == "window-10" {
            assert!(
                served.response.contains("server_max_window_bits=10"),
                "{served:?}"
            );
        }
    }
}

#[test]
fn node_ws_against_a_server_that_hibernates_after_every_message() {
    let Some(interop) = peers::require("node ws", peers::node_ws()) else {
        return;
    };
    for mode in ["takeover", "no-takeover", "window-10"] {
        let (served, out) = converse(|url| {
            let mut cmd = Command::new("node");
            cmd.current_dir(&interop)
                .args(["--input-type=module", "-e", NODE])
                .env("WSS_URL", url)
                .env("WSS_MODE", mode);
            cmd
        });
        check(
            &format!("node {mode}"),
            &served,
            &out,
            mode != "no-takeover",
        );
    }
}
