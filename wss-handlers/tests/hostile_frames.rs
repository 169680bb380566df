//! Hostile frames after the upgrade (issue 6 item 4), against the real `wss` binary over raw
//! sockets: each abuse gets its exact close code (RFC 6455 §7.4.1), then the server ends the
//! TCP connection, and a fresh client still echoes.

#[path = "support/raw.rs"]
mod raw;
mod support;

use std::io::Write;
use std::time::Duration;

use raw::{close_payload, expect_close, fin, frame, header, masked, upgrade, Server};

fn echo_server(extra: &[&str]) -> Server {
    let mut args = vec!["--handler", "echo", "--threads", "1"];
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// Sends `bytes` on a fresh WebSocket and asserts the server closes with `code`.
fn abuse(server: &Server, bytes: &[u8], code: u16, what: &str) -> raw::Closed {
    let mut s = upgrade(server.addr, &server.path);
    s.write_all(bytes).unwrap();
    expect_close(&mut s, code, what)
}

#[test]
fn frame_announcing_2_pow_63_minus_1_bytes_gets_1009_without_allocating() {
    let mut server = echo_server(&[]);
    server.assert_still_serves();
    let before = server.rss_kib();
    for first in [fin(0x2), fin(0x1), 0x02] {
        let mut bytes = header(first, (1u64 << 63) - 1, true, true);
        bytes.extend(masked(b"some payload", 0));
        let closed = abuse(&server, &bytes, 1009, "2^63-1 byte frame");
        assert!(closed.before.is_empty(), "{:?}", closed.before);
    }
    // Just over the limit set by --max-message-size is refused the same way (default 16 MiB).
    let bytes = header(fin(0x2), (16 << 20) + 1, true, true);
    abuse(&server, &bytes, 1009, "16 MiB + 1 byte frame");
    let after = server.rss_kib();
    // A server that reserved the announced size (or even the 16 MiB limit) would show it here.
    assert!(
        after < before + 4 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
    server.assert_still_serves();
}

#[test]
fn message_over_max_message_size_gets_1009() {
    let mut server = echo_server(&["--max-message-size", "1000"]);
    // One frame over the limit, refused from its header alone.
    abuse(
        &server,
        &header(fin(0x2), 1001, true, false),
        1009,
        "1001-byte frame",
    );
    // Fragments that are each small but add up past the limit.
    let mut bytes = frame(0x02, &[7u8; 600]);
    bytes.extend(frame(0x80, &[7u8; 600]));
    abuse(&server, &bytes, 1009, "two 600-byte fragments");
    server.assert_still_serves();
}

#[test]
fn length_with_the_top_bit_set_gets_1002() {
    let mut server = echo_server(&[]);
    let bytes = header(fin(0x2), 1u64 << 63, true, true);
    abuse(&server, &bytes, 1002, "64-bit length with the top bit set");
    let bytes = header(fin(0x2), u64::MAX, true, true);
    abuse(&server, &bytes, 1002, "64-bit length 2^64-1");
    server.assert_still_serves();
}

#[test]
fn unmasked_client_frame_gets_1002() {
    let mut server = echo_server(&[]);
    let mut bytes = header(fin(0x1), 5, false, false);
    bytes.extend_from_slice(b"hello");
    abuse(&server, &bytes, 1002, "unmasked text frame");
    let bytes = header(fin(0x9), 0, false, false);
    abuse(&server, &bytes, 1002, "unmasked empty ping");
    server.assert_still_serves();
}

#[test]
fn reserved_opcodes_get_1002() {
    let mut server = echo_server(&[]);
    for opcode in (0x3..=0x7).chain(0xB..=0xF) {
        abuse(
            &server,
            &frame(fin(opcode), b"x"),
            1002,
            &format!("opcode {opcode:#x}"),
        );
    }
    // A continuation with nothing to continue is just as wrong.
    abuse(&server, &frame(fin(0x0), b"x"), 1002, "lone continuation");
    server.assert_still_serves();
}

#[test]
fn reserved_bits_get_1002() {
    let mut server = echo_server(&[]);
    for (rsv, name) in [(0x40, "RSV1"), (0x20, "RSV2"), (0x10, "RSV3")] {
        abuse(&server, &frame(fin(0x1) | rsv, b"hi"), 1002, name);
        abuse(
            &server,
            &frame(fin(0x9) | rsv, b""),
            1002,
            &format!("{name} on a ping"),
        );
    }
    server.assert_still_serves();
}

#[test]
fn control_frame_of_126_bytes_gets_1002() {
    let mut server = echo_server(&[]);
    for opcode in [0x8, 0x9, 0xA] {
        let payload = if opcode == 0x8 {
            close_payload(1000, &[b'r'; 124])
        } else {
            vec![b'p'; 126]
        };
        abuse(
            &server,
            &frame(fin(opcode), &payload),
            1002,
            &format!("opcode {opcode:#x} with 126 bytes"),
        );
    }
    // 125 bytes is the most a control frame may carry: that ping is answered.
    let mut s = upgrade(server.addr, &server.path);
    s.write_all(&frame(fin(0x9), &[b'p'; 125])).unwrap();
    let pong = raw::read_frame(&mut s).expect("pong");
    assert_eq!((pong.first, pong.payload.len()), (0x8A, 125));
    server.assert_still_serves();
}

#[test]
fn fragmented_control_frame_gets_1002() {
    let mut server = echo_server(&[]);
    for opcode in [0x8, 0x9, 0xA] {
        let payload = if opcode == 0x8 {
            close_payload(1000, b"")
        } else {
            b"ping".to_vec()
        };
        abuse(
            &server,
            &frame(opcode, &payload),
            1002,
            &format!("opcode {opcode:#x} without FIN"),
        );
    }
    server.assert_still_serves();
}

#[test]
fn invalid_utf8_in_text_gets_1007_before_the_frame_ends() {
    let mut server = echo_server(&[]);
    // A 64 KiB text frame of which only the first bytes come, the third one invalid: the
    // close must arrive while the rest of the frame is still owed.
    let mut s = upgrade(server.addr, &server.path);
    s.write_all(&header(fin(0x1), 64 << 10, true, false))
        .unwrap();
    s.write_all(&masked(b"ok\xffstill more to come", 0))
        .unwrap();
    expect_close(&mut s, 1007, "bad byte early in a 64 KiB text frame");

    // Valid first fragment, invalid second.
    let mut bytes = frame(0x01, "héllo".as_bytes());
    bytes.extend(frame(0x80, b"\xc3\x28"));
    abuse(&server, &bytes, 1007, "bad continuation fragment");

    // A sequence cut by the end of the message.
    abuse(
        &server,
        &frame(fin(0x1), b"abc\xe2\x82"),
        1007,
        "truncated sequence",
    );
    // Surrogates and overlong forms are not UTF-8 either.
    abuse(
        &server,
        &frame(fin(0x1), b"\xed\xa0\x80"),
        1007,
        "encoded surrogate",
    );
    abuse(&server, &frame(fin(0x1), b"\xc0\xaf"), 1007, "overlong '/'");
    server.assert_still_serves();
}

#[test]
fn invalid_utf8_in_close_reason_gets_1007() {
    let mut server = echo_server(&[]);
    abuse(
        &server,
        &frame(fin(0x8), &close_payload(1000, b"bye \xff")),
        1007,
        "close reason with 0xFF",
    );
    abuse(
        &server,
        &frame(fin(0x8), &close_payload(1000, b"\xed\xa0\x80")),
        1007,
        "close reason with a surrogate",
    );
    server.assert_still_serves();
}

#[test]
fn close_with_a_1_byte_payload_gets_1002() {
    let mut server = echo_server(&[]);
    abuse(&server, &frame(fin(0x8), &[0x03]), 1002, "1-byte close");
    server.assert_still_serves();
}

#[test]
fn invalid_close_codes_get_1002() {
    let mut server = echo_server(&[]);
    for code in [
        0u16,
        1,
        999,
        1004,
        1005,
        1006,
        1015,
        1016,
        1100,
        2000,
        2999,
        5000,
        u16::MAX,
    ] {
        abuse(
            &server,
            &frame(fin(0x8), &close_payload(code, b"")),
            1002,
            &format!("close code {code}"),
        );
    }
    server.assert_still_serves();
}

#[test]
fn valid_close_codes_are_answered_with_the_same_code() {
    // The counterpart of the test above, so that it cannot pass by refusing every close.
    let mut server = echo_server(&[]);
    for code in [
        1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4999,
    ] {
        let closed = abuse(
            &server,
            &frame(fin(0x8), &close_payload(code, b"ok")),
            code,
            &format!("close code {code}"),
        );
        assert!(closed.before.is_empty(), "{:?}", closed.before);
    }
    // An empty close is answered with an empty close (no code to echo).
    let mut s = upgrade(server.addr, &server.path);
    s.write_all(&frame(fin(0x8), b"")).unwrap();
    let reply = raw::read_frame(&mut s).expect("close reply");
    assert_eq!((reply.first, reply.payload.len()), (0x88, 0));
    raw::assert_tcp_ends(&mut s, "empty close");
    std::thread::sleep(Duration::from_millis(10));
    server.assert_still_serves();
}
