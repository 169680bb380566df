//! A permessage-deflate client for tests (tungstenite has none): wss-proto's client
//! handshake and a client-role `Connection` over a blocking `TcpStream`, with the raw frames
//! kept so a test can see what went over the wire.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Instant;

use wss_proto::handshake::{ClientHandshake, ClientHandshakeError};
use wss_proto::{
    Config, Connection, DeflateConfig, DeflateParams, Event, FrameHeader, Role, Scratch,
};

use super::tcp;

pub struct DeflateClient {
    stream: TcpStream,
    conn: Connection,
    scratch: Scratch,
    /// Received bytes not yet split into frames.
    buf: Vec<u8>,
    /// The 101's `Sec-WebSocket-Extensions`, if any.
    pub extensions: Option<String>,
}

/// Why the handshake did not give a connection.
#[derive(Debug)]
pub enum Refused {
    Handshake(ClientHandshakeError),
    Eof,
}

impl DeflateClient {
    /// Connects to `ws://addr{path}` offering permessage-deflate made from `offer` (`None`:
    /// no offer at all).
    pub fn connect(
        addr: SocketAddr,
        path: &str,
        offer: Option<&DeflateConfig>,
        extra: &[(String, String)],
    ) -> Result<DeflateClient, Refused> {
        let mut stream = tcp(addr);
        let key: [u8; 16] = std::array::from_fn(|i| i as u8 * 7 + 1);
        let mut hs = ClientHandshake::new(&format!("127.0.0.1:{}", addr.port()), path, key, extra);
        if let Some(config) = offer {
            hs = hs.with_deflate(config);
        }
        stream.write_all(&hs.request_bytes()).unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let used = loop {
            let n = stream.read(&mut chunk).unwrap_or(0);
            if n == 0 {
                return Err(Refused::Eof);
            }
            match hs.feed_response(&chunk[..n]) {
                Ok(None) => {}
                Ok(Some(used)) => {
                    buf.extend_from_slice(&chunk[used..n]);
                    break used;
                }
                Err(e) => return Err(Refused::Handshake(e)),
            }
        };
        let _ = used;
        let config = Config {
            deflate: hs.deflate_params().cloned(),
            mask_seed: 0x5eed,
            ..Config::default()
        };
        Ok(DeflateClient {
            stream,
            conn: Connection::new(Role::Client, config, Instant::now()),
            scratch: Scratch::new(),
            buf,
            extensions: hs
                .response_headers()
                .get("sec-websocket-extensions")
                .map(str::to_owned),
        })
    }

    pub fn params(&self) -> Option<&DeflateParams> {
        self.conn.deflate()
    }

    fn flush(&mut self) {
        let mut out = Vec::new();
        self.conn.poll_transmit(&mut out);
        if !out.is_empty() {
            // The server may have closed already; the test reads the outcome.
            let _ = self.stream.write_all(&out);
        }
    }

    /// Sends a text message (compressed when negotiated and long enough).
    pub fn send_text(&mut self, text: &str) {
        self.conn.send_text(text).unwrap();
        self.flush();
    }

    pub fn send_binary(&mut self, data: &[u8]) {
        self.conn.send_binary(data).unwrap();
        self.flush();
    }

    /// Writes bytes as they are (a hand-made frame).
    pub fn write_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// The next whole frame from the server, as it came over the wire (also fed to the
    /// connection). `None` on EOF or reset.
    pub fn next_frame(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Ok(Some((header, len))) = FrameHeader::parse(&self.buf) {
                let total = len + header.payload_len as usize;
                if self.buf.len() >= total {
                    let frame: Vec<u8> = self.buf.drain(..total).collect();
                    self.conn.receive(&mut self.scratch, Instant::now(), &frame);
                    self.flush();
                    return Some(frame);
                }
            }
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// The next event (pings are answered and skipped). `None` on EOF.
    pub fn next_event(&mut self) -> Option<Event> {
        loop {
            match self.conn.poll_event(&mut self.scratch) {
                Some(Event::Ping(_) | Event::Pong(_)) => {}
                Some(event) => return Some(event),
                None => {
                    self.next_frame()?;
                }
            }
        }
    }

    pub fn read_text(&mut self) -> String {
        match self.next_event() {
            Some(Event::Message(wss_proto::Message::Text(t))) => t,
            other => panic!("expected a text message, got {other:?}"),
        }
    }

    /// Reads until the server's close frame; its code.
    pub fn read_close_code(&mut self) -> Option<u16> {
        loop {
            match self.next_event()? {
                Event::CloseReceived { code, .. } => return code.map(|c| c.0),
                Event::Message(_) => {}
                other => panic!("expected a close, got {other:?}"),
            }
        }
    }
}

/// Whether a raw server frame has RSV1 (a compressed message).
pub fn is_compressed(frame: &[u8]) -> bool {
    frame.first().is_some_and(|b| b & 0x40 != 0)
}
