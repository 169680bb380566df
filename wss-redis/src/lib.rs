#![doc = include_str!("../README.md")]
//!
//! # One publishing and one subscribing connection per node
//!
//! Whatever the number of WebSocket connections, a node holds two Redis connections, each on
//! its own thread: one pipelines every PUBLISH queued since its last round trip and keeps the
//! node's presence; the other is subscribed to the topics that have local subscribers. A
//! message is framed once on the node that sends it, published once, received once by every
//! other node (never by its own: the envelope names the origin) and handed as one shared
//! buffer to all the receivers there.
//!
//! # Guarantees
//!
//! - **At most once across nodes.** Nothing is ever published twice or replayed: a message
//!   sent while Redis is unreachable is dropped and counted in [`Stats::lost`]; a node whose
//!   subscription is being rebuilt misses what is published meanwhile. Delivery on the
//!   sender's own node does not depend on Redis and never stops.
//! - **Bounded.** Publishes wait in a queue of [`RedisConfig::queue_capacity`] commands;
//!   past it they are dropped and counted lost. Received messages go straight to each
//!   connection's bounded outgoing queue (`WebServerOptions::max_outgoing`); a client too slow
//!   to keep up is dropped, not buffered for. Redis itself cuts a subscriber that falls too far
//!   behind (`client-output-buffer-limit pubsub`); the node then reconnects.
//! - **Presence expires.** A node's presence lives in keys with a TTL
//!   ([`RedisConfig::presence_ttl`]) that the node refreshes every third of it; a node killed
//!   without warning disappears from presence within the TTL. A node that stops cleanly
//!   removes its presence at once. After a Redis restart each node writes its presence again.
//! - **Redis down at start** is an error ([`StartError::Unreachable`]) unless
//!   [`RedisConfig::wait_for_redis`] is set, so a wrong address is noticed at once.
//!
#![warn(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod config;
mod lag;
mod publisher;
mod shared;
mod subscriber;
mod wire;

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::{Sender, TrySendError};
use wss_server::{Broker, BrokerError, BrokerStats, Frame, Inbox, Member, Topic};

use config::redacted;
pub use config::RedisConfig;
use lag::Lag;
pub use shared::Stats;

use publisher::{Cmd, Publisher};
use shared::{lock, Counters, PresenceState, Shared};
use wire::{valid_node_id, Names};

/// Why [`RedisBroker::start`] failed. Its `Display` and `Debug` output hide the URL's
/// password.
#[non_exhaustive]
pub enum StartError {
    /// The URL is not a Redis URL.
    InvalidUrl(redis::RedisError),
    /// The node id is empty, longer than 64 bytes or not visible ASCII.
    InvalidNodeId(String),
    /// Redis could not be reached (and [`RedisConfig::wait_for_redis`] is off).
    Unreachable {
        /// The URL tried, as given (password included: redact it before showing it).
        url: String,
        /// What failed.
        source: redis::RedisError,
    },
    /// A thread could not be spawned.
    Spawn(std::io::Error),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::InvalidUrl(e) => write!(f, "invalid Redis URL: {e}"),
            StartError::InvalidNodeId(id) => write!(
                f,
                "invalid node id {id:?}: 1 to 64 visible ASCII characters"
            ),
            StartError::Unreachable { url, source } => {
                write!(f, "cannot reach Redis at {}: {source}", redacted(url))
            }
            StartError::Spawn(e) => write!(f, "cannot spawn a broker thread: {e}"),
        }
    }
}

impl fmt::Debug for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::InvalidUrl(e) => f.debug_tuple("InvalidUrl").field(e).finish(),
            StartError::InvalidNodeId(id) => f.debug_tuple("InvalidNodeId").field(id).finish(),
            StartError::Unreachable { url, source } => f
                .debug_struct("Unreachable")
                .field("url", &redacted(url))
                .field("source", source)
                .finish(),
            StartError::Spawn(e) => f.debug_tuple("Spawn").field(e).finish(),
        }
    }
}

// The cause is part of the Display text and stays reachable as the variant's field, so
// source() returns None: a report that walks the chain (anyhow's `{:#}`) prints it once.
impl std::error::Error for StartError {}

