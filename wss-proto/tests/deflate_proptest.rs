//! Property tests with permessage-deflate on: any messages, compressed or not, cut into any
//! fragments with pings between them, fed in any split, decode to the same messages; and
//! corrupted compressed streams never panic and fail at most once; and either end may
//! hibernate its deflate state at any point without changing a message.
#![cfg(feature = "deflate")]

mod util;

use std::time::Instant;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use wss_proto::FrameHeader;
use wss_proto::{Config, Connection, DeflateParams, Event, Message, Opcode, Role, State};

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        ".{0,80}".prop_map(Message::Text),
        "(abc|xyz|\\{\"k\":1\\}|é){0,60}".prop_map(Message::Text),
        vec(any::<u8>(), 0..300).prop_map(Message::Binary),
        (any::<u8>(), 0usize..3000).prop_map(|(b, n)| Message::Binary(vec![b; n])),
    ]
}

fn params() -> impl Strategy<Value = DeflateParams> {
    (any::<bool>(), 9u8..=15, 0u32..=9, 0usize..100).prop_map(|(nct, bits, level, threshold)| {
        DeflateParams {
            server_no_context_takeover: nct,
            client_no_context_takeover: nct,
            server_max_window_bits: bits,
            client_max_window_bits: bits,
            level,
            threshold,
        }
    })
}

fn config(params: &DeflateParams) -> Config {
    Config {
        deflate: Some(params.clone()),
        ..Config::default()
    }
}

/// Each message as a sender `Connection` with `params` writes it: (RSV bits, opcode, payload).
fn sent(params: &DeflateParams, msgs: &[Message]) -> Vec<(u8, Opcode, Vec<u8>)> {
    sent_sleeping(params, msgs, &[false])
}

/// As [`sent`], the sender hibernating after message `i` when `sleeps[i % len]`.
fn sent_sleeping(
    params: &DeflateParams,
    msgs: &[Message],
    sleeps: &[bool],
) -> Vec<(u8, Opcode, Vec<u8>)> {
    let mut sender = Connection::new(Role::Server, config(params), Instant::now());
    let mut out = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        if sleeps[i % sleeps.len()] {
            sender.hibernate();
        }
        match m {
            Message::Text(t) => sender.send_text(t).unwrap(),
            Message::Binary(b) => sender.send_binary(b).unwrap(),
        }
        let mut wire = Vec::new();
        sender.poll_transmit(&mut wire);
        let (h, n) = FrameHeader::parse(&wire).unwrap().unwrap();
        out.push((h.rsv, h.opcode, wire[n..].to_vec()));
    }
    out
}

/// Re-frames each payload into fragments (RSV bits on the first only), masked, with pings.
fn reframe(
    payloads: &[(u8, Opcode, Vec<u8>)],
    cuts: &[Vec<Index>],
    pings: &[bool],
    keys: &[[u8; 4]],
) -> (Vec<u8>, Vec<Event>) {
    let mut wire = Vec::new();
    let mut pinged = Vec::new();
    let mut n = 0usize;
    for (i, (rsv, opcode, payload)) in payloads.iter().enumerate() {
        let mut points: Vec<usize> = cuts[i % cuts.len()]
            .iter()
            .map(|ix| ix.index(payload.len() + 1))
            .collect();
        points.push(payload.len());
        points.sort_unstable();
        let mut start = 0;
        let last = points.len() - 1;
        for (j, &end) in points.iter().enumerate() {
            let (op, bits) = if j == 0 {
                (*opcode, *rsv)
            } else {
                (Opcode::Continuation, 0)
            };
            let key = keys[n % keys.len()];
            n += 1;
            let mut body = payload[start..end].to_vec();
            wss_proto::internal::apply_mask(&mut body, key);
            FrameHeader {
                fin: j == last,
                rsv: bits,
                opcode: op,
                mask: Some(key),
                payload_len: body.len() as u64,
            }
            .encode(&mut wire);
            wire.extend_from_slice(&body);
            start = end;
            if j != last && pings[(i + j) % pings.len()] {
                let p = format!("p{i}.{j}").into_bytes();
                let mut body = p.clone();
                wss_proto::internal::apply_mask(&mut body, key);
                FrameHeader {
                    fin: true,
                    rsv: 0,
                    opcode: Opcode::Ping,
                    mask: Some(key),
                    payload_len: body.len() as u64,
                }
                .encode(&mut wire);
                wire.extend_from_slice(&body);
                pinged.push((i, Event::Ping(p)));
            }
        }
    }
    let events = pinged.into_iter().map(|(_, e)| e).collect();
    (wire, events)
}

