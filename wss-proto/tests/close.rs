//! Close rules (RFC 6455 §5.5.1, §7), the close state machine, sticky failures and
//! the caller-side `SendError`s.

mod util;

use std::time::Duration;
use util::{client_frame, close_payload, events, output, parse_frames, server, with_scratch};

use wss_proto::{
    CloseCode, CloseReply, Config, Event, Message, Opcode, ProtocolError, SendError, State,
};

#[test]
fn peer_close_while_open_is_echoed_with_its_code() {
    let (mut s, now) = server(Config::default());
    util::receive(
        &mut s,
        now,
        &client_frame(true, Opcode::Close, &close_payload(4001, b"bye")),
    );
    assert_eq!(
        events(&mut s),
        [Event::CloseReceived {
            code: Some(CloseCode(4001)),
            reason: "bye".into()
        }]
    );
    assert_eq!(
        parse_frames(&output(&mut s)),
        [(true, Opcode::Close, 4001u16.to_be_bytes().to_vec())]
    );
    assert_eq!(s.state(), State::Closed);
    assert!(!s.can_send());
}

#[test]
fn empty_peer_close_is_echoed_empty_and_reported_without_code() {
    let (mut s, now) = server(Config::default());
    util::receive(&mut s, now, &client_frame(true, Opcode::Close, b""));
    assert_eq!(
        events(&mut s),
        [Event::CloseReceived {
            code: None,
            reason: String::new()
        }]
    );
    assert_eq!(output(&mut s), [0x88, 0x00]);
}

#[test]
fn one_byte_close_payload_fails_with_1002() {
    let (mut s, now) = server(Config::default());
    util::receive(&mut s, now, &client_frame(true, Opcode::Close, &[0x03]));
    assert_eq!(
        events(&mut s),
        [Event::Failed(ProtocolError::InvalidClosePayload)]
    );
    assert_eq!(output(&mut s), [0x88, 0x02, 0x03, 0xea]);
}

#[test]
fn invalid_close_codes_fail_with_1002() {
    for code in [
        0u16, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535,
    ] {
        let (mut s, now) = server(Config::default());
        util::receive(
            &mut s,
            now,
            &client_frame(true, Opcode::Close, &close_payload(code, b"")),
        );
        assert_eq!(
            events(&mut s),
            [Event::Failed(ProtocolError::InvalidCloseCode(code))],
            "{code}"
        );
        assert_eq!(output(&mut s), [0x88, 0x02, 0x03, 0xea], "{code}");
    }
}

#[test]
fn valid_close_codes_are_accepted_and_echoed() {
    for code in [1000u16, 1001, 1002, 1003, 1007, 1011, 1014, 3000, 4999] {
        let (mut s, now) = server(Config::default());
        util::receive(
            &mut s,
            now,
            &client_frame(true, Opcode::Close, &close_payload(code, b"")),
        );
        assert!(matches!(
            events(&mut s)[..],
            [Event::CloseReceived { code: Some(c), .. }] if c.0 == code
        ));
        let [hi, lo] = code.to_be_bytes();
        assert_eq!(output(&mut s), [0x88, 0x02, hi, lo]);
    }
}

#[test]
fn close_reason_not_utf8_fails_with_1007() {
    let (mut s, now) = server(Config::default());
    util::receive(
        &mut s,
        now,
        &client_frame(
            true,
            Opcode::Close,
            &close_payload(1000, &[0xce, 0xba, 0xe1]),
        ),
    );
    assert_eq!(
        events(&mut s),
        [Event::Failed(ProtocolError::InvalidCloseReason)]
    );
    assert_eq!(output(&mut s), [0x88, 0x02, 0x03, 0xef]);
}

#[test]
fn local_close_sends_code_and_reason_and_goes_closing() {
    let (mut s, now) = server(Config::default());
    s.close(now, CloseCode::GOING_AWAY, "restart").unwrap();
    assert_eq!(s.state(), State::Closing);
    assert!(!s.can_send());
    assert_eq!(
        parse_frames(&output(&mut s)),
        [(true, Opcode::Close, close_payload(1001, b"restart"))]
    );
}

#[test]
fn local_close_reason_is_cut_to_123_bytes() {
    let (mut s, now) = server(Config::default());
    s.close(now, CloseCode::NORMAL, &"€".repeat(60)).unwrap();
    let frames = parse_frames(&output(&mut s));
    // 41 euros are 123 bytes: all fit.
    assert_eq!(frames[0].2.len(), 2 + 123);
    assert!(frames[0].2.len() <= 125);
}

