//! Nodes sharing a real Redis: broadcasts, rooms and presence cross nodes; each message
//! arrives once.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use support::*;

#[test]
fn a_client_on_node_1_sees_a_message_sent_on_node_2() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let n1 = Node::start(config(&redis, "n1"));
    let n2 = Node::start(config(&redis, "n2"));
    let mut on1 = n1.connect();
    let mut sender = n2.connect();
    let mut beside = n2.connect();
    assert_eq!(command(&mut sender, "all:hello"), "all:1");
    assert_eq!(read_text(&mut on1), "hello");
    assert_eq!(read_text(&mut beside), "hello");
    // Redis echoes n2's message back to n2, which must drop it: exactly one copy each.
    assert!(silent(&mut beside, Duration::from_millis(300)));
    assert!(silent(&mut on1, Duration::from_millis(50)));
    assert!(
        silent(&mut sender, Duration::from_millis(50)),
        "sender excluded"
    );
    assert!(eventually(WAIT, || n2.broker.stats().own_skipped == 1));
    let s1 = n1.broker.stats();
    assert_eq!((s1.received, s1.delivered), (1, 1));
    assert_eq!(n2.broker.stats().published, 1);
}

#[test]
fn three_nodes_share_a_room_and_only_its_subscribers_get_it() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let nodes: Vec<Node> = ["a", "b", "c"]
        .iter()
        .map(|id| Node::start(config(&redis, id)))
        .collect();
    let mut in_a = nodes[0].connect();
    let mut in_c = nodes[2].connect();
    let mut outside_b = nodes[1].connect();
    let mut sender = nodes[1].connect();
    assert_eq!(command(&mut in_a, "sub:chess"), "sub:Ok(())");
    assert_eq!(command(&mut in_c, "sub:chess"), "sub:Ok(())");
    for n in [&nodes[0], &nodes[2]] {
        assert!(n.broker.wait_connected(WAIT), "room subscription active");
    }
    assert_eq!(command(&mut sender, "pub:chess:e4"), "pub:0");
    assert_eq!(read_text(&mut in_a), "e4");
    assert_eq!(read_text(&mut in_c), "e4");
    assert!(silent(&mut outside_b, Duration::from_millis(300)));
    assert!(silent(&mut in_a, Duration::from_millis(50)));
    // Node b has no subscriber to the room, so it is not even subscribed in Redis.
    let mut redis_client = support::client(&redis);
    let channels: Vec<String> = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg("wss:m:3:/ws:chess")
        .query::<Vec<redis::Value>>(&mut redis_client)
        .map(|v| {
            v.into_iter()
                .filter_map(|x| redis::from_redis_value::<String>(&x).ok())
                .collect()
        })
        .unwrap();
    assert_eq!(
        channels.first().map(String::as_str),
        Some("wss:m:3:/ws:chess")
    );
    let count: i64 = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg("wss:m:3:/ws:chess")
        .query::<(String, i64)>(&mut redis_client)
        .unwrap()
        .1;
    assert_eq!(
        count, 2,
        "one subscription per node with subscribers, not per client"
    );
}

#[test]
fn presence_lists_the_users_of_every_node() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let nodes: Vec<Node> = ["a", "b", "c"]
        .iter()
        .map(|id| Node::start(config(&redis, id)))
        .collect();
    let mut ada = nodes[0].connect();
    let mut bob = nodes[1].connect();
    let mut cy = nodes[2].connect();
    assert_eq!(command(&mut ada, "user:Ada"), "user:Ok(())");
    assert_eq!(command(&mut bob, "user:Bob"), "user:Ok(())");
    assert_eq!(command(&mut cy, "user:Cy"), "user:Ok(())");
    assert_eq!(command(&mut cy, "sub:lobby"), "sub:Ok(())");
    let all = ["a:Ada", "b:Bob", "c:Cy"];
    for n in &nodes {
        assert!(
            eventually(WAIT, || n.users(None) == all),
            "{:?}",
            n.users(None)
        );
    }
    assert!(eventually(WAIT, || nodes[0].users(Some("lobby")) == ["c:Cy"]));
    assert!(nodes[0].wss.presence(None).complete);
    // A connection that closes leaves presence on every node at once (no TTL wait).
    cy.close(None).unwrap();
    let _ = cy.read();
    assert!(eventually(Duration::from_millis(500), || nodes[0]
        .users(None)
        == ["a:Ada", "b:Bob"]));
    assert!(nodes[0].users(Some("lobby")).is_empty());
}

#[test]
fn a_stopped_node_removes_its_presence_at_once() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let n1 = Node::start(config(&redis, "n1"));
    let n2 = Node::start(config(&redis, "n2").with_presence_ttl(Duration::from_secs(60)));
    let mut bob = n2.connect();
    assert_eq!(command(&mut bob, "user:Bob"), "user:Ok(())");
    assert!(eventually(WAIT, || n1.users(None) == ["n2:Bob"]));
    n2.web.stop();
    n2.broker.shutdown();
    assert!(eventually(Duration::from_millis(500), || n1
        .users(None)
        .is_empty()));
}

#[test]
fn invalid_payloads_on_our_channels_never_reach_a_client() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let n1 = Node::start(config(&redis, "n1"));
    let mut client = n1.connect();
    let mut by_hand = support::client(&redis);
    let channel = "wss:m:3:/ws";
    // Not an envelope; an envelope around a masked frame; around a close frame.
    let payloads: [&[u8]; 3] = [
        b"hello",
        b"W\x01\x01x\x81\x82\x00\x00\x00\x00hi",
        b"W\x01\x01x\x88\x00",
    ];
    for p in payloads {
        let _: i64 = redis::cmd("PUBLISH")
            .arg(channel)
            .arg(p)
            .query(&mut by_hand)
            .unwrap();
    }
    // A valid one from a node "x" gets through, after the bad ones.
    let _: i64 = redis::cmd("PUBLISH")
        .arg(channel)
        .arg(&b"W\x01\x01x\x81\x02ok"[..])
        .query(&mut by_hand)
        .unwrap();
    assert_eq!(read_text(&mut client), "ok");
    assert_eq!(n1.broker.stats().invalid, 3);
}

#[test]
fn a_node_told_that_a_user_joined_already_sees_its_presence() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let n1 = Node::start(config(&redis, "n1"));
    let n2 = Node::start(config(&redis, "n2"));
    let mut watcher = n2.connect();
    let mut joiner = n1.connect();
    // Redis's MONITOR lists the commands in the order it runs them.
    let mut monitor = TcpStream::connect(redis.url().trim_start_matches("redis://")).unwrap();
    monitor.set_read_timeout(Some(WAIT)).unwrap();
    monitor.write_all(b"MONITOR\r\n").unwrap();
    let mut lines = BufReader::new(monitor).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "+OK");
    for i in 0..20 {
        let name = format!("user{i}");
        assert_eq!(
            command(&mut joiner, &format!("join:{name}")),
            "join:Ok(()):0"
        );
        assert_eq!(read_text(&mut watcher), format!("joined {name}"));
        let users = n2.users(None);
        assert!(users.contains(&format!("n1:{name}")), "{users:?}");
        // The presence write ran before the message that announced it.
        let mut written = false;
        loop {
            let line = lines.next().expect("a command").expect("MONITOR output");
            if line.contains("\"HSET\"") && line.contains(&format!("\"{name}\"")) {
                written = true;
            }
            if line.contains("\"PUBLISH\"") && line.contains(&format!("joined {name}")) {
                assert!(written, "{name}: PUBLISH before its presence: {line}");
                break;
            }
        }
    }
}
