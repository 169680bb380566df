//! The publishing thread: owns this node's one command connection to Redis. It pipelines
//! every queued PUBLISH into one round trip, writes and refreshes this node's presence, and
//! answers presence queries. While Redis is unreachable it keeps serving its queue, counting
//! publishes as lost, and reconnects with backoff.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use redis::{Connection, Pipeline, Value};
use wss_server::{BrokerError, Frame, Member, Topic};

use crate::config::Backoff;
use crate::shared::{lock, Counters, Shared};

/// Work for the publishing thread.
pub(crate) enum Cmd {
    Publish(Topic, Frame),
    /// Presence changed: write it (the change itself is in `Shared::presence`).
    Presence,
    /// Who is in `topic` on the other nodes.
    Members(Topic, Sender<Result<Vec<Member>, BrokerError>>),
    /// Subscriptions changed: poke the subscriber through its control channel.
    Wake,
    Stop,
}

/// Most commands taken from the queue into one pipeline.
const MAX_PIPELINE: usize = 4096;

pub(crate) struct Publisher {
    shared: Arc<Shared>,
    rx: Receiver<Cmd>,
    client: redis::Client,
    con: Option<Connection>,
    backoff: Backoff,
    next_attempt: Instant,
    next_refresh: Instant,
    ever_connected: bool,
}

