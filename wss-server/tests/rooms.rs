//! Rooms, presence and the broker seam: a room reaches only its subscribers, a broker carries
//! broadcasts to another node (here an in-memory broker joining two web servers in this
//! process), presence lists the users of every node.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::*;
use wss_server::*;

/// A client-driven handler: `sub:R`, `unsub:R`, `user:NAME`, `pub:R:TEXT`, `all:TEXT`.
struct Cmd;
struct CmdConn;

impl ServerHandler for Cmd {
    type Connection = CmdConn;
    fn on_connection(&mut self, _: &WebSocketServer, _: &ConnectionEvent) -> Option<CmdConn> {
        Some(CmdConn)
    }
}

impl ConnectionHandler for CmdConn {
    fn on_message(&mut self, ws: &WebSocketConnection, event: &MessageEvent) {
        let Some(text) = event.data.as_text() else {
            return;
        };
        let reply = match text.split_once(':') {
            Some(("sub", room)) => format!("sub:{:?}", ws.subscribe(room)),
            Some(("unsub", room)) => format!("unsub:{}", ws.unsubscribe(room)),
            Some(("user", name)) => format!("user:{:?}", ws.set_user(Some(name))),
            Some(("pub", rest)) => {
                let (room, body) = rest.split_once(':').unwrap_or((rest, ""));
                format!("pub:{}", ws.wss().publish(room, body, Some(ws.id())))
            }
            Some(("all", body)) => format!("all:{}", ws.wss().broadcast(body, Some(ws.id()))),
            _ => return,
        };
        let _ = ws.send(format!("ok {reply}"));
    }
}

/// Sends a command and returns the server's `ok ...` answer, skipping broadcasts.
fn command(client: &mut Client, cmd: &str) -> String {
    client.send(tungstenite::Message::text(cmd)).unwrap();
    loop {
        let t = read_text(client);
        if let Some(rest) = t.strip_prefix("ok ") {
            return rest.to_owned();
        }
    }
}

/// True if nothing arrives within `d`.
fn silent(client: &mut Client, d: Duration) -> bool {
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = client.get_ref() {
        s.set_read_timeout(Some(d)).unwrap();
    }
    client.read().is_err()
}

fn node(broker: Arc<dyn Broker>) -> (WebServer, WebSocketServer, SocketAddr) {
    let web = web_with(WebServerOptions::default().with_broker(broker));
    let wss = WebSocketServer::new(&web, Cmd, ServerOptions::default().with_path("/ws"))
        .expect("server starts");
    let addr = web.local_addr();
    (web, wss, addr)
}

#[test]
fn a_room_reaches_only_its_subscribers() {
    let (_web, wss, addr) = node(Arc::new(LocalBroker));
    let mut a = connect(addr, "/ws");
    let mut b = connect(addr, "/ws");
    let mut sender = connect(addr, "/ws");
    assert_eq!(command(&mut a, "sub:news"), "sub:Ok(())");
    assert_eq!(command(&mut a, "sub:news"), "sub:Ok(())", "idempotent");
    assert_eq!(wss.rooms(), ["news"]);
    assert_eq!(command(&mut sender, "pub:news:hello"), "pub:1");
    assert_eq!(read_text(&mut a), "hello");
    assert!(silent(&mut b, Duration::from_millis(200)));
    assert_eq!(command(&mut a, "unsub:news"), "unsub:true");
    assert_eq!(command(&mut a, "unsub:news"), "unsub:false");
    assert!(wss.rooms().is_empty(), "an empty room is forgotten");
    assert_eq!(command(&mut sender, "pub:news:again"), "pub:0");
}

#[test]
fn room_names_and_counts_are_bounded() {
    let (_web, wss, addr) = node(Arc::new(LocalBroker));
    let mut a = connect(addr, "/ws");
    assert_eq!(command(&mut a, "sub:"), "sub:Err(InvalidName)");
    let long = "r".repeat(MAX_ROOM_LEN + 1);
    assert_eq!(
        command(&mut a, &format!("sub:{long}")),
        "sub:Err(InvalidName)"
    );
    for i in 0..MAX_ROOMS_PER_CONNECTION {
        assert_eq!(command(&mut a, &format!("sub:r{i}")), "sub:Ok(())");
    }
    assert_eq!(
        command(&mut a, "sub:one-too-many"),
        format!("sub:Err(TooMany {{ limit: {MAX_ROOMS_PER_CONNECTION} }})")
    );
    let conn = &wss.connections()[0];
    assert_eq!(conn.rooms().len(), MAX_ROOMS_PER_CONNECTION);
    a.close(None).unwrap();
    let _ = a.read();
    assert!(
        wait(|| wss.rooms().is_empty()),
        "a closed connection leaves its rooms"
    );
    assert_eq!(conn.subscribe("late"), Err(TopicError::Closed));
}

