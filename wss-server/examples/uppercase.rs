//! The seed's first example: a WebSocket server that answers every text in uppercase.
//!
//! Run `cargo run -p wss-server --example uppercase`, then connect a client to the printed
//! address (e.g. `websocat ws://127.0.0.1:PORT/`). Ctrl-C stops it.

use wss_server::*;

struct MyServerHandler;
struct MyConnectionHandler;

impl ServerHandler for MyServerHandler {
    type Connection = MyConnectionHandler;

    fn on_connection(
        &mut self,
        _wss: &WebSocketServer,
        _event: &ConnectionEvent,
    ) -> Option<MyConnectionHandler> {
        Some(MyConnectionHandler)
    }
}

impl ConnectionHandler for MyConnectionHandler {
    fn on_message(&mut self, ws: &WebSocketConnection, event: &MessageEvent) {
        if let Data::Text(text) = &event.data {
            let _ = ws.send(text.to_uppercase());
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let web = WebServer::start(WebServerOptions::default().with_address("127.0.0.1", 0))?;
    let wss = WebSocketServer::new(&web, MyServerHandler, ServerOptions::default())?;
    println!("listening on ws://{}/", web.local_addr());
    // The server runs on its own threads; this thread only waits for the end.
    wss.wait_terminated(None);
    Ok(())
}
