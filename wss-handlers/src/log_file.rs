//! [`LogFile`]: the seed's `LogFile`, one line per server and connection event.

use std::fmt::Write as _;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use wss_server::{
    ConnectionEvent, ConnectionHandler, ErrorEvent, MessageEvent, OpenEvent, ServerHandler,
    ServerTerminateEvent, TerminateEvent, WebSocketConnection, WebSocketServer,
};

use crate::log_sink::{timestamp, LogSink};

type SharedSink = Arc<Mutex<LogSink>>;

/// Wraps a server handler and appends one line per event to a file:
///
/// ```text
/// 2024-05-01T12:00:00.000Z server.open path="/ws"
/// 2024-05-01T12:00:01.250Z connection.accept remote=127.0.0.1:50412 path="/ws"
/// 2024-05-01T12:00:01.251Z connection.open id=1 remote=127.0.0.1:50412
/// 2024-05-01T12:00:09.900Z connection.error id=1 remote=127.0.0.1:50412 error="1006 Abnormal closure (close frame not sent nor received)."
/// 2024-05-01T12:00:09.900Z connection.terminate id=1 remote=127.0.0.1:50412 code=1006
/// 2024-05-01T12:00:30.000Z connection.refuse remote=10.0.0.9:40022 path="/ws"
/// 2024-05-01T12:01:00.000Z server.terminate
/// ```
///
/// Timestamps are UTC. Free text (paths, reasons, errors) is written as a JSON string, so a
/// line never breaks. Only the path of the request is logged: never its query (it may carry a
/// token), its headers (cookies, `Authorization`) or message contents.
///
/// The file is opened in append mode and followed by path: after a rotation (the file moved
/// away) or a deletion, the next line creates a fresh file at the same path. A write that fails
/// is reported once through the `log` crate and never disturbs the connection.
///
/// ```no_run
/// use wss_handlers::{Echo, LogFile};
/// use wss_server::{ServerOptions, WebServer, WebServerOptions, WebSocketServer};
///
/// let logged = LogFile::open("/var/log/wss/events.log", Echo)?;
/// let web = WebServer::start(WebServerOptions::default())?;
/// let wss = WebSocketServer::new(&web, logged, ServerOptions::default())?;
/// # drop(wss);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct LogFile<H> {
    inner: H,
    sink: SharedSink,
}

impl<H> std::fmt::Debug for LogFile<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogFile")
            .field("path", &self.path())
            .finish_non_exhaustive()
    }
}

impl<H> LogFile<H> {
    /// Wraps `inner`, logging to `path` (created if missing). Fails if the file cannot be
    /// opened for appending now, so a wrong path shows at start.
    pub fn open(path: impl Into<PathBuf>, inner: H) -> io::Result<Self> {
        Ok(LogFile {
            inner,
            sink: Arc::new(Mutex::new(LogSink::open(path)?)),
        })
    }

    /// The file the lines go to.
    pub fn path(&self) -> PathBuf {
        lock(&self.sink).path().to_path_buf()
    }

    /// The wrapped handler.
    pub fn inner(&self) -> &H {
        &self.inner
    }

    /// A handle that makes the file be opened again, by path, before the next line (what
    /// `wss` does on SIGHUP). Usable from any thread, after the handler moved into a server.
    pub fn reopener(&self) -> LogReopener {
        LogReopener(Arc::clone(&self.sink))
    }
}

/// Reopens a [`LogFile`]'s file on demand (see [`LogFile::reopener`]).
#[derive(Clone)]
pub struct LogReopener(SharedSink);

impl LogReopener {
    /// The file is reopened by path before the next line is written.
    pub fn reopen(&self) {
        lock(&self.0).reopen();
    }
}

impl std::fmt::Debug for LogReopener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogReopener")
            .field("path", &lock(&self.0).path())
            .finish()
    }
}

fn lock(sink: &SharedSink) -> std::sync::MutexGuard<'_, LogSink> {
    sink.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One line under construction: `<timestamp> <event>` then ` key=value` fields.
struct Line(String);

impl Line {
    fn new(event: &str) -> Line {
        let mut s = timestamp(SystemTime::now());
        s.push(' ');
        s.push_str(event);
        Line(s)
    }

    fn field(mut self, key: &str, value: impl std::fmt::Display) -> Line {
        let _ = write!(self.0, " {key}={value}");
        self
    }

