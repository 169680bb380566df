//! `wss --redis`: two `wss --handler chat` processes sharing a private `redis-server` form one
//! chat room. Without `redis-server` installed the Redis tests say so loudly and pass, unless
//! `WSS_REQUIRE_REDIS=1` (then they fail).

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::redis::{free_port, Presence, Redis};
use support::{close, connect, next_json, run_to_exit, Client, Wss};
use tungstenite::Message;

fn chat_node(redis: &Redis, node: &str) -> Wss {
    let url = redis.url();
    Wss::start(&[
        "--handler",
        "chat",
        "--redis",
        &url,
        "--node-id",
        node,
        "--threads",
        "1",
    ])
}

/// Reads until a notice of `kind`, skipping others (e.g. the welcome's echo of a roster).
fn next_of(ws: &mut Client, kind: &str) -> Value {
    loop {
        let v = next_json(ws);
        if v["type"] == kind {
            return v;
        }
    }
}

fn users(v: &Value) -> Vec<&str> {
    v["users"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn say(ws: &mut Client, text: &str) {
    let msg = serde_json::json!({ "type": "message", "text": text });
    ws.send(Message::text(msg.to_string())).expect("send");
}

#[test]
fn two_nodes_share_messages_rosters_and_names() {
    let Some(redis) = Redis::start() else { return };
    let a = chat_node(&redis, "a");
    let b = chat_node(&redis, "b");

    let mut watcher = connect(&a.ws_url("?name=Wes"));
    assert_eq!(users(&next_of(&mut watcher, "welcome")), ["Wes"]);
    // Two joins on two nodes within the same few milliseconds may miss each other (module
    // doc of the chat handler); this test is about what follows once a's write is in.
    redis.wait_present("a", 1);

    let mut bob = connect(&b.ws_url("?name=Bob"));
    let welcome = next_of(&mut bob, "welcome");
    assert_eq!(welcome["name"], "Bob");
    assert_eq!(users(&welcome), ["Wes", "Bob"], "{welcome}");
    // Node b published Bob's presence with this notice, so node a can now see him.
    let joined = next_of(&mut watcher, "joined");
    assert_eq!(joined["name"], "Bob");
    assert_eq!(users(&joined), ["Wes", "Bob"]);

    let mut ada = connect(&a.ws_url("?name=Ada"));
    let welcome = next_of(&mut ada, "welcome");
    assert_eq!(
        users(&welcome),
        ["Wes", "Ada", "Bob"],
        "the roster lists both nodes' users: {welcome}"
    );
    assert_eq!(welcome["count"], 3);
    let joined = next_of(&mut bob, "joined");
    assert_eq!(joined["name"], "Ada");
    assert_eq!(users(&joined), ["Wes", "Ada", "Bob"]);

    say(&mut bob, "hi from b");
    for ws in [&mut ada, &mut watcher] {
        let m = next_of(ws, "message");
        assert_eq!(
            (m["name"].as_str(), m["text"].as_str()),
            (Some("Bob"), Some("hi from b"))
        );
    }
    say(&mut ada, "hi from a");
    let m = next_of(&mut bob, "message");
    assert_eq!(
        (m["name"].as_str(), m["text"].as_str()),
        (Some("Ada"), Some("hi from a"))
    );

    // Ada is on node a; another "ada" on node b gets a name of its own.
    let mut twin = connect(&b.ws_url("?name=ada"));
    let welcome = next_of(&mut twin, "welcome");
    assert_eq!(welcome["name"], "ada 2", "{welcome}");
    let joined = next_of(&mut ada, "joined");
    assert_eq!(joined["name"], "ada 2");
    assert_eq!(users(&joined), ["Wes", "Ada", "Bob", "ada 2"]);

    close(bob);
    let left = next_of(&mut ada, "left");
    assert_eq!(left["name"], "Bob");
    assert_eq!(users(&left), ["Wes", "Ada", "ada 2"], "{left}");
    assert_eq!(left["count"], 3);
}

#[test]
fn a_stopped_node_leaves_the_rosters_at_once() {
    let Some(redis) = Redis::start() else { return };
    let a = chat_node(&redis, "a");
    let mut b = chat_node(&redis, "b");
    let mut watcher = connect(&a.ws_url("?name=Wes"));
    next_of(&mut watcher, "welcome");
    let mut bob = connect(&b.ws_url("?name=Bob"));
    next_of(&mut bob, "welcome");
    next_of(&mut watcher, "joined");

    let stopped_at = Instant::now();
    b.signal("TERM");
    let _ = bob.read(); // the 1001 close frame
    drop(bob);
    let status = b.wait_exit(Duration::from_secs(10)).expect("node b exits");
    assert!(status.success(), "{status:?}\n{}", b.stderr());

    let mut dee = connect(&a.ws_url("?name=Dee"));
    let welcome = next_of(&mut dee, "welcome");
    assert_eq!(users(&welcome), ["Wes", "Dee"], "{welcome}");
    // Well inside the 15 s presence TTL: node b removed its presence on the way out.
    assert!(stopped_at.elapsed() < Duration::from_secs(10));
}

#[test]
fn redis_down_at_start_is_one_line_and_non_zero() {
    // Nothing listens on a port just freed; no redis-server needed.
    let url = format!("redis://127.0.0.1:{}", free_port());
    let started = Instant::now();
    let (status, stdout, stderr) =
        run_to_exit(&["--handler", "chat", "--port", "0", "--redis", &url]);
    assert_eq!(status.code(), Some(1), "a failed start: {stderr}");
    assert_eq!(stdout, "", "no readiness line");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(
        lines[0].contains("cannot reach Redis") && lines[0].contains(&url),
        "{}",
        lines[0]
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "bounded by the connect timeout"
    );
}
