//! RFC 7692 §7.2.3: the example frames, decoded byte for byte, and "Hello" encoded as the RFC
//! shows it, with and without context takeover.
#![cfg(feature = "deflate")]

mod util;

use std::time::Instant;

use util::{events, header, output, parse_frames, KEY};
use wss_proto::encode_frame;
use wss_proto::{Config, Connection, DeflateParams, Event, Message, Opcode, ProtocolError, Role};

fn params(no_context_takeover: bool) -> DeflateParams {
    DeflateParams {
        server_no_context_takeover: no_context_takeover,
        client_no_context_takeover: no_context_takeover,
        threshold: 0,
        ..DeflateParams::default()
    }
}

fn conn(role: Role, no_context_takeover: bool) -> Connection {
    let config = Config {
        deflate: Some(params(no_context_takeover)),
        ..Config::default()
    };
    Connection::new(role, config, Instant::now())
}

fn hello() -> Vec<Event> {
    vec![Event::Message(Message::Text("Hello".into()))]
}

/// Feeds `wire` to a client (the RFC's frames are unmasked, from a server).
fn client_reads(wire: &[u8]) -> Vec<Event> {
    let mut c = conn(Role::Client, false);
    util::receive(&mut c, Instant::now(), wire);
    events(&mut c)
}

/// The same frame, masked, as a client would send it.
fn masked(wire: &[u8]) -> Vec<u8> {
    let (h, n) = wss_proto::FrameHeader::parse(wire).unwrap().unwrap();
    let mut out = header(h.fin, h.rsv, h.opcode, Some(KEY), h.payload_len);
    let mut payload = wire[n..].to_vec();
    wss_proto::internal::apply_mask(&mut payload, KEY);
    out.extend_from_slice(&payload);
    out
}

const HELLO_FRAME: [u8; 9] = [0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];

#[test]
fn rfc_7_2_3_1_one_compressed_block() {
    assert_eq!(client_reads(&HELLO_FRAME), hello());
    let mut s = conn(Role::Server, false);
    util::receive(&mut s, Instant::now(), &masked(&HELLO_FRAME));
    assert_eq!(events(&mut s), hello());
}

#[test]
fn rfc_7_2_3_1_fragmented_compressed_message() {
    let wire = [
        0x41, 0x03, 0xf2, 0x48, 0xcd, // RSV1 on the first fragment only
        0x80, 0x04, 0xc9, 0xc9, 0x07, 0x00,
    ];
    assert_eq!(client_reads(&wire), hello());
    // One byte at a time too.
    let mut c = conn(Role::Client, false);
    for b in wire {
        util::receive(&mut c, Instant::now(), &[b]);
    }
    assert_eq!(events(&mut c), hello());
}

#[test]
fn rfc_7_2_3_2_shared_window_second_hello_is_five_bytes() {
    let second = [0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00];
    let mut wire = HELLO_FRAME.to_vec();
    wire.extend_from_slice(&second);
    assert_eq!(client_reads(&wire), [hello(), hello()].concat());
}

#[test]
fn hello_is_encoded_as_the_rfc_shows_with_context_takeover() {
    // zlib at level 6 (the RFC's encoder) gives the RFC's bytes exactly.
    let config = Config {
        deflate: Some(DeflateParams {
            level: 6,
            ..params(false)
        }),
        ..Config::default()
    };
    let mut s = Connection::new(Role::Server, config, Instant::now());
    s.send_text("Hello").unwrap();
    s.send_text("Hello").unwrap();
    let mut expected = HELLO_FRAME.to_vec();
    expected.extend_from_slice(&[0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00]);
    assert_eq!(output(&mut s), expected);
}

#[test]
fn second_hello_refers_to_the_first_at_the_default_level() {
    let mut s = conn(Role::Server, false);
    s.send_text("Hello").unwrap();
    let first = output(&mut s);
    s.send_text("Hello").unwrap();
    let second = output(&mut s);
    assert_eq!(first, HELLO_FRAME);
    assert_eq!(second[0], 0xc1);
    assert!(second.len() < first.len(), "{second:x?}");
    // It decodes only after the first, whose bytes it refers to.
    assert_eq!(
        client_reads(&[first, second.clone()].concat()),
        [hello(), hello()].concat()
    );
    assert_ne!(client_reads(&second), hello());
}

#[test]
fn hello_is_encoded_afresh_each_time_without_context_takeover() {
    let mut s = conn(Role::Server, true);
    s.send_text("Hello").unwrap();
    s.send_text("Hello").unwrap();
    assert_eq!(output(&mut s), [HELLO_FRAME, HELLO_FRAME].concat());
}

