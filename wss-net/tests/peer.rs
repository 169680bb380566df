//! The client's address: the one `accept` gave, seen the same by every request head of a
//! kept-alive connection, by a decision taken later, and by the upgrade's `Opened`.

mod util;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use crossbeam_channel::Sender;
use util::*;
use wss_net::{ConnId, Decision, EventSink, Net, NetEvent, Service};
use wss_proto::handshake::{validate_upgrade, Request, Response};

/// Forwards every event to the test.
struct Forward(Sender<NetEvent>);

impl EventSink for Forward {
    fn deliver(&self, batch: Vec<NetEvent>) {
        for event in batch {
            let _ = self.0.send(event);
        }
    }
}

/// Reports the peer of every request head; `/pending` waits for the test's decision, anything
/// else gets an empty `200` on a kept-alive connection.
struct PeerLog {
    heads: Sender<(ConnId, SocketAddr, Request)>,
}

impl Service for PeerLog {
    fn on_request(&self, conn: ConnId, peer: SocketAddr, request: Request) -> Decision {
        let pending = request.path() == "/pending";
        let _ = self.heads.send((conn, peer, request));
        if pending {
            return Decision::Pending;
        }
        Decision::Respond {
            response: Response::new(200),
            keep_alive: true,
        }
    }
}

#[test]
fn peer_address_is_the_accepted_one_in_every_phase() {
    let (heads_tx, heads) = crossbeam_channel::unbounded();
    let (events_tx, events) = crossbeam_channel::unbounded();
    let sink: Arc<dyn EventSink> = Arc::new(Forward(events_tx));
    // Two loops: the second connection is handed from the accepting loop to the other one.
    let net = Net::bind(
        "127.0.0.1:0".parse().unwrap(),
        quick_config(),
        Arc::new(PeerLog { heads: heads_tx }),
    )
    .unwrap();
    let handle = net.handle();

    let mut loops = Vec::new();
    for _ in 0..2 {
        let mut s = tcp(net.local_addr());
        let client = s.local_addr().unwrap();

        // A plain request answered at once, in the head phase.
        s.write_all(b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        let (_, peer, _) = heads.recv_timeout(WAIT).unwrap();
        assert_eq!(peer, client, "peer of a head answered at once");
        assert!(read_head(&mut s).starts_with("HTTP/1.1 200 "));

        // A decision taken later, keeping the connection: the next head still knows the peer.
        s.write_all(b"GET /pending HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap();
        let (conn, peer, _) = heads.recv_timeout(WAIT).unwrap();
        assert_eq!(peer, client, "peer of a pending head");
        handle.decide(
            conn,
            Decision::Respond {
                response: Response::new(200),
                keep_alive: true,
            },
        );
        assert!(read_head(&mut s).starts_with("HTTP/1.1 200 "));

        // An upgrade decided later: `Opened` reports the same peer.
        s.write_all(upgrade_request("/pending").as_bytes()).unwrap();
        let (conn, peer, request) = heads.recv_timeout(WAIT).unwrap();
        assert_eq!(peer, client, "peer of a head after a pending decision");
        handle.decide(
            conn,
            Decision::Upgrade {
                upgrade: validate_upgrade(&request).unwrap(),
                extra_headers: Vec::new(),
                sink: Arc::clone(&sink),
            },
        );
        assert!(read_head(&mut s).starts_with("HTTP/1.1 101 "));
        match events.recv_timeout(WAIT).unwrap() {
            NetEvent::Opened { conn: c, peer, .. } => {
                assert_eq!(c, conn);
                assert_eq!(peer, client, "peer in Opened");
                loops.push(c.loop_index());
            }
            other => panic!("expected Opened, got {other:?}"),
        }
        drop(s);
        match events.recv_timeout(WAIT).unwrap() {
            NetEvent::Closed { conn: c, .. } => assert_eq!(c, conn),
            other => panic!("expected Closed, got {other:?}"),
        }
    }
    assert_eq!(loops, [0, 1], "one connection on each loop");
    net.shutdown(None);
}
