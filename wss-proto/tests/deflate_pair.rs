//! A client and a server with permessage-deflate, driven in memory: every combination of
//! context takeover and window bits round-trips, the wire shows what was agreed, the agreed
//! window is enforced, and a broadcast encoded once reaches every kind of receiver.
#![cfg(feature = "deflate")]

mod util;

use std::sync::Arc;
use std::time::Instant;

use util::{events, output, Pair};
use wss_proto::{encode_frame, encode_message_deflated, FrameHeader, RSV1};
use wss_proto::{
    Config, Connection, DeflateParams, Event, Message, Opcode, Outgoing, ProtocolError, Role,
    SendError,
};

fn config(params: &DeflateParams) -> Config {
    Config {
        deflate: Some(params.clone()),
        ..Config::default()
    }
}

/// (RSV1 set, payload length) of each frame in `wire`.
fn frames(mut wire: &[u8]) -> Vec<(bool, usize)> {
    let mut out = Vec::new();
    while !wire.is_empty() {
        let (h, n) = FrameHeader::parse(wire).unwrap().unwrap();
        let len = h.payload_len as usize;
        out.push((h.rsv & RSV1 != 0, len));
        wire = &wire[n + len..];
    }
    out
}

fn chat(i: usize) -> String {
    format!(
        "{{\"type\":\"message\",\"user\":\"user{}\",\"text\":\"hello number {i}, how are you today?\"}}",
        i % 3
    )
}

/// A mix: short (under the threshold), chatty JSON, big repetitive, big random-ish, binary.
fn messages() -> Vec<Message> {
    let mut noise = Vec::with_capacity(9_000);
    let mut x = 0x2545_f491_u32;
    for _ in 0..9_000 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        noise.push(x as u8);
    }
    vec![
        Message::Text("hi".into()),
        Message::Text(chat(1)),
        Message::Text(chat(2)),
        Message::Text(chat(1)),
        Message::Text("é€😀 ".repeat(3_000)),
        Message::Binary(noise),
        Message::Binary(vec![7; 70_000]), // over 64 KiB: 8-byte length form
        Message::Text(String::new()),
    ]
}

fn send(conn: &mut Connection, msg: &Message) {
    match msg {
        Message::Text(t) => conn.send_text(t).unwrap(),
        Message::Binary(b) => conn.send_binary(b).unwrap(),
    }
}

fn round_trip(params: &DeflateParams) {
    let mut p = Pair::new(config(params));
    let msgs = messages();
    for m in &msgs {
        send(&mut p.client, m);
        send(&mut p.server, m);
    }
    p.drive();
    let expected: Vec<Event> = msgs.iter().cloned().map(Event::Message).collect();
    assert_eq!(p.server_events, expected, "{params:?}");
    assert_eq!(p.client_events, expected, "{params:?}");
    for (wire, (resets, bits)) in [
        (&p.client_wire, params.sender(Role::Client)),
        (&p.server_wire, params.sender(Role::Server)),
    ] {
        let f = frames(wire);
        assert_eq!(f.len(), msgs.len());
        let compressed: Vec<bool> = f.iter().map(|(rsv1, _)| *rsv1).collect();
        if bits < 9 {
            assert!(
                compressed.iter().all(|c| !c),
                "8-bit window: never compress"
            );
            continue;
        }
        // Under the threshold (and empty) plain, the rest compressed.
        assert_eq!(
            compressed,
            [false, true, true, true, true, true, true, false],
            "{params:?}"
        );
        if params.level == 0 {
            continue; // stored blocks: nothing shrinks
        }
        // Chat message 1 sent again: identical bytes without context takeover, much
        // shorter with it.
        let (first, again) = (f[1].1, f[3].1);
        if resets {
            assert_eq!(first, again, "{params:?}");
        } else {
            assert!(again < first / 2, "{again} vs {first}: {params:?}");
        }
        assert!(f[6].1 < 1000, "70 000 equal bytes compress");
    }
}

#[test]
fn every_parameter_combination_round_trips() {
    for server_nct in [false, true] {
        for client_nct in [false, true] {
            for server_bits in [8, 9, 12, 15] {
                for client_bits in [8, 10, 15] {
                    round_trip(&DeflateParams {
                        server_no_context_takeover: server_nct,
                        client_no_context_takeover: client_nct,
                        server_max_window_bits: server_bits,
                        client_max_window_bits: client_bits,
                        threshold: 16,
                        level: 1,
                    });
                }
            }
        }
    }
}

#[test]
fn every_level_round_trips() {
    for level in [0, 1, 6, 9, 42] {
        round_trip(&DeflateParams {
            level,
            threshold: 16,
            ..DeflateParams::default()
        });
    }
}

