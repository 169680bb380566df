//! The worker's pure helpers: the handshake refusal, the close rules of A12/A13/A15, and
//! running callbacks with panics caught (A17). Message data by data type is
//! [`DataType::decode`](crate::DataType::decode), shared with the client.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use wss_net::{ConnError, Decision};
use wss_proto::CloseCode;

use crate::connection::WebSocketConnection;
use crate::error::{codes, ErrorInfo};
use crate::event::{ErrorEvent, TerminateEvent};
use crate::handler::{self, ConnectionHandler, ErasedServer, Stored};
use crate::server::WebSocketServer;

/// A plain HTTP refusal of a handshake (A2).
pub(crate) fn refusal(status: u16) -> Decision {
    Decision::Respond {
        // A short text body: one `Content-Type`, `nosniff` and a `Date` like every answer.
        response: crate::site::finished(crate::site::text(
            status,
            &format!("{}\n", wss_proto::handshake::reason_phrase(status)),
            false,
        )),
        keep_alive: false,
    }
}

/// A12/A13/A15: the `on_error` (if any) and `on_terminate` of a closed connection.
///
/// `local`: this side started the close (terminate), so its end is no error.
pub(crate) fn close_outcome(
    code: u16,
    reason: &str,
    error: Option<&ConnError>,
    local: bool,
    fill_standard_reason: bool,
) -> (Option<ErrorInfo>, TerminateEvent) {
    let transport = |c: u16| {
        Some(ErrorInfo::new(
            i64::from(c),
            CloseCode(c).standard_text(),
            "HTTP",
        ))
    };
    let error_info = match error {
        None if code == 1000 || code == 1005 || local => None,
        None => transport(code),
        // Requested here (terminate(0), web server stop): not an error (A15, A16).
        Some(ConnError::Aborted | ConnError::Shutdown) => None,
        Some(ConnError::CloseTimeout) if local => None,
        Some(ConnError::Protocol(e)) => transport(e.close_code().0),
        Some(_) => transport(code),
    };
    let reason = if !reason.is_empty() {
        Some(reason.to_owned())
    } else if fill_standard_reason {
        Some(CloseCode(code).standard_text().to_owned())
    } else {
        None
    };
    (error_info, TerminateEvent { code, reason })
}

pub(super) fn panic_info(callback: &str, panic: &Box<dyn std::any::Any + Send>) -> ErrorInfo {
    let text = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic payload".to_owned());
    ErrorInfo::new(
        codes::CALLBACK_PANICKED,
        format!("panic in {callback}: {text}"),
        codes::COMPONENT,
    )
}

/// Runs a connection callback; a panic goes to the same handler's `on_error` (A17). Returns
/// whether it panicked (for the counts).
pub(super) fn call_conn(
    handler: &Arc<std::sync::Mutex<dyn ConnectionHandler>>,
    ws: &WebSocketConnection,
    name: &str,
    f: impl FnOnce(&mut dyn ConnectionHandler, &WebSocketConnection),
) -> bool {
    let result = catch_unwind(AssertUnwindSafe(|| {
        let mut run = handler::enter(handler);
        f(&mut *run.guard, ws)
    }));
    if let Err(panic) = result {
        conn_error(handler, ws, ErrorEvent::single(panic_info(name, &panic)));
        return true;
    }
    false
}

/// Runs a connection's `on_error`; a panic there is only logged (Part A point 7).
pub(super) fn conn_error(
    handler: &Arc<std::sync::Mutex<dyn ConnectionHandler>>,
    ws: &WebSocketConnection,
    e: ErrorEvent,
) {
    let result = catch_unwind(AssertUnwindSafe(|| {
        let mut run = handler::enter(handler);
        run.guard.on_error(ws, &e)
    }));
    if result.is_err() {
        log::error!("connection {}: on_error panicked; ignored", ws.id());
    }
}

/// Runs a server callback; a panic goes to the server's `on_error`.
pub(super) fn call_server(
    handler: &Stored<dyn ErasedServer>,
    server: &WebSocketServer,
    name: &str,
    f: impl FnOnce(&mut dyn ErasedServer),
) {
    let result = catch_unwind(AssertUnwindSafe(|| {
        let mut run = handler.enter();
        f(&mut *run.guard)
    }));
    if let Err(panic) = result {
        server.inner.counters.note_panic();
        server_error(
            handler,
            server,
            ErrorEvent::single(panic_info(name, &panic)),
        );
    }
}

pub(super) fn server_error(
    handler: &Stored<dyn ErasedServer>,
    server: &WebSocketServer,
    e: ErrorEvent,
) {
    let result = catch_unwind(AssertUnwindSafe(|| {
        let mut run = handler.enter();
        run.guard.on_error(server, &e)
    }));
    if result.is_err() {
        log::error!(
            "server {:?}: on_error panicked; ignored",
            server.path().unwrap_or("*")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wss_proto::ProtocolError;

    #[test]
    fn close_rules_of_a12() {
        // Normal close: no error, reason kept.
        let (e, t) = close_outcome(1000, "bye", None, false, false);
        assert!(e.is_none());
        assert_eq!(
            t,
            TerminateEvent {
                code: 1000,
                reason: Some("bye".into())
            }
        );
        // No status code: 1005, no error, reason absent.
        let (e, t) = close_outcome(1005, "", None, false, false);
        assert!(e.is_none());
        assert_eq!(t.reason, None);
        // Going away: error first, with 4D's text and component.
        let (e, t) = close_outcome(1001, "", None, false, false);
        let e = e.expect("1001 raises on_error");
        assert_eq!(e.err_code, 1001);
        assert_eq!(e.component_signature, "HTTP");
        assert_eq!(e.message, CloseCode(1001).standard_text());
        assert_eq!(t.code, 1001);
        // Dropped TCP: 1006 with error.
        let drop = ConnError::Io(std::io::ErrorKind::UnexpectedEof);
        let (e, t) = close_outcome(1006, "", Some(&drop), false, false);
        assert_eq!(e.map(|e| e.err_code), Some(1006));
        assert_eq!(t.code, 1006);
        // Protocol violation: the code sent.
        let bad = ConnError::Protocol(ProtocolError::InvalidUtf8);
        let (e, t) = close_outcome(1007, "", Some(&bad), false, false);
        assert_eq!(e.map(|e| e.err_code), Some(1007));
        assert_eq!(t.code, 1007);
        // Our own terminate: no error, even with a custom code or a close timeout.
        assert!(close_outcome(3001, "", None, true, false).0.is_none());
        assert!(
            close_outcome(1006, "", Some(&ConnError::CloseTimeout), true, false)
                .0
                .is_none()
        );
        // terminate(0) and web stop: no error.
        assert!(
            close_outcome(1006, "", Some(&ConnError::Aborted), false, false)
                .0
                .is_none()
        );
        // The A12 switch.
        let (_, t) = close_outcome(1000, "", None, false, true);
        assert_eq!(t.reason.as_deref(), Some(CloseCode(1000).standard_text()));
    }
}
