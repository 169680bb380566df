//! The fastwebsockets peer: the upgrade is answered here (the library's own upgrade helper
//! pulls in hyper), then `WebSocket::after_handshake` and the read/write loop of the library's
//! echo example, with automatic pongs and close replies.

use super::Mode;
use base64::Engine;
use fastwebsockets::{FragmentCollector, OpCode, Role, WebSocket};
use sha1::{Digest, Sha1};
use std::io;
use std::net::TcpListener;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const MAX_HEAD: usize = 16 * 1024;

/// Serves echo on `listener` with `threads` runtime threads, until the process ends.
/// Broadcast is not offered by this peer: it answers `Unsupported`.
pub fn serve(listener: TcpListener, mode: Mode, threads: usize) -> io::Result<()> {
    if mode != Mode::Echo {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "fws-echo only echoes",
        ));
    }
    listener.set_nonblocking(true)?;
    let rt = super::runtime(threads)?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                tokio::task::yield_now().await;
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let _ = echo(stream).await;
            });
        }
    })
}

async fn echo(mut stream: TcpStream) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    if !upgrade(&mut stream).await? {
        return Ok(());
    }
    let mut ws = WebSocket::after_handshake(stream, Role::Server);
    ws.set_auto_close(true);
    ws.set_auto_pong(true);
    let mut ws = FragmentCollector::new(ws);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => return Ok(()),
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            _ => {}
        }
    }
}

/// Reads the request head and answers 101, or 400 and `false`. Frames never arrive before
/// our 101 from a conforming client, so reading past the head cannot swallow any.
async fn upgrade(stream: &mut TcpStream) -> io::Result<bool> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    let key = loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 || head.len() + n > MAX_HEAD {
            return Ok(false);
        }
        head.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&head) {
            Ok(httparse::Status::Partial) => continue,
            Ok(httparse::Status::Complete(_)) => {
                break req
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-key"))
                    .map(|h| h.value.to_vec());
            }
            Err(_) => break None,
        }
    };
    let Some(key) = key else {
        stream
            .write_all(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            )
            .await?;
        return Ok(false);
    };
    let mut sha = Sha1::new();
    sha.update(&key);
    sha.update(GUID.as_bytes());
    let accept = base64::engine::general_purpose::STANDARD.encode(sha.finalize());
    let resp = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    stream.write_all(resp.as_bytes()).await?;
    Ok(true)
}
