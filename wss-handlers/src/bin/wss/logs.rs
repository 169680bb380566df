//! `--log-format text|json` and `--log-level`: the binary's stderr log, and the connection
//! events it carries at debug level (`EventLog`).
//!
//! Both formats go through env_logger. JSON lines are built from the `log` record (its level,
//! message and key-values) as a `serde_json` map and written by serde_json, so quoting and
//! escaping are the library's, never ours. Key names follow the contract: `ts`,
//! `level`, `msg`, `target`, then the record's fields (`conn`, `path`, `remote`, `code`).
//! tracing-subscriber's JSON formatter was not used: its member names (`timestamp`,
//! `fields.message`) cannot be renamed.
//!
//! What is never logged: a request's query string (it may carry a token), its headers
//! (cookies, `Authorization`) and message contents. Events name the request by its path.

use std::io::Write;
use std::net::SocketAddr;

use clap::ValueEnum;
use log::kv::{self, Key, Value, VisitSource};
use wss_server::{
    ConnectionEvent, ConnectionHandler, ErrorEvent, MessageEvent, OpenEvent, ServerHandler,
    ServerTerminateEvent, TerminateEvent, WebSocketConnection, WebSocketServer,
};

use crate::LogLevel;

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// One human-readable line per record (env_logger's format).
    Text,
    /// One JSON object per line: ts, level, msg, target, and the event's fields.
    Json,
}

/// Installs the stderr logger.
pub(crate) fn init(level: Option<LogLevel>, format: LogFormat) {
    let mut builder = match level {
        Some(level) => {
            let mut b = env_logger::Builder::new();
            b.filter_level(level.filter());
            b
        }
        None => env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")),
    };
    if format == LogFormat::Json {
        builder.format(|buf, record| {
            let mut line = serde_json::Map::new();
            line.insert("ts".into(), buf.timestamp_millis().to_string().into());
            line.insert("level".into(), record.level().as_str().into());
            line.insert("msg".into(), record.args().to_string().into());
            line.insert("target".into(), record.target().into());
            let mut fields = Fields(&mut line);
            // A field that cannot be visited is left out; the line itself still goes out.
            let _ = record.key_values().visit(&mut fields);
            serde_json::to_writer(&mut *buf, &line)?;
            writeln!(buf)
        });
    }
    builder.target(env_logger::Target::Stderr).init();
}

/// Copies a record's key-values into the JSON object: numbers as numbers, the rest as text.
struct Fields<'a>(&'a mut serde_json::Map<String, serde_json::Value>);

impl<'kvs> VisitSource<'kvs> for Fields<'_> {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), kv::Error> {
        let v = match value.to_u64() {
            Some(n) => serde_json::Value::from(n),
            None => serde_json::Value::from(value.to_string()),
        };
        // The fixed members win over a field of the same name.
        self.0.entry(key.as_str().to_owned()).or_insert(v);
        Ok(())
    }
}

/// Logs each server and connection event at debug level with its fields, and passes every
/// callback on. Wrapped around the handler only when debug records are kept, so a server at
/// the default level pays nothing for it.
pub(crate) struct EventLog<H> {
    inner: H,
}

impl<H> EventLog<H> {
    pub(crate) fn new(inner: H) -> Self {
        EventLog { inner }
    }
}

fn path_of(wss: &WebSocketServer) -> String {
    wss.path().unwrap_or("*").to_owned()
}

impl<H: ServerHandler> ServerHandler for EventLog<H> {
    type Connection = LoggedConn<H::Connection>;

    fn on_connection(
        &mut self,
        wss: &WebSocketServer,
        event: &ConnectionEvent,
    ) -> Option<Self::Connection> {
        let req = &event.request;
        let remote = SocketAddr::new(req.remote_address, req.remote_port);
        // `req.path()`: never the URL, whose query may carry a token.
        let path = req.path().to_owned();
        let accepted = self.inner.on_connection(wss, event);
        match &accepted {
            Some(_) => log::debug!(target: "wss::event",
                path = path.as_str(), remote:% = remote; "connection accepted"),
            None => log::debug!(target: "wss::event",
                path = path.as_str(), remote:% = remote; "connection refused by the handler"),
        }
        accepted.map(|inner| LoggedConn {
            inner,
            path: path_of(wss),
            remote,
        })
    }

    fn on_open(&mut self, wss: &WebSocketServer, event: &OpenEvent) {
        log::debug!(target: "wss::event", path = path_of(wss).as_str(); "server open");
        self.inner.on_open(wss, event)
    }

    fn on_terminate(&mut self, wss: &WebSocketServer, event: &ServerTerminateEvent) {
        self.inner.on_terminate(wss, event);
        log::debug!(target: "wss::event", path = path_of(wss).as_str(); "server terminated");
    }

    fn on_error(&mut self, wss: &WebSocketServer, event: &ErrorEvent) {
        for e in &event.errors {
            log::warn!(target: "wss::event", path = path_of(wss).as_str(), code = e.err_code;
                "server error: {}", e.message);
        }
        self.inner.on_error(wss, event)
    }
}

/// The per-connection half of [`EventLog`].
pub(crate) struct LoggedConn<C> {
    inner: C,
    path: String,
    remote: SocketAddr,
}

impl<C: ConnectionHandler> ConnectionHandler for LoggedConn<C> {
    fn on_message(&mut self, ws: &WebSocketConnection, event: &MessageEvent) {
        self.inner.on_message(ws, event)
    }

    fn on_message_owned(&mut self, ws: &WebSocketConnection, event: MessageEvent) {
        self.inner.on_message_owned(ws, event)
    }

    fn on_open(&mut self, ws: &WebSocketConnection, event: &OpenEvent) {
        log::debug!(target: "wss::event", conn = ws.id(), path = self.path.as_str(),
            remote:% = self.remote; "connection open");
        self.inner.on_open(ws, event)
    }

    fn on_terminate(&mut self, ws: &WebSocketConnection, event: &TerminateEvent) {
        log::debug!(target: "wss::event", conn = ws.id(), path = self.path.as_str(),
            remote:% = self.remote, code = event.code; "connection closed");
        self.inner.on_terminate(ws, event)
    }

    fn on_error(&mut self, ws: &WebSocketConnection, event: &ErrorEvent) {
        for e in &event.errors {
            log::debug!(target: "wss::event", conn = ws.id(), path = self.path.as_str(),
                remote:% = self.remote, code = e.err_code; "connection error: {}", e.message);
        }
        self.inner.on_error(ws, event)
    }
}
