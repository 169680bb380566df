//! The event sink: where the network loops deliver a server's connection events, one mailbox
//! message per loop turn.

use std::sync::Arc;

use wss_net::{Backlog, CloseReply, EventSink, Inbound, NetEvent};

use crate::mailbox::Sender;

use super::msg::{NetBatch, Release, WorkerMsg};

/// Where the network loops deliver this server's connection events: one mailbox message per
/// loop turn. The loops stop reading connections whose messages wait past `inbound`'s limits.
pub(super) struct Sink {
    pub(super) tx: Sender<WorkerMsg>,
    pub(super) inbound: Arc<Inbound>,
}

impl EventSink for Sink {
    fn deliver(&self, events: Vec<NetEvent>) {
        let release = Release {
            inbound: Arc::clone(&self.inbound),
            cost: Backlog::of_batch(&events),
        };
        // Refused once the worker is gone: the batch drops here and releases its cost.
        let _ = self.tx.send(WorkerMsg::Net(NetBatch { events, release }));
    }

    fn inbound(&self) -> Option<Arc<Inbound>> {
        Some(Arc::clone(&self.inbound))
    }

    /// Callbacks run later, on the worker: the answers they send to messages that came before
    /// the peer's close or a protocol failure must reach the peer before our close frame
    /// (the worker says `answered` once it has handled the `Closed`).
    fn close_reply(&self) -> CloseReply {
        CloseReply::Deferred
    }
}
