//! A minimal W3C WebDriver client for the browser tests: chromedriver is driven over its HTTP
//! API with a one-request-per-connection client on `std::net::TcpStream`, so the tests need no
//! async runtime and no WebDriver crate.

use serde_json::{json, Value};
use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The key WebDriver uses for Enter in "send keys".
pub const ENTER: &str = "\u{E007}";
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Where Chromium and chromedriver live, if they are installed.
pub struct BrowserTools {
    pub chromium: PathBuf,
    pub chromedriver: PathBuf,
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

impl BrowserTools {
    /// Looks for the tools: `WSS_CHROMIUM` / `WSS_CHROMEDRIVER` first, then Debian's layout, then
    /// `PATH`. Debian's `/usr/bin/chromium` is a shell wrapper; the real binary is preferred so
    /// chromedriver's process tree stays simple.
    pub fn find() -> Option<BrowserTools> {
        // A variable that is set wins, even when it names nothing: that is how to force a skip.
        let from_env = |name: &str| {
            std::env::var_os(name).map(|v| Some(PathBuf::from(v)).filter(|p| p.is_file()))
        };
        let chromium = from_env("WSS_CHROMIUM").unwrap_or_else(|| {
            let real = Path::new("/usr/lib/chromium/chromium");
            real.is_file()
                .then(|| real.to_path_buf())
                .or_else(|| find_in_path("chromium"))
                .or_else(|| find_in_path("chromium-browser"))
                .or_else(|| find_in_path("google-chrome"))
        })?;
        let chromedriver =
            from_env("WSS_CHROMEDRIVER").unwrap_or_else(|| find_in_path("chromedriver"))?;
        Some(BrowserTools {
            chromium,
            chromedriver,
        })
    }
}

/// A free loopback port: bound, read, released. The tiny window before chromedriver binds it is
/// acceptable for a test.
pub fn free_port() -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

/// A unique scratch directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!("wss-{tag}-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Sends one HTTP request to `addr` and returns (status, JSON body).
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<(u16, Value), String> {
    let mut stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    // Page loads and script waits happen inside chromedriver; a command never takes this long
    // unless the browser is stuck.
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        payload.len()
    );
    stream
        .write_all(head.as_bytes())
        .map_err(|e| e.to_string())?;
    stream
        .write_all(payload.as_bytes())
        .map_err(|e| e.to_string())?;
    let (status, body) = read_response(&mut stream)?;
    let value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).map_err(|e| format!("bad JSON from chromedriver: {e}"))?
    };
    Ok((status, value))
}

/// Reads one response: the head, then a body framed by Content-Length or chunked encoding
/// (chromedriver may keep the connection open, so EOF cannot mark the end).
fn read_response(stream: &mut TcpStream) -> Result<(u16, Vec<u8>), String> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(p) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        let n = stream.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed before the response head".into());
        }
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).to_ascii_lowercase();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line: {head}"))?;
    let mut body = raw[head_end + 4..].to_vec();
    let length = head.lines().find_map(|l| {
        l.strip_prefix("content-length:")
            .and_then(|v| v.trim().parse::<usize>().ok())
    });
    if let Some(length) = length {
        while body.len() < length {
            let n = stream.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("connection closed inside the body".into());
            }
            body.extend_from_slice(&buf[..n]);
        }
        body.truncate(length);
    } else if head.contains("transfer-encoding: chunked") {
        while !body.ends_with(b"0\r\n\r\n") {
            let n = stream.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&buf[..n]);
        }
        body = dechunk(&body)?;
    } else {
        stream.read_to_end(&mut body).map_err(|e| e.to_string())?;
    }
    Ok((status, body))
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("bad chunk")?;
        let size_text = String::from_utf8_lossy(&data[..eol]).to_string();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| "bad chunk size")?;
        data = &data[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(data.get(..size).ok_or("short chunk")?);
        data = data.get(size + 2..).ok_or("short chunk")?;
    }
}

