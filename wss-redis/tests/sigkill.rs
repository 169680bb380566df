//! A real node process killed with SIGKILL: its users leave presence within the TTL and the
//! surviving node keeps serving. The node is this crate's `cluster_node` example, which
//! `cargo test` builds next to the test binaries.

mod support;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

/// `target/<profile>/examples/cluster_node`, beside this test's `deps/` folder.
fn example_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?.parent()?;
    let path = dir
        .join("examples")
        .join(format!("cluster_node{}", std::env::consts::EXE_SUFFIX));
    path.exists().then_some(path)
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_node_killed_with_sigkill_leaves_presence_within_the_ttl() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let Some(binary) = example_binary() else {
        use std::io::Write;
        let _ = std::io::stderr().write_all(
            b"\n!!! SKIPPED: the cluster_node example is not built; run the whole \
              `cargo test -p wss-redis`, which builds it. !!!\n",
        );
        return;
    };
    let ttl = Duration::from_millis(900);
    let n1 = Node::start(config(&redis, "n1").with_presence_ttl(ttl));
    let mut child = Killed(
        Command::new(binary)
            .args([&redis.url(), "n2", "0", "900"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node process starts"),
    );
    let stdout = child.0.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("readiness line");
    let addr = line
        .trim()
        .strip_prefix("listening on ws://")
        .and_then(|rest| rest.strip_suffix("/ws"))
        .expect("listening line")
        .to_owned();
    let (mut bob, _) = tungstenite::connect(format!("ws://{addr}/ws?name=Bob")).expect("connect");
    let mut ada = n1.connect();
    assert_eq!(command(&mut ada, "user:Ada"), "user:Ok(())");
    assert!(eventually(WAIT, || n1.users(None) == ["n1:Ada", "n2:Bob"]));
    bob.send(tungstenite::Message::text("hi from the other process"))
        .unwrap();
    assert_eq!(read_text(&mut ada), "hi from the other process");

    let killed = Instant::now();
    let _ = child.0.kill(); // SIGKILL on Unix
    let _ = child.0.wait();
    assert!(eventually(ttl * 3, || n1.users(None) == ["n1:Ada"]));
    assert!(
        killed.elapsed() <= ttl + Duration::from_millis(500),
        "{:?}",
        killed.elapsed()
    );
    // The survivor still serves, locally and through Redis.
    let mut cy = n1.connect();
    assert_eq!(command(&mut ada, "all:after"), "all:1");
    assert_eq!(read_text(&mut cy), "after");
}
