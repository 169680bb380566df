//! Property tests: any messages, any fragmentation, any split of the byte stream decode
//! to the same messages; arbitrary or corrupted bytes never panic.

mod util;

use std::time::Instant;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use wss_proto::encode_frame;
use wss_proto::{Config, Connection, Event, Message, Opcode, Role, State};

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        ".{0,80}".prop_map(Message::Text),
        vec(any::<u8>(), 0..300).prop_map(Message::Binary),
    ]
}

/// Frames `msgs` (fragmented at `cuts`, with a ping between fragments where `pings` says),
/// and returns the bytes with the events a receiver must report.
fn encode(
    msgs: &[Message],
    cuts: &[Vec<Index>],
    pings: &[bool],
    keys: &[[u8; 4]],
    masked: bool,
) -> (Vec<u8>, Vec<Event>) {
    let mut wire = Vec::new();
    let mut expected = Vec::new();
    let mut n = 0usize;
    let mut next = |wire: &mut Vec<u8>, fin: bool, op: Opcode, payload: &[u8]| {
        let key = masked.then(|| keys[n % keys.len()]);
        n += 1;
        encode_frame(wire, fin, op, payload, key);
    };
    for (i, msg) in msgs.iter().enumerate() {
        let bytes = msg.as_bytes();
        let mut points: Vec<usize> = cuts[i % cuts.len()]
            .iter()
            .map(|ix| ix.index(bytes.len() + 1))
            .collect();
        points.push(bytes.len());
        points.sort_unstable();
        let mut start = 0;
        let last = points.len() - 1;
        for (j, &end) in points.iter().enumerate() {
            let op = match (j, msg) {
                (0, Message::Text(_)) => Opcode::Text,
                (0, Message::Binary(_)) => Opcode::Binary,
                _ => Opcode::Continuation,
            };
            next(&mut wire, j == last, op, &bytes[start..end]);
            start = end;
            if j != last && pings[(i + j) % pings.len()] {
                let payload = format!("p{i}.{j}").into_bytes();
                next(&mut wire, true, Opcode::Ping, &payload);
                expected.push(Event::Ping(payload));
            }
        }
        expected.push(Event::Message(msg.clone()));
    }
    (wire, expected)
}

fn feed(conn: &mut Connection, wire: &[u8], sizes: &[usize]) -> Vec<Event> {
    let now = Instant::now();
    let mut events = Vec::new();
    let mut rest = wire;
    let mut k = 0;
    while !rest.is_empty() {
        let take = sizes[k % sizes.len()].min(rest.len());
        k += 1;
        util::receive(&mut *conn, now, &rest[..take]);
        rest = &rest[take..];
        events.extend(util::events(conn));
    }
    events
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn any_fragmentation_and_split_decodes_to_the_same_messages(
        msgs in vec(message(), 0..6),
        cuts in vec(vec(any::<Index>(), 0..4), 1..6),
        pings in vec(any::<bool>(), 1..8),
        keys in vec(any::<[u8; 4]>(), 1..8),
        sizes in vec(1usize..64, 1..8),
        one_byte_at_a_time in any::<bool>(),
        to_server in any::<bool>(),
    ) {
        let (wire, expected) = encode(&msgs, &cuts, &pings, &keys, to_server);
        let role = if to_server { Role::Server } else { Role::Client };
        let mut conn = Connection::new(role, Config::default(), Instant::now());
        let sizes = if one_byte_at_a_time { vec![1] } else { sizes };
        let events = feed(&mut conn, &wire, &sizes);
        prop_assert_eq!(events, expected);
        prop_assert_eq!(conn.state(), State::Open);
    }

    #[test]
    fn random_bytes_never_panic(
        bytes in vec(any::<u8>(), 0..600),
        sizes in vec(1usize..50, 1..6),
        to_server in any::<bool>(),
    ) {
        let role = if to_server { Role::Server } else { Role::Client };
        let config = Config { max_message_size: 256, max_frame_size: 128, ..Config::default() };
        let mut conn = Connection::new(role, config, Instant::now());
        let events = feed(&mut conn, &bytes, &sizes);
        let failures = events.iter().filter(|e| matches!(e, Event::Failed(_))).count();
        prop_assert!(failures <= 1);
        let mut out = Vec::new();
        conn.poll_transmit(&mut out);
    }

    #[test]
    fn corrupted_streams_never_panic_and_fail_at_most_once(
        msgs in vec(message(), 1..5),
        cuts in vec(vec(any::<Index>(), 0..3), 1..4),
        flips in vec((any::<Index>(), any::<u8>()), 1..6),
        sizes in vec(1usize..32, 1..6),
    ) {
        let (mut wire, _) = encode(&msgs, &cuts, &[true, false], &[[1, 2, 3, 4]], true);
        for (at, byte) in flips {
            let i = at.index(wire.len());
            wire[i] ^= byte;
        }
        let mut conn = Connection::new(Role::Server, Config::default(), Instant::now());
        let events = feed(&mut conn, &wire, &sizes);
        let failures = events.iter().filter(|e| matches!(e, Event::Failed(_))).count();
        prop_assert!(failures <= 1);
        if failures == 1 {
            prop_assert!(matches!(events.last(), Some(Event::Failed(_))));
            prop_assert_eq!(conn.state(), State::Closed);
        }
    }
}
