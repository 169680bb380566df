//! `Net`: binding, starting the loops, stopping them.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use mio::{Interest, Poll, Waker};
use socket2::{Domain, Socket, Type};
use wss_proto::CloseCode;

use crate::accept::{listener_token, Acceptor, MAX_LISTENERS};
use crate::api::Service;
use crate::config::NetConfig;
use crate::event_loop::{Common, EventLoop, WAKER};
use crate::handle::NetHandle;
use crate::limits::Admission;
use crate::wake::LoopShared;

/// Kernel queue of connections not yet accepted. Large enough for a burst of thousands of
/// clients connecting at once (the kernel caps it at `net.core.somaxconn`).
const BACKLOG: i32 = 4096;

/// One address to listen on, plain or TLS (4D's HTTP and HTTPS ports).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listen {
    /// Where to listen (port 0 picks a free port).
    pub addr: SocketAddr,
    /// Speak TLS on it, with [`NetConfig::tls`].
    pub tls: bool,
}

impl Listen {
    /// A plain TCP listener (`http://`, `ws://`).
    pub fn plain(addr: SocketAddr) -> Listen {
        Listen { addr, tls: false }
    }

    /// A TLS listener (`https://`, `wss://`).
    pub fn tls(addr: SocketAddr) -> Listen {
        Listen { addr, tls: true }
    }
}

/// A running server: its listening sockets and its event loops.
///
/// Dropping it shuts the loops down immediately (no close frames) and joins them; call
/// [`Net::shutdown`] for a graceful end.
pub struct Net {
    /// The listeners as bound (real ports).
    listeners: Vec<Listen>,
    handle: NetHandle,
    threads: Vec<JoinHandle<()>>,
}

impl Net {
    /// Binds `addr` (port 0 picks a free port), starts the loops, and returns once the
    /// listener accepts connections. The listener speaks TLS when [`NetConfig::tls`] is set.
    ///
    /// # Errors
    /// Binding or listening failed, or a loop's poll or thread could not be created.
    pub fn bind(addr: SocketAddr, config: NetConfig, service: Arc<dyn Service>) -> io::Result<Net> {
        let listen = Listen {
            addr,
            tls: config.tls.is_some(),
        };
        Net::bind_all(&[listen], config, service)
    }

