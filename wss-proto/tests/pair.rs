//! A client and a server `Connection` driven against each other in memory with a fake
//! clock: the closing handshake, the close timeout, idle pings and the idle timeout.

mod util;

use std::time::Duration;

use util::{parse_frames, Pair};
use wss_proto::Timeout;
use wss_proto::{CloseCode, Config, Event, Message, Opcode, State};

fn idle_config(secs: u64) -> Config {
    Config {
        idle_timeout: Some(Duration::from_secs(secs)),
        ..Config::default()
    }
}

#[test]
fn messages_flow_both_ways() {
    let mut p = Pair::new(Config::default());
    p.client.send_text("hello").unwrap();
    p.client.send_binary(&[0; 70_000]).unwrap();
    p.server.send_text("world").unwrap();
    p.drive();
    assert_eq!(
        p.server_events,
        [
            Event::Message(Message::Text("hello".into())),
            Event::Message(Message::Binary(vec![0; 70_000]))
        ]
    );
    assert_eq!(
        p.client_events,
        [Event::Message(Message::Text("world".into()))]
    );
}

#[test]
fn close_handshake_started_by_the_client() {
    let mut p = Pair::new(Config::default());
    p.client.close(p.now, CloseCode(4000), "done").unwrap();
    assert_eq!(p.client.state(), State::Closing);
    p.drive();
    assert_eq!(
        p.server_events,
        [Event::CloseReceived {
            code: Some(CloseCode(4000)),
            reason: "done".into()
        }]
    );
    // The server echoes the code with an empty reason.
    assert_eq!(
        p.client_events,
        [Event::CloseReceived {
            code: Some(CloseCode(4000)),
            reason: String::new()
        }]
    );
    assert_eq!(p.client.state(), State::Closed);
    assert_eq!(p.server.state(), State::Closed);
    assert_eq!(p.client.poll_timeout(), None);
}

#[test]
fn close_handshake_started_by_the_server() {
    let mut p = Pair::new(Config::default());
    p.server.close(p.now, CloseCode::GOING_AWAY, "").unwrap();
    p.drive();
    assert_eq!(p.server.state(), State::Closed);
    assert_eq!(p.client.state(), State::Closed);
    assert_eq!(
        parse_frames(&p.client_wire),
        [(true, Opcode::Close, 1001u16.to_be_bytes().to_vec())]
    );
}

#[test]
fn close_timeout_fires_when_the_peer_never_answers() {
    let mut p = Pair::new(Config::default());
    p.server.close(p.now, CloseCode::NORMAL, "").unwrap();
    assert_eq!(
        p.server.poll_timeout(),
        Some(p.now + Duration::from_secs(5))
    );
    p.advance_silent(Duration::from_millis(4999));
    assert_eq!(p.server.state(), State::Closing);
    assert!(p.server_events.is_empty());
    p.advance_silent(Duration::from_millis(1));
    assert_eq!(p.server_events, [Event::TimedOut(Timeout::Close)]);
    assert_eq!(p.server.state(), State::Closed);
    assert_eq!(p.server.poll_timeout(), None);
}

#[test]
fn idle_connection_is_pinged_at_half_the_timeout() {
    let mut p = Pair::new(idle_config(10));
    p.advance_silent(Duration::from_secs(5));
    assert!(p.server.wants_write() && p.client.wants_write());
    p.drive();
    // Each side's ping was answered by the other's automatic pong.
    assert_eq!(p.server_events, [Event::Ping(vec![]), Event::Pong(vec![])]);
    assert_eq!(p.client_events, [Event::Ping(vec![]), Event::Pong(vec![])]);
    assert_eq!(p.server.state(), State::Open);
}

#[test]
fn idle_timeout_fires_when_nothing_arrives() {
    let mut p = Pair::new(idle_config(10));
    p.advance_silent(Duration::from_secs(5));
    assert!(p.server_events.is_empty());
    p.advance_silent(Duration::from_secs(5));
    assert_eq!(p.server_events, [Event::TimedOut(Timeout::Idle)]);
    assert_eq!(p.server.state(), State::Closed);
}

#[test]
fn any_received_byte_resets_the_idle_timer() {
    let mut p = Pair::new(idle_config(10));
    p.now += Duration::from_secs(4);
    // One byte of a frame header: not an event, but traffic.
    util::receive(&mut p.server, p.now, &[0x82]);
    p.advance_silent(Duration::from_secs(5)); // t = 9: under 4 + 5 is the new ping time
    assert_eq!(p.server.state(), State::Open);
    let mut out = Vec::new();
    p.server.poll_transmit(&mut out);
    assert_eq!(out, [0x89, 0x00], "the ping is due at 4 + 5 s");
    p.advance_silent(Duration::from_secs(4)); // t = 13: under 4 + 10
    assert!(p.server_events.is_empty());
    p.advance_silent(Duration::from_secs(1)); // t = 14
    assert_eq!(p.server_events, [Event::TimedOut(Timeout::Idle)]);
}

#[test]
fn no_timer_without_idle_timeout_or_close() {
    let p = Pair::new(Config::default());
    assert_eq!(p.server.poll_timeout(), None);
    assert_eq!(p.client.poll_timeout(), None);
}

#[test]
fn huge_timeouts_mean_never_instead_of_panicking() {
    let config = Config {
        idle_timeout: Some(Duration::MAX),
        close_timeout: Duration::MAX,
        ..Config::default()
    };
    let mut p = Pair::new(config);
    p.server.close(p.now, CloseCode::NORMAL, "").unwrap();
    assert_eq!(p.server.poll_timeout(), None);
}