#[test]
fn local_close_refuses_codes_invalid_on_the_wire() {
    let (mut s, now) = server(Config::default());
    for code in [CloseCode::NO_STATUS, CloseCode::ABNORMAL, CloseCode(2000)] {
        assert_eq!(
            s.close(now, code, ""),
            Err(SendError::InvalidCloseCode(code.0))
        );
    }
    assert_eq!(s.state(), State::Open);
    assert!(output(&mut s).is_empty());
}

#[test]
fn second_local_close_is_refused() {
    let (mut s, now) = server(Config::default());
    s.close(now, CloseCode::NORMAL, "").unwrap();
    assert_eq!(s.close(now, CloseCode::NORMAL, ""), Err(SendError::Closed));
}

#[test]
fn nothing_is_sent_after_our_close() {
    let (mut s, now) = server(Config::default());
    s.close(now, CloseCode::NORMAL, "").unwrap();
    let _ = output(&mut s);
    assert_eq!(s.send_text("x"), Err(SendError::Closed));
    assert_eq!(s.send_binary(b"x"), Err(SendError::Closed));
    assert_eq!(s.ping(b"x"), Err(SendError::Closed));
    // A ping from the peer is still reported, but not answered.
    util::receive(&mut s, now, &client_frame(true, Opcode::Ping, b"p"));
    assert_eq!(events(&mut s), [Event::Ping(b"p".to_vec())]);
    assert!(output(&mut s).is_empty());
}

#[test]
fn messages_are_still_delivered_while_closing() {
    let (mut s, now) = server(Config::default());
    s.close(now, CloseCode::NORMAL, "").unwrap();
    util::receive(&mut s, now, &client_frame(true, Opcode::Text, b"late"));
    assert_eq!(
        events(&mut s),
        [Event::Message(Message::Text("late".into()))]
    );
}

#[test]
fn peer_close_while_closing_completes_without_a_second_close() {
    let (mut s, now) = server(Config::default());
    s.close(now, CloseCode::NORMAL, "").unwrap();
    let _ = output(&mut s);
    util::receive(
        &mut s,
        now,
        &client_frame(true, Opcode::Close, &close_payload(1000, b"")),
    );
    assert_eq!(s.state(), State::Closed);
    assert!(output(&mut s).is_empty());
    assert_eq!(s.poll_timeout(), None, "close timer stopped");
}

#[test]
fn failure_is_reported_once_and_later_input_is_ignored() {
    let (mut s, now) = server(Config::default());
    let mut bytes = vec![0x83]; // reserved opcode 3
    bytes.extend(client_frame(true, Opcode::Text, b"ignored"));
    util::receive(&mut s, now, &bytes);
    util::receive(
        &mut s,
        now,
        &client_frame(true, Opcode::Ping, b"ignored too"),
    );
    assert_eq!(
        events(&mut s),
        [Event::Failed(ProtocolError::ReservedOpcode(3))]
    );
    assert_eq!(output(&mut s), [0x88, 0x02, 0x03, 0xea]);
    assert_eq!(s.error(), Some(&ProtocolError::ReservedOpcode(3)));
    assert_eq!(s.state(), State::Closed);
    assert_eq!(s.send_text("x"), Err(SendError::Closed));
}

#[test]
fn failure_while_closing_sends_no_second_close() {
    let (mut s, now) = server(Config::default());
    s.close(now, CloseCode::NORMAL, "").unwrap();
    let _ = output(&mut s);
    util::receive(&mut s, now, &[0x83]);
    assert_eq!(
        events(&mut s),
        [Event::Failed(ProtocolError::ReservedOpcode(3))]
    );
    assert!(output(&mut s).is_empty());
    assert_eq!(s.state(), State::Closed);
}

#[test]
fn input_after_close_handshake_is_ignored() {
    let (mut s, now) = server(Config::default());
    util::receive(&mut s, now, &client_frame(true, Opcode::Close, b""));
    let _ = events(&mut s);
    util::receive(&mut s, now, &client_frame(true, Opcode::Text, b"after"));
    assert_eq!(events(&mut s), []);
}

