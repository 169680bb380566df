//! Rooms and presence on this node: which local connections subscribed to which room of their
//! server, and under which user name they are present; and the broker calls that keep the
//! other nodes informed.
//!
//! Lock order: a connection's `topics`, then the server's `rooms`, then its `connections`.
//! Broker calls are made under the connection's lock so that one connection's joins and
//! leaves reach the broker in the order they happened.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use wss_net::{ConnId, Outgoing};

use crate::broker::{Member, Presence, Topic};
use crate::connection::WebSocketConnection;
use crate::error::TopicError;
use crate::fanout::Fanout;
use crate::frame::Frame;
use crate::server::ServerInner;
use crate::worker;

/// Longest room name, in bytes.
pub const MAX_ROOM_LEN: usize = 256;
/// Longest user name given to `set_user`, in bytes.
pub const MAX_USER_LEN: usize = 256;
/// Most rooms one connection may be subscribed to at once: bounds the memory a client can
/// make the server spend.
pub const MAX_ROOMS_PER_CONNECTION: usize = 64;

/// Local subscribers of each room of one server, by connection id.
pub(crate) type Rooms = HashMap<String, BTreeMap<u64, WebSocketConnection>>;

/// What one connection subscribed to.
#[derive(Debug, Default)]
pub(crate) struct ConnTopics {
    rooms: Vec<String>,
    user: Option<String>,
}

/// A connection's topics as it keeps them: most connections join no room and take no name,
/// so the state is boxed on first use (8 bytes per connection instead of 48).
pub(crate) type ConnTopicsSlot = Option<Box<ConnTopics>>;

