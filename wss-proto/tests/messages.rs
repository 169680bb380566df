//! Message rules (RFC 6455 §5.4, §5.6, §8.1): reassembly, fragment order, UTF-8, limits.

mod util;

use std::time::Instant;

use util::{client_frame, events, header, output, parse_frames, server, KEY};
use wss_proto::{Config, Event, Message, Opcode, ProtocolError, State};

fn failed_with(events: &[Event], error: ProtocolError) {
    assert_eq!(events, [Event::Failed(error)]);
}

#[test]
fn fragments_with_interleaved_ping_are_reassembled() {
    let (mut s, now) = server(Config::default());
    let mut bytes = client_frame(false, Opcode::Text, b"Hel");
    bytes.extend(client_frame(true, Opcode::Ping, b"p"));
    bytes.extend(client_frame(false, Opcode::Continuation, b"l"));
    bytes.extend(client_frame(true, Opcode::Pong, b""));
    bytes.extend(client_frame(true, Opcode::Continuation, b"o"));
    util::receive(&mut s, now, &bytes);
    assert_eq!(
        events(&mut s),
        [
            Event::Ping(b"p".to_vec()),
            Event::Pong(vec![]),
            Event::Message(Message::Text("Hello".into())),
        ]
    );
    assert_eq!(
        parse_frames(&output(&mut s)),
        [(true, Opcode::Pong, b"p".to_vec())]
    );
}

#[test]
fn binary_fragments_are_reassembled() {
    let (mut s, now) = server(Config::default());
    util::receive(&mut s, now, &client_frame(false, Opcode::Binary, &[1, 2]));
    util::receive(&mut s, now, &client_frame(false, Opcode::Continuation, &[]));
    util::receive(&mut s, now, &client_frame(true, Opcode::Continuation, &[3]));
    assert_eq!(
        events(&mut s),
        [Event::Message(Message::Binary(vec![1, 2, 3]))]
    );
}

#[test]
fn empty_messages_are_delivered() {
    let (mut s, now) = server(Config::default());
    util::receive(&mut s, now, &client_frame(true, Opcode::Text, b""));
    util::receive(&mut s, now, &client_frame(true, Opcode::Binary, b""));
    assert_eq!(
        events(&mut s),
        [
            Event::Message(Message::Text(String::new())),
            Event::Message(Message::Binary(vec![]))
        ]
    );
}

#[test]
fn continuation_without_start_fails_with_1002() {
    let (mut s, now) = server(Config::default());
    util::receive(&mut s, now, &client_frame(true, Opcode::Continuation, b"x"));
    failed_with(&events(&mut s), ProtocolError::UnexpectedContinuation);
    assert_eq!(
        parse_frames(&output(&mut s)),
        [(true, Opcode::Close, 1002u16.to_be_bytes().to_vec())]
    );
}

#[test]
fn new_data_frame_inside_fragmented_message_fails_with_1002() {
    for second in [Opcode::Text, Opcode::Binary] {
        let (mut s, now) = server(Config::default());
        util::receive(&mut s, now, &client_frame(false, Opcode::Text, b"a"));
        util::receive(&mut s, now, &client_frame(true, second, b"b"));
        failed_with(&events(&mut s), ProtocolError::ExpectedContinuation);
    }
}

#[test]
fn invalid_utf8_fails_with_1007_before_the_frame_ends() {
    let (mut s, now) = server(Config::default());
    // A 100-byte text frame of which only the first 4 bytes (one bad) arrive.
    let frame = client_frame(true, Opcode::Text, &[b'a', b'b', 0xff, b'c'].repeat(25));
    util::receive(&mut s, now, &frame[..6 + 4]);
    failed_with(&events(&mut s), ProtocolError::InvalidUtf8);
    assert_eq!(
        parse_frames(&output(&mut s)),
        [(true, Opcode::Close, 1007u16.to_be_bytes().to_vec())]
    );
}

#[test]
fn invalid_utf8_fails_in_the_first_fragment_before_the_message_ends() {
    let (mut s, now) = server(Config::default());
    util::receive(
        &mut s,
        now,
        &client_frame(false, Opcode::Text, &[b'o', b'k', 0xc0, 0xaf]),
    );
    failed_with(&events(&mut s), ProtocolError::InvalidUtf8);
}

#[test]
fn invalid_utf8_in_a_whole_single_frame_fails_with_1007() {
    let (mut s, now) = server(Config::default());
    util::receive(
        &mut s,
        now,
        &client_frame(true, Opcode::Text, &[0xed, 0xa0, 0x80]),
    );
    failed_with(&events(&mut s), ProtocolError::InvalidUtf8);
}

