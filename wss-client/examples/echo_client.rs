//! The README's client: connects, sends a message, prints the answer, closes.
//!
//! ```sh
//! cargo run -p wss-handlers --bin wss -- --handler echo --port 9001 &
//! cargo run -p wss-client --example echo_client -- ws://127.0.0.1:9001/
//! ```

use wss_client::{
    ClientHandler, ClientOptions, MessageEvent, OpenEvent, TerminateEvent, WebSocket,
};

struct Hello;

impl ClientHandler for Hello {
    fn on_open(&mut self, ws: &WebSocket, _: &OpenEvent) {
        let _ = ws.send("Hello, 4D!");
    }
    fn on_message(&mut self, ws: &WebSocket, event: &MessageEvent) {
        println!("received {:?}", event.data);
        ws.terminate(Some(1000), Some("thanks"));
    }
    fn on_terminate(&mut self, _: &WebSocket, event: &TerminateEvent) {
        println!("closed with {}", event.code);
    }
}

fn main() -> Result<(), wss_client::ConnectError> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or("ws://127.0.0.1:9001/".into());
    let ws = WebSocket::connect(&url, Hello, ClientOptions::default())?;
    ws.wait_terminated(None);
    Ok(())
}
