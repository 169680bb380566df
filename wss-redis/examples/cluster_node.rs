//! One node of a cluster: a chat-like server at `/ws` whose messages reach every node sharing
//! the Redis server. Each client may name itself with `?name=`; the node lists the users of all
//! nodes on request (send `/who`).
//!
//! ```sh
//! redis-server --port 6379 --save '' --appendonly no &
//! cargo run -p wss-redis --example cluster_node -- redis://127.0.0.1:6379 a 8081 &
//! cargo run -p wss-redis --example cluster_node -- redis://127.0.0.1:6379 b 8082 &
//! ```
//!
//! Arguments: `REDIS_URL NODE_ID [PORT (0 = any)] [PRESENCE_TTL_MS]`. Prints one line
//! `listening on ws://HOST:PORT/ws` once serving.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use wss_redis::{RedisBroker, RedisConfig};
use wss_server::*;

struct Room;
struct Member {
    name: Option<String>,
}

impl ServerHandler for Room {
    type Connection = Member;
    fn on_connection(&mut self, _: &WebSocketServer, event: &ConnectionEvent) -> Option<Member> {
        let name = event.request.query.get_exact("name").map(str::to_owned);
        Some(Member { name })
    }
}

impl ConnectionHandler for Member {
    fn on_open(&mut self, ws: &WebSocketConnection, _: &OpenEvent) {
        if let Some(name) = &self.name {
            if let Err(e) = ws.set_user(Some(name)) {
                let _ = ws.send(format!("name refused: {e}"));
            }
        }
    }

    fn on_message(&mut self, ws: &WebSocketConnection, event: &MessageEvent) {
        if event.data.as_text() == Some("/who") {
            let who: Vec<String> = ws
                .wss()
                .presence(None)
                .members
                .into_iter()
                .map(|m| format!("{}@{}", m.user, m.node))
                .collect();
            let _ = ws.send(who.join(","));
            return;
        }
        ws.wss().broadcast(event.data.clone(), Some(ws.id()));
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(url), Some(node)) = (args.first(), args.get(1)) else {
        eprintln!("usage: cluster_node REDIS_URL NODE_ID [PORT] [PRESENCE_TTL_MS]");
        std::process::exit(2);
    };
    let port: u16 = args.get(2).map_or(Ok(0), |p| p.parse())?;
    let mut config = RedisConfig::new(url.clone()).with_node_id(node.clone());
    if let Some(ms) = args.get(3) {
        config = config.with_presence_ttl(Duration::from_millis(ms.parse()?));
    }
    let broker = Arc::new(RedisBroker::start(config)?);
    let web = WebServer::start(
        WebServerOptions::default()
            .with_address("127.0.0.1", port)
            .with_broker(broker.clone()),
    )?;
    let _wss = WebSocketServer::new(&web, Room, ServerOptions::default().with_path("/ws"))?;
    broker.wait_connected(Duration::from_secs(5));
    let mut out = std::io::stdout();
    writeln!(out, "listening on ws://{}/ws", web.local_addr())?;
    out.flush()?;
    loop {
        std::thread::park();
    }
}
