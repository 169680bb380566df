//! What goes over Redis: channel and key names, and the envelope around a frame.
//!
//! - Messages of a topic: channel `{prefix}:m:{topic}`.
//! - A node's control channel (wakes its subscriber): `{prefix}:ctl:{node}`.
//! - Presence of a node in a topic: hash `{prefix}:p:{topic}:{node}`, field = connection id
//!   (decimal), value = user name; expires after the presence TTL unless refreshed.
//! - Nodes with presence in a topic: set `{prefix}:pn:{topic}`.
//!
//! `{topic}` is `{len}:{server}` or `{len}:{server}:{room}` where `len` is the server path's
//! byte length, so no path or room name can make two topics collide.
//!
//! Envelope (the PUBLISH payload): `b'W'`, version `1`, the origin node id's length (one
//! byte), the node id, then the WebSocket frame as the origin encoded it.

use wss_server::Topic;

const MAGIC: u8 = b'W';
const VERSION: u8 = 1;

/// Longest node id (it travels in one length byte; shorter is kinder to every message).
pub(crate) const MAX_NODE_ID: usize = 64;

/// Names for one cluster prefix and one node.
#[derive(Clone, Debug)]
pub(crate) struct Names {
    prefix: String,
    node: String,
}

fn topic_part(topic: &Topic) -> String {
    match &topic.room {
        None => format!("{}:{}", topic.server.len(), topic.server),
        Some(room) => format!("{}:{}:{room}", topic.server.len(), topic.server),
    }
}

impl Names {
    pub(crate) fn new(prefix: &str, node: &str) -> Names {
        Names {
            prefix: prefix.to_owned(),
            node: node.to_owned(),
        }
    }

    pub(crate) fn node(&self) -> &str {
        &self.node
    }

    pub(crate) fn channel(&self, topic: &Topic) -> Vec<u8> {
        format!("{}:m:{}", self.prefix, topic_part(topic)).into_bytes()
    }

    pub(crate) fn control(&self) -> Vec<u8> {
        format!("{}:ctl:{}", self.prefix, self.node).into_bytes()
    }

    /// This node's presence hash in `topic`.
    pub(crate) fn presence(&self, topic: &Topic) -> String {
        self.presence_of(topic, &self.node)
    }

    pub(crate) fn presence_of(&self, topic: &Topic, node: &str) -> String {
        format!("{}:p:{}:{node}", self.prefix, topic_part(topic))
    }

    pub(crate) fn nodes(&self, topic: &Topic) -> String {
        format!("{}:pn:{}", self.prefix, topic_part(topic))
    }

    /// The PUBLISH payload for `frame`, from this node.
    pub(crate) fn envelope(&self, frame: &[u8]) -> Vec<u8> {
        let node = self.node.as_bytes();
        let mut out = Vec::with_capacity(3 + node.len() + frame.len());
        out.extend_from_slice(&[MAGIC, VERSION, node.len() as u8]);
        out.extend_from_slice(node);
        out.extend_from_slice(frame);
        out
    }
}

/// Why a received payload was ignored.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum EnvelopeError {
    /// Not our magic and version: another program publishes on our channels.
    Foreign,
    /// Shorter than its own node id length says.
    Truncated,
}

/// Splits a payload into (origin node id, frame bytes).
pub(crate) fn open_envelope(payload: &[u8]) -> Result<(&[u8], &[u8]), EnvelopeError> {
    match payload {
        [MAGIC, VERSION, len, rest @ ..] => {
            let len = usize::from(*len);
            if rest.len() < len {
                return Err(EnvelopeError::Truncated);
            }
            Ok(rest.split_at(len))
        }
        _ => Err(EnvelopeError::Foreign),
    }
}

/// Checks a node id: 1..=64 bytes of visible ASCII (it is part of key names).
pub(crate) fn valid_node_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_NODE_ID && id.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_round_trips_and_refuses_strangers() {
        let names = Names::new("wss", "node-a");
        let env = names.envelope(b"\x81\x02hi");
        assert_eq!(
            open_envelope(&env),
            Ok((&b"node-a"[..], &b"\x81\x02hi"[..]))
        );
        assert_eq!(open_envelope(b"hello"), Err(EnvelopeError::Foreign));
        assert_eq!(open_envelope(&env[..5]), Err(EnvelopeError::Truncated));
        assert_eq!(open_envelope(b""), Err(EnvelopeError::Foreign));
    }

    #[test]
    fn topic_names_cannot_collide() {
        let n = Names::new("wss", "a");
        let t1 = Topic::room(Some("/a"), "b:c");
        let t2 = Topic::room(Some("/a:b"), "c");
        assert_ne!(n.channel(&t1), n.channel(&t2));
        assert_ne!(n.channel(&Topic::server(Some("/a"))), n.channel(&t1));
        assert_eq!(n.channel(&Topic::server(None)), b"wss:m:1:*");
        assert_eq!(n.presence(&Topic::room(Some("/x"), "r")), "wss:p:2:/x:r:a");
    }

    #[test]
    fn node_ids_are_short_visible_ascii() {
        assert!(valid_node_id("node-1"));
        assert!(!valid_node_id(""));
        assert!(!valid_node_id("a b"));
        assert!(!valid_node_id(&"x".repeat(65)));
        assert!(!valid_node_id("é"));
    }
}
