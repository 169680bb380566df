//! The [`Broker`] seam: how broadcasts and presence reach the other nodes of a cluster.
//!
//! A node is one [`WebServer`](crate::WebServer). Every `WebSocketServer` on it publishes
//! through the broker given in [`WebServerOptions::broker`](crate::WebServerOptions::broker):
//! [`LocalBroker`] by default, which has no other node to talk to and costs nothing (no
//! thread, no copy, an empty call); `wss-redis` provides one that shares topics and presence
//! through Redis.
//!
//! # Topics
//!
//! A [`Topic`] is named by the server's path (the same on every node) and, optionally, a room.
//! [`WebSocketServer::broadcast`](crate::WebSocketServer::broadcast) publishes to the server's
//! own topic, which every connection of the server receives;
//! [`WebSocketServer::publish`](crate::WebSocketServer::publish) publishes to a room, which
//! only the connections that [subscribed](crate::WebSocketConnection::subscribe) to it receive.
//!
//! # What the server does, what the broker does
//!
//! The server delivers to its own connections first, framing the message once, then hands the
//! same [`Frame`] to [`Broker::publish`]. A broker sends it to the other nodes and never back to
//! this one; on another node it checks the bytes once ([`Frame::from_wire`]) and gives the frame
//! to the [`Inbox`] registered for the topic, which queues the same buffer for every local
//! subscriber.

use std::fmt;
use std::sync::Weak;

use crate::frame::Frame;
use crate::server::ServerInner;

/// Where a message goes: a WebSocket server, known by its path on every node, and optionally
/// one of its rooms.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Topic {
    /// The server's path, or `*` for the catch-all server.
    pub server: String,
    /// `None`: every connection of the server; `Some(room)`: the room's subscribers.
    pub room: Option<String>,
}

impl Topic {
    /// The topic of every connection of the server at `path` (`None`: the catch-all).
    pub fn server(path: Option<&str>) -> Topic {
        Topic {
            server: path.unwrap_or("*").to_owned(),
            room: None,
        }
    }

    /// A room of the server at `path`.
    pub fn room(path: Option<&str>, room: impl Into<String>) -> Topic {
        Topic {
            server: path.unwrap_or("*").to_owned(),
            room: Some(room.into()),
        }
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.room {
            None => f.write_str(&self.server),
            Some(room) => write!(f, "{} [{room}]", self.server),
        }
    }
}

/// A user present in a topic, on some node.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Member {
    /// The node the user is connected to ([`Broker::node_id`] there).
    pub node: String,
    /// The connection's id on that node (ids are only unique per node).
    pub connection: u64,
    /// The name given with [`set_user`](crate::WebSocketConnection::set_user).
    pub user: String,
}

/// Who is in a topic, across nodes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Presence {
    /// Sorted by node, then connection id.
    pub members: Vec<Member>,
    /// False when the other nodes' members could not be read (the broker is cut off from its
    /// backend): `members` then lists this node's only.
    pub complete: bool,
}

/// Why a broker could not answer.
#[derive(Debug)]
#[non_exhaustive]
pub enum BrokerError {
    /// Not connected to the backend now (it is down or being reconnected).
    Disconnected,
    /// The backend did not answer in time.
    Timeout,
    /// The backend answered with an error or something unreadable.
    Backend(Box<dyn std::error::Error + Send + Sync>),
}

impl fmt::Display for BrokerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BrokerError::Disconnected => f.write_str("broker is not connected to its backend"),
            BrokerError::Timeout => f.write_str("broker backend did not answer in time"),
            BrokerError::Backend(e) => write!(f, "broker backend error: {e}"),
        }
    }
}

// The cause is part of the Display text and stays reachable as the variant's field, so
// source() returns None: a report that walks the chain (anyhow's `{:#}`) prints it once.
impl std::error::Error for BrokerError {}

/// Hands messages from other nodes to the local subscribers of one server. Given to
/// [`Broker::subscribe`]; cheap to clone; holds the server weakly, so a broker keeping it
/// does not keep a terminated server alive.
#[derive(Clone)]
pub struct Inbox {
    server: Weak<ServerInner>,
}

impl Inbox {
    pub(crate) fn from_weak(server: Weak<ServerInner>) -> Inbox {
        Inbox { server }
    }

    /// Queues `frame` for every `Connected` local subscriber of `topic`, sharing one buffer;
    /// returns how many. Never blocks on a slow client: each connection's outgoing queue is
    /// bounded by `WebServerOptions::max_outgoing` and a connection past it is dropped.
    pub fn deliver(&self, topic: &Topic, frame: &Frame) -> usize {
        match self.server.upgrade() {
            Some(server) => server.deliver_local(topic.room.as_deref(), frame, None),
            None => 0,
        }
    }

    /// False once the server is gone.
    pub fn is_live(&self) -> bool {
        self.server.strong_count() > 0
    }

    /// True when both feed the same server: a broker uses it so that a late `unsubscribe`
    /// of a terminated server does not cancel a newer server's subscription to its path.
    pub fn same(&self, other: &Inbox) -> bool {
        Weak::ptr_eq(&self.server, &other.server)
    }
}

