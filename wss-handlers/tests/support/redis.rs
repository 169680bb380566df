//! The cluster tests' `redis-server`: the testkit's (free loopback port, loud skip unless
//! `WSS_REQUIRE_REDIS=1`), and what these tests ask of it beyond that.

use std::time::{Duration, Instant};

#[allow(unused_imports)]
pub use testkit::redis::free_port;
pub use testkit::RedisServer as Redis;

/// What the wss cluster tests look up in Redis by hand.
pub trait Presence {
    /// Waits until Redis holds `count` present users of `node` (all topics together): a
    /// node writes its presence from a thread of its own, a little after the welcome went
    /// out, and a test that joins another node must not race that write.
    fn wait_present(&self, node: &str, count: usize);
}

impl Presence for Redis {
    fn wait_present(&self, node: &str, count: usize) {
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
}
