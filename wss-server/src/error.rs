//! Errors: what `new()`/`start()` return, what `send()` reports, and the 4D-style error items
//! that `on_error` events carry.

use std::fmt;
use std::io;

/// One element of a 4D error stack: `{errCode, message, componentSignature}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorInfo {
    /// 4D `errCode`: a close code for transport errors (1001..=1015, 3000..=4999), 1007 for
    /// bad JSON (A5), an HTTP status for refused handshakes, or one of [`codes`].
    pub err_code: i64,
    /// 4D `message`: what went wrong, in English.
    pub message: String,
    /// 4D `componentSignature`: `"HTTP"` (transport, as 4D logs it), `"JSON"` (A5) or
    /// [`codes::COMPONENT`] (this library: panics, refusals, invalid results).
    pub component_signature: String,
}

impl ErrorInfo {
    /// Builds an item.
    pub fn new(err_code: i64, message: impl Into<String>, component: impl Into<String>) -> Self {
        ErrorInfo {
            err_code,
            message: message.into(),
            component_signature: component.into(),
        }
    }

    /// The 4D object `{"errCode", "message", "componentSignature"}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "errCode": self.err_code,
            "message": self.message,
            "componentSignature": self.component_signature,
        })
    }
}

impl fmt::Display for ErrorInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{} {}] {}",
            self.component_signature, self.err_code, self.message
        )
    }
}

/// Error codes this library raises itself (component [`codes::COMPONENT`]).
pub mod codes {
    /// `componentSignature` of the errors raised by this library.
    pub const COMPONENT: &str = "wss";
    /// A callback panicked; the message carries the panic text.
    pub const CALLBACK_PANICKED: i64 = -1;
    /// A handshake was refused by the origin policy before `on_connection` (issue 13).
    pub const ORIGIN_REFUSED: i64 = 403;
    /// A handshake was refused by the `Host` policy before `on_connection` (DNS rebinding,
    /// issue 20); the HTTP status sent, like [`ORIGIN_REFUSED`], told apart by the message.
    pub const HOST_REFUSED: i64 = 403;
    /// The web server is not running.
    pub const WEB_SERVER_NOT_RUNNING: i64 = -2;
    /// The path is already served by another live WebSocket server.
    pub const PATH_TAKEN: i64 = -3;
    /// A second server without a path (catch-all) was requested.
    pub const SECOND_CATCH_ALL: i64 = -4;
    /// The path does not start with `/` or holds a query or fragment.
    pub const INVALID_PATH: i64 = -5;
    /// `dataType` is not `text`, `blob` or `object`.
    pub const INVALID_DATA_TYPE: i64 = -6;
    /// The worker thread could not be spawned.
    pub const SPAWN_FAILED: i64 = -7;
    /// The JSON payload of a message could not be parsed (A5); component `"JSON"`.
    pub const INVALID_JSON: i64 = 1007;
}

/// Why `WebSocketServer::new` failed (SPEC A6). No callback ran and no server exists.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServerError {
    /// The web server was stopped (or never started).
    WebServerNotRunning,
    /// Another live WebSocket server already serves this path.
    PathTaken(String),
    /// A live catch-all server (no path) already exists on this web server.
    SecondCatchAll,
    /// The path must start with `/` and hold no `?` or `#`.
    InvalidPath(String),
    /// The data type text is not `text`, `blob` or `object` (from `DataType::from_str`).
    InvalidDataType(String),
    /// The worker thread could not be started.
    Spawn(io::Error),
}

impl ServerError {
    /// The 4D errors stack for this failure (one item).
    pub fn errors(&self) -> Vec<ErrorInfo> {
        vec![ErrorInfo::new(
            self.err_code(),
            self.to_string(),
            codes::COMPONENT,
        )]
    }

