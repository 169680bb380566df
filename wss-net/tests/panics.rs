//! A panic in the layer above costs one connection, never the loop thread that called it.

mod util;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use util::*;
use wss_net::{ConnId, Decision, EventSink, Net, NetEvent, NetHandle, Outgoing, Service};
use wss_proto::handshake::{validate_upgrade, Request};
use wss_proto::Message;

/// Echoes, but panics on the text `boom`.
struct PanickyEcho(OnceLock<NetHandle>);

impl EventSink for PanickyEcho {
    fn deliver(&self, batch: Vec<NetEvent>) {
        let Some(net) = self.0.get() else { return };
        for event in batch {
            if let NetEvent::Message {
                conn,
                message: Message::Text(t),
            } = event
            {
                assert_ne!(t, "boom", "the sink's bug");
                net.send(conn, Outgoing::Text(t));
            }
        }
    }
}

/// Upgrades `/ws`, panics on `/panic`.
struct PanickyRoutes(Arc<PanickyEcho>);

impl Service for PanickyRoutes {
    fn on_request(&self, _: ConnId, _: SocketAddr, request: Request) -> Decision {
        assert_ne!(request.path(), "/panic", "the service's bug");
        match validate_upgrade(&request) {
            Ok(upgrade) => Decision::Upgrade {
                upgrade,
                extra_headers: Vec::new(),
                sink: self.0.clone(),
            },
            Err(e) => Decision::Respond {
                response: e.response(),
                keep_alive: false,
            },
        }
    }
}

/// One loop, so the panics happen on the thread that serves the other client too.
fn start_panicky() -> Net {
    let sink = Arc::new(PanickyEcho(OnceLock::new()));
    let config = wss_net::NetConfig {
        threads: 1,
        ..quick_config()
    };
    let net = Net::bind(
        "127.0.0.1:0".parse().unwrap(),
        config,
        Arc::new(PanickyRoutes(sink.clone())),
    )
    .unwrap();
    let _ = sink.0.set(net.handle());
    net
}

#[test]
fn a_panicking_sink_closes_its_connection_with_1011_and_the_loop_serves_on() {
    let net = start_panicky();
    let addr = net.local_addr();
    let mut other = ws_client(addr, "/ws");
    let mut victim = raw_ws(addr, "/ws");
    victim.write_all(&client_frame(true, 0x1, b"boom")).unwrap();
    let (opcode, payload) = read_frame(&mut victim).expect("a close frame");
    assert_eq!(opcode, 0x8);
    assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), 1011);

    other
        .send(tungstenite::Message::text("still here"))
        .unwrap();
    assert_eq!(other.read().unwrap().into_text().unwrap(), "still here");
    // And new connections are still accepted and served by the same loop.
    let mut late = ws_client(addr, "/ws");
    late.send(tungstenite::Message::text("late")).unwrap();
    assert_eq!(late.read().unwrap().into_text().unwrap(), "late");
    net.shutdown(None);
}

#[test]
fn a_panicking_service_answers_500_and_the_loop_serves_on() {
    let net = start_panicky();
    let addr = net.local_addr();
    let mut other = ws_client(addr, "/ws");
    let mut s = tcp(addr);
    s.write_all(b"GET /panic HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let head = read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 500 "), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );

    other.send(tungstenite::Message::text("fine")).unwrap();
    assert_eq!(other.read().unwrap().into_text().unwrap(), "fine");
    let mut late = ws_client(addr, "/ws");
    late.send(tungstenite::Message::text("late")).unwrap();
    assert_eq!(late.read().unwrap().into_text().unwrap(), "late");
    net.shutdown(None);
}
