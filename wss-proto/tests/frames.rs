//! Frame-level rules (RFC 6455 §5.2, §5.5) as a connection enforces them.

mod util;

use std::time::Instant;

use util::{client_frame, events, header, output, parse_frames, server, server_frame, KEY};
use wss_proto::{Config, Connection, Event, Message, Opcode, ProtocolError, Role, State};

/// Feeds `bytes` and checks the connection failed with `error`, queued exactly one close
/// frame with the error's code, and went `Closed`.
fn assert_fails(conn: &mut Connection, bytes: &[u8], error: ProtocolError) {
    util::receive(&mut *conn, Instant::now(), bytes);
    let code = error.close_code().0;
    assert_eq!(events(conn), [Event::Failed(error)]);
    let frames = parse_frames(&output(conn));
    assert_eq!(frames, [(true, Opcode::Close, code.to_be_bytes().to_vec())]);
    assert_eq!(conn.state(), State::Closed);
}

fn client_conn() -> Connection {
    Connection::new(Role::Client, Config::default(), Instant::now())
}

#[test]
fn any_rsv_bit_without_extension_fails_with_1002() {
    for rsv in [0b100, 0b010, 0b001] {
        let (mut s, _) = server(Config::default());
        let bytes = header(true, rsv, Opcode::Text, Some(KEY), 0);
        assert_fails(&mut s, &bytes, ProtocolError::NonZeroReservedBits);
    }
}

#[test]
fn rsv1_is_accepted_when_an_extension_allows_it() {
    let config = Config {
        allowed_rsv: 0b100,
        ..Config::default()
    };
    let (mut s, now) = server(config);
    util::receive(
        &mut s,
        now,
        &header(true, 0b100, Opcode::Binary, Some(KEY), 0),
    );
    assert_eq!(events(&mut s), [Event::Message(Message::Binary(vec![]))]);
    // RSV2 is still refused.
    let bytes = header(true, 0b010, Opcode::Binary, Some(KEY), 0);
    assert_fails(&mut s, &bytes, ProtocolError::NonZeroReservedBits);
}

#[test]
fn unmasked_client_frame_fails_with_1002() {
    let (mut s, _) = server(Config::default());
    let bytes = server_frame(true, Opcode::Text, b"hi");
    assert_fails(&mut s, &bytes, ProtocolError::UnmaskedFrameFromClient);
}

#[test]
fn masked_server_frame_fails_with_1002() {
    let mut c = client_conn();
    let bytes = client_frame(true, Opcode::Text, b"hi");
    util::receive(&mut c, Instant::now(), &bytes);
    assert_eq!(
        events(&mut c),
        [Event::Failed(ProtocolError::MaskedFrameFromServer)]
    );
    // The client's close is masked, so decode it rather than compare bytes.
    let frames = parse_frames(&output(&mut c));
    assert_eq!(
        frames,
        [(true, Opcode::Close, 1002u16.to_be_bytes().to_vec())]
    );
}

#[test]
fn reserved_opcode_fails_with_1002() {
    for op in [3u8, 7, 0xb, 0xf] {
        let (mut s, _) = server(Config::default());
        assert_fails(&mut s, &[0x80 | op], ProtocolError::ReservedOpcode(op));
    }
}

#[test]
fn fragmented_control_frame_fails_with_1002() {
    let (mut s, _) = server(Config::default());
    let bytes = client_frame(false, Opcode::Ping, b"x");
    assert_fails(&mut s, &bytes, ProtocolError::FragmentedControlFrame);
}

#[test]
fn control_frame_over_125_bytes_fails_with_1002() {
    let (mut s, _) = server(Config::default());
    let bytes = header(true, 0, Opcode::Ping, Some(KEY), 126);
    assert_fails(&mut s, &bytes, ProtocolError::ControlFrameTooBig(126));
}

#[test]
fn control_frame_of_125_bytes_is_accepted() {
    let (mut s, now) = server(Config::default());
    util::receive(&mut s, now, &client_frame(true, Opcode::Ping, &[7; 125]));
    assert_eq!(events(&mut s), [Event::Ping(vec![7; 125])]);
}

#[test]
fn length_with_top_bit_set_fails_with_1002() {
    let (mut s, _) = server(Config::default());
    let mut bytes = vec![0x82, 0xff];
    bytes.extend_from_slice(&(1u64 << 63).to_be_bytes());
    bytes.extend_from_slice(&KEY);
    assert_fails(&mut s, &bytes, ProtocolError::InvalidLength);
}

#[test]
fn header_fed_one_byte_at_a_time_is_decoded() {
    let (mut s, now) = server(Config::default());
    let payload = vec![1u8; 300];
    for b in client_frame(true, Opcode::Binary, &payload) {
        util::receive(&mut s, now, &[b]);
    }
    assert_eq!(events(&mut s), [Event::Message(Message::Binary(payload))]);
}

#[test]
fn several_frames_in_one_read_are_all_decoded() {
    let (mut s, now) = server(Config::default());
    let mut bytes = client_frame(true, Opcode::Text, b"one");
    bytes.extend(client_frame(true, Opcode::Binary, b"two"));
    bytes.extend(client_frame(true, Opcode::Pong, b"three"));
    util::receive(&mut s, now, &bytes);
    assert_eq!(
        events(&mut s),
        [
            Event::Message(Message::Text("one".into())),
            Event::Message(Message::Binary(b"two".to_vec())),
            Event::Pong(b"three".to_vec()),
        ]
    );
}

#[test]
fn client_frames_are_masked_with_keys_from_the_seed() {
    let seeded = |seed| {
        let config = Config {
            mask_seed: seed,
            ..Config::default()
        };
        let mut c = Connection::new(Role::Client, config, Instant::now());
        c.send_text("a").unwrap();
        c.send_text("a").unwrap();
        output(&mut c)
    };
    let a = seeded(1);
    // Frame = 2 header bytes + 4 key bytes + 1 payload byte.
    assert_eq!(a[1] & 0x80, 0x80, "mask bit set");
    assert_ne!(a[2..6], a[9..13], "a new key per frame");
    assert_eq!(seeded(1), a, "same seed, same keys");
    assert_ne!(seeded(2), a, "another seed, other keys");
    assert_eq!(
        parse_frames(&a),
        [
            (true, Opcode::Text, b"a".to_vec()),
            (true, Opcode::Text, b"a".to_vec())
        ]
    );
}

#[test]
fn server_frames_are_not_masked() {
    let (mut s, _) = server(Config::default());
    s.send_binary(&[1, 2, 3]).unwrap();
    assert_eq!(output(&mut s), [0x82, 0x03, 1, 2, 3]);
}