impl fmt::Debug for Inbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inbox")
            .field("live", &self.is_live())
            .finish()
    }
}

/// Shares topics and presence with the other nodes of a cluster.
///
/// Every method is called from the servers' worker threads, often inside a user callback, so
/// none may block on the network: queue the work and return. The exception is
/// [`remote_members`](Self::remote_members), which answers a question and may wait, boundedly.
pub trait Broker: Send + Sync + fmt::Debug + 'static {
    /// This node's name among the nodes sharing the backend; reported in [`Member::node`].
    fn node_id(&self) -> &str;

    /// This node now has local subscribers to `topic`: deliver what other nodes publish there
    /// to `inbox`, until [`unsubscribe`](Self::unsubscribe) with the same inbox. A server's
    /// own topic is subscribed while the server runs; a room while it has a local subscriber.
    fn subscribe(&self, topic: &Topic, inbox: &Inbox);

    /// This node has no local subscriber to `topic` left (ignored unless `inbox` is the one
    /// subscribed, see [`Inbox::same`]).
    fn unsubscribe(&self, topic: &Topic, inbox: &Inbox);

    /// Sends `frame`, already delivered on this node, to the subscribers of `topic` on the
    /// other nodes. Must not come back to this node.
    fn publish(&self, topic: &Topic, frame: &Frame);

    /// Connection `connection` of this node is present in `topic` as `user` (replaces what it
    /// was before).
    fn join(&self, topic: &Topic, connection: u64, user: &str);

    /// Connection `connection` of this node is no longer present in `topic`.
    fn leave(&self, topic: &Topic, connection: u64);

    /// Who is present in `topic` on the OTHER nodes. May wait for the backend, boundedly.
    fn remote_members(&self, topic: &Topic) -> Result<Vec<Member>, BrokerError>;

    /// Counters and link state for metrics and readiness (`/readyz` answers 503 while
    /// [`BrokerStats::up`] is false). Called from the metrics thread: must be cheap and must
    /// not block. Default `None`: a broker with nothing to report (the in-process one).
    fn stats(&self) -> Option<BrokerStats> {
        None
    }
}

/// Upper bounds, in seconds, of the buckets of [`BrokerLag`] (the last bucket, `+Inf`, is
/// implied): from half a millisecond (Redis on the same host) to 5 s (a stalled backend).
pub const BROKER_LAG_BUCKETS: [f64; 13] = [
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// A histogram of the time from a publish to its delivery through the backend, over the
/// bounds of [`BROKER_LAG_BUCKETS`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct BrokerLag {
    /// Publishes measured.
    pub count: u64,
    /// Their total lag, in seconds.
    pub sum_seconds: f64,
    /// Publishes whose lag was at most each bound, then all of them (`+Inf`).
    pub cumulative: [u64; BROKER_LAG_BUCKETS.len() + 1],
}

/// What a [`Broker`] that talks to a backend reports about it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct BrokerStats {
    /// The link to the backend is up now (publishing and subscribed).
    pub up: bool,
    /// Messages of this node handed to the backend, since start.
    pub published: u64,
    /// Messages from other nodes received, since start.
    pub received: u64,
    /// Local deliveries of received messages (one per receiving connection), since start.
    pub delivered: u64,
    /// Messages of this node dropped instead of published (backend down, queue full).
    pub lost: u64,
    /// Reconnections to the backend after the first connection, since start.
    pub reconnects: u64,
    /// The publish-to-delivery lag, when the broker measures it.
    pub lag: Option<BrokerLag>,
}

impl BrokerStats {
    /// Stats with the given link state and counters.
    pub fn new(
        up: bool,
        published: u64,
        received: u64,
        delivered: u64,
        lost: u64,
        reconnects: u64,
    ) -> BrokerStats {
        BrokerStats {
            up,
            published,
            received,
            delivered,
            lost,
            reconnects,
            lag: None,
        }
    }

    /// The same, with the publish-to-delivery lag.
    #[must_use]
    pub fn with_lag(mut self, lag: BrokerLag) -> BrokerStats {
        self.lag = Some(lag);
        self
    }
}

/// The default broker: one node, nothing to share. Every call returns at once and does
/// nothing, so a server that never scales out pays one empty call per broadcast.
#[derive(Clone, Copy, Debug, Default)]
pub struct LocalBroker;

impl Broker for LocalBroker {
    fn node_id(&self) -> &str {
        "local"
    }

    fn subscribe(&self, _: &Topic, _: &Inbox) {}

    fn unsubscribe(&self, _: &Topic, _: &Inbox) {}

    fn publish(&self, _: &Topic, _: &Frame) {}

    fn join(&self, _: &Topic, _: u64, _: &str) {}

    fn leave(&self, _: &Topic, _: u64) {}

    fn remote_members(&self, _: &Topic) -> Result<Vec<Member>, BrokerError> {
        Ok(Vec::new())
    }
}