    /// Binds every address in `listeners` (a plain and a TLS one, say), starts the loops,
    /// and returns once all accept connections. Connections of every listener share the
    /// loops and the limits.
    ///
    /// # Errors
    /// `InvalidInput` for an empty list, more than 16 listeners, or a TLS listener without
    /// [`NetConfig::tls`]; otherwise binding or listening failed, or a loop's poll or thread
    /// could not be created.
    pub fn bind_all(
        listeners: &[Listen],
        config: NetConfig,
        service: Arc<dyn Service>,
    ) -> io::Result<Net> {
        if listeners.is_empty() || listeners.len() > MAX_LISTENERS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "between 1 and 16 listeners",
            ));
        }
        if listeners.iter().any(|l| l.tls) && config.tls.is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a TLS listener needs NetConfig::tls",
            ));
        }
        let mut bound = Vec::with_capacity(listeners.len());
        let mut sockets = Vec::with_capacity(listeners.len());
        for listen in listeners {
            let (listener, addr) = listen_on(listen.addr)?;
            bound.push(Listen {
                addr,
                tls: listen.tls,
            });
            sockets.push((listener, listen.tls));
        }
        Net::launch(bound, sockets, config, service)
    }

    /// Starts the loops without a listener: they run outgoing connections only
    /// ([`NetHandle::connect`]). [`local_addr`](Self::local_addr) is then `0.0.0.0:0`.
    ///
    /// # Errors
    /// A loop's poll or thread could not be created.
    pub fn start(config: NetConfig) -> io::Result<Net> {
        Net::launch(Vec::new(), Vec::new(), config, Arc::new(NoListener))
    }

    fn launch(
        bound: Vec<Listen>,
        mut sockets: Vec<(mio::net::TcpListener, bool)>,
        config: NetConfig,
        service: Arc<dyn Service>,
    ) -> io::Result<Net> {
        let n = config.loop_count();
        let admission = Arc::new(Admission::new(&config));
        let config = Arc::new(config);
        let mut polls = Vec::with_capacity(n);
        let mut shareds = Vec::with_capacity(n);
        let mut receivers = Vec::with_capacity(n);
        for _ in 0..n {
            let poll = Poll::new()?;
            let waker = Waker::new(poll.registry(), WAKER)?;
            let (shared, rx) = LoopShared::new(waker);
            polls.push(poll);
            shareds.push(Arc::new(shared));
            receivers.push(rx);
        }
        let loops: Arc<[Arc<LoopShared>]> = shareds.into();
        let handle = NetHandle {
            loops: Arc::clone(&loops),
            admission: Arc::clone(&admission),
        };

        let mut net = Net {
            listeners: bound,
            handle,
            threads: Vec::with_capacity(n),
        };
        for (i, (listener, _)) in sockets.iter_mut().enumerate() {
            polls[0]
                .registry()
                .register(listener, listener_token(i), Interest::READABLE)?;
        }
        // Loop 0 accepts for everyone (see `accept.rs` for why one acceptor).
        let mut acceptor =
            (!sockets.is_empty()).then(|| Acceptor::new(sockets, Arc::clone(&loops), 0));
        for (index, (poll, rx)) in polls.into_iter().zip(receivers).enumerate() {
            let acceptor = acceptor.take();
            let event_loop = EventLoop::new(
                index,
                poll,
                rx,
                Arc::clone(&loops[index]),
                Common {
                    admission: Arc::clone(&admission),
                    config: Arc::clone(&config),
                    service: Arc::clone(&service),
                },
                acceptor,
            );
            let spawned = std::thread::Builder::new()
                .name(format!("wss-net-{index}"))
                .spawn(move || event_loop.run());
            match spawned {
                Ok(thread) => net.threads.push(thread),
                // Dropping `net` stops the loops already started.
                Err(e) => return Err(e),
            }
        }
        Ok(net)
    }

    /// The address actually bound (with the port chosen when 0 was asked); with several
    /// listeners, the first one's.
    pub fn local_addr(&self) -> SocketAddr {
        self.listeners
            .first()
            .map_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)), |l| l.addr)
    }

    /// Every listener as bound, in the order given.
    pub fn listeners(&self) -> &[Listen] {
        &self.listeners
    }

    /// The first TLS listener's address, if any.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.listeners.iter().find(|l| l.tls).map(|l| l.addr)
    }

    /// A handle for commands from any thread.
    pub fn handle(&self) -> NetHandle {
        self.handle.clone()
    }

    /// Stops accepting at once, then ends every connection and joins the loops.
    ///
    /// `Some((code, deadline))`: upgraded connections get a close frame with `code` (1001,
    /// say) and up to `deadline` to answer; those still open then are destroyed
    /// (`Closed { code: 1006, error: Shutdown }`). `None`: everything is destroyed now, no
    /// close frame sent. Connections still reading a head or awaiting a decision are dropped
    /// either way.
    pub fn shutdown(mut self, graceful: Option<(CloseCode, Duration)>) {
        self.stop(graceful);
    }

    fn stop(&mut self, graceful: Option<(CloseCode, Duration)>) {
        self.handle.shutdown(graceful);
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                log::error!("a wss-net loop panicked");
            }
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.stop(None);
        }
    }
}

impl std::fmt::Debug for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Net")
            .field("listeners", &self.listeners)
            .field("loops", &self.handle.loops.len())
            .finish()
    }
}

/// The service of loops started without a listener: no request head ever reaches it.
struct NoListener;

impl Service for NoListener {
    fn on_request(
        &self,
        _conn: crate::ConnId,
        _peer: SocketAddr,
        _request: wss_proto::handshake::Request,
    ) -> crate::Decision {
        crate::Decision::Respond {
            response: wss_proto::handshake::Response::error(404, "Not Found"),
            keep_alive: false,
        }
    }
}

/// A non-blocking listening socket on `addr`, and the address it got.
fn listen_on(addr: SocketAddr) -> io::Result<(mio::net::TcpListener, SocketAddr)> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    // Restarting while old connections sit in TIME_WAIT must not fail with EADDRINUSE.
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    // Accepted sockets inherit it on Linux, which saves the accepting loop a setsockopt per
    // connection there; elsewhere it is set again on each accepted socket.
    if let Err(e) = socket.set_nodelay(true) {
        log::debug!("TCP_NODELAY on the listener for {addr}: {e}");
    }
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    let std_listener: std::net::TcpListener = socket.into();
    let local = std_listener.local_addr()?;
    Ok((mio::net::TcpListener::from_std(std_listener), local))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The accepting loop does not set TCP_NODELAY on Linux (`accept.rs`): it must come from
    /// the listener.
    #[cfg(target_os = "linux")]
    #[test]
    fn accepted_socket_inherits_nodelay_from_the_listener() {
        let (listener, addr) = listen_on("127.0.0.1:0".parse().unwrap()).unwrap();
        let client = std::net::TcpStream::connect(addr).unwrap();
        assert!(!client.nodelay().unwrap(), "a fresh socket has Nagle on");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let accepted = loop {
            match listener.accept() {
                Ok((stream, _)) => break stream,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "no connection to accept"
                    );
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => panic!("accept: {e}"),
            }
        };
        assert!(accepted.nodelay().unwrap(), "TCP_NODELAY inherited");
    }
}
