//! RFC 6455 §5.7: the example frames, byte for byte, both decoded and encoded.

mod util;

use std::time::Instant;

use util::{events, output, server};
use wss_proto::encode_frame;
use wss_proto::{Config, Connection, Event, Message, Opcode, Role};

fn client() -> (Connection, Instant) {
    let now = Instant::now();
    (Connection::new(Role::Client, Config::default(), now), now)
}

#[test]
fn rfc_unmasked_hello_is_decoded_by_a_client() {
    let (mut c, now) = client();
    util::receive(&mut c, now, &[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
    assert_eq!(
        events(&mut c),
        [Event::Message(Message::Text("Hello".into()))]
    );
}

#[test]
fn rfc_unmasked_hello_is_what_a_server_sends() {
    let (mut s, _) = server(Config::default());
    s.send_text("Hello").unwrap();
    assert_eq!(output(&mut s), [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
}

#[test]
fn rfc_masked_hello_is_decoded_by_a_server() {
    let (mut s, now) = server(Config::default());
    util::receive(
        &mut s,
        now,
        &[
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ],
    );
    assert_eq!(
        events(&mut s),
        [Event::Message(Message::Text("Hello".into()))]
    );
}

#[test]
fn rfc_masked_hello_is_encoded_with_the_given_key() {
    let mut out = Vec::new();
    encode_frame(
        &mut out,
        true,
        Opcode::Text,
        b"Hello",
        Some([0x37, 0xfa, 0x21, 0x3d]),
    );
    assert_eq!(
        out,
        [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
    );
}

#[test]
fn rfc_fragmented_hel_lo_is_one_message() {
    let (mut c, now) = client();
    util::receive(&mut c, now, &[0x01, 0x03, 0x48, 0x65, 0x6c]);
    assert_eq!(events(&mut c), []);
    util::receive(&mut c, now, &[0x80, 0x02, 0x6c, 0x6f]);
    assert_eq!(
        events(&mut c),
        [Event::Message(Message::Text("Hello".into()))]
    );
}

#[test]
fn rfc_fragmented_hel_lo_is_what_send_frame_writes() {
    let (mut s, _) = server(Config::default());
    s.send_frame(Opcode::Text, false, b"Hel").unwrap();
    s.send_frame(Opcode::Continuation, true, b"lo").unwrap();
    assert_eq!(
        output(&mut s),
        [0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f]
    );
}

#[test]
fn rfc_unmasked_ping_is_answered_with_a_pong_echoing_hello() {
    let (mut c, now) = client();
    util::receive(&mut c, now, &[0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
    assert_eq!(events(&mut c), [Event::Ping(b"Hello".to_vec())]);
    let out = output(&mut c);
    // A client masks its pong; the key comes from the seeded generator.
    assert_eq!(&out[..2], [0x8a, 0x85]);
    let key = [out[2], out[3], out[4], out[5]];
    let mut payload = out[6..].to_vec();
    wss_proto::internal::apply_mask(&mut payload, key);
    assert_eq!(payload, b"Hello");
}

#[test]
fn rfc_masked_pong_is_decoded_by_a_server() {
    let (mut s, now) = server(Config::default());
    util::receive(
        &mut s,
        now,
        &[
            0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ],
    );
    assert_eq!(events(&mut s), [Event::Pong(b"Hello".to_vec())]);
}

#[test]
fn rfc_256_byte_binary_uses_the_16_bit_length() {
    let payload: Vec<u8> = (0..256).map(|i| i as u8).collect();
    let (mut s, _) = server(Config::default());
    s.send_binary(&payload).unwrap();
    let out = output(&mut s);
    assert_eq!(out[..4], [0x82, 0x7e, 0x01, 0x00]);
    assert_eq!(out[4..], payload[..]);

    let (mut c, now) = client();
    util::receive(&mut c, now, &out);
    assert_eq!(events(&mut c), [Event::Message(Message::Binary(payload))]);
}

#[test]
fn rfc_64_kib_binary_uses_the_64_bit_length() {
    let payload = vec![0x5a; 65536];
    let (mut s, _) = server(Config::default());
    s.send_binary(&payload).unwrap();
    let out = output(&mut s);
    assert_eq!(
        out[..10],
        [0x82, 0x7f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00]
    );
    assert_eq!(out.len(), 10 + 65536);

    let (mut c, now) = client();
    util::receive(&mut c, now, &out);
    assert_eq!(events(&mut c), [Event::Message(Message::Binary(payload))]);
}
