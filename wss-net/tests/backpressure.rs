//! Backpressure: a sink with an `Inbound` makes the loops stop reading connections whose
//! messages wait for its consumer past the limits, and read them again once it catches up.

mod util;

use std::collections::HashMap;
use std::io::{ErrorKind, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use util::{client_frame, raw_ws, WAIT};
use wss_net::{
    Backlog, ConnId, Credit, Decision, EventSink, Inbound, InboundLimits, Net, NetConfig, NetEvent,
    NetHandle, Service,
};
use wss_proto::handshake::{validate_upgrade, Request};
use wss_proto::Message;

/// How long "nothing more arrives" is watched for.
const QUIET: Duration = Duration::from_millis(300);

/// Hands every event to the test, which plays the slow consumer.
struct Held {
    tx: Sender<NetEvent>,
    inbound: Arc<Inbound>,
}

impl EventSink for Held {
    fn deliver(&self, batch: Vec<NetEvent>) {
        for event in batch {
            let _ = self.tx.send(event);
        }
    }

    fn inbound(&self) -> Option<Arc<Inbound>> {
        Some(self.inbound.clone())
    }
}

struct Upgrade(Arc<Held>);

impl Service for Upgrade {
    fn on_request(&self, _conn: ConnId, _peer: SocketAddr, request: Request) -> Decision {
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

/// A server whose consumer is the test: messages are counted until released.
struct Slow {
    net: Option<Net>,
    addr: SocketAddr,
    handle: NetHandle,
    events: Receiver<NetEvent>,
    inbound: Arc<Inbound>,
    credits: HashMap<ConnId, Credit>,
    /// Messages received and not released yet, oldest first.
    unreleased: Vec<(ConnId, Backlog)>,
    /// Every message received, in order.
    got: Vec<(ConnId, Message)>,
}

impl Slow {
    fn start(limits: InboundLimits, threads: usize) -> Slow {
        let (tx, events) = crossbeam_channel::unbounded();
        let inbound = Arc::new(Inbound::new(limits));
        let sink = Arc::new(Held {
            tx,
            inbound: inbound.clone(),
        });
        let config = NetConfig {
            threads,
            ..NetConfig::default()
        };
        let net = Net::bind(
            "127.0.0.1:0".parse().unwrap(),
            config,
            Arc::new(Upgrade(sink)),
        )
        .unwrap();
        Slow {
            addr: net.local_addr(),
            handle: net.handle(),
            net: Some(net),
            events,
            inbound,
            credits: HashMap::new(),
            unreleased: Vec::new(),
            got: Vec::new(),
        }
    }

    fn take(&mut self, event: NetEvent) {
        match event {
            NetEvent::Opened { conn, credit, .. } => {
                self.credits
                    .insert(conn, credit.expect("a credit for a sink with an Inbound"));
            }
            NetEvent::Message { conn, message } => {
                self.unreleased.push((conn, Backlog::of(&message)));
                self.got.push((conn, message));
            }
            NetEvent::Closed { .. } => {}
        }
    }

    /// Takes events until `messages` have come in all, failing after `WAIT`.
    fn receive_until(&mut self, messages: usize) {
        let deadline = Instant::now() + WAIT;
        while self.got.len() < messages {
            let left = deadline.saturating_duration_since(Instant::now());
            let event = self
                .events
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("only {} of {messages} messages came", self.got.len()));
            self.take(event);
        }
    }

    /// Takes what comes within `QUIET`; returns how many messages came in all.
    fn settle(&mut self) -> usize {
        while let Ok(event) = self.events.recv_timeout(QUIET) {
            self.take(event);
        }
        self.got.len()
    }

    /// Releases the `n` oldest unreleased messages, as a consumer that is done with them.
    fn release(&mut self, n: usize) {
        let done: Vec<_> = self.unreleased.drain(..n).collect();
        let mut total = Backlog::default();
        for (conn, cost) in done {
            self.credits[&conn].release(cost);
            total.add(cost);
        }
        self.inbound.release(total);
    }

    /// Releases everything as it comes until `messages` have come in all.
    fn drain(&mut self, messages: usize) {
        let deadline = Instant::now() + WAIT;
        while self.got.len() < messages {
            self.release(self.unreleased.len());
            let left = deadline.saturating_duration_since(Instant::now());
            let event = self
                .events
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("only {} of {messages} messages came", self.got.len()));
            self.take(event);
        }
        self.release(self.unreleased.len());
    }

    fn texts_of(&self, conn: ConnId) -> Vec<String> {
        self.got
            .iter()
            .filter(|(c, _)| *c == conn)
            .map(|(_, m)| String::from_utf8_lossy(m.as_bytes()).into_owned())
            .collect()
    }

    fn open(&mut self) -> (TcpStream, ConnId) {
        let s = raw_ws(self.addr, "/");
        match self.events.recv_timeout(WAIT).expect("Opened") {
            NetEvent::Opened { conn, credit, .. } => {
                self.credits.insert(conn, credit.expect("a credit"));
                (s, conn)
            }
            other => panic!("expected Opened, got {other:?}"),
        }
    }
}

impl Drop for Slow {
    fn drop(&mut self) {
        if let Some(net) = self.net.take() {
            net.shutdown(None);
        }
    }
}

fn texts(prefix: &str, n: usize) -> (Vec<u8>, Vec<String>) {
    let mut wire = Vec::new();
    let mut expected = Vec::new();
    for i in 0..n {
        let text = format!("{prefix}{i}");
        wire.extend(client_frame(true, 1, text.as_bytes()));
        expected.push(text);
    }
    (wire, expected)
}

fn limits(connection_messages: usize, total_messages: usize) -> InboundLimits {
    InboundLimits {
        connection_bytes: usize::MAX,
        connection_messages,
        total_bytes: usize::MAX,
        total_messages,
    }
}

#[test]
fn a_connection_past_its_message_limit_is_read_again_only_at_half_of_it() {
    let mut slow = Slow::start(limits(4, usize::MAX), 2);
    let (mut s, conn) = slow.open();
    let (wire, expected) = texts("m", 100);
    s.write_all(&wire).unwrap();
    // The fifth message crosses the limit of four; nothing more is taken.
    slow.receive_until(5);
    assert_eq!(slow.settle(), 5, "messages taken past the limit");
    assert_eq!(slow.credits[&conn].backlog().messages, 5);
    assert_eq!(slow.inbound.backlog().messages, 5);
    assert!(slow.handle.stats().inbound_pauses >= 1);
    // Three in hand: still above half the limit.
    slow.release(2);
    assert_eq!(slow.settle(), 5, "resumed above half the limit");
    // Two in hand: half. Reading resumes up to the limit again.
    slow.release(1);
    slow.receive_until(8);
    assert_eq!(slow.settle(), 8);
    slow.drain(100);
    assert_eq!(slow.texts_of(conn), expected, "every message, in order");
    assert_eq!(slow.inbound.backlog(), Backlog::default());
}

#[test]
fn the_sinks_total_stops_every_connection_until_it_is_released() {
    let mut slow = Slow::start(limits(usize::MAX, 6), 1);
    let (mut a, id_a) = slow.open();
    let (mut b, id_b) = slow.open();
    let (wire_a, expected_a) = texts("a", 50);
    let (wire_b, expected_b) = texts("b", 50);
    a.write_all(&wire_a).unwrap();
    b.write_all(&wire_b).unwrap();
    // The seventh message crosses the total of six, whichever connection sent it.
    slow.receive_until(7);
    assert_eq!(slow.settle(), 7, "messages taken past the total");
    assert_eq!(slow.inbound.backlog().messages, 7);
    slow.release(3);
    assert_eq!(slow.settle(), 7, "resumed above half the total");
    slow.release(1);
    slow.receive_until(10);
    slow.drain(100);
    assert_eq!(slow.texts_of(id_a), expected_a);
    assert_eq!(slow.texts_of(id_b), expected_b);
    assert_eq!(slow.inbound.backlog(), Backlog::default());
}

#[test]
fn a_message_larger_than_the_byte_limit_still_passes_one_at_a_time() {
    let mut slow = Slow::start(
        InboundLimits {
            connection_bytes: 64 << 10,
            ..InboundLimits::default()
        },
        2,
    );
    let (mut s, conn) = slow.open();
    let payload = vec![b'x'; 256 << 10];
    let mut wire = Vec::new();
    for _ in 0..6 {
        wire.extend(client_frame(true, 2, &payload));
    }
    let writer = thread::spawn(move || {
        s.write_all(&wire).unwrap();
        s
    });
    slow.receive_until(1);
    assert_eq!(slow.settle(), 1, "a second large message was taken");
    for n in 2..=6 {
        slow.release(1);
        slow.receive_until(n);
        assert_eq!(slow.settle(), n);
    }
    slow.release(1);
    assert_eq!(slow.credits[&conn].backlog(), Backlog::default());
    assert!(slow
        .got
        .iter()
        .all(|(_, m)| m.as_bytes() == payload.as_slice()));
    drop(writer.join().unwrap());
}

#[test]
fn a_stopped_connection_pushes_back_on_its_sender() {
    let mut slow = Slow::start(limits(1, usize::MAX), 2);
    let (s, _conn) = slow.open();
    let frame = client_frame(true, 2, &vec![7u8; 64 << 10]);
    s.set_nonblocking(true).unwrap();
    let mut written = 0usize;
    let mut blocked = false;
    let started = Instant::now();
    // Far past what the kernel buffers on both sides hold; the server keeps two messages.
    while written < 256 << 20 && started.elapsed() < Duration::from_secs(20) {
        match (&s).write(&frame) {
            Ok(n) => written += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                // The server may still be draining the socket: give it a moment.
                thread::sleep(Duration::from_millis(100));
                match (&s).write(&frame) {
                    Ok(n) => written += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        blocked = true;
                        break;
                    }
                    Err(e) => panic!("write failed: {e}"),
                }
            }
            Err(e) => panic!("write failed: {e}"),
        }
    }
    assert!(
        blocked,
        "{written} bytes went in without the sender blocking"
    );
    assert_eq!(slow.settle(), 2, "messages taken past the limit");
}