/// A node's link to Redis. Give it to `WebServerOptions::with_broker`; dropping the last
/// handle (with the web server) stops its threads and removes the node's presence.
pub struct RedisBroker {
    shared: Arc<Shared>,
    tx: Sender<Cmd>,
    stopped: AtomicBool,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

fn random_node_id() -> String {
    let mut bytes = [0u8; 8];
    if getrandom::getrandom(&mut bytes).is_err() {
        // No entropy source: the process id still tells nodes on one host apart.
        bytes = u64::from(std::process::id()).to_be_bytes();
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("node-{hex}")
}

impl RedisBroker {
    /// Connects to Redis and starts the node's two threads. Fails at once on a bad URL or
    /// node id, and when Redis is unreachable unless `config.wait_for_redis` is set (then it
    /// serves locally and connects in the background).
    pub fn start(config: RedisConfig) -> Result<RedisBroker, StartError> {
        let node = config.node_id.clone().unwrap_or_else(random_node_id);
        if !valid_node_id(&node) {
            return Err(StartError::InvalidNodeId(node));
        }
        let client = redis::Client::open(config.url.as_str()).map_err(StartError::InvalidUrl)?;
        let first = client.get_connection_with_timeout(config.connect_timeout);
        let con = match first {
            Ok(con) => {
                let timeout = Some(config.io_timeout);
                con.set_read_timeout(timeout)
                    .and_then(|()| con.set_write_timeout(timeout))
                    .map_err(|source| StartError::Unreachable {
                        url: config.url.clone(),
                        source,
                    })?;
                Some(con)
            }
            Err(source) if !config.wait_for_redis => {
                return Err(StartError::Unreachable {
                    url: config.url.clone(),
                    source,
                })
            }
            Err(e) => {
                log::warn!(
                    "redis: {} unreachable ({e}); retrying in the background",
                    redacted(&config.url)
                );
                None
            }
        };
        let (tx, rx) = crossbeam_channel::bounded(config.queue_capacity.max(1));
        let shared = Arc::new(Shared {
            names: Names::new(&config.prefix, &node),
            config,
            counters: Counters::default(),
            subs: Mutex::default(),
            subs_dirty: AtomicBool::new(true),
            presence: Mutex::new(PresenceState::default()),
            stop: AtomicBool::new(false),
            cleanup: AtomicBool::new(true),
            publisher_up: AtomicBool::new(false),
            subscriber_up: AtomicBool::new(false),
            lag: Lag::default(),
        });
        let publisher = Publisher::new(shared.clone(), rx, client.clone(), con);
        let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(format!("wss-redis-{name}"))
                .spawn(f)
                .map_err(StartError::Spawn)
        };
        let p = spawn("pub", Box::new(move || publisher.run()))?;
        let sub_shared = shared.clone();
        let s = match spawn("sub", Box::new(move || subscriber::run(sub_shared, client))) {
            Ok(s) => s,
            Err(e) => {
                shared.stop.store(true, Ordering::Release);
                let _ = tx.send(Cmd::Stop);
                return Err(e);
            }
        };
        Ok(RedisBroker {
            shared,
            tx,
            stopped: AtomicBool::new(false),
            threads: Mutex::new(vec![p, s]),
        })
    }

    /// What this node has counted so far.
    pub fn stats(&self) -> Stats {
        self.shared.counters.snapshot()
    }

    /// True while both connections are up and the subscriptions match the local topics:
    /// messages published by other nodes now reach this one.
    pub fn is_connected(&self) -> bool {
        self.shared.publisher_up.load(Ordering::Acquire)
            && self.shared.subscriber_up.load(Ordering::Acquire)
            && !self.shared.subs_dirty.load(Ordering::Acquire)
    }

    /// Waits until [`is_connected`](Self::is_connected), at most `timeout`.
    pub fn wait_connected(&self, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        while !self.is_connected() {
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }

    /// Stops both threads and removes this node's presence from Redis; waits for the threads
    /// (bounded by the I/O timeouts). Later calls do nothing.
    pub fn shutdown(&self) {
        self.stop(true);
    }

    /// Stops talking to Redis at once WITHOUT removing this node's presence, as a crash would:
    /// the other nodes see its users until the presence TTL runs out. For failover drills and
    /// tests.
    pub fn abandon(&self) {
        self.stop(false);
    }

    fn stop(&self, cleanup: bool) {
        if self.stopped.swap(true, Ordering::AcqRel) {
            return;
        }
        self.shared.cleanup.store(cleanup, Ordering::Release);
        if !cleanup {
            // Stop before anything more is written.
            self.shared.stop.store(true, Ordering::Release);
        }
        // Blocks only while the queue is full, which the running publisher drains.
        let _ = self
            .tx
            .send_timeout(Cmd::Stop, self.shared.config.io_timeout);
        self.shared.stop.store(true, Ordering::Release);
        let threads = std::mem::take(&mut *lock(&self.threads));
        for t in threads {
            let _ = t.join();
        }
    }

    fn enqueue(&self, cmd: Cmd) {
        match self.tx.try_send(cmd) {
            Ok(()) => {}
            Err(TrySendError::Full(Cmd::Publish(..))) => {
                Counters::add(&self.shared.counters.lost, 1);
            }
            // A full queue still gets to the presence and subscription changes, which live
            // in `Shared`; a stopped broker has nobody to tell.
            Err(_) => {}
        }
    }
}

impl Drop for RedisBroker {
    fn drop(&mut self) {
        self.stop(true);
    }
}

impl fmt::Debug for RedisBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBroker")
            .field("node", &self.shared.names.node())
            .field("url", &redacted(&self.shared.config.url))
            .field("connected", &self.is_connected())
            .finish()
    }
}

