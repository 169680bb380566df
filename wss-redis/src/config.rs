//! [`RedisConfig`]: where Redis is, who this node is, and the timings of the fault handling.

use std::time::Duration;

/// Settings of [`RedisBroker::start`](crate::RedisBroker::start). Each field documents its
/// default; build with `RedisConfig::new(url)` and the `with_*` helpers. Its `Debug` output
/// hides the URL's password.
#[derive(Clone)]
pub struct RedisConfig {
    /// `redis://HOST:PORT[/DB]` (a password as `redis://:PASSWORD@HOST:PORT`).
    pub url: String,
    /// This node's name among the nodes sharing the Redis server: 1 to 64 bytes of visible
    /// ASCII. Two live nodes must not share one (each would drop the other's messages as its
    /// own). Default `None`: `node-` and 16 random hex digits.
    pub node_id: Option<String>,
    /// Prefix of every Redis channel and key, so several clusters can share one Redis.
    /// Default `wss`.
    pub prefix: String,
    /// How long a node's presence outlives its last refresh: a node killed without warning
    /// disappears from presence within this time. A live node refreshes every third of it.
    /// Default 15 s.
    pub presence_ttl: Duration,
    /// First wait before reconnecting after Redis went away; doubled on each failure.
    /// Default 100 ms.
    pub reconnect_min: Duration,
    /// Longest wait between reconnection attempts. Default 5 s.
    pub reconnect_max: Duration,
    /// Longest wait for a TCP connection to Redis. Default 2 s.
    pub connect_timeout: Duration,
    /// Longest wait for Redis to answer a command on the publishing connection; past it the
    /// connection is dropped and rebuilt. Default 2 s.
    pub io_timeout: Duration,
    /// Longest time a presence query waits for Redis (it runs inside a user callback).
    /// Default 500 ms.
    pub query_timeout: Duration,
    /// Commands (publishes, presence changes) queued for the publishing thread; past it a
    /// publish is dropped and counted lost, so a stalled Redis never grows memory.
    /// Default 65 536.
    pub queue_capacity: usize,
    /// `false` (default): [`RedisBroker::start`](crate::RedisBroker::start) fails with
    /// [`StartError::Unreachable`](crate::StartError::Unreachable) when Redis cannot be
    /// reached at start, so a wrong address is seen at once. `true`: start anyway, serve
    /// locally and keep trying in the background.
    pub wait_for_redis: bool,
}

impl RedisConfig {
    /// The defaults, with Redis at `url`.
    pub fn new(url: impl Into<String>) -> RedisConfig {
        RedisConfig {
            url: url.into(),
            node_id: None,
            prefix: "wss".into(),
            presence_ttl: Duration::from_secs(15),
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            io_timeout: Duration::from_secs(2),
            query_timeout: Duration::from_millis(500),
            queue_capacity: 65_536,
            wait_for_redis: false,
        }
    }

    /// Names this node.
    pub fn with_node_id(mut self, id: impl Into<String>) -> Self {
        self.node_id = Some(id.into());
        self
    }

    /// Sets the channel and key prefix.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets the presence time-to-live.
    pub fn with_presence_ttl(mut self, ttl: Duration) -> Self {
        self.presence_ttl = ttl;
        self
    }

    /// Sets the reconnection backoff bounds.
    pub fn with_reconnect(mut self, min: Duration, max: Duration) -> Self {
        self.reconnect_min = min;
        self.reconnect_max = max;
        self
    }

    /// Starts even when Redis is down, retrying in the background.
    pub fn with_wait_for_redis(mut self, wait: bool) -> Self {
        self.wait_for_redis = wait;
        self
    }
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &redacted(&self.url))
            .field("node_id", &self.node_id)
            .field("prefix", &self.prefix)
            .field("presence_ttl", &self.presence_ttl)
            .field("reconnect_min", &self.reconnect_min)
            .field("reconnect_max", &self.reconnect_max)
            .field("connect_timeout", &self.connect_timeout)
            .field("io_timeout", &self.io_timeout)
            .field("query_timeout", &self.query_timeout)
            .field("queue_capacity", &self.queue_capacity)
            .field("wait_for_redis", &self.wait_for_redis)
            .finish()
    }
}

/// `url` fit for logs and error messages: the password of its user part
/// (`redis://user:PASSWORD@host`, `redis://:PASSWORD@host`) and any `pass` or `password`
/// query parameter (`redis+unix:///path?pass=PASSWORD`) replaced with `***`.
pub(crate) fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        // Not a URL: it cannot be told which part is secret.
        return "***".to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        None => tail.to_owned(),
        Some((path, query)) => {
            let (query, fragment) = match query.split_once('#') {
                Some((q, f)) => (q, Some(f)),
                None => (query, None),
            };
            let params: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) if key == "pass" || key == "password" => format!("{key}=***"),
                    _ => pair.to_owned(),
                })
                .collect();
            let mut out = format!("{path}?{}", params.join("&"));
            if let Some(f) = fragment {
                out.push('#');
                out.push_str(f);
            }
            out
        }
    };
    format!("{scheme}://{authority}{tail}")
}

/// Doubling waits between `min` and `max`.
#[derive(Debug)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub(crate) fn new(config: &RedisConfig) -> Backoff {
        let min = config.reconnect_min.max(Duration::from_millis(1));
        Backoff {
            min,
            max: config.reconnect_max.max(min),
            next: min,
        }
    }

    /// The wait before the next attempt; doubles the one after.
    pub(crate) fn step(&mut self) -> Duration {
        let now = self.next;
        self.next = (self.next * 2).min(self.max);
        now
    }

    pub(crate) fn reset(&mut self) {
        self.next = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacting_hides_passwords_and_keeps_the_rest() {
        let cases = [
            ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
            (
                "redis://:s3cret@10.0.0.1:6379/2",
                "redis://:***@10.0.0.1:6379/2",
            ),
            (
                "rediss://app:p@ss:w@rd@cache:6380",
                "rediss://app:***@cache:6380",
            ),
            ("redis://app@cache", "redis://app@cache"),
            (
                "redis+unix:///run/redis.sock?db=1&pass=s3cret",
                "redis+unix:///run/redis.sock?db=1&pass=***",
            ),
            (
                "unix:///sock?password=s3cret#x",
                "unix:///sock?password=***#x",
            ),
            ("not a url with s3cret", "***"),
        ];
        for (url, shown) in cases {
            assert_eq!(redacted(url), shown, "{url}");
        }
        let config = RedisConfig::new("redis://:s3cret@h:1");
        assert!(!format!("{config:?}").contains("s3cret"));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_resets() {
        let config = RedisConfig::new("redis://x")
            .with_reconnect(Duration::from_millis(100), Duration::from_millis(350));
        let mut b = Backoff::new(&config);
        let steps: Vec<u128> = (0..4).map(|_| b.step().as_millis()).collect();
        assert_eq!(steps, [100, 200, 350, 350]);
        b.reset();
        assert_eq!(b.step(), Duration::from_millis(100));
    }
}
