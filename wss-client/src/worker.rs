//! The WebSocket's worker thread: it makes the connection, hands it to a loop, then runs the
//! callbacks for the loop's events, one at a time, in order.
//!
//! One thread per WebSocket (documented choice): a client's callbacks then never wait behind
//! another client's, the blocking handshake needs no state machine, and a handler needs no
//! locks. The cost is a thread (its stack is mostly untouched address space) per open
//! client, fine for the tens or hundreds of connections a client process makes; a load
//! generator wants `wss-net` directly.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use wss_net::{
    Backlog, ClientStream, ConnError, Credit, EventSink, Inbound, InboundLimits, Net, NetConfig,
    NetEvent, NetHandle,
};
use wss_proto::CloseCode;
use wss_proto::Message;
use wss_server::{ErrorEvent, ErrorInfo, MessageEvent};
use wss_server::{OpenEvent, TerminateEvent};

use crate::dial::{self, Target};
use crate::error::{codes, ConnectError};
use crate::handler::ClientHandler;
use crate::options::ClientOptions;
use crate::socket::WebSocket;

/// How long the worker waits for the loop to report the connection it was handed before
/// it gives up (the loops are gone: the process is shutting down).
const ADOPT_WAIT: Duration = Duration::from_secs(10);

thread_local! {
    /// The id of the WebSocket whose worker this thread is (0: none).
    static WORKER_OF: Cell<u64> = const { Cell::new(0) };
}

/// Whether this thread is `ws`'s worker.
pub(crate) fn on_worker_of(ws: &WebSocket) -> bool {
    WORKER_OF.with(Cell::get) == ws.id()
}

/// The process's client loop: one `wss-net` loop without a listener, started at the first
/// connection that is given no loops of its own, kept for the life of the process.
pub(crate) fn client_loops() -> Result<NetHandle, ConnectError> {
    static LOOPS: OnceLock<Result<Net, String>> = OnceLock::new();
    let net = LOOPS.get_or_init(|| {
        let config = NetConfig {
            threads: 1,
            ..NetConfig::default()
        };
        Net::start(config).map_err(|e| e.to_string())
    });
    match net {
        Ok(net) => Ok(net.handle()),
        Err(e) => Err(ConnectError::Spawn(std::io::Error::other(e.clone()))),
    }
}

/// Starts the worker of `ws`.
pub(crate) fn spawn(
    ws: WebSocket,
    handler: Arc<Mutex<dyn ClientHandler>>,
    options: ClientOptions,
    target: Target,
) -> Result<(), ConnectError> {
    std::thread::Builder::new()
        .name(format!("wss-client-{}", ws.id()))
        .spawn(move || {
            WORKER_OF.with(|w| w.set(ws.id()));
            Worker {
                ws,
                handler,
                credit: None,
                inbound: Arc::new(Inbound::new(InboundLimits::default())),
            }
            .run(&options, &target);
        })
        .map(drop)
        .map_err(ConnectError::Spawn)
}

/// Where the loop's events for one WebSocket go: the worker's channel.
struct Sink {
    tx: Sender<Vec<NetEvent>>,
    ws: WebSocket,
    inbound: Arc<Inbound>,
}

impl EventSink for Sink {
    fn deliver(&self, batch: Vec<NetEvent>) {
        for event in &batch {
            if let NetEvent::Opened { conn, buffered, .. } = event {
                // On the loop's thread, before the worker runs `on_open`: sends from any
                // thread work from here on.
                self.ws.inner.opened(*conn, buffered.clone());
            }
        }
        // The worker lives until it has the `Closed`, so this only fails after it.
        let _ = self.tx.send(batch);
    }

    fn inbound(&self) -> Option<Arc<Inbound>> {
        Some(Arc::clone(&self.inbound))
    }
}

struct Worker {
    ws: WebSocket,
    /// Locked for each callback; `WebSocket::with_handler` locks it from other threads.
    handler: Arc<Mutex<dyn ClientHandler>>,
    credit: Option<Credit>,
    inbound: Arc<Inbound>,
}

impl Worker {
    fn run(mut self, options: &ClientOptions, target: &Target) {
        let inner = Arc::clone(&self.ws.inner);
        let established = dial::establish(target, options, |socket| inner.set_socket(socket));
        inner.clear_socket();
        let established = match established {
            Ok(e) if !inner.abandoned() => e,
            // `terminate` came during the handshake: the attempt ends without a close frame.
            Ok(_) => return self.end_unopened(None),
            Err(e) => {
                let error = (!inner.abandoned()).then(|| e.info());
                inner.set_failure(e);
                return self.end_unopened(error);
            }
        };
        inner.set_negotiated(established.protocol, established.extensions);
        let (tx, rx) = crossbeam_channel::unbounded();
        let sink = Arc::new(Sink {
            tx,
            ws: self.ws.clone(),
            inbound: Arc::clone(&self.inbound),
        });
        let stream = match ClientStream::new(established.stream, established.ws, sink) {
            Ok(stream) => stream,
            Err(e) => {
                let e = ConnectError::Connect(e);
                let info = e.info();
                inner.set_failure(e);
                return self.end_unopened(Some(info));
            }
        };
        let stream = match established.tls {
            Some(tls) => stream.with_tls(tls),
            None => stream,
        };
        inner.net.connect(stream);
        self.serve(&rx);
    }

