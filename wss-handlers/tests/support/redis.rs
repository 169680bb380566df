//! A private `redis-server` for the cluster tests, on a free loopback port.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A private `redis-server` on a free loopback port, killed on drop.
pub struct Redis {
    port: u16,
    child: Child,
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Redis {
    /// Starts one, or returns `None` after a loud message when `redis-server` is missing and
    /// `WSS_REQUIRE_REDIS` is not `1`.
    pub fn start() -> Option<Redis> {
        let installed = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !installed {
            assert!(
                std::env::var("WSS_REQUIRE_REDIS").as_deref() != Ok("1"),
                "redis-server is not installed and WSS_REQUIRE_REDIS=1"
            );
            // The harness hides eprintln! of passing tests; a skip must be seen.
            let _ = std::io::stderr().write_all(
                b"\n!!! SKIPPED: redis-server is not installed, so this wss cluster test did \
                  not run. apt-get install -y redis-server, or set WSS_REQUIRE_REDIS=1 to make \
                  this a failure. !!!\n",
            );
            return None;
        }
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        let redis = Redis { port, child };
        let deadline = Instant::now() + Duration::from_secs(5);
        while !redis.answers_ping() {
            assert!(
                Instant::now() < deadline,
                "redis-server on {port} is silent"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        Some(redis)
    }

    /// True once the server answers PING.
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

    /// Waits until Redis holds `count` present users of `node` (all topics together): a
    /// node writes its presence from a thread of its own, a little after the welcome went
    /// out, and a test that joins another node must not race that write.
    pub fn wait_present(&self, node: &str, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let keys = self.command(&["KEYS", &format!("*:p:*:{node}")]);
            let present: usize = keys
                .iter()
                .map(|key| self.command(&["HKEYS", key]).len())
                .sum();
            if present == count {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "node {node} has {present} present users in Redis, not {count}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Sends one command, returns the bulk strings of its array reply.
    fn command(&self, args: &[&str]) -> Vec<String> {
        let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).expect("redis answers");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
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
                String::from_utf8(bytes).expect("UTF-8 name")
            })
            .collect()
    }

    /// The `redis://` URL to give `wss --redis`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