    /// The `errCode` of this failure (see [`codes`]).
    pub fn err_code(&self) -> i64 {
        match self {
            ServerError::WebServerNotRunning => codes::WEB_SERVER_NOT_RUNNING,
            ServerError::PathTaken(_) => codes::PATH_TAKEN,
            ServerError::SecondCatchAll => codes::SECOND_CATCH_ALL,
            ServerError::InvalidPath(_) => codes::INVALID_PATH,
            ServerError::InvalidDataType(_) => codes::INVALID_DATA_TYPE,
            ServerError::Spawn(_) => codes::SPAWN_FAILED,
        }
    }
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerError::WebServerNotRunning => f.write_str("the web server is not running"),
            ServerError::PathTaken(p) => {
                write!(f, "path {p:?} is already served by a WebSocket server")
            }
            ServerError::SecondCatchAll => {
                f.write_str("a WebSocket server without path already exists on this web server")
            }
            ServerError::InvalidPath(p) => {
                write!(
                    f,
                    "invalid path {p:?}: it must start with '/' and hold no '?' or '#'"
                )
            }
            ServerError::InvalidDataType(t) => {
                write!(f, "invalid dataType {t:?}: expected text, blob or object")
            }
            ServerError::Spawn(e) => write!(f, "cannot start the worker thread: {e}"),
        }
    }
}

// The cause is part of the Display text and stays reachable as the variant's field, so
// source() returns None: a report that walks the chain (anyhow's `{:#}`) prints it once.
impl std::error::Error for ServerError {}

/// Why `WebServer::start` failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum WebError {
    /// `host` did not resolve to an address.
    Resolve(String),
    /// Binding or starting the network threads failed.
    Bind(io::Error),
    /// The static root folder does not exist or is not a folder.
    Root(io::Error),
    /// Binding the metrics listener (`WebServerOptions::metrics`) failed.
    Metrics(io::Error),
}

impl fmt::Display for WebError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WebError::Resolve(h) => write!(f, "cannot resolve host {h:?}"),
            WebError::Bind(e) => write!(f, "cannot start listening: {e}"),
            WebError::Root(e) => write!(f, "invalid static root folder: {e}"),
            WebError::Metrics(e) => write!(f, "cannot start the metrics listener: {e}"),
        }
    }
}

// The cause is part of the Display text and stays reachable as the variant's field, so
// source() returns None: a report that walks the chain (anyhow's `{:#}`) prints it once.
impl std::error::Error for WebError {}

/// Why a `send` was dropped. Dropping is silent otherwise (SPEC A14): nothing is raised and
/// nothing reaches `on_error`; ignore this unless you care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// The connection is `Closing` or `Closed`.
    Closed,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Closed => f.write_str("the connection is closing or closed"),
        }
    }
}

impl std::error::Error for SendError {}

/// `HandlerRef::lock` was called from inside a callback of that same handler, on the worker:
/// the handler is already borrowed there (use `self`). Waiting would deadlock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandlerBusy;

impl fmt::Display for HandlerBusy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the handler is running a callback on this thread; use `self` there")
    }
}

impl std::error::Error for HandlerBusy {}

/// Why a room subscription or a presence name was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TopicError {
    /// The connection is closing or closed.
    Closed,
    /// Empty, or longer than the limit ([`MAX_ROOM_LEN`](crate::MAX_ROOM_LEN) for rooms,
    /// [`MAX_USER_LEN`](crate::MAX_USER_LEN) for user names).
    InvalidName,
    /// The connection is already in `limit` rooms.
    TooMany {
        /// [`MAX_ROOMS_PER_CONNECTION`](crate::MAX_ROOMS_PER_CONNECTION).
        limit: usize,
    },
}

impl fmt::Display for TopicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TopicError::Closed => f.write_str("the connection is not open"),
            TopicError::InvalidName => f.write_str("empty or too long room or user name"),
            TopicError::TooMany { limit } => write!(f, "already in {limit} rooms"),
        }
    }
}

impl std::error::Error for TopicError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BrokerError;
    use std::error::Error;

    /// What a report that walks the chain prints (anyhow's `{:#}`): each error's Display,
    /// joined with ": ".
    fn chain(e: &dyn Error) -> String {
        let mut out = e.to_string();
        let mut next = e.source();
        while let Some(cause) = next {
            out.push_str(": ");
            out.push_str(&cause.to_string());
            next = cause.source();
        }
        out
    }

    #[test]
    fn each_cause_is_printed_once_along_the_chain() {
        let cause = || io::Error::new(io::ErrorKind::AddrInUse, "port 80 taken");
        let errors: Vec<Box<dyn Error>> = vec![
            Box::new(WebError::Bind(cause())),
            Box::new(WebError::Root(cause())),
            Box::new(ServerError::Spawn(cause())),
            Box::new(BrokerError::Backend(Box::new(cause()))),
        ];
        for e in &errors {
            let text = chain(e.as_ref());
            assert_eq!(text.matches("port 80 taken").count(), 1, "{text}");
        }
    }
}