    /// A field whose value is free text: JSON-quoted so spaces, quotes and line breaks
    /// cannot break the one-line format.
    fn text(self, key: &str, value: &str) -> Line {
        let quoted = serde_json::Value::String(value.to_string()).to_string();
        self.field(key, quoted)
    }

    fn write(self, sink: &SharedSink) {
        lock(sink).write_line(&self.0);
    }
}

fn errors_text(event: &ErrorEvent) -> String {
    let mut out = String::new();
    for (i, e) in event.errors.iter().enumerate() {
        if i > 0 {
            out.push_str("; ");
        }
        let _ = write!(out, "{} {}", e.err_code, e.message);
    }
    out
}

fn remote(ip: IpAddr, port: u16) -> SocketAddr {
    SocketAddr::new(ip, port)
}

impl<H: ServerHandler> ServerHandler for LogFile<H> {
    type Connection = LoggedConnection<H::Connection>;

    fn on_connection(
        &mut self,
        wss: &WebSocketServer,
        event: &ConnectionEvent,
    ) -> Option<Self::Connection> {
        let req = &event.request;
        let from = remote(req.remote_address, req.remote_port);
        let accepted = self.inner.on_connection(wss, event);
        let verdict = if accepted.is_some() {
            "connection.accept"
        } else {
            "connection.refuse"
        };
        Line::new(verdict)
            .field("remote", from)
            .text("path", req.path())
            .write(&self.sink);
        accepted.map(|inner| LoggedConnection {
            inner,
            sink: self.sink.clone(),
            remote: from,
        })
    }

    fn on_open(&mut self, wss: &WebSocketServer, event: &OpenEvent) {
        Line::new("server.open")
            .text("path", wss.path().unwrap_or("*"))
            .write(&self.sink);
        self.inner.on_open(wss, event)
    }

    fn on_terminate(&mut self, wss: &WebSocketServer, event: &ServerTerminateEvent) {
        self.inner.on_terminate(wss, event);
        Line::new("server.terminate").write(&self.sink);
    }

    fn on_error(&mut self, wss: &WebSocketServer, event: &ErrorEvent) {
        Line::new("server.error")
            .text("error", &errors_text(event))
            .write(&self.sink);
        self.inner.on_error(wss, event)
    }
}

/// The per-connection half of [`LogFile`]: logs open, error and terminate, passes every
/// callback on to the wrapped connection handler.
pub struct LoggedConnection<C> {
    inner: C,
    sink: SharedSink,
    remote: SocketAddr,
}

impl<C> LoggedConnection<C> {
    /// The wrapped connection handler.
    pub fn inner(&self) -> &C {
        &self.inner
    }

    /// The log file's path.
    pub fn log_path(&self) -> PathBuf {
        lock(&self.sink).path().to_path_buf()
    }
}

impl<C> std::fmt::Debug for LoggedConnection<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoggedConnection")
            .field("remote", &self.remote)
            .finish_non_exhaustive()
    }
}

impl<C: ConnectionHandler> ConnectionHandler for LoggedConnection<C> {
    fn on_message(&mut self, ws: &WebSocketConnection, event: &MessageEvent) {
        self.inner.on_message(ws, event)
    }

    // Forwarded too, so a logged echo still sends its message back without a copy.
    fn on_message_owned(&mut self, ws: &WebSocketConnection, event: MessageEvent) {
        self.inner.on_message_owned(ws, event)
    }

    fn on_open(&mut self, ws: &WebSocketConnection, event: &OpenEvent) {
        Line::new("connection.open")
            .field("id", ws.id())
            .field("remote", self.remote)
            .write(&self.sink);
        self.inner.on_open(ws, event)
    }

    fn on_terminate(&mut self, ws: &WebSocketConnection, event: &TerminateEvent) {
        let mut line = Line::new("connection.terminate")
            .field("id", ws.id())
            .field("remote", self.remote)
            .field("code", event.code);
        if let Some(reason) = &event.reason {
            line = line.text("reason", reason);
        }
        line.write(&self.sink);
        self.inner.on_terminate(ws, event)
    }

    fn on_error(&mut self, ws: &WebSocketConnection, event: &ErrorEvent) {
        Line::new("connection.error")
            .field("id", ws.id())
            .field("remote", self.remote)
            .text("error", &errors_text(event))
            .write(&self.sink);
        self.inner.on_error(ws, event)
    }
}
