//! State shared by the broker handle and its two threads, and the counters it reports.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use wss_server::{Inbox, Topic};

use crate::config::RedisConfig;
use crate::lag::Lag;
use crate::wire::Names;

/// What a node has counted since it started. Every field only grows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Messages sent to Redis (PUBLISH answered).
    pub published: u64,
    /// Messages of this node that were dropped instead of published: Redis down or
    /// reconnecting, the queue full, or a PUBLISH batch that failed (some of those may have
    /// reached Redis: the count is an upper bound; none is ever sent twice).
    pub lost: u64,
    /// Messages received from other nodes.
    pub received: u64,
    /// Local deliveries of received messages (one per receiving connection).
    pub delivered: u64,
    /// Messages of this node that Redis echoed back and that were dropped as such.
    pub own_skipped: u64,
    /// Received payloads that were not a valid envelope and frame (dropped).
    pub invalid: u64,
    /// Successful connections to Redis after the first, publishing and subscribing
    /// connections together.
    pub reconnects: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) published: AtomicU64,
    pub(crate) lost: AtomicU64,
    pub(crate) received: AtomicU64,
    pub(crate) delivered: AtomicU64,
    pub(crate) own_skipped: AtomicU64,
    pub(crate) invalid: AtomicU64,
    pub(crate) reconnects: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Stats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            published: get(&self.published),
            lost: get(&self.lost),
            received: get(&self.received),
            delivered: get(&self.delivered),
            own_skipped: get(&self.own_skipped),
            invalid: get(&self.invalid),
            reconnects: get(&self.reconnects),
        }
    }
}

/// This node's presence as it should be in Redis, and what Redis has not been told yet.
#[derive(Debug, Default)]
pub(crate) struct PresenceState {
    /// Topic -> connection id -> user: the truth, kept in memory so that it can be written
    /// again whenever Redis lost it (restart, expiry after a stall).
    pub(crate) topics: HashMap<Topic, BTreeMap<u64, String>>,
    /// Connections whose presence changed in a topic since the last write.
    pub(crate) changed: HashMap<Topic, BTreeSet<u64>>,
    /// Topics to write whole (after a (re)connection or an expiry).
    pub(crate) rewrite: HashSet<Topic>,
}

impl PresenceState {
    pub(crate) fn join(&mut self, topic: &Topic, conn: u64, user: &str) {
        self.topics
            .entry(topic.clone())
            .or_default()
            .insert(conn, user.to_owned());
        self.changed.entry(topic.clone()).or_default().insert(conn);
    }

    pub(crate) fn leave(&mut self, topic: &Topic, conn: u64) {
        let Some(members) = self.topics.get_mut(topic) else {
            return;
        };
        if members.remove(&conn).is_none() {
            return;
        }
        if members.is_empty() {
            self.topics.remove(topic);
        }
        self.changed.entry(topic.clone()).or_default().insert(conn);
    }

    pub(crate) fn rewrite_all(&mut self) {
        self.changed.clear();
        self.rewrite = self.topics.keys().cloned().collect();
    }

    pub(crate) fn has_work(&self) -> bool {
        !self.changed.is_empty() || !self.rewrite.is_empty()
    }
}

pub(crate) struct Shared {
    pub(crate) config: RedisConfig,
    pub(crate) names: Names,
    pub(crate) counters: Counters,
    /// Channel -> (topic, inbox): what the subscriber should be subscribed to.
    pub(crate) subs: Mutex<HashMap<Vec<u8>, (Topic, Inbox)>>,
    /// `subs` changed since the subscriber last looked.
    pub(crate) subs_dirty: AtomicBool,
    pub(crate) presence: Mutex<PresenceState>,
    pub(crate) stop: AtomicBool,
    /// On stop, remove this node's presence from Redis (false: vanish as a crash would).
    pub(crate) cleanup: AtomicBool,
    pub(crate) publisher_up: AtomicBool,
    pub(crate) subscriber_up: AtomicBool,
    /// The publish-to-delivery lag, probed on this node's own messages.
    pub(crate) lag: Lag,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub(crate) fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presence_state_tracks_changes_and_forgets_empty_topics() {
        let t = Topic::server(Some("/ws"));
        let mut p = PresenceState::default();
        p.join(&t, 1, "Ada");
        p.join(&t, 2, "Bob");
        assert_eq!(p.changed[&t].len(), 2);
        p.changed.clear();
        p.leave(&t, 1);
        p.leave(&t, 1);
        p.leave(&t, 9);
        assert_eq!(p.changed[&t].iter().copied().collect::<Vec<_>>(), [1]);
        p.leave(&t, 2);
        assert!(p.topics.is_empty());
        p.join(&t, 3, "Cy");
        p.rewrite_all();
        assert!(p.changed.is_empty());
        assert!(p.rewrite.contains(&t));
        assert!(p.has_work());
    }
}