#[test]
fn local_presence_lists_named_connections_and_forgets_closed_ones() {
    let (_web, wss, addr) = node(Arc::new(LocalBroker));
    let mut a = connect(addr, "/ws");
    let mut b = connect(addr, "/ws");
    let _anonymous = connect(addr, "/ws");
    assert_eq!(command(&mut a, "user:Ada"), "user:Ok(())");
    assert_eq!(command(&mut b, "user:Bob"), "user:Ok(())");
    assert_eq!(command(&mut b, "sub:lobby"), "sub:Ok(())");
    let users = |room| -> Vec<String> {
        wss.presence(room)
            .members
            .into_iter()
            .map(|m| format!("{}:{}", m.node, m.user))
            .collect()
    };
    assert_eq!(users(None), ["local:Ada", "local:Bob"]);
    assert_eq!(users(Some("lobby")), ["local:Bob"]);
    assert!(wss.presence(None).complete);
    b.close(None).unwrap();
    let _ = b.read();
    assert!(wait(|| users(None) == ["local:Ada"]));
    assert!(users(Some("lobby")).is_empty());
}

// ---- Two nodes in one process, joined by an in-memory broker ----

#[derive(Default)]
struct Hub {
    subs: Mutex<Vec<(String, Topic, Inbox)>>,
    presence: Mutex<BTreeMap<(Topic, String, u64), String>>,
    calls: Mutex<Vec<String>>,
}

#[derive(Debug)]
struct MemBroker {
    node: String,
    hub: Arc<Hub>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hub")
    }
}

impl Broker for MemBroker {
    fn node_id(&self) -> &str {
        &self.node
    }
    fn subscribe(&self, topic: &Topic, inbox: &Inbox) {
        self.hub
            .calls
            .lock()
            .unwrap()
            .push(format!("{} sub {topic}", self.node));
        let mut subs = self.hub.subs.lock().unwrap();
        subs.push((self.node.clone(), topic.clone(), inbox.clone()));
    }
    fn unsubscribe(&self, topic: &Topic, inbox: &Inbox) {
        self.hub
            .calls
            .lock()
            .unwrap()
            .push(format!("{} unsub {topic}", self.node));
        let mut subs = self.hub.subs.lock().unwrap();
        subs.retain(|(n, t, i)| !(n == &self.node && t == topic && i.same(inbox)));
    }
    fn publish(&self, topic: &Topic, frame: &Frame) {
        let targets: Vec<Inbox> = self
            .hub
            .subs
            .lock()
            .unwrap()
            .iter()
            .filter(|(n, t, _)| n != &self.node && t == topic)
            .map(|(_, _, i)| i.clone())
            .collect();
        for inbox in targets {
            // As a real broker does: the bytes cross the wire and are checked once.
            let received = Frame::from_wire(frame.as_bytes()).unwrap();
            inbox.deliver(topic, &received);
        }
    }
    fn join(&self, topic: &Topic, connection: u64, user: &str) {
        let key = (topic.clone(), self.node.clone(), connection);
        self.hub
            .presence
            .lock()
            .unwrap()
            .insert(key, user.to_owned());
    }
    fn leave(&self, topic: &Topic, connection: u64) {
        let key = (topic.clone(), self.node.clone(), connection);
        self.hub.presence.lock().unwrap().remove(&key);
    }
    fn remote_members(&self, topic: &Topic) -> Result<Vec<Member>, BrokerError> {
        if self.node == "offline" {
            return Err(BrokerError::Disconnected);
        }
        Ok(self
            .hub
            .presence
            .lock()
            .unwrap()
            .iter()
            .filter(|((t, n, _), _)| t == topic && n != &self.node)
            .map(|((_, n, c), u)| Member {
                node: n.clone(),
                connection: *c,
                user: u.clone(),
            })
            .collect())
    }
}