/// What lets a server close TCP at once after the closing handshake: whether the peer's close
/// frame was the last byte it sent, in the read that brought it or any read after.
#[test]
fn input_after_close_tells_whether_the_close_frame_was_the_last_byte() {
    let close = client_frame(true, Opcode::Close, &close_payload(1000, b""));
    let text = client_frame(true, Opcode::Text, b"late");

    let (mut last, now) = server(Config::default());
    util::receive(&mut last, now, &text);
    util::receive(&mut last, now, &close);
    assert_eq!(last.state(), State::Closed);
    assert!(!last.input_after_close(), "the close frame ended the input");

    let (mut trailed, now) = server(Config::default());
    let mut both = close.clone();
    both.extend_from_slice(&text);
    util::receive(&mut trailed, now, &both);
    assert!(
        trailed.input_after_close(),
        "bytes followed it in the same read"
    );

    let (mut later, now) = server(Config::default());
    util::receive(&mut later, now, &close);
    util::receive(&mut later, now, &text[..1]);
    assert!(later.input_after_close(), "a byte came in a later read");

    let (mut open, now) = server(Config::default());
    util::receive(&mut open, now, &text);
    assert!(!open.input_after_close(), "never set while open");
}

#[test]
fn eof_closes_without_reporting() {
    let (mut s, _) = server(Config {
        idle_timeout: Some(std::time::Duration::from_secs(10)),
        ..Config::default()
    });
    s.handle_eof();
    assert_eq!(s.state(), State::Closed);
    assert_eq!(s.poll_timeout(), None);
    assert_eq!(events(&mut s), []);
}

#[test]
fn send_frame_refuses_misuse() {
    let (mut s, _) = server(Config::default());
    assert_eq!(
        s.send_frame(Opcode::Close, true, b""),
        Err(SendError::UseCloseMethod)
    );
    assert_eq!(s.ping(&[0; 126]), Err(SendError::ControlPayloadTooBig));
    assert_eq!(
        s.send_frame(Opcode::Pong, false, b""),
        Err(SendError::FragmentedControlFrame)
    );
    assert_eq!(
        s.send_frame(Opcode::Continuation, true, b""),
        Err(SendError::NoMessageInProgress)
    );
    s.send_frame(Opcode::Binary, false, b"a").unwrap();
    assert_eq!(s.send_text("b"), Err(SendError::MessageInProgress));
    // Control frames may interleave with our own fragments.
    s.ping(b"").unwrap();
    s.send_frame(Opcode::Continuation, true, b"c").unwrap();
    assert_eq!(
        parse_frames(&output(&mut s)),
        [
            (false, Opcode::Binary, b"a".to_vec()),
            (true, Opcode::Ping, vec![]),
            (true, Opcode::Continuation, b"c".to_vec()),
        ]
    );
}

#[test]
fn poll_transmit_appends_to_a_non_empty_buffer() {
    let (mut s, _) = server(Config::default());
    s.send_binary(&[1]).unwrap();
    let mut out = vec![0xee];
    s.poll_transmit(&mut out);
    assert_eq!(out, [0xee, 0x82, 0x01, 0x01]);
    assert!(!s.wants_write());
    s.send_binary(&[2]).unwrap();
    assert!(s.wants_write());
    let mut fresh = Vec::new();
    s.poll_transmit(&mut fresh);
    assert_eq!(fresh, [0x82, 0x01, 0x02]);
}

fn deferred() -> Config {
    Config {
        close_reply: CloseReply::Deferred,
        close_timeout: Duration::from_millis(500),
        ..Config::default()
    }
}

/// A ping, a bad frame: the pong goes out, the failure's close waits while answers are still
/// queued ahead of it, then follows them.
#[test]
fn deferred_failure_close_lets_answers_go_first_then_follows_them() {
    let (mut s, now) = server(deferred());
    let mut input = client_frame(true, Opcode::Ping, b"p");
    let mut bad = client_frame(true, Opcode::Text, b"x");
    bad[0] |= 0x20;
    input.extend_from_slice(&bad);
    util::receive(&mut s, now, &input);
    assert!(s.close_reply_pending());
    assert_eq!(
        parse_frames(&output(&mut s)),
        [(true, Opcode::Pong, b"p".to_vec())]
    );
    s.send_text("answer").unwrap();
    s.send_close_reply();
    assert!(!s.close_reply_pending());
    assert_eq!(
        parse_frames(&output(&mut s)),
        [
            (true, Opcode::Text, b"answer".to_vec()),
            (true, Opcode::Close, 1002u16.to_be_bytes().to_vec())
        ]
    );
    assert_eq!(s.send_text("late"), Err(SendError::Closed));
    s.send_close_reply();
    assert!(output(&mut s).is_empty(), "the reply goes once");
}

