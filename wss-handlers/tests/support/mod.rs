//! Helpers shared by the integration tests: the `wss` binary as a child process.
#![allow(dead_code)]

pub mod redis;
pub mod tls;
pub mod webdriver;
pub mod wire;

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running `wss` binary, killed on drop if still alive.
pub struct Wss {
    child: Child,
    /// The address from the readiness line.
    pub addr: SocketAddr,
    /// The path from the readiness line (starts with `/`).
    pub path: String,
    /// `ws` or `wss`: the scheme of the readiness line.
    pub scheme: &'static str,
    /// Everything written on stdout after the readiness line (must stay empty).
    extra_stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

/// Parses `listening on ws://HOST:PORT/PATH`.
pub fn parse_ready_line(line: &str) -> Option<(SocketAddr, String)> {
    let rest = line.strip_prefix("listening on ws://")?;
    let slash = rest.find('/')?;
    let addr = rest[..slash].parse().ok()?;
    Some((addr, rest[slash..].to_string()))
}

/// Parses `listening on ws://HOST:PORT/PATH` or `listening on wss://HOST:PORT/PATH`.
pub fn parse_listening_line(line: &str) -> Option<(&'static str, SocketAddr, String)> {
    if let Some(ready) = parse_ready_line(line) {
        return Some(("ws", ready.0, ready.1));
    }
    let rest = line.strip_prefix("listening on wss://")?;
    let slash = rest.find('/')?;
    let addr = rest[..slash].parse().ok()?;
    Some(("wss", addr, rest[slash..].to_string()))
}

fn collect<R: Read + Send + 'static>(reader: R, into: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(reader);
        let mut line = String::new();
        while matches!(reader.read_line(&mut line), Ok(n) if n > 0) {
            if let Ok(mut s) = into.lock() {
                s.push_str(&line);
            }
            line.clear();
        }
    });
}