impl Broker for RedisBroker {
    fn node_id(&self) -> &str {
        self.shared.names.node()
    }

    fn subscribe(&self, topic: &Topic, inbox: &Inbox) {
        let channel = self.shared.names.channel(topic);
        lock(&self.shared.subs).insert(channel, (topic.clone(), inbox.clone()));
        self.shared.subs_dirty.store(true, Ordering::Release);
        self.enqueue(Cmd::Wake);
    }

    fn unsubscribe(&self, topic: &Topic, inbox: &Inbox) {
        let channel = self.shared.names.channel(topic);
        let mut subs = lock(&self.shared.subs);
        if subs.get(&channel).is_some_and(|(_, i)| i.same(inbox)) {
            subs.remove(&channel);
            drop(subs);
            self.shared.subs_dirty.store(true, Ordering::Release);
            self.enqueue(Cmd::Wake);
        }
    }

    fn publish(&self, topic: &Topic, frame: &Frame) {
        self.shared.lag.on_publish(frame.as_bytes());
        self.enqueue(Cmd::Publish(topic.clone(), frame.clone()));
    }

    fn join(&self, topic: &Topic, connection: u64, user: &str) {
        lock(&self.shared.presence).join(topic, connection, user);
        self.enqueue(Cmd::Presence);
    }

    fn leave(&self, topic: &Topic, connection: u64) {
        lock(&self.shared.presence).leave(topic, connection);
        self.enqueue(Cmd::Presence);
    }

    fn remote_members(&self, topic: &Topic) -> Result<Vec<Member>, BrokerError> {
        if !self.shared.publisher_up.load(Ordering::Acquire) {
            return Err(BrokerError::Disconnected);
        }
        let (reply, answer) = crossbeam_channel::bounded(1);
        let timeout = self.shared.config.query_timeout;
        self.tx
            .send_timeout(Cmd::Members(topic.clone(), reply), timeout)
            .map_err(|_| BrokerError::Timeout)?;
        answer
            .recv_timeout(timeout)
            .map_err(|_| BrokerError::Timeout)?
    }

    /// The counters of [`RedisBroker::stats`] and whether both connections to Redis are up,
    /// for metrics and `/readyz`. (Not [`RedisBroker::is_connected`]: it also waits for
    /// subscription changes to settle, which would flap readiness on every new room.)
    fn stats(&self) -> Option<BrokerStats> {
        let s = RedisBroker::stats(self);
        let up = self.shared.publisher_up.load(Ordering::Acquire)
            && self.shared.subscriber_up.load(Ordering::Acquire);
        Some(
            BrokerStats::new(
                up,
                s.published,
                s.received,
                s.delivered,
                s.lost,
                s.reconnects,
            )
            .with_lag(self.shared.lag.snapshot()),
        )
    }
}
