//! `Dispatch`: which threads run the callbacks. The rest of the suite runs in either mode
//! (`WSS_DISPATCH=loop` picks loop dispatch for every `ServerOptions::default()`); these tests
//! name their mode and check what differs: the thread, several loops, a stop from a callback.

mod support;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::*;
use wss_server::*;

fn thread_name() -> String {
    std::thread::current().name().unwrap_or("?").to_owned()
}

/// Records on which thread each kind of callback ran.
#[derive(Clone, Default)]
struct Threads(Arc<Mutex<BTreeSet<String>>>);

impl Threads {
    fn note(&self, what: &str) {
        self.0
            .lock()
            .unwrap()
            .insert(format!("{what}@{}", thread_name()));
    }

    fn seen(&self) -> BTreeSet<String> {
        self.0.lock().unwrap().clone()
    }
}

struct Noting {
    threads: Threads,
    log: Log,
}

struct NotingConn {
    threads: Threads,
    log: Log,
}

impl ServerHandler for Noting {
    type Connection = NotingConn;
    fn on_connection(&mut self, _: &WebSocketServer, _: &ConnectionEvent) -> Option<NotingConn> {
        self.threads.note("connection");
        Some(NotingConn {
            threads: self.threads.clone(),
            log: self.log.clone(),
        })
    }
    fn on_open(&mut self, _: &WebSocketServer, _: &OpenEvent) {
        self.threads.note("server-open");
    }
    fn on_terminate(&mut self, _: &WebSocketServer, _: &ServerTerminateEvent) {
        self.log.push("server-terminate");
    }
}

impl ConnectionHandler for NotingConn {
    fn on_open(&mut self, _: &WebSocketConnection, _: &OpenEvent) {
        self.threads.note("open");
        self.log.push("open");
    }
    fn on_message(&mut self, ws: &WebSocketConnection, e: &MessageEvent) {
        self.threads.note("message");
        let _ = ws.send(e.data.clone());
    }
    fn on_terminate(&mut self, _: &WebSocketConnection, e: &TerminateEvent) {
        self.threads.note("terminate");
        self.log.push(format!("terminate:{}", e.code));
    }
}

fn echo_once(addr: std::net::SocketAddr) {
    let mut client = connect(addr, "/");
    client.send(tungstenite::Message::text("hi")).unwrap();
    assert_eq!(read_text(&mut client), "hi");
    client.close(None).unwrap();
    while client.read().is_ok() {}
}

/// A server on `web` whose handler notes the thread of each callback.
fn noting_server(web: &WebServer, dispatch: Dispatch) -> (Threads, Log, WebSocketServer) {
    let (threads, log) = (Threads::default(), Log::default());
    let handler = Noting {
        threads: threads.clone(),
        log: log.clone(),
    };
    let options = ServerOptions::default().with_dispatch(dispatch);
    let wss = WebSocketServer::new(web, handler, options).unwrap();
    (threads, log, wss)
}

#[test]
fn worker_dispatch_runs_every_callback_on_the_servers_worker_thread() {
    let web = web();
    let (threads, log, _wss) = noting_server(&web, Dispatch::Worker);
    echo_once(web.local_addr());
    assert!(log.wait_for("terminate:").is_some());
    let expected: BTreeSet<String> = ["server-open", "connection", "open", "message", "terminate"]
        .iter()
        .map(|w| format!("{w}@wss-worker-*"))
        .collect();
    assert_eq!(threads.seen(), expected);
}

#[test]
fn loop_dispatch_runs_connection_callbacks_on_the_network_thread() {
    let web = web();
    let (threads, log, _wss) = noting_server(&web, Dispatch::Loop);
    // A handshake that races the server's `on_open` goes through the control thread (A10);
    // once one has been answered, `on_open` is over and the loop takes them itself.
    echo_once(web.local_addr());
    assert!(log.wait_for("terminate:").is_some());
    assert!(threads.seen().contains("server-open@wss-control-*"));
    threads.0.lock().unwrap().clear();
    echo_once(web.local_addr());
    assert!(log.wait_count("terminate:", 2));
    let expected: BTreeSet<String> = ["connection", "open", "message", "terminate"]
        .iter()
        .map(|w| format!("{w}@wss-net-0"))
        .collect();
    assert_eq!(threads.seen(), expected);
}