#[test]
fn a_busy_consumer_costs_a_wakeup_per_half_limit_not_per_message() {
    const MESSAGES: usize = 20_000;
    let mut slow = Slow::start(InboundLimits::default(), 1);
    let (mut s, conn) = slow.open();
    let (wire, expected) = texts("w", MESSAGES);
    let writer = thread::spawn(move || {
        s.write_all(&wire).unwrap();
        s
    });
    // The consumer starts late, so the connection is stopped at least once.
    thread::sleep(QUIET);
    let before = slow.handle.stats();
    // One release per message, as a worker does.
    let deadline = Instant::now() + WAIT;
    while slow.got.len() < MESSAGES {
        assert!(
            Instant::now() < deadline,
            "{} messages came",
            slow.got.len()
        );
        if let Ok(event) = slow.events.recv_timeout(WAIT) {
            slow.take(event);
            let n = slow.unreleased.len();
            slow.release(n);
        }
    }
    let after = slow.handle.stats();
    assert!(
        after.inbound_pauses >= 1,
        "the connection was never stopped"
    );
    let wakeups = after.wakeups - before.wakeups;
    assert!(
        wakeups < (MESSAGES / 64) as u64,
        "{wakeups} wake-ups for {MESSAGES} messages"
    );
    assert_eq!(slow.texts_of(conn), expected);
    drop(writer.join().unwrap());
}

#[test]
fn dropping_the_credit_lifts_the_connections_own_limit() {
    let mut slow = Slow::start(limits(2, usize::MAX), 2);
    let (mut s, conn) = slow.open();
    drop(slow.credits.remove(&conn));
    let (wire, expected) = texts("d", 20);
    s.write_all(&wire).unwrap();
    slow.receive_until(20);
    assert_eq!(slow.texts_of(conn), expected);
}