#[test]
fn a_compressed_message_over_the_limit_fails_with_1009() {
    let params = DeflateParams {
        threshold: 0,
        ..DeflateParams::default()
    };
    let mut sender = Connection::new(Role::Client, config(&params), Instant::now());
    sender.send_text(&"a".repeat(10_001)).unwrap();
    let wire = output(&mut sender);
    assert!(wire.len() < 200, "{}", wire.len());
    let small = Config {
        max_message_size: 10_000,
        ..config(&params)
    };
    let mut server = Connection::new(Role::Server, small, Instant::now());
    util::receive(&mut server, Instant::now(), &wire);
    let got = events(&mut server);
    assert!(
        matches!(
            got[..],
            [Event::Failed(ProtocolError::MessageTooBig {
                max: 10_000,
                ..
            })]
        ),
        "{got:?}"
    );
    // Exactly at the limit it fits (a new sender: the first message is not in this
    // receiver's window).
    let mut sender = Connection::new(Role::Client, config(&params), Instant::now());
    sender.send_text(&"a".repeat(10_000)).unwrap();
    let mut server = Connection::new(Role::Server, small_config(&params), Instant::now());
    util::receive(&mut server, Instant::now(), &output(&mut sender));
    assert_eq!(
        events(&mut server),
        [Event::Message(Message::Text("a".repeat(10_000)))]
    );
}

fn small_config(params: &DeflateParams) -> Config {
    Config {
        max_message_size: 10_000,
        ..config(params)
    }
}

#[test]
fn fragments_sent_with_send_frame_go_out_plain() {
    let mut p = Pair::new(config(&DeflateParams {
        threshold: 0,
        ..DeflateParams::default()
    }));
    p.client.send_frame(Opcode::Text, false, b"Hel").unwrap();
    p.client
        .send_frame(Opcode::Continuation, true, b"lo")
        .unwrap();
    p.drive();
    assert_eq!(
        p.server_events,
        [Event::Message(Message::Text("Hello".into()))]
    );
    assert!(frames(&p.client_wire).iter().all(|(rsv1, _)| !rsv1));
}

/// A server connection plus the client that reads what it writes, sharing `params`.
fn server_and_reader(params: &DeflateParams) -> (Connection, Connection) {
    let now = Instant::now();
    (
        Connection::new(Role::Server, config(params), now),
        Connection::new(Role::Client, config(params), now),
    )
}

#[test]
fn broadcast_encoded_once_reaches_receivers_of_every_kind() {
    let sender_params = DeflateParams {
        server_no_context_takeover: true,
        threshold: 8,
        ..DeflateParams::default()
    };
    let mut shared = Vec::new();
    let news = chat(7);
    let mut scratch = wss_proto::Scratch::new();
    assert!(encode_message_deflated(
        &mut scratch,
        &mut shared,
        &sender_params,
        Opcode::Text,
        news.as_bytes()
    ));
    assert_eq!(shared[0], 0xc1, "compressed text");
    let mut small = Vec::new();
    assert!(!encode_message_deflated(
        &mut scratch,
        &mut small,
        &sender_params,
        Opcode::Text,
        b"tiny"
    ));
    assert_eq!(small[0], 0x81, "under the threshold: plain");

    for takeover in [false, true] {
        let receiver = DeflateParams {
            server_no_context_takeover: !takeover,
            threshold: 8,
            ..DeflateParams::default()
        };
        assert!(sender_params.shares_server_encoding_with(&receiver));
        let (mut server, mut client) = server_and_reader(&receiver);
        let before = chat(1);
        server.send_text(&before).unwrap();
        let mut wire = output(&mut server);
        server
            .send(Outgoing::Shared(Arc::from(shared.as_slice())), &mut wire)
            .unwrap();
        server.send_text(&before).unwrap();
        wire.extend_from_slice(&output(&mut server));
        util::receive(&mut client, Instant::now(), &wire);
        assert_eq!(
            events(&mut client),
            [
                Event::Message(Message::Text(before.clone())),
                Event::Message(Message::Text(news.clone())),
                Event::Message(Message::Text(before.clone())),
            ],
            "takeover {takeover}"
        );
    }
}

#[test]
fn without_reset_a_context_takeover_receiver_misreads_after_a_shared_frame() {
    // Why `send` cuts the compressor's history after a compressed shared frame: the peer's
    // window holds the shared message, the compressor's history does not. (Queued here past
    // the `Connection`, which therefore cannot know.)
    let params = DeflateParams {
        threshold: 8,
        ..DeflateParams::default()
    };
    let (mut server, mut client) = server_and_reader(&params);
    let a = "the quick brown fox jumps over the lazy dog, twice over";
    let b = "PACK MY BOX WITH FIVE DOZEN LIQUOR JUGS, AND QUICKLY TOO";
    server.send_text(a).unwrap();
    let mut wire = output(&mut server);
    encode_message_deflated(
        &mut wss_proto::Scratch::new(),
        &mut wire,
        &params,
        Opcode::Text,
        b.as_bytes(),
    );
    server.send_text(a).unwrap();
    wire.extend_from_slice(&output(&mut server));
    util::receive(&mut client, Instant::now(), &wire);
    let got = events(&mut client);
    assert_ne!(got.get(2), Some(&Event::Message(Message::Text(a.into()))));
}

