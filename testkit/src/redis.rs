//! A private `redis-server` per test, on a free loopback port, killed on drop.
//!
//! When `redis-server` is not installed, [`RedisServer::start`] says so loudly on stderr and
//! returns `None` (the test returns early), unless `WSS_REQUIRE_REDIS=1`, which makes it a
//! failure: `scripts/setup-test-peers` installs it and CI requires it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a fresh `redis-server` may take to answer PING, and a command to answer.
const STARTUP: Duration = Duration::from_secs(5);

/// A `redis-server` child on a loopback port, killed on drop.
pub struct RedisServer {
    /// The loopback port it listens on (kept across [`RedisServer::restart`]).
    pub port: u16,
    child: Option<Child>,
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn installed() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl RedisServer {
    /// Starts one, or returns `None` (after a loud message) when `redis-server` is not
    /// installed and `WSS_REQUIRE_REDIS` is not `1`.
    pub fn start() -> Option<RedisServer> {
        if !installed() {
            assert!(
                std::env::var("WSS_REQUIRE_REDIS").as_deref() != Ok("1"),
                "redis-server is not installed and WSS_REQUIRE_REDIS=1"
            );
            // Straight to the process's stderr: the test harness captures eprintln! of
            // passing tests, and a skip must be seen.
            let _ = std::io::stderr().write_all(
                b"\n!!! SKIPPED: redis-server is not installed; this Redis test did not run. \
                  Install it (bash scripts/setup-test-peers, or apt-get install -y \
                  redis-server) or set WSS_REQUIRE_REDIS=1 to make this a failure. !!!\n",
            );
            return None;
        }
        let mut server = RedisServer {
            port: free_port(),
            child: None,
        };
        server.spawn();
        Some(server)
    }

    /// The `redis://` URL of this server.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + STARTUP;
        while !self.answers_ping() {
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} did not answer",
                self.port
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// True when the server answers PING now.
    pub fn answers_ping(&self) -> bool {
        let Ok(mut s) = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
        let mut answer = [0u8; 7];
        s.write_all(b"PING\r\n").is_ok()
            && s.read_exact(&mut answer).is_ok()
            && &answer == b"+PONG\r\n"
    }

    /// Kills it (SIGKILL: no goodbye to the clients).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Freezes it (SIGSTOP): connections stay open, nothing is answered.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws it (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let ok = Command::new("kill").args([sig, &pid]).status();
        assert!(ok.is_ok_and(|s| s.success()), "kill {sig} {pid}");
    }

    /// Starts it again, empty, on the same port.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Sends one command over a fresh connection and returns the bulk strings of its array
    /// reply (panics on another kind of reply): enough to look at keys without a client crate.
    pub fn command(&self, args: &[&str]) -> Vec<String> {
        let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).expect("redis answers");
        s.set_read_timeout(Some(STARTUP)).expect("timeout");
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        s.write_all(req.as_bytes()).expect("command sent");
        let mut r = BufReader::new(s);
        let mut line = String::new();
        r.read_line(&mut line).expect("reply");
        let n: usize = line
            .strip_prefix('*')
            .and_then(|n| n.trim_end().parse().ok())
            .unwrap_or_else(|| panic!("not an array reply: {line:?}"));
        (0..n)
            .map(|_| {
                line.clear();
                r.read_line(&mut line).expect("bulk length");
                let len: usize = line
                    .strip_prefix('$')
                    .and_then(|n| n.trim_end().parse().ok())
                    .unwrap_or_else(|| panic!("not a bulk string: {line:?}"));
                let mut bytes = vec![0; len + 2];
                r.read_exact(&mut bytes).expect("bulk string");
                bytes.truncate(len);
                String::from_utf8(bytes).expect("UTF-8 reply")
            })
            .collect()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if self.child.is_some() {
            // A stopped process ignores SIGKILL until continued on some systems' test hosts.
            self.signal("-CONT");
        }
        self.kill();
    }
}
