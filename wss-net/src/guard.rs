//! Calls into the layer above that must not take a loop thread down with them.
//!
//! A loop thread carries thousands of connections; a bug in one [`Service`] or [`EventSink`]
//! call (a panic) must cost the connection it concerned, not all of them. The loop therefore
//! catches the unwind, logs it, and answers for that connection: `500` for a request head,
//! close code 1011 for an upgraded connection. (Built with `panic = "abort"` there is nothing
//! to catch: the process ends, as the build asked.)

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use wss_proto::handshake::{Request, Response};

use crate::api::{ConnInfo, Decision, EventSink, NetEvent, Service};
use crate::inbound::Inbound;
use crate::ConnId;

/// The panic's message, when it carried one.
fn message(panic: &(dyn Any + Send)) -> &str {
    if let Some(s) = panic.downcast_ref::<&'static str>() {
        s
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s
    } else {
        "(no message)"
    }
}

/// `service.on_request_with`, with a panic turned into a `500` that closes the connection.
pub(crate) fn on_request(
    service: &dyn Service,
    conn: ConnId,
    info: &ConnInfo,
    request: Request,
) -> Decision {
    // The service is only shared state behind `&self`: if it panicked half-way through an
    // update, its own locks (poisoned) or invariants are its business; the loop's state is
    // not touched inside the call.
    match catch_unwind(AssertUnwindSafe(|| {
        service.on_request_with(conn, info, request)
    })) {
        Ok(decision) => decision,
        Err(panic) => {
            log::error!(
                "{conn}: the service panicked on a request head: {}",
                message(&*panic)
            );
            Decision::Respond {
                response: Response::error(500, "Internal Server Error"),
                keep_alive: false,
            }
        }
    }
}

/// `sink.deliver(batch)`; on a panic, the connections the batch was about (those it opened or
/// carried messages for) are returned, for the loop to close with 1011.
pub(crate) fn deliver(sink: &dyn EventSink, batch: Vec<NetEvent>) -> Result<(), Vec<ConnId>> {
    // Collected before the call, which consumes the batch; a `Closed` connection is gone
    // already and needs nothing.
    let mut concerned: Vec<ConnId> = Vec::new();
    for event in &batch {
        if let NetEvent::Opened { conn, .. } | NetEvent::Message { conn, .. } = event {
            if concerned.last() != Some(conn) {
                concerned.push(*conn);
            }
        }
    }
    match catch_unwind(AssertUnwindSafe(|| sink.deliver(batch))) {
        Ok(()) => Ok(()),
        Err(panic) => {
            log::error!(
                "an event sink panicked on a batch for {} connection(s), closed with 1011: {}",
                concerned.len(),
                message(&*panic)
            );
            concerned.sort_unstable();
            concerned.dedup();
            Err(concerned)
        }
    }
}

/// `sink.inbound()`; a panic there is logged and the connection runs without flow control.
pub(crate) fn inbound(sink: &dyn EventSink) -> Option<Arc<Inbound>> {
    match catch_unwind(AssertUnwindSafe(|| sink.inbound())) {
        Ok(inbound) => inbound,
        Err(panic) => {
            log::error!("an event sink panicked in inbound(): {}", message(&*panic));
            None
        }
    }
}
