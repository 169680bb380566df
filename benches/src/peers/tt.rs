//! The tokio-tungstenite peer: `accept_async`, then the stream split and forwarded, as in the
//! library's echo example; broadcast keeps one unbounded channel per client, as in its chat
//! example. With a TLS configuration, each accepted socket goes through tokio-rustls's
//! `TlsAcceptor` first (inside the connection's task, as its documentation shows).

use super::Mode;
use futures_util::{future, SinkExt, StreamExt, TryStreamExt};
use std::collections::HashMap;
use std::io;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

type Registry = Arc<Mutex<HashMap<u64, mpsc::UnboundedSender<Message>>>>;

/// Serves `mode` on `listener` with `threads` runtime threads, until the process ends.
pub fn serve(listener: TcpListener, mode: Mode, threads: usize) -> io::Result<()> {
    serve_tls(listener, mode, threads, None)
}

/// As [`serve`], speaking TLS (`wss://`) with `tls` when given.
pub fn serve_tls(
    listener: TcpListener,
    mode: Mode,
    threads: usize,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let rt = super::runtime(threads)?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let registry: Registry = Arc::default();
        let mut next_id = 0u64;
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(s) => s,
                // Out of fds or similar: keep serving the connections we have.
                Err(_) => {
                    tokio::task::yield_now().await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            next_id += 1;
            let registry = Arc::clone(&registry);
            match (mode, &acceptor) {
                (Mode::Echo, None) => {
                    tokio::spawn(echo(stream));
                }
                (Mode::Broadcast, None) => {
                    tokio::spawn(relay(stream, next_id, registry));
                }
                (mode, Some(acceptor)) => {
                    let accept = acceptor.accept(stream);
                    tokio::spawn(async move {
                        let Ok(stream) = accept.await else { return };
                        match mode {
                            Mode::Echo => echo(stream).await,
                            Mode::Broadcast => relay(stream, next_id, registry).await,
                        }
                    });
                }
            }
        }
    })
}

async fn echo<S: AsyncRead + AsyncWrite + Unpin>(stream: S) {
    let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    let (write, read) = ws.split();
    let _ = read
        .try_filter(|m| future::ready(m.is_text() || m.is_binary()))
        .forward(write)
        .await;
}

async fn relay<S>(stream: S, id: u64, registry: Registry)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    let (mut write, mut read) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    lock(&registry).insert(id, tx);
    let writer = tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            // Feed whatever is queued, then flush once: one write for a burst.
            let mut next = Some(first);
            while let Some(m) = next {
                if write.feed(m).await.is_err() {
                    return;
                }
                next = rx.try_recv().ok();
            }
            if write.flush().await.is_err() {
                return;
            }
        }
        let _ = write.close().await;
    });
    while let Some(Ok(msg)) = read.next().await {
        if msg.is_text() || msg.is_binary() {
            for (other, tx) in lock(&registry).iter() {
                if *other != id {
                    let _ = tx.send(msg.clone());
                }
            }
        }
    }
    lock(&registry).remove(&id);
    let _ = writer.await;
}

fn lock(r: &Registry) -> std::sync::MutexGuard<'_, HashMap<u64, mpsc::UnboundedSender<Message>>> {
    // A panicked task cannot leave the map half-updated (insert/remove are atomic), so a
    // poisoned lock is still usable.
    r.lock().unwrap_or_else(|p| p.into_inner())
}