/// The topics in `slot`, created empty if absent.
fn mine_mut(slot: &mut ConnTopicsSlot) -> &mut ConnTopics {
    slot.get_or_insert_with(Box::default)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ServerInner {
    /// The topic of `room` (`None`: the server's own topic).
    pub(crate) fn topic_of(&self, room: Option<&str>) -> Topic {
        match room {
            None => self.topic.clone(),
            Some(r) => Topic::room(self.path(), r),
        }
    }

    /// Queues `frame` for every `Connected` local subscriber of `room` (`None`: every
    /// connection) but `except`; returns how many. Receivers that negotiated
    /// permessage-deflate get it compressed, once per group of alike receivers (`fanout`).
    pub(crate) fn deliver_local(
        &self,
        room: Option<&str>,
        frame: &Frame,
        except: Option<u64>,
    ) -> usize {
        // Plain receivers get their frame while the map is walked (an `Arc` clone each, no
        // handle cloned); compression (once per group of alike receivers) happens outside
        // the locks, so deflate receivers are noted and filled in after.
        let plain = frame.shared();
        let mut deflated: Vec<(usize, WebSocketConnection)> = Vec::new();
        let mut pick = |targets: &mut Vec<(ConnId, Outgoing)>, c: &WebSocketConnection| {
            if !c.inner.is_connected() || Some(c.id()) == except {
                return;
            }
            if c.inner.deflate().is_some() {
                deflated.push((targets.len(), c.clone()));
            }
            targets.push((c.inner.conn, Outgoing::Shared(plain.clone())));
        };
        let mut targets = Vec::new();
        match room {
            None => {
                let conns = lock(&self.connections);
                targets.reserve_exact(conns.len());
                conns.values().for_each(|c| pick(&mut targets, c));
            }
            Some(r) => {
                if let Some(members) = lock(&self.rooms).get(r) {
                    targets.reserve_exact(members.len());
                    members.values().for_each(|c| pick(&mut targets, c));
                }
            }
        }
        if !deflated.is_empty() {
            let mut fanout = Fanout::new(frame);
            for (i, c) in &deflated {
                if let Some(slot) = targets.get_mut(*i) {
                    slot.1 = Outgoing::Shared(fanout.bytes_for(c.inner.deflate()));
                }
            }
        }
        let n = targets.len();
        worker::send_many(self, targets);
        n
    }

    /// Local delivery, then the other nodes (unless the server is terminated).
    pub(crate) fn publish_frame(
        &self,
        room: Option<&str>,
        frame: &Frame,
        except: Option<u64>,
    ) -> usize {
        let n = self.deliver_local(room, frame, except);
        if !self.terminated.load(std::sync::atomic::Ordering::Acquire) {
            match room {
                None => self.broker.publish(&self.topic, frame),
                Some(r) => self.broker.publish(&self.topic_of(Some(r)), frame),
            }
        }
        n
    }

    /// This node's members of `room`, then the other nodes' as the broker reports them.
    pub(crate) fn presence(&self, room: Option<&str>) -> Presence {
        let node = self.broker.node_id().to_owned();
        let member = |c: &WebSocketConnection| {
            let user = lock(&c.inner.topics).as_ref()?.user.clone()?;
            Some(Member {
                node: node.clone(),
                connection: c.id(),
                user,
            })
        };
        // Snapshot the handles first: a connection's lock comes before the server's maps.
        let handles: Vec<WebSocketConnection> = match room {
            None => lock(&self.connections).values().cloned().collect(),
            Some(r) => lock(&self.rooms)
                .get(r)
                .map(|m| m.values().cloned().collect())
                .unwrap_or_default(),
        };
        let mut members: Vec<Member> = handles.iter().filter_map(member).collect();
        let complete = match self.broker.remote_members(&self.topic_of(room)) {
            Ok(remote) => {
                members.extend(remote.into_iter().filter(|m| m.node != node));
                true
            }
            Err(e) => {
                log::warn!(
                    "presence of {}: other nodes unknown: {e}",
                    self.topic_of(room)
                );
                false
            }
        };
        members.sort();
        Presence { members, complete }
    }
}

fn check_room(room: &str) -> Result<(), TopicError> {
    if room.is_empty() || room.len() > MAX_ROOM_LEN {
        return Err(TopicError::InvalidName);
    }
    Ok(())
}

/// Adds `ws` to `room` (no-op if already there).
pub(crate) fn subscribe(ws: &WebSocketConnection, room: &str) -> Result<(), TopicError> {
    check_room(room)?;
    let server = &ws.inner.server.inner;
    let mut guard = lock(&ws.inner.topics);
    if !ws.inner.is_connected() {
        return Err(TopicError::Closed);
    }
    let mine = mine_mut(&mut guard);
    if mine.rooms.iter().any(|r| r == room) {
        return Ok(());
    }
    if mine.rooms.len() >= MAX_ROOMS_PER_CONNECTION {
        return Err(TopicError::TooMany {
            limit: MAX_ROOMS_PER_CONNECTION,
        });
    }
    mine.rooms.push(room.to_owned());
    let first = {
        let mut rooms = lock(&server.rooms);
        let members = rooms.entry(room.to_owned()).or_default();
        members.insert(ws.id(), ws.clone());
        members.len() == 1
    };
    let topic = server.topic_of(Some(room));
    if first {
        server.broker.subscribe(&topic, &server.inbox());
    }
    if let Some(user) = &mine.user {
        server.broker.join(&topic, ws.id(), user);
    }
    Ok(())
}

/// Removes `ws` from `room`; false if it was not there.
pub(crate) fn unsubscribe(ws: &WebSocketConnection, room: &str) -> bool {
    let mut guard = lock(&ws.inner.topics);
    let Some(mine) = guard.as_deref_mut() else {
        return false;
    };
    let Some(i) = mine.rooms.iter().position(|r| r == room) else {
        return false;
    };
    mine.rooms.swap_remove(i);
    leave_room(ws, room, mine.user.is_some());
    true
}

fn leave_room(ws: &WebSocketConnection, room: &str, present: bool) {
    let server = &ws.inner.server.inner;
    let last = {
        let mut rooms = lock(&server.rooms);
        match rooms.get_mut(room) {
            Some(members) => {
                members.remove(&ws.id());
                let empty = members.is_empty();
                if empty {
                    rooms.remove(room);
                }
                empty
            }
            None => false,
        }
    };
    let topic = server.topic_of(Some(room));
    if present {
        server.broker.leave(&topic, ws.id());
    }
    if last {
        server.broker.unsubscribe(&topic, &server.inbox());
    }
}

/// The rooms `ws` is subscribed to, in subscription order (after removals, any order).
pub(crate) fn rooms(ws: &WebSocketConnection) -> Vec<String> {
    lock(&ws.inner.topics)
        .as_ref()
        .map(|t| t.rooms.clone())
        .unwrap_or_default()
}

/// The user name `ws` is present under.
pub(crate) fn user(ws: &WebSocketConnection) -> Option<String> {
    lock(&ws.inner.topics).as_ref()?.user.clone()
}

/// Makes `ws` present as `user` in its server's topic and each of its rooms (`None`: absent
/// from all).
pub(crate) fn set_user(ws: &WebSocketConnection, user: Option<&str>) -> Result<(), TopicError> {
    if let Some(u) = user {
        if u.is_empty() || u.len() > MAX_USER_LEN {
            return Err(TopicError::InvalidName);
        }
    }
    let server = &ws.inner.server.inner;
    let mut guard = lock(&ws.inner.topics);
    if user.is_some() && !ws.inner.is_connected() {
        return Err(TopicError::Closed);
    }
    if user.is_none() && guard.is_none() {
        return Ok(());
    }
    let mine = mine_mut(&mut guard);
    let topics = std::iter::once(server.topic.clone())
        .chain(mine.rooms.iter().map(|r| server.topic_of(Some(r))));
    match user {
        Some(u) => {
            for t in topics {
                server.broker.join(&t, ws.id(), u);
            }
        }
        None if mine.user.is_some() => {
            for t in topics {
                server.broker.leave(&t, ws.id());
            }
        }
        None => {}
    }
    mine.user = user.map(str::to_owned);
    Ok(())
}

/// A closed connection leaves every room and every presence list. Called once its status is
/// `Closed`, so no new subscription can race in.
pub(crate) fn forget(ws: &WebSocketConnection) {
    let server = &ws.inner.server.inner;
    let mut guard = lock(&ws.inner.topics);
    let Some(mine) = guard.as_deref_mut() else {
        return;
    };
    let present = mine.user.is_some();
    for room in std::mem::take(&mut mine.rooms) {
        leave_room(ws, &room, present);
    }
    if present {
        server.broker.leave(&server.topic, ws.id());
    }
}
