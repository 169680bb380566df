//! Server termination (SPEC §1.5, A15) and web server stop (A16), watched on the wire.

mod support;

use std::time::{Duration, Instant};

use support::*;
use wss_server::*;

fn server(log: &Log) -> (WebServer, WebSocketServer) {
    let web = web();
    let wss = WebSocketServer::new(&web, Rec::new(log), ServerOptions::default()).unwrap();
    (web, wss)
}

#[test]
fn terminate_sends_close_frames_and_waits_for_the_replies() {
    let log = Log::default();
    let (web, wss) = server(&log);
    let mut a = raw_handshake(web.local_addr(), "/", &[]);
    let mut b = raw_handshake(web.local_addr(), "/", &[]);
    log.wait_count("open:", 2);
    wss.terminate(None);
    assert!(wss.terminated());
    assert!(wss
        .connections()
        .iter()
        .all(|c| c.status() == Status::Closing));
    assert_eq!(read_close(&mut a.stream), Some(Some(1000)));
    assert_eq!(read_close(&mut b.stream), Some(Some(1000)));
    // Still waiting for our replies: the server has not finished.
    std::thread::sleep(Duration::from_millis(200));
    assert!(!wss.wait_terminated(Some(Duration::ZERO)));
    write_frame(&mut a.stream, 8, &1000u16.to_be_bytes());
    write_frame(&mut b.stream, 8, &1000u16.to_be_bytes());
    assert!(wss.wait_terminated(Some(WAIT)));
    let lines = log.lines();
    let terms: Vec<_> = lines
        .iter()
        .filter(|l| l.starts_with("terminate:"))
        .collect();
    assert_eq!(terms.len(), 2);
    assert!(terms.iter().all(|t| t.contains(":1000:")), "{terms:?}");
    assert_eq!(lines.last().map(String::as_str), Some("server-terminate:0"));
    assert_eq!(log.count("error:"), 0);
}

#[test]
fn terminate_with_timeout_destroys_a_silent_peer_at_the_deadline() {
    let log = Log::default();
    let (web, wss) = server(&log);
    let mut raw = raw_handshake(web.local_addr(), "/", &[]);
    log.wait_for("open:").unwrap();
    let start = Instant::now();
    wss.terminate(Some(Duration::from_secs(2)));
    assert_eq!(read_close(&mut raw.stream), Some(Some(1000)));
    // We never answer.
    assert!(wss.wait_terminated(Some(Duration::from_secs(6))));
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(1900), "{took:?}");
    assert!(took < Duration::from_millis(3500), "{took:?}");
    assert!(log.wait_for("terminate:").unwrap().contains(":1006:"));
    assert!(closed_without_bytes(&mut raw.stream));
}

#[test]
fn terminate_zero_destroys_sockets_without_close_frames() {
    let log = Log::default();
    let (web, wss) = server(&log);
    let mut raw = raw_handshake(web.local_addr(), "/", &[]);
    log.wait_for("open:").unwrap();
    wss.terminate(Some(Duration::ZERO));
    assert!(
        closed_without_bytes(&mut raw.stream),
        "no close frame expected"
    );
    assert!(wss.wait_terminated(Some(WAIT)));
    assert!(log.wait_for("terminate:").unwrap().contains(":1006:"));
    assert_eq!(log.count("error:"), 0, "a local destroy raises no on_error");
    assert_eq!(
        log.lines().last().map(String::as_str),
        Some("server-terminate:0")
    );
}

#[test]
fn a_terminating_server_answers_new_handshakes_with_503() {
    let log = Log::default();
    let (web, wss) = server(&log);
    let mut held = raw_handshake(web.local_addr(), "/", &[]);
    log.wait_for("open:").unwrap();
    wss.terminate(None);
    let refused = raw_handshake(web.local_addr(), "/", &[]);
    assert_eq!(status_of(&refused.head), 503);
    assert_eq!(log.count("connection:"), 1);
    write_frame(&mut held.stream, 8, &1000u16.to_be_bytes());
    assert!(wss.wait_terminated(Some(WAIT)));
}

