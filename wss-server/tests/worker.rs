//! The worker model: Part A points 5 and 7, A17, A20; handler access (§1.4.3); broadcast.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::*;
use wss_server::*;

#[test]
fn a_panicking_on_message_leaves_the_server_serving_others() {
    let log = Log::default();
    let web = web();
    let rec = Rec::new(&log).on_message(|ws, e| {
        if e.data.as_text() == Some("panic") {
            panic!("handler bug");
        }
        let _ = ws.send(e.data.clone());
    });
    let _wss = WebSocketServer::new(&web, rec, ServerOptions::default()).unwrap();
    let mut bad = connect(web.local_addr(), "/");
    let mut good = connect(web.local_addr(), "/");
    bad.send(tungstenite::Message::text("panic")).unwrap();
    let err = log.wait_for("error:").unwrap();
    assert!(err.contains("handler bug"), "{err}");
    good.send(tungstenite::Message::text("still here")).unwrap();
    assert_eq!(read_text(&mut good), "still here");
    // The panicking connection stays open too.
    bad.send(tungstenite::Message::text("again")).unwrap();
    assert_eq!(read_text(&mut bad), "again");
}

struct PanicsInOnError;
struct PanicsConn;

impl ServerHandler for PanicsInOnError {
    type Connection = PanicsConn;
    fn on_connection(&mut self, _: &WebSocketServer, _: &ConnectionEvent) -> Option<PanicsConn> {
        Some(PanicsConn)
    }
}

impl ConnectionHandler for PanicsConn {
    fn on_message(&mut self, ws: &WebSocketConnection, e: &MessageEvent) {
        if e.data.as_text() == Some("panic") {
            panic!("first");
        }
        let _ = ws.send(e.data.clone());
    }
    fn on_error(&mut self, _: &WebSocketConnection, _: &ErrorEvent) {
        panic!("second, in on_error");
    }
}

#[test]
fn a_panic_in_on_error_is_only_logged() {
    let web = web();
    let _wss = WebSocketServer::new(&web, PanicsInOnError, ServerOptions::default()).unwrap();
    let mut c = connect(web.local_addr(), "/");
    c.send(tungstenite::Message::text("panic")).unwrap();
    c.send(tungstenite::Message::text("ok")).unwrap();
    assert_eq!(read_text(&mut c), "ok");
}

