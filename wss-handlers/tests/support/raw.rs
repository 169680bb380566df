//! Helpers for the hostile-input tests: the `wss` binary with its pid (to read its RSS, fd
//! count and CPU time from /proc), optionally under a low `ulimit -n`, and a raw-socket client
//! that writes any bytes, including frames no well-behaved client would send.
//!
//! The hostile tests need finer control than the testkit's raw client gives (a header apart
//! from its payload, a length that lies, masking from an offset, I/O errors kept), so the
//! frame writers and readers here are their own; the request, header lookup and close payload
//! are the testkit's.
//!
//! Included with `#[path = "support/raw.rs"] mod raw;` next to `mod support;` (it reuses
//! `support::parse_ready_line`), so the shared `support/mod.rs` stays untouched.
#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support;

/// The mask key of every client frame built here; any key must do.
pub const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// How long a test waits for one expected reply before failing.
pub const WAIT: Duration = Duration::from_secs(5);

/// A running `wss` binary whose pid is known; killed on drop.
pub struct Server {
    child: Child,
    /// The pid of `wss` itself (the `sh` wrapper, if any, `exec`s it).
    pub pid: u32,
    /// The address from the readiness line.
    pub addr: SocketAddr,
    /// The endpoint path from the readiness line.
    pub path: String,
    stderr: Arc<Mutex<String>>,
}

impl Server {
    /// Starts `wss --host 127.0.0.1 --port 0 <args>` and waits for its readiness line.
    pub fn start(args: &[&str]) -> Server {
        Self::spawn(None, args)
    }

    /// The same, with `ulimit -n fds` set in a shell that then `exec`s `wss`.
    pub fn start_with_fd_limit(fds: u32, args: &[&str]) -> Server {
        Self::spawn(Some(fds), args)
    }

