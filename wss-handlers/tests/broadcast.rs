//! The `Broadcast` relay over real loopback sockets: in process, through the `wss` binary, and
//! across two `wss --redis` nodes sharing a private `redis-server` (skipped loudly when
//! `redis-server` is missing, unless `WSS_REQUIRE_REDIS=1`).

mod support;

use std::time::Duration;

use support::redis::Redis;
use support::{assert_silent, close, connect, next_message, run_to_exit, Wss};
use tungstenite::Message;
use wss_handlers::Broadcast;
use wss_server::{DataType, ServerOptions, WebServer, WebServerOptions, WebSocketServer};

/// How long a client must stay silent to show it was not sent something.
const QUIET: Duration = Duration::from_millis(300);

/// An in-process relay at `/b`, stopped on drop.
struct Relay {
    web: WebServer,
    _wss: WebSocketServer,
}

impl Relay {
    fn start() -> Relay {
        let web = WebServer::start(WebServerOptions::default().with_address("127.0.0.1", 0))
            .expect("web server");
        let options = ServerOptions::default()
            .with_path("/b")
            .with_data_type(DataType::Text);
        let wss = WebSocketServer::new(&web, Broadcast, options).expect("server");
        Relay { web, _wss: wss }
    }

    fn url(&self) -> String {
        format!("ws://{}/b", self.web.local_addr())
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.web.stop();
    }
}

#[test]
fn every_other_client_gets_text_and_binary_unchanged_and_the_sender_nothing() {
    let relay = Relay::start();
    let mut sender = connect(&relay.url());
    let mut a = connect(&relay.url());
    let mut b = connect(&relay.url());
    // Connecting sends nothing: no welcome, no notice.
    assert_silent(&mut a, QUIET);

    let text = "héllo, wsb:aaaaaaab ✓";
    sender.send(Message::text(text)).expect("send text");
    let bytes = vec![0u8, 0xff, 0x80, b'a', 0];
    sender
        .send(Message::binary(bytes.clone()))
        .expect("send binary");
    sender.send(Message::text("")).expect("send empty");
    for ws in [&mut a, &mut b] {
        assert_eq!(next_message(ws), Message::text(text));
        assert_eq!(next_message(ws), Message::binary(bytes.clone()));
        assert_eq!(next_message(ws), Message::text(""));
    }
    assert_silent(&mut sender, QUIET);

    // Any client may send; the relay excludes exactly that one.
    a.send(Message::text("from a")).expect("send");
    assert_eq!(next_message(&mut sender), Message::text("from a"));
    assert_eq!(next_message(&mut b), Message::text("from a"));
    assert_silent(&mut a, QUIET);
    close(sender);
    close(a);
    close(b);
}

#[test]
fn a_large_burst_arrives_whole_and_in_order() {
    let relay = Relay::start();
    let mut sender = connect(&relay.url());
    let mut receivers: Vec<_> = (0..5).map(|_| connect(&relay.url())).collect();
    // Sizes around the 125 and 65535 length-form boundaries.
    let sizes = [0usize, 1, 125, 126, 65_535, 65_536, 200_000];
    let payload = |i: usize, n: usize| -> Vec<u8> { (0..n).map(|k| (i * 31 + k) as u8).collect() };
    for (i, n) in sizes.iter().enumerate() {
        sender.send(Message::binary(payload(i, *n))).expect("send");
    }
    for ws in &mut receivers {
        for (i, n) in sizes.iter().enumerate() {
            match next_message(ws) {
                Message::Binary(b) => assert!(b[..] == payload(i, *n)[..], "message {i}"),
                other => panic!("message {i}: {other:?}"),
            }
        }
    }
    assert_silent(&mut sender, QUIET);
}

#[test]
fn a_lone_client_is_sent_nothing() {
    let relay = Relay::start();
    let mut only = connect(&relay.url());
    only.send(Message::text("anyone?")).expect("send");
    assert_silent(&mut only, QUIET);
    // A client that joins later does not get what was said before it came.
    let mut late = connect(&relay.url());
    assert_silent(&mut late, QUIET);
    only.send(Message::text("now")).expect("send");
    assert_eq!(next_message(&mut late), Message::text("now"));
}

#[test]
fn the_binary_runs_it_and_refuses_a_data_type_that_would_change_frames() {
    let server = Wss::start(&["--handler", "broadcast", "--path", "/", "--threads", "1"]);
    let mut sender = connect(&server.ws_url(""));
    let mut receiver = connect(&server.ws_url(""));
    sender.send(Message::text("wsb:x")).expect("send");
    sender.send(Message::binary(vec![1u8, 2, 3])).expect("send");
    assert_eq!(next_message(&mut receiver), Message::text("wsb:x"));
    assert_eq!(
        next_message(&mut receiver),
        Message::binary(vec![1u8, 2, 3])
    );
    assert_silent(&mut sender, QUIET);

    for data_type in ["object", "blob"] {
        let (status, out, err) = run_to_exit(&[
            "--handler",
            "broadcast",
            "--data-type",
            data_type,
            "--port",
            "0",
        ]);
        assert_eq!(status.code(), Some(2), "{data_type}: {err}");
        assert!(out.is_empty(), "{out}");
        assert!(err.contains("--data-type text"), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    }
}

fn node(redis: &Redis, id: &str) -> Wss {
    let url = redis.url();
    Wss::start(&[
        "--handler",
        "broadcast",
        "--path",
        "/",
        "--redis",
        &url,
        "--node-id",
        id,
        "--threads",
        "1",
    ])
}

#[test]
fn two_nodes_relay_to_every_client_of_both_once_and_in_order() {
    let Some(redis) = Redis::start() else { return };
    let one = node(&redis, "one");
    let two = node(&redis, "two");
    let mut sender = connect(&one.ws_url(""));
    let mut near = connect(&one.ws_url(""));
    let mut far: Vec<_> = (0..2).map(|_| connect(&two.ws_url(""))).collect();

    let count = 200;
    for i in 0..count {
        let m = if i % 2 == 0 {
            Message::text(format!("wsb:{i:08}"))
        } else {
            Message::binary(format!("bin {i}").into_bytes())
        };
        sender.send(m).expect("send");
    }
    for ws in std::iter::once(&mut near).chain(far.iter_mut()) {
        for i in 0..count {
            let want = if i % 2 == 0 {
                Message::text(format!("wsb:{i:08}"))
            } else {
                Message::binary(format!("bin {i}").into_bytes())
            };
            assert_eq!(next_message(ws), want, "message {i}");
        }
        // Each message once: nothing after the last one (no echo of node one's own
        // publication coming back through Redis).
        assert_silent(ws, QUIET);
    }
    // The sender is excluded on its node, and node two does not send it back either.
    assert_silent(&mut sender, QUIET);

    // The other direction: a client of node two reaches node one's clients, the sender too.
    far[0].send(Message::text("from two")).expect("send");
    assert_eq!(next_message(&mut sender), Message::text("from two"));
    assert_eq!(next_message(&mut near), Message::text("from two"));
    assert_eq!(next_message(&mut far[1]), Message::text("from two"));
    assert_silent(&mut far[0], QUIET);
}
