//! `Net`: binding, starting the loops, stopping them.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use mio::{Interest, Poll, Waker};
use socket2::{Domain, Socket, Type};
use wss_proto::close::CloseCode;

use crate::accept::Acceptor;
use crate::api::Service;
use crate::config::NetConfig;
use crate::event_loop::{Common, EventLoop, LISTENER, WAKER};
use crate::handle::NetHandle;
use crate::wake::LoopShared;

/// Kernel queue of connections not yet accepted. Large enough for a burst of thousands of
/// clients connecting at once (the kernel caps it at `net.core.somaxconn`).
const BACKLOG: i32 = 4096;

/// A running server: a listening socket and its event loops.
///
/// Dropping it shuts the loops down immediately (no close frames) and joins them; call
/// [`Net::shutdown`] for a graceful end.
pub struct Net {
    local_addr: SocketAddr,
    handle: NetHandle,
    threads: Vec<JoinHandle<()>>,
}

impl Net {
    /// Binds `addr` (port 0 picks a free port), starts the loops, and returns once the
    /// listener accepts connections.
    ///
    /// # Errors
    /// Binding or listening failed, or a loop's poll or thread could not be created.
    pub fn bind(addr: SocketAddr, config: NetConfig, service: Arc<dyn Service>) -> io::Result<Net> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
        // Restarting while old connections sit in TIME_WAIT must not fail with EADDRINUSE.
        socket.set_reuse_address(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        socket.listen(BACKLOG)?;
        let std_listener: std::net::TcpListener = socket.into();
        let local_addr = std_listener.local_addr()?;
        let mut listener = mio::net::TcpListener::from_std(std_listener);

        let n = config.loop_count();
        let config = Arc::new(config);
        let live = Arc::new(AtomicUsize::new(0));
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
            live: Arc::clone(&live),
        };

        let mut net = Net {
            local_addr,
            handle,
            threads: Vec::with_capacity(n),
        };
        polls[0]
            .registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        // Loop 0 accepts for everyone (see `accept.rs` for why one acceptor).
        let mut acceptor = Some(Acceptor::new(listener, Arc::clone(&loops), 0));
        for (index, (poll, rx)) in polls.into_iter().zip(receivers).enumerate() {
            let acceptor = acceptor.take();
            let event_loop = EventLoop::new(
                index,
                poll,
                rx,
                Arc::clone(&loops[index]),
                Common {
                    live: Arc::clone(&live),
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

    /// The address actually bound (with the port chosen when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
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
            .field("local_addr", &self.local_addr)
            .field("loops", &self.handle.loops.len())
            .finish()
    }
}
