//! What each permessage-deflate setting gives on the chat-JSON traffic of `benches/deflate.sh`
//! (the same seeded generator): the compression ratio of what the server sends, awake and
//! when its compressor hibernates between messages, and what one wake costs (rebuilding the
//! compressor or the inflater from its window: `Connection::hibernate`, then one message).
//!
//! `cargo run --release -p wss-benches --example deflate_settings` (single-threaded, a few
//! seconds; timings are medians of rounds, on whatever else the machine is doing).

use std::time::{Duration, Instant};

use wss_benches::pattern::ChatJson;
use wss_proto::{Config, Connection, DeflateParams, Event, Role, Scratch};

const CONNS: u64 = 20;
const PER_CONN: u64 = 500;
const ROUNDS: usize = 7;
const WAKES: usize = 400;

fn server(params: &DeflateParams) -> Connection {
    let config = Config {
        deflate: Some(params.clone()),
        ..Config::default()
    };
    Connection::new(Role::Server, config, Instant::now())
}

/// App bytes / wire bytes of what the server sends, the chat messages of `CONNS`
/// connections, hibernating after every `every`-th message (0: never).
fn ratio(params: &DeflateParams, every: u64) -> f64 {
    let chat = ChatJson::new(1);
    let (mut app, mut wire) = (0usize, 0usize);
    let mut msg = Vec::new();
    let mut out = Vec::new();
    for conn in 0..CONNS {
        let mut s = server(params);
        for seq in 0..PER_CONN {
            msg.clear();
            chat.write(conn, seq, &mut msg);
            let text = std::str::from_utf8(&msg).expect("chat is text");
            s.send_text(text).expect("open");
            out.clear();
            s.poll_transmit(&mut out);
            app += msg.len();
            wire += out.len();
            if every != 0 && seq % every == every - 1 {
                s.hibernate();
            }
        }
    }
    app as f64 / wire as f64
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

/// Median time per message of sending `WAKES` chat messages on one connection, hibernating
/// before each or not; the difference is the compressor's wake.
fn send_cost(params: &DeflateParams, hibernate: bool) -> Duration {
    let chat = ChatJson::new(2);
    let mut msgs = Vec::new();
    for seq in 0..(WAKES as u64 + 300) {
        let mut m = Vec::new();
        chat.write(0, seq, &mut m);
        msgs.push(String::from_utf8(m).expect("chat is text"));
    }
    let mut rounds = Vec::new();
    let mut out = Vec::new();
    for _ in 0..ROUNDS {
        let mut s = server(params);
        // Fill the window first (about 45 KB), so that a wake reloads a full 2^w dictionary.
        for m in &msgs[WAKES..] {
            s.send_text(m).expect("open");
            out.clear();
            s.poll_transmit(&mut out);
        }
        let t0 = Instant::now();
        for m in &msgs[..WAKES] {
            if hibernate {
                s.hibernate();
            }
            s.send_text(m).expect("open");
            out.clear();
            s.poll_transmit(&mut out);
        }
        rounds.push(t0.elapsed() / WAKES as u32);
    }
    median(rounds)
}

/// As [`send_cost`] for receiving: the client compresses, the server inflates, hibernating
/// before each message or not.
fn receive_cost(params: &DeflateParams, hibernate: bool) -> Duration {
    let chat = ChatJson::new(3);
    let config = Config {
        deflate: Some(params.clone()),
        ..Config::default()
    };
    let mut client = Connection::new(Role::Client, config, Instant::now());
    let mut frames = Vec::new();
    for seq in 0..(WAKES as u64 + 300) {
        let mut m = Vec::new();
        chat.write(0, seq, &mut m);
        client
            .send_text(std::str::from_utf8(&m).expect("chat is text"))
            .expect("open");
        let mut f = Vec::new();
        client.poll_transmit(&mut f);
        frames.push(f);
    }
    let mut rounds = Vec::new();
    for _ in 0..ROUNDS {
        let mut s = server(params);
        let mut scratch = Scratch::default();
        let now = Instant::now();
        // The stream is one: the server reads it from the start each round.
        for f in &frames[..300] {
            s.receive(&mut scratch, now, f);
            while s.poll_event(&mut scratch).is_some() {}
        }
        let t0 = Instant::now();
        for f in &frames[300..] {
            if hibernate {
                s.hibernate();
            }
            s.receive(&mut scratch, now, f);
            while let Some(e) = s.poll_event(&mut scratch) {
                assert!(matches!(e, Event::Message(_)), "{e:?}");
            }
        }
        rounds.push(t0.elapsed() / WAKES as u32);
    }
    median(rounds)
}

fn main() {
    let settings: Vec<(&str, DeflateParams)> = vec![
        ("context takeover, 2^15 (default)", DeflateParams::default()),
        (
            "server window 2^12",
            DeflateParams {
                server_max_window_bits: 12,
                ..DeflateParams::default()
            },
        ),
        (
            "server window 2^10",
            DeflateParams {
                server_max_window_bits: 10,
                ..DeflateParams::default()
            },
        ),
        (
            "server window 2^9",
            DeflateParams {
                server_max_window_bits: 9,
                ..DeflateParams::default()
            },
        ),
        (
            "server_no_context_takeover",
            DeflateParams {
                server_no_context_takeover: true,
                ..DeflateParams::default()
            },
        ),
    ];
    println!(
        "chat-json, {CONNS} connections x {PER_CONN} messages, server -> client, level {}",
        DeflateParams::default().level
    );
    println!(
        "{:<34} {:>7} {:>11} {:>11} {:>9} {:>9} {:>9} {:>9}",
        "setting", "ratio", "hib. /50", "hib. each", "send µs", "+wake µs", "recv µs", "+wake µs"
    );
    for (name, params) in &settings {
        let awake = ratio(params, 0);
        let some = ratio(params, 50);
        let each = ratio(params, 1);
        let send = send_cost(params, false);
        let send_woken = send_cost(params, true);
        let recv = receive_cost(params, false);
        let recv_woken = receive_cost(params, true);
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        println!(
            "{name:<34} {awake:>7.3} {some:>11.3} {each:>11.3} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
            us(send),
            us(send_woken) - us(send),
            us(recv),
            us(recv_woken) - us(recv),
        );
    }
}
