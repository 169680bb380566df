//! What the worker's mailboxes carry ([`WorkerMsg`]), and the network batches that give their
//! backlog cost back when dropped.

use std::sync::Arc;
use std::time::Duration;

use wss_net::{Backlog, ConnId, Inbound, NetEvent};
use wss_proto::handshake::UpgradeRequest;
use wss_proto::CloseCode;

use crate::error::ErrorInfo;
use crate::event::Request;

/// What the worker's mailboxes carry: `Net` and `NetGone` come through the data mailbox, the
/// rest through the control mailbox, which the worker reads first.
pub(crate) enum WorkerMsg {
    /// Run the server's `on_open`.
    Open,
    /// An upgrade request waits for `on_connection` (the client waits for our decision).
    Connect(Box<PendingConnect>),
    /// One network loop turn's events for this server.
    Net(NetBatch),
    /// A server-level error to report (e.g. a handshake refused by the origin policy).
    Error(ErrorInfo),
    /// Close every connection with `code`; destroy the rest after `timeout`.
    Terminate {
        timeout: Option<Duration>,
        code: CloseCode,
    },
    /// The network threads are gone: whatever is still open is over.
    NetGone,
}

pub(crate) struct PendingConnect {
    pub(crate) conn: ConnId,
    pub(crate) request: Request,
    pub(crate) upgrade: UpgradeRequest,
    pub(crate) extra_headers: Vec<(String, String)>,
}

/// One loop turn's events, and what their messages count for in the server's backlog.
pub(crate) struct NetBatch {
    pub(super) events: Vec<NetEvent>,
    pub(super) release: Release,
}

/// Gives a batch's count back to the backlog when dropped: once the worker is done with it,
/// or if it is never handled (the worker is gone), so the backlog cannot leak.
pub(super) struct Release {
    pub(super) inbound: Arc<Inbound>,
    pub(super) cost: Backlog,
}

impl Drop for Release {
    fn drop(&mut self) {
        self.inbound.release(self.cost);
    }
}