#[test]
fn rfc_7_2_3_3_stored_block_with_rsv1() {
    let wire = [
        0xc1, 0x0b, 0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
    ];
    assert_eq!(client_reads(&wire), hello());
}

#[test]
fn rfc_7_2_3_4_block_with_bfinal_set() {
    let wire = [0xc1, 0x08, 0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
    // The stream ended, so the next message starts a new one.
    let mut both = wire.to_vec();
    both.extend_from_slice(&HELLO_FRAME);
    assert_eq!(client_reads(&both), [hello(), hello()].concat());
}

#[test]
fn rfc_7_2_3_5_two_blocks_in_one_message() {
    let wire = [
        0xc1, 0x0d, 0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00,
    ];
    assert_eq!(client_reads(&wire), hello());
}

#[test]
fn compressed_message_with_an_empty_last_fragment() {
    let wire = [
        0x41, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, // all the data
        0x80, 0x00, // an empty final fragment
    ];
    assert_eq!(client_reads(&wire), hello());
}

#[test]
fn uncompressed_message_is_plain_when_deflate_is_on() {
    assert_eq!(
        client_reads(&[0x81, 0x05, b'H', b'e', b'l', b'l', b'o']),
        hello()
    );
}

#[test]
fn rsv1_on_a_continuation_fails_with_1002() {
    let wire = [
        0x41, 0x03, 0xf2, 0x48, 0xcd, 0xc0, 0x04, 0xc9, 0xc9, 0x07, 0x00,
    ];
    let got = client_reads(&wire);
    assert_eq!(got, [Event::Failed(ProtocolError::MisplacedCompressionBit)]);
    assert_eq!(ProtocolError::MisplacedCompressionBit.close_code().0, 1002);
}

#[test]
fn rsv1_on_control_frames_fails_with_1002() {
    for opcode in [0x9u8, 0xa, 0x8] {
        let wire = [0xc0 | opcode, 0x00];
        assert_eq!(
            client_reads(&wire),
            [Event::Failed(ProtocolError::MisplacedCompressionBit)],
            "opcode {opcode:#x}"
        );
    }
}

#[test]
fn rsv1_without_deflate_is_still_a_reserved_bit_error() {
    let mut c = Connection::new(Role::Client, Config::default(), Instant::now());
    util::receive(&mut c, Instant::now(), &HELLO_FRAME);
    assert_eq!(
        events(&mut c),
        [Event::Failed(ProtocolError::NonZeroReservedBits)]
    );
}

#[test]
fn rsv2_and_rsv3_still_fail_with_deflate() {
    for b0 in [0xa1u8, 0x91, 0xe1] {
        let got = client_reads(&[b0, 0x00]);
        assert_eq!(got, [Event::Failed(ProtocolError::NonZeroReservedBits)]);
    }
}

#[test]
fn broken_deflate_data_fails_with_1007() {
    let mut c = conn(Role::Client, false);
    util::receive(&mut c, Instant::now(), &[0xc2, 0x03, 0xff, 0xff, 0xff]);
    assert_eq!(
        events(&mut c),
        [Event::Failed(ProtocolError::InvalidCompressedData)]
    );
    let close = parse_frames(&output(&mut c));
    assert_eq!(close[0].1, Opcode::Close);
    assert_eq!(close[0].2[..2], 1007u16.to_be_bytes());
}

#[test]
fn invalid_utf8_inside_compressed_text_fails_with_1007() {
    // A server compresses bytes that are not UTF-8 and sends them as a binary message; the
    // same payload under a text opcode must fail.
    let mut s = conn(Role::Server, false);
    s.send_binary(&[0xff, 0xfe, 0xfd, 0xfc]).unwrap();
    let mut wire = output(&mut s);
    assert_eq!(wire[0], 0xc2, "compressed binary");
    wire[0] = 0xc1;
    let mut c = conn(Role::Client, false);
    util::receive(&mut c, Instant::now(), &wire);
    assert_eq!(events(&mut c), [Event::Failed(ProtocolError::InvalidUtf8)]);
}

#[test]
fn interleaved_ping_inside_a_compressed_message() {
    let mut wire = vec![0x41, 0x03, 0xf2, 0x48, 0xcd];
    encode_frame(&mut wire, true, Opcode::Ping, b"p", None);
    wire.extend_from_slice(&[0x80, 0x04, 0xc9, 0xc9, 0x07, 0x00]);
    assert_eq!(
        client_reads(&wire),
        [vec![Event::Ping(b"p".to_vec())], hello()].concat()
    );
}