#[test]
fn deferred_failure_close_goes_out_when_the_close_timeout_runs_out() {
    let (mut s, now) = server(deferred());
    util::receive(&mut s, now, &client_frame(false, Opcode::Ping, b""));
    let until = now + Duration::from_millis(500);
    assert_eq!(s.poll_timeout(), Some(until));
    s.handle_timeout(now);
    assert!(s.close_reply_pending(), "not yet due");
    assert!(output(&mut s).is_empty());
    s.handle_timeout(until);
    assert_eq!(
        parse_frames(&output(&mut s)),
        [(true, Opcode::Close, 1002u16.to_be_bytes().to_vec())]
    );
    assert_eq!(s.poll_timeout(), None);
}

/// A message and the peer's close in one read: the close reply waits behind the answer the
/// caller computes for that message, then goes out after it.
#[test]
fn deferred_reply_to_a_close_behind_a_message_follows_the_answer() {
    let (mut s, now) = server(deferred());
    let mut input = client_frame(true, Opcode::Text, b"last");
    input.extend_from_slice(&client_frame(
        true,
        Opcode::Close,
        &close_payload(1000, b""),
    ));
    with_scratch(|sc| s.receive(sc, now, &input));
    assert_eq!(s.state(), State::Closed);
    assert!(s.close_reply_pending());
    assert!(output(&mut s).is_empty(), "the reply waits");
    assert_eq!(
        events(&mut s),
        [
            Event::Message(Message::Text("last".into())),
            Event::CloseReceived {
                code: Some(CloseCode(1000)),
                reason: String::new()
            }
        ]
    );
    s.send_text("last").unwrap();
    s.send_close_reply();
    assert_eq!(
        parse_frames(&output(&mut s)),
        [
            (true, Opcode::Text, b"last".to_vec()),
            (true, Opcode::Close, 1000u16.to_be_bytes().to_vec())
        ]
    );
    assert_eq!(s.send_text("late"), Err(SendError::Closed));
}

/// One rule: under `Deferred` every reply waits for the owner (a close alone too), bounded by
/// the close timeout; under `Auto` none does, even behind a message in the same read.
#[test]
fn the_close_reply_mode_alone_decides_whether_the_reply_waits() {
    let (mut s, now) = server(deferred());
    with_scratch(|sc| s.receive(sc, now, &client_frame(true, Opcode::Close, b"")));
    assert!(s.close_reply_pending());
    assert!(output(&mut s).is_empty());
    s.handle_timeout(now + Duration::from_millis(500));
    assert_eq!(
        parse_frames(&output(&mut s)),
        [(true, Opcode::Close, vec![])]
    );

    let (mut a, now) = server(Config::default());
    let mut input = client_frame(true, Opcode::Text, b"m");
    input.extend_from_slice(&client_frame(true, Opcode::Close, b""));
    with_scratch(|sc| a.receive(sc, now, &input));
    assert!(!a.close_reply_pending());
    assert_eq!(
        parse_frames(&output(&mut a)),
        [(true, Opcode::Close, vec![])]
    );
    a.send_close_reply();
    assert!(output(&mut a).is_empty(), "nothing deferred in Auto");
}

/// The borrowed API hands each message over before the close is parsed: an answer sent from
/// the callback is queued before the deferred reply.
#[test]
fn deferred_reply_after_messages_handed_over_in_place_follows_their_answers() {
    let (mut s, now) = server(deferred());
    let mut input = client_frame(true, Opcode::Text, b"m");
    input.extend_from_slice(&client_frame(true, Opcode::Close, b""));
    let mut seen = 0;
    with_scratch(|sc| {
        s.receive_in_place(sc, now, &mut input, |conn, event| {
            if let wss_proto::EventRef::Message(_) = event {
                conn.send_text("answer").unwrap();
            }
            seen += 1;
        })
    });
    assert_eq!(seen, 2);
    assert!(s.close_reply_pending());
    s.send_close_reply();
    assert_eq!(
        parse_frames(&output(&mut s)),
        [
            (true, Opcode::Text, b"answer".to_vec()),
            (true, Opcode::Close, vec![])
        ]
    );
}