#[test]
fn callbacks_of_one_server_never_overlap() {
    let log = Log::default();
    let web = web();
    let busy = Arc::new(AtomicBool::new(false));
    let overlaps = Arc::new(AtomicUsize::new(0));
    let calls = Arc::new(AtomicUsize::new(0));
    let (b, o, n) = (busy.clone(), overlaps.clone(), calls.clone());
    let rec = Rec::new(&log).on_message(move |ws, e| {
        if b.swap(true, Ordering::SeqCst) {
            o.fetch_add(1, Ordering::SeqCst);
        }
        std::thread::sleep(Duration::from_millis(2));
        n.fetch_add(1, Ordering::SeqCst);
        b.store(false, Ordering::SeqCst);
        let _ = ws.send(e.data.clone());
    });
    let _wss = WebSocketServer::new(&web, rec, ServerOptions::default()).unwrap();
    let addr = web.local_addr();
    let clients: Vec<_> = (0..4)
        .map(|i| {
            std::thread::spawn(move || {
                let mut c = connect(addr, "/");
                for j in 0..10 {
                    c.send(tungstenite::Message::text(format!("{i}-{j}")))
                        .unwrap();
                }
                for j in 0..10 {
                    assert_eq!(
                        read_text(&mut c),
                        format!("{i}-{j}"),
                        "per-connection order"
                    );
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    assert_eq!(calls.load(Ordering::SeqCst), 40);
    assert_eq!(overlaps.load(Ordering::SeqCst), 0);
}

struct Counting {
    count: u32,
}
struct CountingConn {
    label: String,
}

impl ServerHandler for Counting {
    type Connection = CountingConn;
    fn on_connection(
        &mut self,
        wss: &WebSocketServer,
        _: &ConnectionEvent,
    ) -> Option<CountingConn> {
        self.count += 1;
        // Our own handler is borrowed right now: reaching it through wss is refused, not a deadlock.
        assert!(wss.handler::<Counting>().unwrap().lock().is_err());
        Some(CountingConn {
            label: format!("client{}", self.count),
        })
    }
}

impl ConnectionHandler for CountingConn {
    fn on_message(&mut self, ws: &WebSocketConnection, _: &MessageEvent) {
        // Inside a connection callback the server handler is free.
        let count = ws
            .wss()
            .handler::<Counting>()
            .unwrap()
            .with(|s| s.count)
            .unwrap();
        let _ = ws.send(format!("{}/{count}", self.label));
    }
}

#[test]
fn handler_gives_the_live_instances() {
    let web = web();
    let wss = WebSocketServer::new(&web, Counting { count: 0 }, ServerOptions::default()).unwrap();
    let mut a = connect(web.local_addr(), "/");
    let mut b = connect(web.local_addr(), "/");
    a.send(tungstenite::Message::text("?")).unwrap();
    assert_eq!(read_text(&mut a), "client1/2");
    b.send(tungstenite::Message::text("?")).unwrap();
    assert_eq!(read_text(&mut b), "client2/2");
    let h = wss.handler::<Counting>().expect("same type");
    h.with(|s| s.count = 10).unwrap();
    a.send(tungstenite::Message::text("?")).unwrap();
    assert_eq!(read_text(&mut a), "client1/10");
    assert!(wss.handler::<String>().is_none());
    let conn = &wss.connections()[0];
    let label = conn
        .handler::<CountingConn>()
        .unwrap()
        .with(|c| c.label.clone())
        .unwrap();
    assert_eq!(label, "client1");
}

#[test]
fn broadcast_reaches_everyone_but_the_sender_and_the_seed_chat_works() {
    let log = Log::default();
    let web = web();
    let rec = Rec::new(&log).on_message(|ws, e| {
        ws.wss().broadcast(e.data.clone(), Some(ws.id()));
    });
    let wss = WebSocketServer::new(&web, rec, ServerOptions::default()).unwrap();
    let mut a = connect(web.local_addr(), "/");
    let mut b = connect(web.local_addr(), "/");
    let mut c = connect(web.local_addr(), "/");
    log.wait_count("open:", 3);
    a.send(tungstenite::Message::text("hi all")).unwrap();
    assert_eq!(read_text(&mut b), "hi all");
    assert_eq!(read_text(&mut c), "hi all");
    assert_eq!(wss.broadcast("from outside", None), 3);
    assert_eq!(
        read_text(&mut a),
        "from outside",
        "the sender got nothing before"
    );
    assert_eq!(read_text(&mut b), "from outside");
    assert_eq!(read_text(&mut c), "from outside");
}

#[test]
fn sends_from_other_threads_are_delivered() {
    let log = Log::default();
    let web = web();
    let wss = WebSocketServer::new(&web, Rec::new(&log), ServerOptions::default()).unwrap();
    let mut c = connect(web.local_addr(), "/");
    log.wait_for("open:").unwrap();
    let ws = wss.connections().pop().unwrap();
    std::thread::spawn(move || ws.send("from a thread").unwrap())
        .join()
        .unwrap();
    assert_eq!(read_text(&mut c), "from a thread");
}

/// Takes every message by value; the lent `on_message` must then never run.
struct OwnsMessages;
struct OwnsConn;

impl ServerHandler for OwnsMessages {
    type Connection = OwnsConn;
    fn on_connection(&mut self, _: &WebSocketServer, _: &ConnectionEvent) -> Option<OwnsConn> {
        Some(OwnsConn)
    }
}

impl ConnectionHandler for OwnsConn {
    fn on_message(&mut self, _: &WebSocketConnection, _: &MessageEvent) {
        panic!("the server lent the message instead of handing it over");
    }
    fn on_message_owned(&mut self, ws: &WebSocketConnection, e: MessageEvent) {
        let _ = ws.send(e.data);
    }
}

#[test]
fn on_message_owned_receives_each_message_instead_of_on_message() {
    let web = web();
    let _wss = WebSocketServer::new(&web, OwnsMessages, ServerOptions::default()).unwrap();
    let mut c = connect(web.local_addr(), "/");
    let big: Vec<u8> = (0..64 * 1024).map(|i| (i * 7) as u8).collect();
    c.send(tungstenite::Message::binary(big.clone())).unwrap();
    c.send(tungstenite::Message::text("small")).unwrap();
    match c.read().unwrap() {
        tungstenite::Message::Binary(b) => assert_eq!(&b[..], &big[..]),
        other => panic!("expected the binary echo, got {other:?}"),
    }
    // A panic would have gone to on_error and sent nothing: the text must come back too.
    assert_eq!(read_text(&mut c), "small");
}
