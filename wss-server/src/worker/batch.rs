//! Send batching: sends queued by callbacks on a worker thread are held in a thread-local
//! batch and go to the network in one `send_batch` per mailbox message.

use std::cell::RefCell;

use wss_net::{ConnId, Outgoing};

use crate::server::ServerInner;

/// Sends queued by callbacks go out in one `send_batch` per mailbox message; past this many
/// they go out early so the buffer stays small.
pub(super) const MAX_BATCH: usize = 1024;

pub(super) struct Batch {
    pub(super) server: u64,
    pub(super) sends: Vec<(ConnId, Outgoing)>,
}

thread_local! {
    /// Set on a worker thread: its server id and the sends queued by the running callbacks.
    pub(super) static CURRENT: RefCell<Option<Batch>> = const { RefCell::new(None) };
}

/// The server whose worker runs on this thread, if any.
pub(crate) fn current_server() -> Option<u64> {
    CURRENT
        .with(|c| c.borrow().as_ref().map(|b| b.server))
        .filter(|&id| id != NONE)
}

/// No server: a loop thread between two servers' callbacks (ids start at 1).
const NONE: u64 = 0;

/// Makes this thread run `server`'s callbacks until the returned guard drops: their sends are
/// batched as on a worker thread, and go out when it drops (a panic included). A network loop
/// in loop dispatch enters for each server whose events it delivers; the batch keeps its
/// allocation from one to the next.
pub(super) fn enter(server: &ServerInner) -> Entered<'_> {
    let prev = CURRENT.with(|c| {
        let mut c = c.borrow_mut();
        match c.as_mut() {
            Some(b) => std::mem::replace(&mut b.server, server.id),
            None => {
                *c = Some(Batch {
                    server: server.id,
                    sends: Vec::new(),
                });
                NONE
            }
        }
    });
    Entered { server, prev }
}

/// What [`enter`] returns: on drop, sends what the server's callbacks queued and makes the
/// server that was current before (if any) current again.
pub(super) struct Entered<'a> {
    server: &'a ServerInner,
    prev: u64,
}

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        flush_if_worker(self.server);
        CURRENT.with(|c| {
            if let Some(b) = c.borrow_mut().as_mut() {
                b.server = self.prev;
            }
        });
    }
}

/// Queues `out` for `conn` of `server`: batched when called from that server's worker,
/// straight to the network otherwise.
pub(crate) fn send(server: &ServerInner, conn: ConnId, out: Outgoing) {
    // Pushed straight onto the batch: no `Vec` per message on the hot path.
    let queued = CURRENT.with(|c| match c.borrow_mut().as_mut() {
        Some(b) if b.server == server.id => {
            b.sends.push((conn, out));
            Ok((b.sends.len() >= MAX_BATCH).then(|| take_sends(b)))
        }
        _ => Err(out),
    });
    match queued {
        Ok(Some(batch)) => server.net.send_batch(batch),
        Ok(None) => {}
        Err(out) => server.net.send(conn, out),
    }
}

/// The queued sends, leaving room for as many in the next batch (one allocation per batch,
/// not one per doubling). The room is what the last batch needed, not its length: a batch of
/// broadcasts grows by a hundred entries at a time and would otherwise reallocate several
/// times on every turn. A batch that used under a quarter of it shrinks the room back.
fn take_sends(b: &mut Batch) -> Vec<(ConnId, Outgoing)> {
    let (len, cap) = (b.sends.len(), b.sends.capacity());
    let room = if len * 4 >= cap { cap } else { len };
    let room = room.min(2 * MAX_BATCH);
    std::mem::replace(&mut b.sends, Vec::with_capacity(room))
}

/// As [`send`], for several messages (a broadcast).
pub(crate) fn send_many(server: &ServerInner, mut cmds: Vec<(ConnId, Outgoing)>) {
    let full = CURRENT.with(|c| match c.borrow_mut().as_mut() {
        Some(b) if b.server == server.id => {
            b.sends.append(&mut cmds);
            (b.sends.len() >= MAX_BATCH).then(|| take_sends(b))
        }
        _ => None,
    });
    if let Some(batch) = full {
        server.net.send_batch(batch);
    } else if cmds.len() == 1 {
        if let Some((conn, out)) = cmds.pop() {
            server.net.send(conn, out);
        }
    } else if !cmds.is_empty() {
        server.net.send_batch(cmds);
    }
}

/// Sends what the running callbacks queued, when on `server`'s worker. Called before a close
/// or abort so that messages queued earlier are not overtaken.
pub(crate) fn flush_if_worker(server: &ServerInner) {
    let sends = CURRENT.with(|c| match c.borrow_mut().as_mut() {
        Some(b) if b.server == server.id && !b.sends.is_empty() => take_sends(b),
        _ => Vec::new(),
    });
    if !sends.is_empty() {
        server.net.send_batch(sends);
    }
}