    fn spawn(fd_limit: Option<u32>, args: &[&str]) -> Server {
        let exe = support::Wss::exe();
        let mut command = match fd_limit {
            Some(n) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                    .arg(exe);
                c
            }
            None => Command::new(exe),
        };
        let mut child = command
            .args(["--host", "127.0.0.1", "--port", "0"])
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn wss");
        let pid = child.id();
        let stderr = Arc::new(Mutex::new(String::new()));
        let err = child.stderr.take().expect("stderr");
        let into = stderr.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(err);
            let mut line = String::new();
            while matches!(reader.read_line(&mut line), Ok(n) if n > 0) {
                if let Ok(mut s) = into.lock() {
                    s.push_str(&line);
                }
                line.clear();
            }
        });
        let out = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(out);
            let mut first = String::new();
            let _ = reader.read_line(&mut first);
            let _ = tx.send(first);
            // Keep draining so a stray write never blocks the server.
            let _ = io::copy(&mut reader, &mut io::sink());
        });
        let line = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
        let Some((addr, path)) = support::parse_ready_line(line.trim_end()) else {
            let _ = child.kill();
            let _ = child.wait();
            std::thread::sleep(Duration::from_millis(100));
            panic!(
                "no readiness line (got {line:?}); stderr:\n{}",
                stderr.lock().unwrap()
            );
        };
        Server {
            child,
            pid,
            addr,
            path,
            stderr,
        }
    }

    /// `ws://HOST:PORT/PATH`.
    pub fn url(&self) -> String {
        format!("ws://{}{}", self.addr, self.path)
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// What the process wrote on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Resident memory in KiB (`VmRSS` of /proc/PID/status).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .expect("read /proc/PID/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// Open file descriptors (entries of /proc/PID/fd).
    pub fn fd_count(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid))
            .expect("read /proc/PID/fd")
            .count()
    }

    /// User plus system CPU time so far, in clock ticks (1/100 s on Linux).
    pub fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).expect("read stat");
        // The command name may hold spaces; the fields after its closing parenthesis do not.
        let after = &stat[stat.rfind(')').expect("comm") + 2..];
        let fields: Vec<&str> = after.split_whitespace().collect();
        // Fields 14 (utime) and 15 (stime) of proc(5), counted from 3 after the name.
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    }

    /// Asserts that a fresh, well-behaved client still gets its text and binary echoed, and
    /// that the process is alive: the abuse before harmed nobody else.
    pub fn assert_still_serves(&mut self) {
        assert!(self.alive(), "wss died; stderr:\n{}", self.stderr());
        let mut ws = support::connect(&self.url());
        ws.send(tungstenite::Message::text("still there?")).unwrap();
        assert_eq!(
            support::next_message(&mut ws),
            tungstenite::Message::text("still there?")
        );
        ws.send(tungstenite::Message::binary(vec![1u8, 2, 3]))
            .unwrap();
        assert_eq!(
            support::next_message(&mut ws),
            tungstenite::Message::binary(vec![1u8, 2, 3])
        );
        support::close(ws);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `cond` every 50 ms until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A TCP connection with a read timeout of [`WAIT`].
pub fn dial(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.set_write_timeout(Some(WAIT)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// A well-formed upgrade request head for `path` (the testkit's), with `extra` header lines
/// (each ending in CRLF) inserted before the blank line.
pub fn upgrade_request(addr: SocketAddr, path: &str, extra: &str) -> String {
    let extra: Vec<&str> = extra.split("\r\n").filter(|l| !l.is_empty()).collect();
    testkit::raw::upgrade_request(&addr.to_string(), path, &extra)
}

/// An HTTP response head as read off the wire.
#[derive(Debug)]
pub struct Head {
    /// The status code of the status line.
    pub status: u16,
    /// The whole head, status line included, up to the blank line.
    pub text: String,
}

impl Head {
    /// The value of header `name` (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<String> {
        testkit::raw::header(&self.text, name).map(str::to_string)
    }
}

/// Reads one HTTP response head (up to CRLFCRLF) from `s`. Panics on EOF or timeout before a
/// full head, quoting what did arrive.
pub fn read_head(s: &mut TcpStream) -> Head {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            Ok(_) => panic!(
                "connection ended before a response head; got {:?}",
                String::from_utf8_lossy(&buf)
            ),
            Err(e) => panic!(
                "no response head ({e}); got {:?}",
                String::from_utf8_lossy(&buf)
            ),
        }
        assert!(buf.len() < 64 << 10, "response head too long");
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line in {text:?}"));
    Head { status, text }
}

/// Sends `request` as written on a new connection and returns the response head.
pub fn http(addr: SocketAddr, request: &[u8]) -> Head {
    let mut s = dial(addr);
    s.write_all(request).expect("write request");
    read_head(&mut s)
}

/// Opens a WebSocket over a raw socket (asserting `101`), ready for hand-made frames.
pub fn upgrade(addr: SocketAddr, path: &str) -> TcpStream {
    let mut s = dial(addr);
    s.write_all(upgrade_request(addr, path, "").as_bytes())
        .unwrap();
    let head = read_head(&mut s);
    assert_eq!(head.status, 101, "upgrade refused:\n{}", head.text);
    s
}

/// The header of a client frame: `first` is FIN|RSV|opcode as on the wire, `len` the
/// announced payload length in the shortest form (or the 64-bit form if `long`), masked with
/// [`MASK`] when `masked`.
pub fn header(first: u8, len: u64, masked: bool, long: bool) -> Vec<u8> {
    let m = if masked { 0x80 } else { 0 };
    let mut h = vec![first];
    if long || len > 0xffff {
        h.push(m | 127);
        h.extend_from_slice(&len.to_be_bytes());
    } else if len > 125 {
        h.push(m | 126);
        h.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        h.push(m | len as u8);
    }
    if masked {
        h.extend_from_slice(&MASK);
    }
    h
}

/// `payload` masked with [`MASK`], starting at payload offset `offset`.
pub fn masked(payload: &[u8], offset: usize) -> Vec<u8> {
    payload
        .iter()
        .enumerate()
        .map(|(i, b)| b ^ MASK[(offset + i) % 4])
        .collect()
}

/// A whole masked client frame.
pub fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = header(first, payload.len() as u64, true, false);
    f.extend(masked(payload, 0));
    f
}

