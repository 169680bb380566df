//! The subscribing thread: owns this node's one pub/sub connection. It keeps the Redis
//! subscriptions equal to the topics that have local subscribers, drops its own node's
//! messages, checks each received frame once and hands it to the topic's inbox. When the
//! connection breaks it reconnects with backoff and subscribes again; what was published
//! meanwhile is not replayed (Redis pub/sub keeps nothing), so nothing arrives twice.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::{PubSub, RedisError};
use wss_server::Frame;

use crate::config::Backoff;
use crate::shared::{lock, Counters, Shared};
use crate::wire::open_envelope;

/// How often a quiet subscriber looks at its stop flag and subscription changes even when
/// no wake-up arrives on its control channel.
const TICK: Duration = Duration::from_millis(250);

pub(crate) fn run(shared: Arc<Shared>, client: redis::Client) {
    let mut backoff = Backoff::new(&shared.config);
    let mut ever_connected = false;
    while !shared.stopping() {
        let con = client
            .get_connection_with_timeout(shared.config.connect_timeout)
            .and_then(|c| {
                c.set_write_timeout(Some(shared.config.io_timeout))?;
                Ok(c)
            });
        let mut con = match con {
            Ok(con) => con,
            Err(e) => {
                let wait = backoff.step();
                log::debug!("redis: subscriber cannot connect ({e}); next try in {wait:?}");
                sleep_unless_stopped(&shared, wait);
                continue;
            }
        };
        backoff.reset();
        if ever_connected {
            Counters::add(&shared.counters.reconnects, 1);
        }
        ever_connected = true;
        let mut pubsub = con.as_pubsub();
        match serve(&shared, &mut pubsub) {
            Ok(()) => break,
            Err(e) => {
                shared.subscriber_up.store(false, Ordering::Release);
                log::warn!("redis: subscribing connection lost: {e}");
                sleep_unless_stopped(&shared, backoff.step());
            }
        }
    }
    shared.subscriber_up.store(false, Ordering::Release);
}

fn sleep_unless_stopped(shared: &Shared, wait: Duration) {
    let until = Instant::now() + wait;
    while !shared.stopping() {
        let now = Instant::now();
        if now >= until {
            return;
        }
        std::thread::sleep((until - now).min(Duration::from_millis(50)));
    }
}

/// Serves one connection until it fails (`Err`) or the broker stops (`Ok`).
fn serve(shared: &Shared, pubsub: &mut PubSub<'_>) -> Result<(), RedisError> {
    let control = shared.names.control();
    pubsub.subscribe(&control[..])?;
    pubsub.set_read_timeout(Some(TICK))?;
    let mut active: HashSet<Vec<u8>> = HashSet::new();
    shared.subs_dirty.store(true, Ordering::Release);
    loop {
        if shared.stopping() {
            return Ok(());
        }
        if shared.subs_dirty.swap(false, Ordering::AcqRel) {
            sync_subscriptions(shared, pubsub, &mut active)?;
            shared.subscriber_up.store(true, Ordering::Release);
        }
        let msg = match pubsub.get_message() {
            Ok(msg) => msg,
            Err(e) if e.is_timeout() => continue,
            Err(e) => return Err(e),
        };
        let channel: Vec<u8> = msg.get_channel()?;
        if channel == control {
            continue;
        }
        receive(shared, &channel, msg.get_payload_bytes());
    }
}

/// SUBSCRIBE what is wanted and not active, UNSUBSCRIBE the reverse.
fn sync_subscriptions(
    shared: &Shared,
    pubsub: &mut PubSub<'_>,
    active: &mut HashSet<Vec<u8>>,
) -> Result<(), RedisError> {
    let wanted: HashSet<Vec<u8>> = lock(&shared.subs).keys().cloned().collect();
    let add: Vec<&[u8]> = wanted.difference(active).map(Vec::as_slice).collect();
    if !add.is_empty() {
        pubsub.subscribe(&add)?;
    }
    let remove: Vec<&[u8]> = active.difference(&wanted).map(Vec::as_slice).collect();
    if !remove.is_empty() {
        pubsub.unsubscribe(&remove)?;
    }
    *active = wanted;
    Ok(())
}

fn receive(shared: &Shared, channel: &[u8], payload: &[u8]) {
    let counters = &shared.counters;
    let (origin, frame) = match open_envelope(payload) {
        Ok(parts) => parts,
        Err(e) => {
            log::debug!("redis: ignored a payload on our channel: {e:?}");
            Counters::add(&counters.invalid, 1);
            return;
        }
    };
    shared.lag.expire();
    if origin == shared.names.node().as_bytes() {
        Counters::add(&counters.own_skipped, 1);
        shared.lag.on_own_echo(frame);
        return;
    }
    let frame = match Frame::from_wire(frame) {
        Ok(f) => f,
        Err(e) => {
            log::warn!("redis: dropped a message that is not a valid frame: {e}");
            Counters::add(&counters.invalid, 1);
            return;
        }
    };
    Counters::add(&counters.received, 1);
    let target = lock(&shared.subs).get(channel).cloned();
    if let Some((topic, inbox)) = target {
        let n = inbox.deliver(&topic, &frame);
        Counters::add(&counters.delivered, n as u64);
    }
}
