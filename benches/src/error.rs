//! Why a run failed.

use std::fmt;
use std::io;

/// Everything that can stop a load-generator run early or make its result invalid.
#[derive(Debug)]
#[non_exhaustive]
pub enum BenchError {
    /// The URL could not be parsed (the text says what was wrong with it).
    BadUrl(&'static str),
    /// The target resolves outside 127.0.0.0/8 and ::1: this tool only loads local servers.
    NotLoopback(std::net::IpAddr),
    /// A bound given on the command line is out of range.
    BadArgument(&'static str),
    /// A socket call failed.
    Io(io::ErrorKind, &'static str),
    /// The server did not answer the upgrade with a valid 101.
    Handshake(&'static str),
    /// The server broke the WebSocket framing rules.
    Protocol(&'static str),
    /// An echoed or broadcast message differs from what was sent.
    Mismatch {
        /// Connection index inside the run.
        conn: usize,
        /// Sequence number of the message that differed.
        seq: u64,
    },
    /// The server closed a connection while the run still needed it.
    ServerClosed(usize),
    /// Messages were still missing when the drain deadline passed.
    Lost(u64),
    /// Reading /proc failed (pid gone, or no permission).
    Proc(&'static str),
}

impl BenchError {
    pub(crate) fn io(context: &'static str) -> impl FnOnce(io::Error) -> BenchError {
        move |e| BenchError::Io(e.kind(), context)
    }
}

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BenchError::BadUrl(why) => write!(f, "bad url: {why}"),
            BenchError::NotLoopback(ip) => {
                write!(
                    f,
                    "refusing target {ip}: only 127.0.0.0/8 and ::1 may be loaded"
                )
            }
            BenchError::BadArgument(why) => write!(f, "bad argument: {why}"),
            BenchError::Io(kind, ctx) => write!(f, "{ctx}: {kind}"),
            BenchError::Handshake(why) => write!(f, "handshake failed: {why}"),
            BenchError::Protocol(why) => write!(f, "protocol error from server: {why}"),
            BenchError::Mismatch { conn, seq } => {
                write!(
                    f,
                    "connection {conn}: message {seq} differs from what was sent"
                )
            }
            BenchError::ServerClosed(conn) => write!(f, "server closed connection {conn}"),
            BenchError::Lost(n) => write!(f, "{n} messages never arrived"),
            BenchError::Proc(why) => write!(f, "/proc: {why}"),
        }
    }
}

impl std::error::Error for BenchError {}