/// FIN + opcode, for [`frame`]'s `first`.
pub fn fin(opcode: u8) -> u8 {
    0x80 | opcode
}

/// A close frame's payload: the code, then the reason bytes.
#[allow(unused_imports)]
pub use testkit::raw::close_payload;

/// One frame from the server.
#[derive(Debug)]
pub struct ServerFrame {
    /// The first byte: FIN, RSV and opcode.
    pub first: u8,
    /// The payload (servers do not mask).
    pub payload: Vec<u8>,
}

impl ServerFrame {
    /// The opcode.
    pub fn opcode(&self) -> u8 {
        self.first & 0x0f
    }
}

/// Reads one frame the server sent; `Err` on EOF, timeout or reset.
pub fn read_frame(s: &mut TcpStream) -> io::Result<ServerFrame> {
    let mut h = [0u8; 2];
    s.read_exact(&mut h)?;
    assert_eq!(h[1] & 0x80, 0, "the server masked a frame");
    let len = match h[1] & 0x7f {
        126 => {
            let mut b = [0u8; 2];
            s.read_exact(&mut b)?;
            u64::from(u16::from_be_bytes(b))
        }
        127 => {
            let mut b = [0u8; 8];
            s.read_exact(&mut b)?;
            u64::from_be_bytes(b)
        }
        n => u64::from(n),
    };
    assert!(len <= 64 << 20, "absurd server frame length {len}");
    let mut payload = vec![0u8; len as usize];
    s.read_exact(&mut payload)?;
    Ok(ServerFrame {
        first: h[0],
        payload,
    })
}

/// How a connection ended after the server's close frame.
#[derive(Debug)]
pub struct Closed {
    /// The close code the server sent.
    pub code: u16,
    /// Its reason.
    pub reason: String,
    /// The frames that came before the close (echoes, pongs).
    pub before: Vec<ServerFrame>,
}

/// Reads frames until the server's close frame and asserts its code is `code`; then answers
/// the close as a good client does and asserts the server ends the TCP connection within
/// [`WAIT`]. Fails if the socket ends or stalls without a close frame.
pub fn expect_close(s: &mut TcpStream, code: u16, what: &str) -> Closed {
    let mut before = Vec::new();
    let close = loop {
        match read_frame(s) {
            Ok(f) if f.opcode() == 0x8 => break f,
            Ok(f) => before.push(f),
            Err(e) => panic!(
                "{what}: expected close {code}, but the connection gave {e} (kind {:?}) after \
                 {} frames",
                e.kind(),
                before.len()
            ),
        }
    };
    assert_eq!(close.first, 0x88, "{what}: close frame first byte");
    assert!(
        close.payload.len() >= 2,
        "{what}: expected close {code}, got a close without a code"
    );
    let got = u16::from_be_bytes([close.payload[0], close.payload[1]]);
    let reason = String::from_utf8_lossy(&close.payload[2..]).into_owned();
    assert_eq!(got, code, "{what}: close code (reason {reason:?})");
    // The reply may meet a socket the server already closed; that is fine.
    let _ = s.write_all(&frame(fin(0x8), &close.payload[..2]));
    assert_tcp_ends(s, what);
    Closed {
        code: got,
        reason,
        before,
    }
}

/// Asserts the server ends the TCP connection (EOF or reset) within [`WAIT`], sending
/// nothing more.
pub fn assert_tcp_ends(s: &mut TcpStream, what: &str) {
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut rest = Vec::new();
    match s.read_to_end(&mut rest) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("{what}: the server did not end the TCP connection: {e}"),
    }
    assert!(
        rest.is_empty(),
        "{what}: bytes after the close frame: {rest:?}"
    );
}
