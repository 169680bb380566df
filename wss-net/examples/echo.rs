//! A bare WebSocket echo server on `wss-net` alone: every upgrade on any path is accepted,
//! every message comes back as it came (text stays text, binary stays binary).
//!
//! ```sh
//! cargo run --release -p wss-net --example echo -- 127.0.0.1:9001 [threads]
//! ```
//!
//! Plain HTTP requests get a 426 naming the WebSocket version spoken.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use wss_net::proto::handshake::{is_upgrade_request, validate_upgrade, Request, Response};
use wss_net::proto::Message;
use wss_net::{
    ConnId, Decision, EventSink, Net, NetConfig, NetEvent, NetHandle, Outgoing, Service,
};

/// Sends every message back on the connection it came from: one batch per loop turn in,
/// one batch of replies out.
struct Echo {
    net: OnceLock<NetHandle>,
}

impl EventSink for Echo {
    fn deliver(&self, batch: Vec<NetEvent>) {
        let Some(net) = self.net.get() else {
            return;
        };
        let replies: Vec<(ConnId, Outgoing)> = batch
            .into_iter()
            .filter_map(|event| match event {
                NetEvent::Message { conn, message } => Some((
                    conn,
                    match message {
                        Message::Text(text) => Outgoing::Text(text),
                        Message::Binary(bytes) => Outgoing::Binary(bytes),
                    },
                )),
                _ => None,
            })
            .collect();
        if !replies.is_empty() {
            net.send_batch(replies);
        }
    }
}

struct Upgrader {
    echo: Arc<Echo>,
}

impl Service for Upgrader {
    fn on_request(&self, _conn: ConnId, _peer: SocketAddr, request: Request) -> Decision {
        if !is_upgrade_request(&request) {
            return Decision::Respond {
                response: Response::error(426, "This is a WebSocket echo server."),
                keep_alive: false,
            };
        }
        match validate_upgrade(&request) {
            Ok(upgrade) => Decision::Upgrade {
                upgrade,
                extra_headers: Vec::new(),
                sink: self.echo.clone(),
            },
            Err(refusal) => Decision::Respond {
                response: refusal.response(),
                keep_alive: false,
            },
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr: SocketAddr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:9001".to_owned())
        .parse()?;
    let threads = args.next().map(|t| t.parse()).transpose()?.unwrap_or(0);
    let config = NetConfig {
        threads,
        ..NetConfig::default()
    };
    let echo = Arc::new(Echo {
        net: OnceLock::new(),
    });
    let net = Net::bind(addr, config, Arc::new(Upgrader { echo: echo.clone() }))?;
    let _ = echo.net.set(net.handle());
    println!("listening on ws://{}/", net.local_addr());
    loop {
        std::thread::park();
    }
}
