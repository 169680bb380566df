//! A bare WebSocket echo server on `wss-net` alone: every upgrade on any path is accepted,
//! every message comes back as it came (text stays text, binary stays binary).
//!
//! ```sh
//! cargo run --release -p wss-net --example echo -- 127.0.0.1:9001 [threads] [TLS]
//! ```
//!
//! TLS (`wss://`) is either `--tls CERT.pem KEY.pem`, or `--tls-self-signed DIR`, which makes
//! a certificate for `localhost` and `127.0.0.1` (rcgen) and writes it to `DIR/cert.pem` for
//! clients to trust.
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
    let mut threads = 0;
    let mut tls = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--tls" => {
                let (Some(cert), Some(key)) = (args.next(), args.next()) else {
                    return Err("--tls CERT KEY".into());
                };
                tls = Some(wss_net::tls::server_config_from_pem_files(cert, key)?);
            }
            "--tls-self-signed" => {
                let dir = std::path::PathBuf::from(args.next().ok_or("--tls-self-signed DIR")?);
                let key = rcgen::KeyPair::generate()?;
                let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
                let cert = rcgen::CertificateParams::new(names)?.self_signed(&key)?;
                std::fs::create_dir_all(&dir)?;
                std::fs::write(dir.join("cert.pem"), cert.pem())?;
                let key_pem = key.serialize_pem();
                tls = Some(wss_net::tls::server_config_from_pem(
                    cert.pem().as_bytes(),
                    key_pem.as_bytes(),
                )?);
            }
            n => threads = n.parse()?,
        }
    }
    let scheme = if tls.is_some() { "wss" } else { "ws" };
    let config = NetConfig {
        threads,
        tls,
        ..NetConfig::default()
    };
    let echo = Arc::new(Echo {
        net: OnceLock::new(),
    });
    let net = Net::bind(addr, config, Arc::new(Upgrader { echo: echo.clone() }))?;
    let _ = echo.net.set(net.handle());
    println!("listening on {scheme}://{}/", net.local_addr());
    loop {
        std::thread::park();
    }
}