#[test]
fn code_point_split_across_frames_is_accepted() {
    let (mut s, now) = server(Config::default());
    let euro = "€".as_bytes(); // e2 82 ac
    util::receive(&mut s, now, &client_frame(false, Opcode::Text, &euro[..1]));
    util::receive(
        &mut s,
        now,
        &client_frame(false, Opcode::Continuation, &euro[1..2]),
    );
    util::receive(
        &mut s,
        now,
        &client_frame(true, Opcode::Continuation, &euro[2..]),
    );
    assert_eq!(events(&mut s), [Event::Message(Message::Text("€".into()))]);
}

#[test]
fn code_point_cut_at_message_end_fails_with_1007() {
    let (mut s, now) = server(Config::default());
    util::receive(&mut s, now, &client_frame(false, Opcode::Text, b"a"));
    util::receive(
        &mut s,
        now,
        &client_frame(true, Opcode::Continuation, &[0xe2, 0x82]),
    );
    failed_with(&events(&mut s), ProtocolError::InvalidUtf8);
}

#[test]
fn frame_over_max_frame_size_fails_with_1009_from_the_header() {
    let config = Config {
        max_frame_size: 1000,
        ..Config::default()
    };
    let (mut s, now) = server(config);
    // Only the header is sent: the limit is enforced before any payload.
    util::receive(
        &mut s,
        now,
        &header(true, 0, Opcode::Binary, Some(KEY), 1001),
    );
    failed_with(
        &events(&mut s),
        ProtocolError::FrameTooBig {
            len: 1001,
            max: 1000,
        },
    );
    assert_eq!(
        parse_frames(&output(&mut s)),
        [(true, Opcode::Close, 1009u16.to_be_bytes().to_vec())]
    );
}

#[test]
fn frame_at_max_frame_size_is_accepted() {
    let config = Config {
        max_frame_size: 1000,
        ..Config::default()
    };
    let (mut s, now) = server(config);
    util::receive(&mut s, now, &client_frame(true, Opcode::Binary, &[0; 1000]));
    assert_eq!(
        events(&mut s),
        [Event::Message(Message::Binary(vec![0; 1000]))]
    );
}

#[test]
fn message_over_max_message_size_fails_with_1009() {
    let config = Config {
        max_message_size: 10,
        ..Config::default()
    };
    let (mut s, now) = server(config);
    util::receive(&mut s, now, &client_frame(false, Opcode::Binary, &[0; 6]));
    util::receive(
        &mut s,
        now,
        &header(true, 0, Opcode::Continuation, Some(KEY), 5),
    );
    failed_with(
        &events(&mut s),
        ProtocolError::MessageTooBig { len: 11, max: 10 },
    );
}

#[test]
fn whole_single_frame_message_is_one_exact_allocation() {
    let (mut s, now) = server(Config::default());
    util::receive(&mut s, now, &client_frame(true, Opcode::Binary, &[9; 3000]));
    util::receive(&mut s, now, &client_frame(true, Opcode::Text, &[b'z'; 777]));
    let evs = events(&mut s);
    match &evs[..] {
        [Event::Message(Message::Binary(b)), Event::Message(Message::Text(t))] => {
            assert_eq!((b.len(), b.capacity()), (3000, 3000));
            assert_eq!((t.len(), t.capacity()), (777, 777));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn close_inside_a_fragmented_message_ends_the_connection() {
    let (mut s, now) = server(Config::default());
    util::receive(&mut s, now, &client_frame(false, Opcode::Text, b"half"));
    util::receive(
        &mut s,
        now,
        &client_frame(true, Opcode::Close, &1000u16.to_be_bytes()),
    );
    assert_eq!(
        events(&mut s),
        [Event::CloseReceived {
            code: Some(wss_proto::CloseCode::NORMAL),
            reason: String::new()
        }]
    );
    assert_eq!(s.state(), State::Closed);
}

#[test]
fn input_split_mid_payload_resumes_the_mask_phase() {
    let (mut s, now) = server(Config::default());
    let text = "The quick brown fox jumps over the lazy dog";
    let frame = client_frame(true, Opcode::Text, text.as_bytes());
    for cut in [7, 9, 10, 13, 22] {
        let (mut s2, _) = server(Config::default());
        util::receive(&mut s2, now, &frame[..cut]);
        util::receive(&mut s2, now, &frame[cut..]);
        assert_eq!(
            events(&mut s2),
            [Event::Message(Message::Text(text.into()))],
            "cut {cut}"
        );
    }
    util::receive(&mut s, Instant::now(), &frame);
    assert_eq!(events(&mut s).len(), 1);
}

#[test]
fn single_frame_message_split_across_reads_ends_with_an_exact_allocation() {
    let (mut s, now) = server(Config::default());
    let frame = client_frame(true, Opcode::Binary, &[3; 10_000]);
    for piece in frame.chunks(1500) {
        util::receive(&mut s, now, piece);
    }
    match &events(&mut s)[..] {
        [Event::Message(Message::Binary(b))] => {
            assert_eq!(b, &vec![3; 10_000]);
            assert_eq!(b.capacity(), 10_000);
        }
        other => panic!("unexpected {other:?}"),
    }
}