impl Wss {
    /// The path of the built binary.
    pub fn exe() -> &'static str {
        env!("CARGO_BIN_EXE_wss")
    }

    /// Starts `wss --host 127.0.0.1 --port 0 <args>` (`--port` only if `args` has none) and
    /// waits for its readiness line.
    pub fn start(args: &[&str]) -> Wss {
        let mut command = Command::new(Self::exe());
        command.args(["--host", "127.0.0.1"]);
        if !args.contains(&"--port") {
            command.args(["--port", "0"]);
        }
        let mut child = command
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn wss");
        let stderr = Arc::new(Mutex::new(String::new()));
        collect(child.stderr.take().expect("stderr"), stderr.clone());
        let stdout = child.stdout.take().expect("stdout");
        let extra_stdout = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let extra = extra_stdout.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut first = String::new();
            let _ = reader.read_line(&mut first);
            let _ = tx.send(first);
            let mut rest = String::new();
            let _ = reader.read_to_string(&mut rest);
            if let Ok(mut s) = extra.lock() {
                s.push_str(&rest);
            }
        });
        let line = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "wss printed no readiness line; stderr:\n{}",
                    stderr.lock().unwrap()
                );
            }
        };
        let Some((scheme, addr, path)) = parse_listening_line(line.trim_end()) else {
            let _ = child.kill();
            let _ = child.wait();
            std::thread::sleep(Duration::from_millis(100));
            panic!(
                "bad readiness line {line:?}; stderr:\n{}",
                stderr.lock().unwrap()
            );
        };
        Wss {
            child,
            addr,
            path,
            scheme,
            extra_stdout,
            stderr,
        }
    }

    /// `ws://HOST:PORT/PATH` (`wss://` when the readiness line said so) plus an optional
    /// query.
    pub fn ws_url(&self, query: &str) -> String {
        format!("{}://{}{}{}", self.scheme, self.addr, self.path, query)
    }

    /// `http://HOST:PORT/` (`https://` when the port speaks TLS only).
    pub fn http_url(&self) -> String {
        let scheme = if self.scheme == "wss" {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}/", self.addr)
    }

    /// The `listening on wss://HOST:PORT/PATH` line that `wss` writes on stderr when it has a
    /// plain and a TLS listener: the TLS address and path. Waits a little for the reader
    /// thread, which may lag behind the readiness line.
    pub fn stderr_tls_listener(&self) -> Option<(SocketAddr, String)> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let found = self
                .stderr()
                .lines()
                .find_map(|l| match parse_listening_line(l) {
                    Some(("wss", addr, path)) => Some((addr, path)),
                    _ => None,
                });
            if found.is_some() || Instant::now() >= deadline {
                return found;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM (through kill(1), to keep libc out of the tests).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits for the process to exit, up to `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What the process wrote on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// What the process wrote on stdout after the readiness line (complete once it exited).
    pub fn extra_stdout(&self) -> String {
        self.extra_stdout
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }
}

impl Drop for Wss {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `wss` with `args` to completion (for start errors), with a time bound.
pub fn run_to_exit(args: &[&str]) -> (ExitStatus, String, String) {
    let mut child = Command::new(Wss::exe())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn wss");
    let out = Arc::new(Mutex::new(String::new()));
    let err = Arc::new(Mutex::new(String::new()));
    collect(child.stdout.take().expect("stdout"), out.clone());
    collect(child.stderr.take().expect("stderr"), err.clone());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("wss {args:?} did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // The reader threads finish at EOF, right after exit.
    std::thread::sleep(Duration::from_millis(50));
    let o = out.lock().unwrap().clone();
    let e = err.lock().unwrap().clone();
    (status, o, e)
}

/// A WebSocket client over a plain `TcpStream` with a read timeout, so a missing message
/// fails the test instead of hanging it.
pub type Client = tungstenite::WebSocket<std::net::TcpStream>;

/// How long a test waits for any one message.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects to `url` (`ws://HOST:PORT/PATH?QUERY`) with extra request headers.
pub fn try_connect(url: &str, headers: &[(&str, &str)]) -> Result<Client, tungstenite::Error> {
    use tungstenite::client::IntoClientRequest;
    let mut request = url.into_client_request()?;
    for (k, v) in headers {
        let name = tungstenite::http::HeaderName::from_bytes(k.as_bytes()).expect("header name");
        request
            .headers_mut()
            .insert(name, v.parse().expect("header value"));
    }
    let host = request
        .uri()
        .host()
        .unwrap_or("127.0.0.1")
        .trim_matches(['[', ']'])
        .to_string();
    let port = request.uri().port_u16().unwrap_or(80);
    let stream =
        std::net::TcpStream::connect((host.as_str(), port)).map_err(tungstenite::Error::Io)?;
    stream
        .set_read_timeout(Some(READ_TIMEOUT))
        .map_err(tungstenite::Error::Io)?;
    stream.set_nodelay(true).map_err(tungstenite::Error::Io)?;
    match tungstenite::client(request, stream) {
        Ok((ws, _response)) => Ok(ws),
        Err(tungstenite::HandshakeError::Failure(e)) => Err(e),
        Err(tungstenite::HandshakeError::Interrupted(_)) => Err(tungstenite::Error::Io(
            std::io::ErrorKind::WouldBlock.into(),
        )),
    }
}

/// Connects or panics.
pub fn connect(url: &str) -> Client {
    try_connect(url, &[]).unwrap_or_else(|e| panic!("connect {url}: {e}"))
}

/// The HTTP status of a refused handshake (panics if the handshake succeeded).
pub fn refused_status(url: &str) -> u16 {
    match try_connect(url, &[]) {
        Ok(_) => panic!("{url}: the handshake was accepted"),
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(e) => panic!("{url}: unexpected error {e}"),
    }
}

/// The next data message (pings and pongs skipped); panics on close or timeout.
pub fn next_message(ws: &mut Client) -> tungstenite::Message {
    loop {
        match ws.read() {
            Ok(m @ (tungstenite::Message::Text(_) | tungstenite::Message::Binary(_))) => return m,
            Ok(tungstenite::Message::Close(frame)) => panic!("closed by the server: {frame:?}"),
            Ok(_) => continue,
            Err(e) => panic!("read failed: {e}"),
        }
    }
}

/// The next message, as JSON (it must be a text frame).
pub fn next_json(ws: &mut Client) -> serde_json::Value {
    match next_message(ws) {
        tungstenite::Message::Text(t) => {
            serde_json::from_str(t.as_str()).unwrap_or_else(|e| panic!("not JSON {t:?}: {e}"))
        }
        other => panic!("expected a text frame, got {other:?}"),
    }
}

/// Asserts nothing arrives within `wait`.
pub fn assert_silent(ws: &mut Client, wait: Duration) {
    ws.get_ref().set_read_timeout(Some(wait)).expect("timeout");
    match ws.read() {
        Err(tungstenite::Error::Io(e))
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) => {}
        other => panic!("expected silence, got {other:?}"),
    }
    ws.get_ref()
        .set_read_timeout(Some(READ_TIMEOUT))
        .expect("timeout");
}

/// Sends a close frame (1000) and reads until the server's answer (or the socket ends).
pub fn close(mut ws: Client) {
    let _ = ws.close(Some(tungstenite::protocol::CloseFrame {
        code: tungstenite::protocol::frame::coding::CloseCode::Normal,
        reason: "".into(),
    }));
    let deadline = Instant::now() + READ_TIMEOUT;
    while Instant::now() < deadline {
        match ws.read() {
            Ok(_) => continue,
            Err(_) => break,
        }
    }
}
