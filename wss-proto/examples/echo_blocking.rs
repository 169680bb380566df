//! A WebSocket echo server on blocking `std::net` sockets, one thread per connection, using
//! nothing but wss-proto: the smallest complete program around the sans-IO core.
//!
//! ```text
//! cargo run -p wss-proto --example echo_blocking -- 127.0.0.1:9001
//! ```
//!
//! Every text or binary message comes back unchanged (compressed both ways when the client
//! offers permessage-deflate, as browsers do); pings are answered by the core; a
//! close is echoed and the socket closed. Connections idle for 60 s are pinged at 30 s and
//! dropped at 60 s, driven by the core's timers through the socket's read timeout.
//! `DEFLATE_THRESHOLD=0` in the environment compresses every message, however short
//! (conformance suites want that); the default leaves messages under 64 bytes plain.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use wss_proto::handshake::deflate::negotiate;
use wss_proto::handshake::{
    is_upgrade_request, validate_upgrade, HeadLimits, RequestParser, Response,
};
use wss_proto::{
    Config, Connection, DeflateConfig, DeflateParams, Event, Message, Role, Scratch, State,
};

fn main() -> io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9001".to_owned());
    let listener = TcpListener::bind(&addr)?;
    println!("listening on ws://{}/", listener.local_addr()?);
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(stream) => stream,
            Err(err) => {
                eprintln!("accept: {err}");
                continue;
            }
        };
        thread::spawn(move || {
            let peer = stream.peer_addr().ok();
            if let Err(err) = serve(stream) {
                eprintln!("{peer:?}: {err}");
            }
        });
    }
    Ok(())
}

/// Runs one connection: the HTTP handshake, then the WebSocket echo loop.
fn serve(mut stream: TcpStream) -> io::Result<()> {
    // A client gets 10 s to send its head, as the real server does.
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let Some((leftover, deflate)) = handshake(&mut stream)? else {
        return Ok(());
    };

    let config = Config {
        idle_timeout: Some(Duration::from_secs(60)),
        deflate,
        ..Config::default()
    };
    let mut conn = Connection::new(Role::Server, config, Instant::now());
    let mut out = Vec::new();
    // The working memory this thread lends its connection (here, its only one).
    let mut scratch = Scratch::new();
    // Frames the client sent right behind its head arrived with it.
    conn.receive(&mut scratch, Instant::now(), &leftover);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        while let Some(event) = conn.poll_event(&mut scratch) {
            match event {
                Event::Message(message) => {
                    echo(match &message {
                        Message::Text(text) => conn.send_text(text),
                        Message::Binary(data) => conn.send_binary(data),
                    });
                    // Sent: the payload's buffer serves the next message received.
                    scratch.recycle(message.into_bytes());
                }
                Event::Failed(err) => eprintln!("protocol error: {err}"),
                Event::TimedOut(kind) => eprintln!("timed out: {kind:?}"),
                Event::Ping(_) | Event::Pong(_) | Event::CloseReceived { .. } => {}
            }
        }
        conn.poll_transmit(&mut out);
        stream.write_all(&out)?;
        out.clear();
        if conn.state() == State::Closed {
            // The close echo (or the failure's close frame) is written: the server ends TCP.
            return Ok(());
        }

        let timeout = conn
            .poll_timeout()
            .map(|deadline| deadline.saturating_duration_since(Instant::now()));
        // A zero read timeout means "block forever" to std: wait at least a millisecond.
        stream.set_read_timeout(timeout.map(|t| t.max(Duration::from_millis(1))))?;
        match stream.read(&mut buf) {
            Ok(0) => {
                conn.handle_eof();
                return Ok(());
            }
            Ok(n) => conn.receive(&mut scratch, Instant::now(), &buf[..n]),
            Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                conn.handle_timeout(Instant::now());
            }
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
}

/// What an upgraded connection starts with: the bytes received after the head, and the
/// permessage-deflate parameters when an offer was accepted.
type Upgraded = (Vec<u8>, Option<DeflateParams>);

/// Reads the request head and answers it. `None` when the request was refused (the refusal
/// is already written).
fn handshake(stream: &mut TcpStream) -> io::Result<Option<Upgraded>> {
    let mut parser = RequestParser::new(HeadLimits::default());
    let mut buf = [0u8; 4096];
    let (request, leftover) = loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(None);
        }
        match parser.feed(&buf[..n]) {
            Ok(None) => {}
            Ok(Some((request, used))) => break (request, buf[used..n].to_vec()),
            Err(err) => {
                stream.write_all(&err.response().to_bytes())?;
                return Ok(None);
            }
        }
    };
    if !is_upgrade_request(&request) {
        let refusal = Response::error(426, "this server only speaks WebSocket");
        stream.write_all(&refusal.to_bytes())?;
        return Ok(None);
    }
    match validate_upgrade(&request) {
        Ok(upgrade) => {
            let accepted = negotiate(&upgrade.extensions, &deflate_config());
            let extra: Vec<_> = accepted.iter().map(|a| a.header()).collect();
            stream.write_all(&Response::switching_protocols(&upgrade, &extra).to_bytes())?;
            Ok(Some((leftover, accepted.map(|a| a.params))))
        }
        Err(err) => {
            stream.write_all(&err.response().to_bytes())?;
            Ok(None)
        }
    }
}

/// The default permessage-deflate settings, with the threshold from `DEFLATE_THRESHOLD`.
fn deflate_config() -> DeflateConfig {
    let mut config = DeflateConfig::default();
    if let Some(threshold) = std::env::var("DEFLATE_THRESHOLD")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        config.threshold = threshold;
    }
    config
}

/// Sending only fails once a close was sent or the connection failed; the message is then
/// dropped, which is what an echo should do.
fn echo(result: Result<(), wss_proto::SendError>) {
    if let Err(err) = result {
        eprintln!("not echoed: {err}");
    }
}