fn ttl_ms(shared: &Shared) -> u64 {
    u64::try_from(shared.config.presence_ttl.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

impl Publisher {
    pub(crate) fn new(
        shared: Arc<Shared>,
        rx: Receiver<Cmd>,
        client: redis::Client,
        con: Option<Connection>,
    ) -> Publisher {
        let backoff = Backoff::new(&shared.config);
        let ever_connected = con.is_some();
        if ever_connected {
            shared.publisher_up.store(true, Ordering::Release);
        }
        Publisher {
            shared,
            rx,
            client,
            con,
            backoff,
            next_attempt: Instant::now(),
            next_refresh: Instant::now(),
            ever_connected,
        }
    }

    fn refresh_every(&self) -> Duration {
        (self.shared.config.presence_ttl / 3).max(Duration::from_millis(10))
    }

    pub(crate) fn run(mut self) {
        loop {
            if self.con.is_none() && Instant::now() >= self.next_attempt {
                self.connect();
            }
            let wake_at = if self.con.is_some() {
                self.next_refresh
            } else {
                self.next_attempt.min(self.next_refresh)
            };
            let first = match self.rx.recv_deadline(wake_at) {
                Ok(cmd) => Some(cmd),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => Some(Cmd::Stop),
            };
            let mut batch: Vec<Cmd> = first.into_iter().collect();
            batch.extend(self.rx.try_iter().take(MAX_PIPELINE));
            if self.handle(batch) || self.shared.stopping() {
                break;
            }
            if Instant::now() >= self.next_refresh {
                self.refresh();
                self.next_refresh = Instant::now() + self.refresh_every();
            }
        }
        self.finish();
    }

    fn connect(&mut self) {
        let con = self
            .client
            .get_connection_with_timeout(self.shared.config.connect_timeout)
            .and_then(|con| {
                con.set_read_timeout(Some(self.shared.config.io_timeout))?;
                con.set_write_timeout(Some(self.shared.config.io_timeout))?;
                Ok(con)
            });
        match con {
            Ok(con) => {
                log::info!("redis: publishing connection up");
                self.con = Some(con);
                self.backoff.reset();
                if self.ever_connected {
                    Counters::add(&self.shared.counters.reconnects, 1);
                }
                self.ever_connected = true;
                self.shared.publisher_up.store(true, Ordering::Release);
                // Redis may have restarted empty: write our presence whole.
                lock(&self.shared.presence).rewrite_all();
                self.next_refresh = Instant::now();
            }
            Err(e) => {
                let wait = self.backoff.step();
                log::debug!("redis: cannot connect ({e}); next try in {wait:?}");
                self.next_attempt = Instant::now() + wait;
            }
        }
    }

    fn drop_connection(&mut self, why: &redis::RedisError) {
        if self.con.take().is_some() {
            log::warn!("redis: publishing connection lost: {why}");
        }
        self.shared.publisher_up.store(false, Ordering::Release);
        self.next_attempt = Instant::now() + self.backoff.step();
    }

    /// Runs one batch; true when told to stop.
    fn handle(&mut self, batch: Vec<Cmd>) -> bool {
        let mut pipe = redis::pipe();
        // Presence first: a node that receives a message of this batch (a chat's "joined")
        // must already find its sender's presence. The changes are in `Shared::presence`
        // since before their commands were queued.
        if self.con.is_some() {
            self.add_presence_writes(&mut pipe);
        }
        let mut publishes = 0u64;
        let mut queries = Vec::new();
        let mut stop = false;
        for cmd in batch {
            match cmd {
                Cmd::Publish(topic, frame) => {
                    let names = &self.shared.names;
                    pipe.cmd("PUBLISH")
                        .arg(names.channel(&topic))
                        .arg(names.envelope(frame.as_bytes()))
                        .ignore();
                    publishes += 1;
                }
                Cmd::Wake => {
                    pipe.cmd("PUBLISH")
                        .arg(self.shared.names.control())
                        .arg(&b""[..])
                        .ignore();
                }
                Cmd::Presence => {}
                Cmd::Members(topic, reply) => queries.push((topic, reply)),
                Cmd::Stop => stop = true,
            }
        }
        let counters = &self.shared.counters;
        match self.con.as_mut() {
            None => Counters::add(&counters.lost, publishes),
            Some(con) => match pipe.query::<()>(con) {
                Ok(()) => Counters::add(&counters.published, publishes),
                Err(e) => {
                    // Some may have gone out: never resend, count them all lost.
                    Counters::add(&counters.lost, publishes);
                    // Presence writes of this batch are redone whole after reconnecting.
                    self.drop_connection(&e);
                }
            },
        }
        for (topic, reply) in queries {
            let _ = reply.send(self.members(&topic));
        }
        stop
    }

    /// HSET/HDEL of the changed connections, whole rewrites where Redis lost our keys.
    fn add_presence_writes(&self, pipe: &mut Pipeline) {
        let names = &self.shared.names;
        let ttl = ttl_ms(&self.shared);
        let mut state = lock(&self.shared.presence);
        let rewrite: Vec<Topic> = state.rewrite.drain().collect();
        for topic in rewrite {
            state.changed.remove(&topic);
            let key = names.presence(&topic);
            pipe.cmd("DEL").arg(&key).ignore();
            if let Some(members) = state.topics.get(&topic) {
                for (conn, user) in members {
                    pipe.cmd("HSET").arg(&key).arg(*conn).arg(user).ignore();
                }
                self.add_topic_refresh(pipe, &topic, ttl);
            }
        }
        let changed: Vec<_> = state.changed.drain().collect();
        for (topic, conns) in changed {
            let key = names.presence(&topic);
            let members = state.topics.get(&topic);
            for conn in conns {
                match members.and_then(|m| m.get(&conn)) {
                    Some(user) => pipe.cmd("HSET").arg(&key).arg(conn).arg(user).ignore(),
                    None => pipe.cmd("HDEL").arg(&key).arg(conn).ignore(),
                };
            }
            if members.is_some() {
                self.add_topic_refresh(pipe, &topic, ttl);
            }
        }
    }

    fn add_topic_refresh(&self, pipe: &mut Pipeline, topic: &Topic, ttl: u64) {
        let names = &self.shared.names;
        pipe.cmd("PEXPIRE")
            .arg(names.presence(topic))
            .arg(ttl)
            .ignore();
        pipe.cmd("SADD")
            .arg(names.nodes(topic))
            .arg(names.node())
            .ignore();
        pipe.cmd("PEXPIRE")
            .arg(names.nodes(topic))
            .arg(ttl)
            .ignore();
    }

    /// Extends the life of this node's presence keys; any key Redis no longer has (restart,
    /// expiry after a stall) is written again whole on the next batch.
    fn refresh(&mut self) {
        let names = &self.shared.names;
        let topics: Vec<Topic> = lock(&self.shared.presence).topics.keys().cloned().collect();
        let Some(con) = self.con.as_mut() else {
            return;
        };
        if topics.is_empty() {
            if let Err(e) = redis::cmd("PING").query::<()>(con) {
                self.drop_connection(&e);
            }
            return;
        }
        let ttl = ttl_ms(&self.shared);
        let mut pipe = redis::pipe();
        for topic in &topics {
            pipe.cmd("PEXPIRE").arg(names.presence(topic)).arg(ttl);
            pipe.cmd("SADD")
                .arg(names.nodes(topic))
                .arg(names.node())
                .ignore();
            pipe.cmd("PEXPIRE")
                .arg(names.nodes(topic))
                .arg(ttl)
                .ignore();
        }
        match pipe.query::<Vec<i64>>(con) {
            Ok(kept) => {
                let mut state = lock(&self.shared.presence);
                for (topic, kept) in topics.into_iter().zip(kept) {
                    if kept == 0 && state.topics.contains_key(&topic) {
                        state.rewrite.insert(topic);
                    }
                }
                if state.has_work() {
                    drop(state);
                    self.handle(Vec::new());
                }
            }
            Err(e) => self.drop_connection(&e),
        }
    }

    /// The other nodes' members of `topic`: the node set, then each node's hash. Nodes whose
    /// hash has expired (crashed) are removed from the set on the way.
    fn members(&mut self, topic: &Topic) -> Result<Vec<Member>, BrokerError> {
        let names = self.shared.names.clone();
        let con = self.con.as_mut().ok_or(BrokerError::Disconnected)?;
        let result = (|| {
            let nodes: Vec<String> = redis::cmd("SMEMBERS").arg(names.nodes(topic)).query(con)?;
            let others: Vec<String> = nodes.into_iter().filter(|n| n != names.node()).collect();
            if others.is_empty() {
                return Ok(Vec::new());
            }
            let mut pipe = redis::pipe();
            for node in &others {
                pipe.cmd("HGETALL").arg(names.presence_of(topic, node));
            }
            let hashes: Vec<Vec<(String, String)>> = pipe.query(con)?;
            let mut members = Vec::new();
            let mut gone = Vec::new();
            for (node, fields) in others.into_iter().zip(hashes) {
                if fields.is_empty() {
                    gone.push(node);
                    continue;
                }
                for (conn, user) in fields {
                    if let Ok(connection) = conn.parse::<u64>() {
                        members.push(Member {
                            node: node.clone(),
                            connection,
                            user,
                        });
                    }
                }
            }
            if !gone.is_empty() {
                redis::cmd("SREM")
                    .arg(names.nodes(topic))
                    .arg(gone)
                    .query::<Value>(con)?;
            }
            Ok(members)
        })();
        result.map_err(|e: redis::RedisError| {
            if e.is_io_error() || e.is_connection_dropped() {
                self.drop_connection(&e);
            }
            if e.is_timeout() {
                BrokerError::Timeout
            } else {
                BrokerError::Backend(Box::new(e))
            }
        })
    }

    /// A clean stop removes this node's presence at once; an abandoned one leaves it to
    /// expire, as a crash would.
    fn finish(mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(con) = self.con.as_mut() {
            let names = &self.shared.names;
            let mut pipe = redis::pipe();
            // Wake the subscriber so that it sees the stop flag now.
            pipe.cmd("PUBLISH")
                .arg(names.control())
                .arg(&b""[..])
                .ignore();
            if self.shared.cleanup.load(Ordering::Acquire) {
                let topics: Vec<Topic> =
                    lock(&self.shared.presence).topics.keys().cloned().collect();
                for topic in topics {
                    pipe.cmd("DEL").arg(names.presence(&topic)).ignore();
                    pipe.cmd("SREM")
                        .arg(names.nodes(&topic))
                        .arg(names.node())
                        .ignore();
                }
            }
            if let Err(e) = pipe.query::<()>(con) {
                log::debug!("redis: final cleanup failed: {e}");
            }
        }
        self.shared.publisher_up.store(false, Ordering::Release);
    }
}
