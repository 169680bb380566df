//! Servers to measure wss against, built the way their own documentation shows, so that the
//! comparison is with each library as people use it.
//!
//! - [`tt`]: tokio-tungstenite, echo or broadcast.
//! - [`fws`]: fastwebsockets, echo (its handshake is done here: the library's own needs hyper).
//!
//! Both take a bound `std::net::TcpListener`, so the binaries can print the readiness line
//! before serving and tests can pick a free port.

pub mod fws;
pub mod tt;

use std::io;
use std::net::TcpListener;

/// What a peer server does with the messages it receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Sends every text or binary message back to its sender, unchanged.
    Echo,
    /// Sends every text or binary message, unchanged, to every other connected client.
    Broadcast,
}

/// Builds the tokio runtime a peer runs on: one thread runs everything (current-thread
/// scheduler), more use the work-stealing scheduler.
pub fn runtime(threads: usize) -> io::Result<tokio::runtime::Runtime> {
    if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_io()
            .build()
    }
}

/// Binds `host:port` (port 0: any free port) and returns the listener with the readiness line
/// the `wss` binary also prints: `listening on ws://HOST:PORT/`.
pub fn bind(host: &str, port: u16) -> io::Result<(TcpListener, String)> {
    let listener = TcpListener::bind((host, port))?;
    let addr = listener.local_addr()?;
    let line = match addr {
        std::net::SocketAddr::V4(a) => format!("listening on ws://{}:{}/", a.ip(), a.port()),
        std::net::SocketAddr::V6(a) => format!("listening on ws://[{}]:{}/", a.ip(), a.port()),
    };
    Ok((listener, line))
}

/// Starts a peer on a free loopback port on a background thread (tests, examples) and returns
/// its address. The thread runs until the process exits.
pub fn spawn_local(
    serve: fn(TcpListener, Mode, usize) -> io::Result<()>,
    mode: Mode,
) -> io::Result<std::net::SocketAddr> {
    let (listener, _) = bind("127.0.0.1", 0)?;
    let addr = listener.local_addr()?;
    std::thread::Builder::new()
        .name("peer".into())
        .spawn(move || serve(listener, mode, 1))?;
    Ok(addr)
}