    /// Runs the callbacks for the loop's events until the connection's `Closed`.
    fn serve(&mut self, rx: &Receiver<Vec<NetEvent>>) {
        let mut opened = false;
        loop {
            let batch = if opened {
                rx.recv().ok()
            } else {
                rx.recv_timeout(ADOPT_WAIT).ok()
            };
            let Some(batch) = batch else {
                // The loops dropped the connection unreported (they stopped).
                let info = ConnectError::LoopsStopped.info();
                if opened {
                    self.ws.inner.set_closed();
                    self.error(ErrorEvent::single(info));
                    return self.terminated(TerminateEvent {
                        code: CloseCode::ABNORMAL.0,
                        reason: None,
                    });
                }
                self.ws.inner.set_failure(ConnectError::LoopsStopped);
                return self.end_unopened(Some(info));
            };
            for event in batch {
                match event {
                    NetEvent::Opened { credit, .. } => {
                        opened = true;
                        self.credit = credit;
                        self.call("on_open", |h, ws| h.on_open(ws, &OpenEvent));
                    }
                    NetEvent::Message { message, .. } => self.message(message),
                    NetEvent::Closed {
                        conn,
                        code,
                        reason,
                        error,
                    } => {
                        self.ws.inner.set_closed();
                        let (error_info, event) = close_outcome(
                            code.0,
                            &reason,
                            error.as_ref(),
                            self.ws.inner.closed_locally(),
                        );
                        if let Some(info) = error_info {
                            self.error(ErrorEvent::single(info));
                        }
                        // Every callback before the close has run and its sends are queued
                        // ahead of this: the deferred close reply may follow them.
                        self.ws.inner.net.answered(conn);
                        return self.terminated(event);
                    }
                }
            }
        }
    }

    fn message(&mut self, message: Message) {
        let cost = Backlog::of(&message);
        match self.ws.data_type().decode(message) {
            Ok(data) => self.call("on_message", |h, ws| {
                h.on_message_owned(ws, MessageEvent { data })
            }),
            Err(info) => self.error(ErrorEvent::single(info)),
        }
        if let Some(credit) = &self.credit {
            credit.release(cost);
        }
        self.inbound.release(cost);
    }

    /// The connection never opened: `on_error` (unless we gave up ourselves), then
    /// `on_terminate` with 1006.
    fn end_unopened(&mut self, error: Option<ErrorInfo>) {
        self.ws.inner.set_closed();
        if let Some(info) = error {
            self.error(ErrorEvent::single(info));
        }
        self.terminated(TerminateEvent {
            code: CloseCode::ABNORMAL.0,
            reason: None,
        });
    }

    fn terminated(&mut self, event: TerminateEvent) {
        self.call("on_terminate", |h, ws| h.on_terminate(ws, &event));
        self.ws.inner.set_done();
    }

    /// Runs a callback; a panic goes to `on_error`.
    fn call(&mut self, name: &str, f: impl FnOnce(&mut dyn ClientHandler, &WebSocket)) {
        let ws = &self.ws;
        let handler = &self.handler;
        let result = catch_unwind(AssertUnwindSafe(|| {
            let mut guard = handler.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut *guard, ws)
        }));
        if let Err(panic) = result {
            let text = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic payload".to_owned());
            self.error(ErrorEvent::single(ErrorInfo::new(
                codes::CALLBACK_PANICKED,
                format!("panic in {name}: {text}"),
                codes::COMPONENT,
            )));
        }
    }

    /// Runs `on_error`; a panic there is only logged.
    fn error(&mut self, event: ErrorEvent) {
        let ws = &self.ws;
        let handler = &self.handler;
        let result = catch_unwind(AssertUnwindSafe(|| {
            let mut guard = handler.lock().unwrap_or_else(PoisonError::into_inner);
            guard.on_error(ws, &event)
        }));
        if result.is_err() {
            log::error!("WebSocket {}: on_error panicked; ignored", ws.id());
        }
    }
}

/// The `on_error` (if any) and `on_terminate` of a closed connection, by the server's rules
/// (SPEC §3.1, A12): the server's code, 1005 without one, 1006 without a close frame;
/// `on_error` for an abnormal end that we did not ask for. `local`: `terminate` started it.
fn close_outcome(
    code: u16,
    reason: &str,
    error: Option<&ConnError>,
    local: bool,
) -> (Option<ErrorInfo>, TerminateEvent) {
    let transport = |c: u16| {
        Some(ErrorInfo::new(
            i64::from(c),
            CloseCode(c).standard_text(),
            "HTTP",
        ))
    };
    let info = match error {
        None if code == 1000 || code == 1005 || local => None,
        None => transport(code),
        Some(ConnError::Aborted | ConnError::Shutdown) if local => None,
        Some(ConnError::CloseTimeout) if local => None,
        Some(ConnError::Protocol(e)) => transport(e.close_code().0),
        Some(_) => transport(code),
    };
    let reason = (!reason.is_empty()).then(|| reason.to_owned());
    (info, TerminateEvent { code, reason })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_outcome_follows_the_1005_1006_rules() {
        let (e, t) = close_outcome(1000, "bye", None, false);
        assert!(e.is_none());
        assert_eq!((t.code, t.reason.as_deref()), (1000, Some("bye")));
        let (e, t) = close_outcome(1005, "", None, false);
        assert!(e.is_none());
        assert_eq!((t.code, t.reason), (1005, None));
        let (e, t) = close_outcome(
            1006,
            "",
            Some(&ConnError::Io(std::io::ErrorKind::UnexpectedEof)),
            false,
        );
        assert_eq!(
            e.map(|i| (i.err_code, i.component_signature)),
            Some((1006, "HTTP".into()))
        );
        assert_eq!(t.code, 1006);
        let (e, _) = close_outcome(1001, "", None, false);
        assert_eq!(e.map(|i| i.err_code), Some(1001));
        let (e, _) = close_outcome(1006, "", Some(&ConnError::CloseTimeout), true);
        assert!(e.is_none(), "our own close that timed out is no error");
    }
}