#[test]
fn shared_encoding_needs_a_receiver_window_at_least_as_large() {
    let sender = DeflateParams::default();
    let narrow = DeflateParams {
        server_max_window_bits: 10,
        ..DeflateParams::default()
    };
    assert!(!sender.shares_server_encoding_with(&narrow));
    assert!(narrow.shares_server_encoding_with(&sender));
}

#[test]
fn control_frames_in_encode_message_deflated_stay_plain() {
    let mut out = Vec::new();
    let params = DeflateParams {
        threshold: 0,
        ..DeflateParams::default()
    };
    assert!(!encode_message_deflated(
        &mut wss_proto::Scratch::new(),
        &mut out,
        &params,
        Opcode::Ping,
        b"ping ping ping"
    ));
    let mut plain = Vec::new();
    encode_frame(&mut plain, true, Opcode::Ping, b"ping ping ping", None);
    assert_eq!(out, plain);
}

#[test]
fn plain_external_frames_keep_the_context() {
    let params = DeflateParams {
        threshold: 8,
        ..DeflateParams::default()
    };
    let (mut server, mut client) = server_and_reader(&params);
    let a = chat(3);
    server.send_text(&a).unwrap();
    let first = output(&mut server);
    let mut plain = Vec::new();
    encode_frame(&mut plain, true, Opcode::Text, b"plain broadcast", None);
    let mut sent = Vec::new();
    server
        .send(Outgoing::Shared(Arc::from(plain.as_slice())), &mut sent)
        .unwrap();
    assert_eq!(sent, plain, "queued as it is");
    server.send_text(&a).unwrap();
    let again = output(&mut server);
    assert!(
        again.len() < first.len() / 2,
        "history kept: {} vs {}",
        again.len(),
        first.len()
    );
    util::receive(
        &mut client,
        Instant::now(),
        &[first, plain, again.clone()].concat(),
    );
    assert_eq!(events(&mut client).len(), 3);
    // A compressed one cuts it: the same message is long again.
    let mut shared = Vec::new();
    let mut scratch = wss_proto::Scratch::new();
    assert!(encode_message_deflated(
        &mut scratch,
        &mut shared,
        &params,
        Opcode::Text,
        a.as_bytes()
    ));
    let mut sent = Vec::new();
    server
        .send(Outgoing::Shared(Arc::from(shared.as_slice())), &mut sent)
        .unwrap();
    server.send_text(&a).unwrap();
    let after_reset = output(&mut server);
    assert!(after_reset.len() > again.len());
    util::receive(&mut client, Instant::now(), &[shared, after_reset].concat());
    assert_eq!(
        events(&mut client),
        [
            Event::Message(Message::Text(a.clone())),
            Event::Message(Message::Text(a))
        ]
    );
}

/// The first byte of what `send` queues for a binary message of `len` bytes: 0xc2 when
/// compressed (RSV1), 0x82 when plain.
fn sent_first_byte(conn: &mut Connection, len: usize) -> u8 {
    let mut wire = Vec::new();
    conn.send(Outgoing::Binary(vec![b'a'; len]), &mut wire)
        .unwrap();
    wire[0]
}

#[test]
fn send_compresses_per_the_threshold_and_window() {
    let now = Instant::now();
    let mut on = Connection::new(Role::Server, config(&DeflateParams::default()), now);
    assert_eq!(sent_first_byte(&mut on, 63), 0x82);
    assert_eq!(sent_first_byte(&mut on, 64), 0xc2);
    let narrow = DeflateParams {
        server_max_window_bits: 8,
        ..DeflateParams::default()
    };
    let mut server = Connection::new(Role::Server, config(&narrow), now);
    assert_eq!(
        sent_first_byte(&mut server, 1 << 20),
        0x82,
        "2^8 window: never"
    );
    let mut client = Connection::new(Role::Client, config(&narrow), now);
    assert_eq!(
        sent_first_byte(&mut client, 1 << 20),
        0xc2,
        "the client's window is 2^15"
    );
    let mut off = Connection::new(Role::Server, Config::default(), now);
    assert_eq!(sent_first_byte(&mut off, 1 << 20), 0x82);
}

#[test]
fn shared_frames_are_refused_on_a_client() {
    let now = Instant::now();
    let mut client = Connection::new(Role::Client, Config::default(), now);
    let mut wire = Vec::new();
    assert_eq!(
        client.send(Outgoing::Shared(Arc::from(&[0x81, 0x00][..])), &mut wire),
        Err(SendError::SharedOnClient)
    );
    assert!(wire.is_empty());
}