/// Two loops: the connections spread over both, each loop runs its own connections'
/// callbacks, and `connections()`, `broadcast` and `terminate` span them all.
#[test]
fn loop_dispatch_with_two_loops_serves_one_server_across_both() {
    let web = WebServer::start(WebServerOptions {
        port: 0,
        threads: 2,
        ..WebServerOptions::default()
    })
    .unwrap();
    let (threads, log, wss) = noting_server(&web, Dispatch::Loop);
    let mut clients: Vec<Client> = (0..8).map(|_| connect(web.local_addr(), "/")).collect();
    assert!(log.wait_count("open", 8));
    assert_eq!(wss.connections().len(), 8);
    let loops: BTreeSet<String> = threads
        .seen()
        .into_iter()
        .filter_map(|s| s.strip_prefix("open@").map(str::to_owned))
        .collect();
    assert_eq!(
        loops,
        ["wss-net-0", "wss-net-1"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect::<BTreeSet<_>>(),
        "the connections' callbacks ran on both loops"
    );
    assert_eq!(wss.broadcast("to all", None), 8);
    for c in &mut clients {
        assert_eq!(read_text(c), "to all");
    }
    wss.terminate(None);
    for c in &mut clients {
        match c.read() {
            Ok(tungstenite::Message::Close(Some(frame))) => assert_eq!(u16::from(frame.code), 1000),
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
    drop(clients);
    assert!(wss.wait_terminated(Some(Duration::from_secs(10))));
    assert_eq!(log.count("terminate:"), 8);
    assert_eq!(log.count("server-terminate"), 1);
    assert!(wss.connections().is_empty());
}

/// A10 in loop dispatch: a handshake that arrives while the server's `on_open` still runs
/// waits for it (it goes through the control thread until `on_open` is done).
#[test]
fn loop_dispatch_runs_the_servers_on_open_before_the_first_on_connection() {
    struct SlowOpen(Log);
    impl ServerHandler for SlowOpen {
        type Connection = NotingConn;
        fn on_connection(
            &mut self,
            _: &WebSocketServer,
            _: &ConnectionEvent,
        ) -> Option<NotingConn> {
            self.0.push(format!("connection@{}", thread_name()));
            Some(NotingConn {
                threads: Threads::default(),
                log: self.0.clone(),
            })
        }
        fn on_open(&mut self, _: &WebSocketServer, _: &OpenEvent) {
            std::thread::sleep(Duration::from_millis(300));
            self.0.push("server-open");
        }
    }
    let log = Log::default();
    let web = web();
    let options = ServerOptions::default().with_dispatch(Dispatch::Loop);
    let _wss = WebSocketServer::new(&web, SlowOpen(log.clone()), options).unwrap();
    let _client = connect(web.local_addr(), "/");
    // The handshake waited in the mailbox and its `on_connection` ran on the control thread,
    // after `on_open`: had the loop taken it inline, it would name `wss-net-0`.
    assert_eq!(
        log.lines().get(..2),
        Some(
            &[
                "server-open".to_owned(),
                "connection@wss-control-*".to_owned()
            ][..]
        )
    );
}

/// `WebServer::stop` from a callback on a loop returns at once (a loop cannot wait for, or
/// join, itself) and the stop completes on another thread.
#[test]
fn loop_dispatch_lets_a_callback_stop_the_web_server() {
    let log = Log::default();
    let web = web();
    let stopper = web.clone();
    let rec = Rec::new(&log).on_message(move |ws, e| {
        if e.data.as_text() == Some("stop") {
            stopper.stop();
            let _ = ws.send("stopping");
        }
    });
    let options = ServerOptions::default().with_dispatch(Dispatch::Loop);
    let wss = WebSocketServer::new(&web, rec, options).unwrap();
    let mut client = connect(web.local_addr(), "/");
    client.send(tungstenite::Message::text("stop")).unwrap();
    assert!(wss.wait_terminated(Some(Duration::from_secs(10))));
    assert!(log.wait_for("server-terminate").is_some());
    assert!(wss.terminated());
    // The socket is gone with the network: the client sees the end, not a hang.
    let ended = (0..4).any(|_| client.read().is_err());
    assert!(ended);
    // The callback neither panicked (a thread joining itself does) nor waited.
    assert_eq!(log.count("error:"), 0, "{:?}", log.lines());
}

/// `WebServer::stop` from a server callback in loop dispatch (it runs on the control thread,
/// which holds every loop's worker meanwhile) while a loop waits for its worker: the stop
/// finishes on a thread of its own, so the loop gets its worker back and the network stops.
#[test]
fn loop_dispatch_lets_a_server_callback_stop_the_web_server_while_a_loop_waits() {
    struct StopsOnError {
        web: Mutex<Option<WebServer>>,
        log: Log,
    }
    impl ServerHandler for StopsOnError {
        type Connection = NotingConn;
        fn on_connection(
            &mut self,
            _: &WebSocketServer,
            _: &ConnectionEvent,
        ) -> Option<NotingConn> {
            Some(NotingConn {
                threads: Threads::default(),
                log: self.log.clone(),
            })
        }
        fn on_error(&mut self, _: &WebSocketServer, _: &ErrorEvent) {
            // Long enough for the client's message to reach the loop, which then waits for
            // its worker, held by this thread.
            std::thread::sleep(Duration::from_millis(300));
            if let Some(web) = self.web.lock().unwrap().take() {
                web.stop();
            }
            self.log.push("stopped");
        }
    }
    let log = Log::default();
    let web = web();
    let handler = StopsOnError {
        web: Mutex::new(Some(web.clone())),
        log: log.clone(),
    };
    let options = ServerOptions::default().with_dispatch(Dispatch::Loop);
    let wss = WebSocketServer::new(&web, handler, options).unwrap();
    let mut client = connect(web.local_addr(), "/");
    assert!(log.wait_for("open").is_some());
    // A cross-origin handshake: refused, and reported to the server's `on_error`.
    let refused = raw_handshake(web.local_addr(), "/", &["Origin: http://evil.example"]);
    assert!(refused.head.starts_with("HTTP/1.1 403"), "{}", refused.head);
    client.send(tungstenite::Message::text("waits")).unwrap();
    assert!(log.wait_for("stopped").is_some());
    assert!(
        wss.wait_terminated(Some(Duration::from_secs(10))),
        "the network stopped and the server ended"
    );
}
