//! Errors: why a connection could not be made (returned, or reported to `on_error`), why a
//! `send` was refused, and what `recv` of the blocking handle can say.

use std::fmt;
use std::io;

use wss_server::ErrorInfo;

/// Error codes this crate raises itself (component [`codes::COMPONENT`]), in the
/// `errCode` of the `on_error` items. A server that answers the upgrade with another status
/// than `101` is reported with that HTTP status as `errCode` and component `"HTTP"`.
pub mod codes {
    /// `componentSignature` of the errors raised by this crate (as on the server).
    pub const COMPONENT: &str = "wss";
    /// A callback panicked; the message carries the panic text (as on the server).
    pub const CALLBACK_PANICKED: i64 = -1;
    /// The URL is not a `ws://` or `wss://` URL this client can use.
    pub const INVALID_URL: i64 = -20;
    /// The host name did not resolve, or no address accepted the TCP connection.
    pub const CONNECT_FAILED: i64 = -21;
    /// No TCP connection within `ClientOptions::connect_timeout`.
    pub const CONNECT_TIMEOUT: i64 = -22;
    /// No valid `101` within `ClientOptions::handshake_timeout`.
    pub const HANDSHAKE_TIMEOUT: i64 = -23;
    /// The server's answer to the upgrade request is not a valid `101` for our request.
    pub const HANDSHAKE_INVALID: i64 = -24;
    /// The TLS handshake failed (certificate not trusted, name mismatch, protocol error).
    pub const TLS_FAILED: i64 = -25;
    /// The worker thread could not be started.
    pub const SPAWN_FAILED: i64 = -7;
    /// The network loops stopped before the connection could be run.
    pub const LOOPS_STOPPED: i64 = -26;
}

/// Why a connection could not be made. [`WebSocket::connect`](crate::WebSocket::connect)
/// returns the first two kinds; the others reach `on_error` (as
/// [`info`](Self::info)) or the error of
/// [`connect_blocking`](crate::WebSocket::connect_blocking).
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnectError {
    /// The URL is not `ws://host[:port][/path][?query]` or `wss://...` (no fragment, no
    /// credentials); says why.
    InvalidUrl(String),
    /// The worker thread could not be started.
    Spawn(io::Error),
    /// The host did not resolve, or every address refused or failed.
    Connect(io::Error),
    /// No TCP connection within the connect timeout.
    ConnectTimeout,
    /// No complete answer to the upgrade request within the handshake timeout.
    HandshakeTimeout,
    /// The server answered with this HTTP status instead of `101`.
    Refused(u16),
    /// The server's `101` breaks RFC 6455 or does not match the request (says how), or the
    /// connection ended before it.
    Handshake(String),
    /// The TLS handshake failed.
    Tls(String),
    /// The network loops stopped (the process is shutting down) before the connection ran.
    LoopsStopped,
}

impl ConnectError {
    /// The 4D error item for this failure, as `on_error` receives it.
    pub fn info(&self) -> ErrorInfo {
        let (code, component) = match self {
            ConnectError::InvalidUrl(_) => (codes::INVALID_URL, codes::COMPONENT),
            ConnectError::Spawn(_) => (codes::SPAWN_FAILED, codes::COMPONENT),
            ConnectError::Connect(_) => (codes::CONNECT_FAILED, codes::COMPONENT),
            ConnectError::ConnectTimeout => (codes::CONNECT_TIMEOUT, codes::COMPONENT),
            ConnectError::HandshakeTimeout => (codes::HANDSHAKE_TIMEOUT, codes::COMPONENT),
            ConnectError::Refused(status) => (i64::from(*status), "HTTP"),
            ConnectError::Handshake(_) => (codes::HANDSHAKE_INVALID, codes::COMPONENT),
            ConnectError::Tls(_) => (codes::TLS_FAILED, codes::COMPONENT),
            ConnectError::LoopsStopped => (codes::LOOPS_STOPPED, codes::COMPONENT),
        };
        ErrorInfo::new(code, self.to_string(), component)
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::InvalidUrl(why) => write!(f, "invalid WebSocket URL: {why}"),
            ConnectError::Spawn(e) => write!(f, "cannot start the client worker thread: {e}"),
            ConnectError::Connect(e) => write!(f, "cannot connect: {e}"),
            ConnectError::ConnectTimeout => f.write_str("connect timed out"),
            ConnectError::HandshakeTimeout => f.write_str("opening handshake timed out"),
            ConnectError::Refused(status) => {
                write!(f, "the server answered {status} instead of 101")
            }
            ConnectError::Handshake(why) => write!(f, "invalid opening handshake: {why}"),
            ConnectError::Tls(why) => write!(f, "TLS handshake failed: {why}"),
            ConnectError::LoopsStopped => f.write_str("the network loops have stopped"),
        }
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConnectError::Spawn(e) | ConnectError::Connect(e) => Some(e),
            _ => None,
        }
    }
}

/// Why a `send` was refused. Nothing reaches `on_error` for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// The WebSocket is still `Connecting` (wait for `on_open`; browsers refuse this too).
    NotOpen,
    /// The WebSocket is `Closing` or `Closed`.
    Closed,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::NotOpen => f.write_str("the WebSocket is still connecting"),
            SendError::Closed => f.write_str("the WebSocket is closing or closed"),
        }
    }
}

impl std::error::Error for SendError {}

/// Why [`BlockingWebSocket::recv`](crate::BlockingWebSocket::recv) returned no message.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecvError {
    /// Nothing arrived within the timeout; the connection is still open.
    Timeout,
    /// The connection is over and every message was taken: `code` and `reason` as
    /// `on_terminate` had them, `error` the `on_error` that came before, if any.
    Closed {
        /// The close code (the 1005/1006 rules apply).
        code: u16,
        /// The peer's reason, if it gave one.
        reason: Option<String>,
        /// What went wrong, when the end was abnormal.
        error: Option<ErrorInfo>,
    },
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvError::Timeout => f.write_str("no message within the timeout"),
            RecvError::Closed { code, error, .. } => match error {
                Some(e) => write!(f, "the connection closed with {code}: {e}"),
                None => write!(f, "the connection closed with {code}"),
            },
        }
    }
}

impl std::error::Error for RecvError {}