fn feed(conn: &mut Connection, wire: &[u8], sizes: &[usize]) -> Vec<Event> {
    feed_sleeping(conn, wire, sizes, &[false])
}

/// As [`feed`], the receiver hibernating after read `k` when `sleeps[k % len]` (also in the
/// middle of a message, where it must keep its inflater).
fn feed_sleeping(
    conn: &mut Connection,
    wire: &[u8],
    sizes: &[usize],
    sleeps: &[bool],
) -> Vec<Event> {
    let now = Instant::now();
    let mut events = Vec::new();
    let mut rest = wire;
    let mut k = 0;
    while !rest.is_empty() {
        let take = sizes[k % sizes.len()].min(rest.len());
        if sleeps[k % sleeps.len()] {
            conn.hibernate();
        }
        k += 1;
        util::receive(&mut *conn, now, &rest[..take]);
        rest = &rest[take..];
        events.extend(util::events(conn));
    }
    events
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn compressed_messages_survive_any_fragmentation_and_split(
        params in params(),
        msgs in vec(message(), 0..6),
        cuts in vec(vec(any::<Index>(), 0..4), 1..6),
        pings in vec(any::<bool>(), 1..8),
        keys in vec(any::<[u8; 4]>(), 1..8),
        sizes in vec(1usize..64, 1..8),
    ) {
        let payloads = sent(&params, &msgs);
        let (wire, pinged) = reframe(&payloads, &cuts, &pings, &keys);
        let mut receiver = Connection::new(Role::Server, config(&params), Instant::now());
        let events = feed(&mut receiver, &wire, &sizes);
        let messages: Vec<Event> = events.iter().filter(|e| matches!(e, Event::Message(_))).cloned().collect();
        let got_pings: Vec<Event> = events.iter().filter(|e| matches!(e, Event::Ping(_))).cloned().collect();
        let expected: Vec<Event> = msgs.iter().cloned().map(Event::Message).collect();
        prop_assert_eq!(messages, expected);
        prop_assert_eq!(got_pings, pinged);
        prop_assert_eq!(receiver.state(), State::Open);
    }

    #[test]
    fn hibernating_at_any_point_changes_no_message(
        params in params(),
        msgs in vec(message(), 0..10),
        cuts in vec(vec(any::<Index>(), 0..4), 1..6),
        keys in vec(any::<[u8; 4]>(), 1..8),
        sizes in vec(1usize..400, 1..8),
        send_sleeps in vec(any::<bool>(), 1..8),
        read_sleeps in vec(any::<bool>(), 1..8),
    ) {
        let payloads = sent_sleeping(&params, &msgs, &send_sleeps);
        let (wire, _) = reframe(&payloads, &cuts, &[false], &keys);
        let mut receiver = Connection::new(Role::Server, config(&params), Instant::now());
        let events = feed_sleeping(&mut receiver, &wire, &sizes, &read_sleeps);
        let expected: Vec<Event> = msgs.iter().cloned().map(Event::Message).collect();
        prop_assert_eq!(events, expected);
        prop_assert_eq!(receiver.state(), State::Open);
    }

    #[test]
    fn corrupted_compressed_streams_never_panic_and_fail_at_most_once(
        params in params(),
        msgs in vec(message(), 1..5),
        cuts in vec(vec(any::<Index>(), 0..3), 1..4),
        flips in vec((any::<Index>(), any::<u8>()), 1..6),
        sizes in vec(1usize..32, 1..6),
    ) {
        let payloads = sent(&params, &msgs);
        let (mut wire, _) = reframe(&payloads, &cuts, &[true, false], &[[1, 2, 3, 4]]);
        for (at, byte) in flips {
            let i = at.index(wire.len());
            wire[i] ^= byte;
        }
        let small = Config { max_message_size: 2000, ..config(&params) };
        let mut conn = Connection::new(Role::Server, small, Instant::now());
        let events = feed(&mut conn, &wire, &sizes);
        let failures = events.iter().filter(|e| matches!(e, Event::Failed(_))).count();
        prop_assert!(failures <= 1);
        if failures == 1 {
            prop_assert!(matches!(events.last(), Some(Event::Failed(_))));
            prop_assert_eq!(conn.state(), State::Closed);
        }
    }
}