#[test]
fn a_second_terminate_can_shorten_the_wait() {
    let log = Log::default();
    let (web, wss) = server(&log);
    let mut raw = raw_handshake(web.local_addr(), "/", &[]);
    log.wait_for("open:").unwrap();
    wss.terminate(Some(Duration::from_secs(20)));
    assert_eq!(read_close(&mut raw.stream), Some(Some(1000)));
    wss.terminate(Some(Duration::ZERO));
    assert!(wss.wait_terminated(Some(Duration::from_secs(3))));
}

#[test]
fn the_path_is_free_again_after_terminate() {
    let log = Log::default();
    let web = web();
    let opts = ServerOptions::default().with_path("/a");
    let first = WebSocketServer::new(&web, Rec::new(&log), opts.clone()).unwrap();
    first.terminate(None);
    assert!(first.wait_terminated(Some(WAIT)));
    let second = WebSocketServer::new(&web, Rec::new(&log), opts).unwrap();
    let _c = connect(web.local_addr(), "/a");
    assert!(!second.terminated());
}

#[test]
fn stopping_the_web_server_terminates_its_websocket_servers() {
    let log = Log::default();
    let (web, wss) = server(&log);
    let mut raw = raw_handshake(web.local_addr(), "/", &[]);
    log.wait_for("open:").unwrap();
    web.stop();
    assert!(!web.is_running());
    assert!(wss.terminated());
    assert!(wss.wait_terminated(Some(WAIT)));
    assert!(log.wait_for("terminate:").unwrap().contains(":1006:"));
    assert_eq!(
        log.lines().last().map(String::as_str),
        Some("server-terminate:0")
    );
    assert!(closed_without_bytes(&mut raw.stream));
    assert!(matches!(
        WebSocketServer::new(&web, Rec::new(&log), ServerOptions::default()),
        Err(ServerError::WebServerNotRunning)
    ));
}

#[test]
fn a_graceful_web_stop_sends_1001() {
    let log = Log::default();
    let (web, wss) = server(&log);
    let mut raw = raw_handshake(web.local_addr(), "/", &[]);
    log.wait_for("open:").unwrap();
    let stopper = {
        let web = web.clone();
        std::thread::spawn(move || web.stop_gracefully(Duration::from_secs(3)))
    };
    assert_eq!(read_close(&mut raw.stream), Some(Some(1001)));
    write_frame(&mut raw.stream, 8, &1001u16.to_be_bytes());
    stopper.join().unwrap();
    assert!(wss.wait_terminated(Some(WAIT)));
    assert!(log.wait_for("terminate:").unwrap().contains(":1001:"));
    assert_eq!(log.count("error:"), 0);
}

/// Accepts the connection, then terminates the server from inside `on_connection`: the
/// terminate (a control message) reaches the worker before the connection's `Opened`.
struct TerminatesWhileAccepting {
    terminated: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}
struct OpensLate {
    terminated: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl ServerHandler for TerminatesWhileAccepting {
    type Connection = OpensLate;
    fn on_connection(&mut self, wss: &WebSocketServer, _: &ConnectionEvent) -> Option<OpensLate> {
        wss.terminate(None);
        Some(OpensLate {
            terminated: self.terminated.clone(),
        })
    }
}

impl ConnectionHandler for OpensLate {
    fn on_message(&mut self, _: &WebSocketConnection, _: &MessageEvent) {}
    fn on_terminate(&mut self, _: &WebSocketConnection, e: &TerminateEvent) {
        assert_eq!(
            e.code, 1000,
            "the close terminate started, answered by the peer"
        );
        self.terminated
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn a_connection_accepted_as_terminate_starts_gets_a_close_frame_not_a_dropped_socket() {
    let web = web();
    let terminated = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let handler = TerminatesWhileAccepting {
        terminated: terminated.clone(),
    };
    let wss = WebSocketServer::new(&web, handler, ServerOptions::default()).unwrap();
    let mut raw = raw_handshake(web.local_addr(), "/", &[]);
    assert!(raw.head.starts_with("HTTP/1.1 101"), "{}", raw.head);
    // The client got its 101, so it is a WebSocket peer: it is owed a close frame.
    assert_eq!(read_close(&mut raw.stream), Some(Some(1000)));
    write_frame(&mut raw.stream, 8, &1000u16.to_be_bytes());
    assert!(wss.wait_terminated(Some(WAIT)));
    assert_eq!(
        terminated.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "on_open ran, so on_terminate runs once"
    );
}
