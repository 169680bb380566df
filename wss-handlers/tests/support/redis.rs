//! A private `redis-server` for the cluster tests, on a free loopback port.

use std::io::{Read, Write};
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
