//! `NetHandle`: commands to the loops from any thread.

use std::sync::Arc;
use std::time::Duration;

use wss_proto::CloseCode;

use crate::api::{ConnId, Decision, Outgoing};
use crate::limits::{Admission, Refusal};
use crate::stats::{ByType, CloseCounts};
use crate::wake::{Command, LoopShared};

/// A cheap, cloneable way to act on connections from any thread.
///
/// Every method queues a command for the loop that owns the connection and returns at once;
/// it never blocks and never fails. Commands for connections that are gone are dropped. The
/// owning loop is woken only when it may be asleep, so a burst of sends from a busy thread
/// costs a channel push each, not a syscall each.
#[derive(Clone)]
pub struct NetHandle {
    pub(crate) loops: Arc<[Arc<LoopShared>]>,
    pub(crate) admission: Arc<Admission>,
}

/// Counters of a running [`Net`](crate::Net).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NetStats {
    /// Wake-up syscalls made to reach sleeping loops, since start.
    pub wakeups: u64,
    /// Connections open now (all phases, all loops).
    pub connections: usize,
    /// Times accepting paused because descriptors (EMFILE/ENFILE) or memory ran out.
    pub accept_pauses: u64,
    /// Connections still in their handshake now (TLS handshake, first request head).
    pub handshakes: usize,
    /// Sockets refused since start because `max_connections` were open.
    pub refused_connections: u64,
    /// Sockets refused since start because their address had `max_per_address` open.
    pub refused_per_address: u64,
    /// Sockets refused since start because `max_pending_handshakes` were in progress.
    pub refused_handshakes: u64,
    /// Connections whose TLS bytes rustls refused (bad ClientHello, plain HTTP on the TLS
    /// port, a record that does not decrypt), since start.
    pub tls_failures: u64,
    /// Times a connection stopped being read because its sink's consumer was behind (see
    /// [`Inbound`](crate::Inbound)), since start.
    pub inbound_pauses: u64,
    /// Connections upgraded to WebSocket (101 sent), since start.
    pub upgrades: u64,
    /// WebSocket messages received, by type, since start.
    pub messages_received: ByType,
    /// WebSocket messages sent, by type, since start (a broadcast counts once per receiver).
    pub messages_sent: ByType,
    /// Payload bytes of the messages received (after inflating), since start.
    pub bytes_received: u64,
    /// Payload bytes of the messages sent (before compressing; a pre-encoded shared frame
    /// counts its payload as framed), since start.
    pub bytes_sent: u64,
    /// Bytes read from sockets (HTTP heads, frame headers and TLS records included), since
    /// start. With permessage-deflate it differs from `bytes_received` by the compression.
    pub wire_bytes_received: u64,
    /// Bytes written to sockets (before TLS), since start.
    pub wire_bytes_sent: u64,
    /// Bytes queued for WebSocket connections and not written yet, now (all loops).
    pub outgoing_queued_bytes: u64,
    /// WebSocket connections closed, by the side that began the close and by code.
    pub closes: CloseCounts,
    /// Connections dropped because they stopped reading and their queue passed
    /// `max_outgoing`, since start.
    pub slow_consumers_dropped: u64,
    /// Request heads that did not arrive in time (408), or whose decision came too late
    /// (503), since start.
    pub handshake_timeouts: u64,
    /// Request heads refused as malformed (400), since start.
    pub bad_requests: u64,
    /// Request heads refused as too large (431), since start.
    pub heads_too_large: u64,
    /// Reads that put a large message's payload straight into its own buffer, since start
    /// (a sink's [`read_ahead`](crate::EventSink::read_ahead), when the guess was right).
    pub reads_ahead: u64,
}

impl NetHandle {
    fn to(&self, conn: ConnId, cmd: Command) {
        if let Some(l) = self.loops.get(conn.loop_index()) {
            l.send(cmd);
        }
    }

    /// How many loops the network runs: every [`ConnId::loop_index`] is below it.
    pub fn loop_count(&self) -> usize {
        self.loops.len()
    }

    /// Sends a message on an upgraded connection. Ignored if the connection is gone, not
    /// upgraded, or closing.
    pub fn send(&self, conn: ConnId, msg: Outgoing) {
        self.to(conn, Command::Send(conn, msg));
    }