fn two_nodes() -> (Arc<Hub>, [(WebServer, WebSocketServer, SocketAddr); 2]) {
    let hub = Arc::new(Hub::default());
    let make = |name: &str| {
        node(Arc::new(MemBroker {
            node: name.into(),
            hub: hub.clone(),
        }))
    };
    let nodes = [make("n1"), make("n2")];
    (hub, nodes)
}

#[test]
fn a_broadcast_reaches_the_other_node_and_except_applies_to_the_sender_only() {
    let (_hub, [(_w1, _s1, a1), (_w2, _s2, a2)]) = two_nodes();
    let mut sender = connect(a1, "/ws");
    let mut local = connect(a1, "/ws");
    let mut remote = connect(a2, "/ws");
    let mut remote2 = connect(a2, "/ws");
    assert_eq!(command(&mut sender, "all:hi"), "all:1");
    assert_eq!(read_text(&mut local), "hi");
    assert_eq!(read_text(&mut remote), "hi");
    assert_eq!(read_text(&mut remote2), "hi");
    assert!(
        silent(&mut sender, Duration::from_millis(200)),
        "sender excluded"
    );
}

#[test]
fn a_room_crosses_nodes_and_the_broker_hears_of_it_once_per_node() {
    let (hub, [(_w1, _s1, a1), (_w2, s2, a2)]) = two_nodes();
    let mut sender = connect(a1, "/ws");
    let mut in_room = connect(a2, "/ws");
    let mut in_room2 = connect(a2, "/ws");
    let mut outside = connect(a2, "/ws");
    assert_eq!(command(&mut in_room, "sub:chess"), "sub:Ok(())");
    assert_eq!(command(&mut in_room2, "sub:chess"), "sub:Ok(())");
    assert_eq!(command(&mut sender, "pub:chess:e4"), "pub:0");
    assert_eq!(read_text(&mut in_room), "e4");
    assert_eq!(read_text(&mut in_room2), "e4");
    assert!(silent(&mut outside, Duration::from_millis(200)));
    assert_eq!(command(&mut in_room, "unsub:chess"), "unsub:true");
    assert_eq!(command(&mut in_room2, "unsub:chess"), "unsub:true");
    let calls = hub.calls.lock().unwrap().clone();
    let room_calls: Vec<&String> = calls.iter().filter(|c| c.contains("chess")).collect();
    assert_eq!(room_calls, ["n2 sub /ws [chess]", "n2 unsub /ws [chess]"]);
    s2.terminate(Some(Duration::ZERO));
    assert!(s2.wait_terminated(Some(WAIT)));
    let calls = hub.calls.lock().unwrap().clone();
    assert_eq!(calls.last().map(String::as_str), Some("n2 unsub /ws"));
}

#[test]
fn presence_lists_the_users_of_every_node() {
    let (_hub, [(_w1, s1, a1), (_w2, s2, a2)]) = two_nodes();
    let mut ada = connect(a1, "/ws");
    let mut bob = connect(a2, "/ws");
    assert_eq!(command(&mut ada, "user:Ada"), "user:Ok(())");
    assert_eq!(command(&mut bob, "user:Bob"), "user:Ok(())");
    let seen = |s: &WebSocketServer| -> Vec<String> {
        s.presence(None)
            .members
            .into_iter()
            .map(|m| format!("{}:{}", m.node, m.user))
            .collect()
    };
    assert_eq!(seen(&s1), ["n1:Ada", "n2:Bob"]);
    assert_eq!(seen(&s2), ["n1:Ada", "n2:Bob"]);
    bob.close(None).unwrap();
    let _ = bob.read();
    assert!(
        wait(|| seen(&s1) == ["n1:Ada"]),
        "a closed connection leaves"
    );
}

#[test]
fn presence_without_the_backend_is_local_and_says_so() {
    let hub = Arc::new(Hub::default());
    let (_w, s, a) = node(Arc::new(MemBroker {
        node: "offline".into(),
        hub,
    }));
    let mut ada = connect(a, "/ws");
    assert_eq!(command(&mut ada, "user:Ada"), "user:Ok(())");
    let p = s.presence(None);
    assert!(!p.complete);
    assert_eq!(p.members.len(), 1);
    assert_eq!(p.members[0].node, "offline");
}

fn wait(mut f: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + WAIT;
    while std::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}
