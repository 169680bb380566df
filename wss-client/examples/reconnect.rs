//! Reconnecting is the application's choice: this client keeps a connection to a server,
//! and when it ends abnormally connects again after a growing, jittered delay (0.5 s, 1 s,
//! 2 s, ... capped at 30 s, reset once a connection has stayed open for a while).
//!
//! ```sh
//! cargo run -p wss-handlers --bin wss -- --handler echo --port 9001 &
//! cargo run -p wss-client --example reconnect -- ws://127.0.0.1:9001/
//! ```
//!
//! Stop and restart the server to watch it back off and come back. A close the server asks
//! for with 1000 ends the program.

use std::sync::mpsc::{channel, Sender};
use std::time::{Duration, Instant};

use wss_client::{
    ClientHandler, ClientOptions, ErrorEvent, MessageEvent, OpenEvent, TerminateEvent, WebSocket,
};

const FIRST_DELAY: Duration = Duration::from_millis(500);
const MAX_DELAY: Duration = Duration::from_secs(30);
/// A connection that lasted this long was healthy: the next failure starts the delays over.
const HEALTHY: Duration = Duration::from_secs(10);

/// Says hello on open and reports how the connection ended.
struct Session {
    ended: Sender<u16>,
}

impl ClientHandler for Session {
    fn on_open(&mut self, ws: &WebSocket, _: &OpenEvent) {
        eprintln!("connected to {}", ws.url());
        let _ = ws.send("hello again");
    }
    fn on_message(&mut self, _: &WebSocket, event: &MessageEvent) {
        eprintln!("message: {:?}", event.data);
    }
    fn on_error(&mut self, _: &WebSocket, event: &ErrorEvent) {
        eprintln!("error: {}", event.status_text());
    }
    fn on_terminate(&mut self, _: &WebSocket, event: &TerminateEvent) {
        let _ = self.ended.send(event.code);
    }
}

/// Up to a quarter of `delay` more, so that many clients cut off together do not all come
/// back at the same instant.
fn jitter(delay: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    delay + delay.mul_f64(f64::from(nanos % 1000) / 4000.0)
}

fn main() {
    let Some(url) = std::env::args().nth(1) else {
        eprintln!("usage: reconnect ws://HOST:PORT/PATH");
        std::process::exit(2);
    };
    let mut delay = FIRST_DELAY;
    loop {
        let (tx, rx) = channel();
        let started = Instant::now();
        if let Err(e) = WebSocket::connect(&url, Session { ended: tx }, ClientOptions::default()) {
            // A bad URL does not get better by waiting.
            eprintln!("{e}");
            std::process::exit(2);
        }
        let code = rx.recv().unwrap_or(1006);
        if code == 1000 {
            eprintln!("the server closed normally; done");
            return;
        }
        if started.elapsed() >= HEALTHY {
            delay = FIRST_DELAY;
        }
        let wait = jitter(delay);
        eprintln!("closed with {code}; reconnecting in {wait:.1?}");
        std::thread::sleep(wait);
        delay = (delay * 2).min(MAX_DELAY);
    }
}