    /// Sends many messages, to one or many connections, in order per connection: one channel
    /// message (and at most one wake-up) per loop involved.
    pub fn send_batch(&self, cmds: Vec<(ConnId, Outgoing)>) {
        if cmds.is_empty() {
            return;
        }
        let n = self.loops.len();
        if n == 1 {
            if let Some(l) = self.loops.first() {
                l.send(Command::SendBatch(cmds));
            }
            return;
        }
        let mut per_loop: Vec<Vec<(ConnId, Outgoing)>> = (0..n).map(|_| Vec::new()).collect();
        for (conn, msg) in cmds {
            if let Some(v) = per_loop.get_mut(conn.loop_index()) {
                v.push((conn, msg));
            }
        }
        for (l, batch) in self.loops.iter().zip(per_loop) {
            if !batch.is_empty() {
                l.send(Command::SendBatch(batch));
            }
        }
    }

    /// Starts the closing handshake: a close frame with `code` and `reason` (truncated to 123
    /// bytes); the peer's answer is awaited up to the close timeout, then the socket is
    /// destroyed. Ignored if the connection is gone or already closing, or if `code` may not be
    /// sent (1005, 1006, out of range).
    pub fn close(&self, conn: ConnId, code: CloseCode, reason: String) {
        self.to(conn, Command::Close(conn, code, reason));
    }

    /// Says the layer above has handled the events of `conn` delivered up to its
    /// [`NetEvent::Closed`](crate::NetEvent::Closed) and sent what it had to send in answer:
    /// under [`CloseReply::Deferred`](crate::CloseReply::Deferred) (see
    /// [`EventSink::close_reply`](crate::EventSink::close_reply)) the close frame the loop
    /// owes it is written now, after those sends, and the connection ends. Commands from one
    /// thread reach the loop in order, so sends issued before this call go out before the
    /// close. Ignored when no reply waits.
    pub fn answered(&self, conn: ConnId) {
        self.to(conn, Command::Answered(conn));
    }

    /// Drops the connection without a close frame. An upgraded one is reported
    /// `Closed { code: 1006, error: Aborted }`.
    pub fn abort(&self, conn: ConnId) {
        self.to(conn, Command::Abort(conn));
    }

    /// Answers a request for which the [`Service`](crate::Service) returned
    /// [`Decision::Pending`]. Ignored if the connection is gone, timed out, or was not waiting.
    pub fn decide(&self, conn: ConnId, decision: Decision) {
        self.to(conn, Command::Decide(conn, decision));
    }

    /// Hands an outgoing connection, already upgraded, to a loop (chosen by the client
    /// socket's port, so connections spread over the loops). The loop reports
    /// [`NetEvent::Opened`](crate::NetEvent::Opened) to the stream's sink with the
    /// connection's [`ConnId`], then its messages and one `Closed`, as for an accepted
    /// connection; [`send`](Self::send), [`close`](Self::close) and [`abort`](Self::abort)
    /// work on that id. If the socket cannot join the loop, `Opened` is followed at once by
    /// `Closed { code: 1006 }` with the error. If the loops have shut down, the stream is
    /// dropped and nothing is reported.
    pub fn connect(&self, stream: crate::client::ClientStream) {
        let n = self.loops.len().max(1);
        let port = stream
            .stream
            .local_addr()
            .map_or(0, |a| usize::from(a.port()));
        if let Some(l) = self.loops.get(port % n) {
            l.send(Command::Connect(Box::new(stream)));
        }
    }

    /// Shuts the loops down without waiting for them (see [`Net::shutdown`](crate::Net::shutdown)).
    /// Accepting stops at once.
    pub fn shutdown(&self, graceful: Option<(CloseCode, Duration)>) {
        for l in self.loops.iter() {
            l.send(Command::Shutdown(graceful));
        }
    }

    /// Counters: wake-ups, connections and handshakes open now, refusals and failures,
    /// messages, bytes and closes. Each loop keeps its own counters; this adds them up (a few
    /// dozen loads per loop), so it is cheap enough for a metrics scrape but not meant for a
    /// hot loop.
    pub fn stats(&self) -> NetStats {
        let a = &self.admission;
        let mut s = NetStats {
            wakeups: self.loops.iter().map(|l| l.wakeups()).sum(),
            connections: a.live(),
            accept_pauses: self.loops.iter().map(|l| l.accept_pauses()).sum(),
            handshakes: a.handshakes(),
            refused_connections: a.refused(Refusal::Connections),
            refused_per_address: a.refused(Refusal::PerAddress),
            refused_handshakes: a.refused(Refusal::Handshakes),
            tls_failures: a.tls_failures(),
            inbound_pauses: self.loops.iter().map(|l| l.inbound_pauses()).sum(),
            ..NetStats::default()
        };
        for l in self.loops.iter() {
            l.counters.add_to(&mut s);
        }
        s
    }
}

impl std::fmt::Debug for NetHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetHandle")
            .field("loops", &self.loops.len())
            .finish_non_exhaustive()
    }
}