/// A running chromedriver with one browser session. Dropping it ends the session (which quits
/// Chromium) and kills chromedriver.
pub struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
    _profile: TempDir,
    log: PathBuf,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a fresh profile.
    pub fn start(tools: &BrowserTools) -> Browser {
        Self::start_with(tools, &[])
    }

    /// As [`start`](Self::start), with extra Chromium switches (e.g.
    /// `--ignore-certificate-errors` for a server using the test CA: test only).
    pub fn start_with(tools: &BrowserTools, extra_args: &[&str]) -> Browser {
        let profile = TempDir::new("chromium-profile");
        let log = profile.0.join("chromedriver.log");
        let port = free_port();
        let log_file = fs::File::create(&log).expect("create chromedriver log");
        let driver = Command::new(&tools.chromedriver)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("spawn chromedriver");
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let mut browser = Browser {
            driver,
            addr,
            session: String::new(),
            _profile: profile,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok((200, v)) = http(addr, "GET", "/status", None) {
                if v["value"]["ready"].as_bool() == Some(true) {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not start\n{}",
                browser.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let user_data = browser._profile.0.join("user-data");
        let mut args: Vec<String> = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1000,800",
        ]
        .iter()
        .chain(extra_args)
        .map(|a| a.to_string())
        .collect();
        args.push(format!("--user-data-dir={}", user_data.display()));
        let caps = json!({
            "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": tools.chromium.to_string_lossy(),
                    "args": args
                }
            }}
        });
        let value = browser.command("POST", "/session", Some(caps));
        browser.session = value["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id in {value}"))
            .to_string();
        browser
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs a WebDriver command and returns its `value`; panics with the driver's error.
    fn command(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        match http(self.addr, method, path, body.as_ref()) {
            Ok((200, v)) => v["value"].clone(),
            Ok((status, v)) => panic!("WebDriver {method} {path} -> {status}: {v}"),
            Err(e) => panic!("WebDriver {method} {path} failed: {e}"),
        }
    }

    fn session_path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    /// Loads `url` in the current tab.
    pub fn goto(&self, url: &str) {
        self.command(
            "POST",
            &self.session_path("/url"),
            Some(json!({ "url": url })),
        );
    }

    /// Opens a new tab and returns its handle (the current tab does not change).
    pub fn new_tab(&self) -> String {
        let v = self.command(
            "POST",
            &self.session_path("/window/new"),
            Some(json!({ "type": "tab" })),
        );
        v["handle"].as_str().expect("window handle").to_string()
    }

    /// The handle of the current tab.
    pub fn current_tab(&self) -> String {
        let v = self.command("GET", &self.session_path("/window"), None);
        v.as_str().expect("window handle").to_string()
    }

    /// Makes `handle` the tab that later commands act on.
    pub fn switch_to(&self, handle: &str) {
        self.command(
            "POST",
            &self.session_path("/window"),
            Some(json!({ "handle": handle })),
        );
    }

    /// Closes the current tab (its page unloads, so its sockets close).
    pub fn close_tab(&self) {
        self.command("DELETE", &self.session_path("/window"), None);
    }

    /// Runs `script` (a function body) in the current tab and returns its result.
    pub fn eval(&self, script: &str) -> Value {
        self.command(
            "POST",
            &self.session_path("/execute/sync"),
            Some(json!({ "script": script, "args": [] })),
        )
    }

    /// Types `text` into the element matched by `css` (as a user would, key by key).
    pub fn type_into(&self, css: &str, text: &str) {
        let v = self.command(
            "POST",
            &self.session_path("/element"),
            Some(json!({ "using": "css selector", "value": css })),
        );
        let id = v[ELEMENT_KEY].as_str().expect("element id").to_string();
        self.command(
            "POST",
            &self.session_path(&format!("/element/{id}/value")),
            Some(json!({ "text": text })),
        );
    }

    /// Polls `script` until it returns `true`, or panics with `what` after `timeout`.
    pub fn wait_for(&self, what: &str, script: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.eval(script) == Value::Bool(true) {
                return;
            }
            if Instant::now() >= deadline {
                let lines = self.eval(
                    "return Array.from(document.querySelectorAll('#messages li')).map(l => l.textContent)",
                );
                let state = self.eval("return document.getElementById('state').textContent");
                panic!("timed out waiting for {what}; state {state}; messages {lines}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            // Ending the session makes chromedriver quit Chromium before we kill the driver.
            let _ = http(self.addr, "DELETE", &self.session_path(""), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
