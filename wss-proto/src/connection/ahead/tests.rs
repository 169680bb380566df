//! Reads ahead against the ordinary receive of the same bytes, cut everywhere.

use super::*;
use crate::frame::{encode_frame, Opcode};
use crate::message::Message;
use crate::{Config, Role};

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn frame(fin: bool, opcode: Opcode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(&mut out, fin, opcode, payload, Some(KEY));
    out
}

fn binary(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

/// Text of `len` bytes with two- and three-byte characters, cut anywhere but inside one.
fn text(len: usize) -> String {
    let mut s = String::new();
    while s.len() + 3 <= len {
        s.push_str(["a", "é", "€"][s.len() % 3]);
    }
    while s.len() < len {
        s.push('z');
    }
    s
}

fn events(scratch: &mut Scratch, conn: &mut Connection) -> Vec<Event> {
    std::iter::from_fn(|| conn.poll_event(scratch)).collect()
}

/// A server whose last read ended with a whole binary frame of `primed` bytes.
fn primed(scratch: &mut Scratch, now: Instant, primed: usize) -> Connection {
    let mut conn = Connection::new(Role::Server, Config::default(), now);
    conn.receive(
        scratch,
        now,
        &frame(true, Opcode::Binary, &binary(primed, 1)),
    );
    assert_eq!(recycle_events(scratch, &mut conn), 1);
    conn
}

/// Takes the events and gives each message's buffer back to the scratch, as an echo does
/// once it has written it. Returns how many events there were.
fn recycle_events(scratch: &mut Scratch, conn: &mut Connection) -> usize {
    let taken = events(scratch, conn);
    let count = taken.len();
    for event in taken {
        if let Event::Message(message) = event {
            scratch.recycle(message.into_bytes());
        }
    }
    count
}

/// What one `readv` of `wire[..n]` into (head, ahead's payload, rest) does, decoded.
fn read_ahead_of(
    scratch: &mut Scratch,
    now: Instant,
    conn: &mut Connection,
    wire: &[u8],
    n: usize,
) -> bool {
    let mut ahead = conn
        .read_ahead(scratch)
        .expect("a guess after a large frame");
    let mut buf = vec![0u8; 1 << 18];
    let (head, rest) = buf.split_at_mut(ahead.head_len());
    let mut src = &wire[..n];
    for dst in [head, ahead.payload(), rest] {
        let k = src.len().min(dst.len());
        dst[..k].copy_from_slice(&src[..k]);
        src = &src[k..];
    }
    assert!(src.is_empty(), "the read fits the slices");
    let (head, rest) = buf.split_at(ahead.head_len());
    conn.receive_ahead(scratch, now, ahead, n, head, rest)
}

/// Whatever follows a large frame, and wherever the read stops, a read ahead gives the
/// events and the output one `receive` of the same bytes gives, and so does the rest.
fn assert_same_as_receive(primed_len: usize, wire: &[u8]) {
    let now = Instant::now();
    let cuts = [
        1,
        5,
        8,
        9,
        14,
        15,
        100,
        wire.len() / 2,
        wire.len().saturating_sub(70),
        wire.len() - 1,
        wire.len(),
    ];
    for n in cuts.into_iter().filter(|&n| n > 0 && n <= wire.len()) {
        let mut s1 = Scratch::new();
        let mut expected_conn = primed(&mut s1, now, primed_len);
        expected_conn.receive(&mut s1, now, &wire[..n]);
        expected_conn.receive(&mut s1, now, &wire[n..]);
        let expected = events(&mut s1, &mut expected_conn);
        let mut expected_out = Vec::new();
        expected_conn.poll_transmit(&mut expected_out);

        let mut s2 = Scratch::new();
        let mut conn = primed(&mut s2, now, primed_len);
        let _taken = read_ahead_of(&mut s2, now, &mut conn, wire, n);
        conn.receive(&mut s2, now, &wire[n..]);
        let seen = events(&mut s2, &mut conn);
        let mut out = Vec::new();
        conn.poll_transmit(&mut out);
        assert_eq!(
            seen,
            expected,
            "events, read of {n} of {} bytes",
            wire.len()
        );
        assert_eq!(out, expected_out, "output, read of {n} bytes");
        assert_eq!(conn.error(), expected_conn.error());
        assert_eq!(conn.state(), expected_conn.state());
        assert_eq!(conn.input_after_close(), expected_conn.input_after_close());
    }
}

#[test]
fn the_guessed_frame_becomes_the_message_in_the_buffer_read_into() {
    let now = Instant::now();
    let mut scratch = Scratch::new();
    let mut conn = primed(&mut scratch, now, 65536);
    let payload = binary(65536, 9);
    let wire = frame(true, Opcode::Binary, &payload);
    let mut ahead = conn.read_ahead(&mut scratch).expect("a guess");
    assert_eq!(ahead.head_len(), 14, "2 + 8 bytes of length + the mask key");
    assert_eq!(ahead.payload().len(), 65536);
    let target = ahead.payload().as_ptr();
    let mut buf = vec![0u8; 4096];
    let (head, rest) = buf.split_at_mut(14);
    head.copy_from_slice(&wire[..14]);
    ahead.payload().copy_from_slice(&wire[14..]);
    let (head, rest) = (&*head, &*rest);
    let taken = conn.receive_ahead(&mut scratch, now, ahead, wire.len(), head, rest);
    assert!(taken, "the guess was right");
    let got = events(&mut scratch, &mut conn);
    let [Event::Message(Message::Binary(message))] = &got[..] else {
        panic!("{got:?}")
    };
    assert_eq!(message, &payload, "unmasked where it landed");
    assert_eq!(
        message.as_ptr(),
        target,
        "no copy: the read's buffer is the message"
    );
    assert!(
        conn.read_ahead(&mut scratch).is_none(),
        "the message is still out: no buffer for the next"
    );
    for event in got {
        if let Event::Message(m) = event {
            scratch.recycle(m.into_bytes());
        }
    }
    assert!(
        conn.read_ahead(&mut scratch).is_some(),
        "once it is back, the next is read ahead too"
    );
}

#[test]
fn a_steady_stream_reads_into_one_recycled_buffer() {
    let now = Instant::now();
    let mut scratch = Scratch::new();
    let mut conn = primed(&mut scratch, now, 40_000);
    let mut last = None;
    for round in 0..3u8 {
        let wire = frame(true, Opcode::Binary, &binary(40_000, round));
        assert!(read_ahead_of(
            &mut scratch,
            now,
            &mut conn,
            &wire,
            wire.len()
        ));
        let Some(Event::Message(Message::Binary(m))) = conn.poll_event(&mut scratch) else {
            panic!("round {round}")
        };
        assert_eq!(m, binary(40_000, round));
        if let Some(ptr) = last {
            assert_eq!(m.as_ptr(), ptr, "round {round}: the recycled buffer again");
        }
        last = Some(m.as_ptr());
        scratch.recycle(m);
    }
}

#[test]
fn the_guess_follows_how_the_last_read_ended() {
    let now = Instant::now();
    let mut s = Scratch::new();
    let mut conn = Connection::new(Role::Server, Config::default(), now);
    assert!(conn.read_ahead(&mut s).is_none(), "nothing read yet");
    conn.receive(&mut s, now, &frame(true, Opcode::Binary, &[1; 1000]));
    assert!(
        conn.read_ahead(&mut s).is_none(),
        "small frames are read as usual"
    );
    let large = frame(true, Opcode::Text, text(AHEAD_MIN).as_bytes());
    conn.receive(&mut s, now, &large);
    assert!(
        conn.read_ahead(&mut s).is_none(),
        "no buffer of that size kept: no read ahead"
    );
    recycle_events(&mut s, &mut conn);
    let ahead = conn
        .read_ahead(&mut s)
        .expect("a large frame ended the read, and its buffer came back");
    assert_eq!(ahead.head_len(), 8, "2 + 2 bytes of length + the mask key");
    ahead.give_back(&mut s);
    // From here on the scratch keeps buffers of the size: only the guess says no.
    conn.receive(&mut s, now, &large[..large.len() - 1]);
    assert!(conn.read_ahead(&mut s).is_none(), "a frame part-way");
    conn.receive(&mut s, now, &large[large.len() - 1..]);
    recycle_events(&mut s, &mut conn);
    assert!(
        conn.read_ahead(&mut s).is_none(),
        "the frame ended a split read"
    );
    let mut two = large.clone();
    two.extend(frame(true, Opcode::Ping, b""));
    conn.receive(&mut s, now, &two);
    recycle_events(&mut s, &mut conn);
    assert!(conn.read_ahead(&mut s).is_none(), "a ping came after it");
    conn.receive(&mut s, now, &large);
    recycle_events(&mut s, &mut conn);
    assert!(conn.read_ahead(&mut s).is_some(), "and again, alone");
    let over = frame(true, Opcode::Binary, &vec![0; AHEAD_MAX + 1]);
    conn.receive(&mut s, now, &over);
    assert!(
        conn.read_ahead(&mut s).is_none(),
        "past what the pool keeps"
    );
}

#[test]
fn a_client_reads_unmasked_frames_ahead_too() {
    let now = Instant::now();
    let mut s = Scratch::new();
    let mut conn = Connection::new(Role::Client, Config::default(), now);
    let unmasked = |len: usize, seed: u8| {
        let mut out = Vec::new();
        encode_frame(&mut out, true, Opcode::Binary, &binary(len, seed), None);
        out
    };
    conn.receive(&mut s, now, &unmasked(70_000, 1));
    recycle_events(&mut s, &mut conn);
    let ahead = conn.read_ahead(&mut s).expect("a guess");
    assert_eq!(ahead.head_len(), 10, "2 + 8 bytes of length, no mask key");
    ahead.give_back(&mut s);
    let wire = unmasked(70_000, 2);
    assert!(
        read_ahead_of(&mut s, now, &mut conn, &wire, wire.len()),
        "taken"
    );
    let got = events(&mut s, &mut conn);
    assert_eq!(got, [Event::Message(Message::Binary(binary(70_000, 2)))]);
}

#[test]
fn the_same_length_again() {
    assert_same_as_receive(20_000, &frame(true, Opcode::Binary, &binary(20_000, 3)));
    assert_same_as_receive(65_536, &frame(true, Opcode::Binary, &binary(65_536, 3)));
    assert_same_as_receive(20_000, &frame(true, Opcode::Text, text(20_000).as_bytes()));
}

#[test]
fn another_length_or_header_size() {
    // Shorter by more than the spare unit, shorter within it, longer, and each header
    // size; and a small frame after the large one in the same read.
    for len in [
        16_384, 19_990, 20_000, 20_030, 30_000, 65_535, 65_536, 70_000, 100,
    ] {
        let mut wire = frame(true, Opcode::Binary, &binary(len, 5));
        assert_same_as_receive(20_000, &wire);
        assert_same_as_receive(70_000, &wire);
        wire.extend(frame(true, Opcode::Text, b"after"));
        assert_same_as_receive(20_000, &wire);
    }
}

#[test]
fn frames_it_does_not_take_are_decoded_as_usual() {
    let data = binary(20_000, 7);
    let mut fragmented = frame(false, Opcode::Binary, &data[..10_000]);
    fragmented.extend(frame(true, Opcode::Continuation, &data[10_000..]));
    assert_same_as_receive(20_000, &fragmented);
    let mut ping_first = frame(true, Opcode::Ping, b"p");
    ping_first.extend(frame(true, Opcode::Binary, &data));
    assert_same_as_receive(20_000, &ping_first);
    let mut close = frame(true, Opcode::Close, &[0x03, 0xe8]);
    close.extend(frame(true, Opcode::Binary, &data));
    assert_same_as_receive(20_000, &close);
    // RSV1 without permessage-deflate: a protocol error, reported the usual way.
    let mut rsv = frame(true, Opcode::Binary, &data);
    rsv[0] |= 0x40;
    assert_same_as_receive(20_000, &rsv);
    // An unmasked frame from a client.
    let mut unmasked = Vec::new();
    encode_frame(&mut unmasked, true, Opcode::Binary, &data, None);
    assert_same_as_receive(20_000, &unmasked);
    // A reserved opcode.
    let mut reserved = frame(true, Opcode::Binary, &data);
    reserved[0] = 0x83;
    assert_same_as_receive(20_000, &reserved);
}

#[test]
fn text_read_ahead_is_validated_as_received_text_is() {
    let good = text(20_000);
    // Invalid UTF-8 in the middle, and a text cut inside a character at its end.
    let mut bad = good.clone().into_bytes();
    bad[10_001] = 0xff;
    let mut cut = good.clone().into_bytes();
    cut.truncate(19_999);
    cut.push(0xe2);
    for payload in [good.as_bytes(), &bad[..], &cut[..]] {
        assert_same_as_receive(20_000, &frame(true, Opcode::Text, payload));
    }
    let now = Instant::now();
    let mut s = Scratch::new();
    let mut conn = primed(&mut s, now, 20_000);
    let wire = frame(true, Opcode::Text, &bad);
    assert!(
        read_ahead_of(&mut s, now, &mut conn, &wire, wire.len()),
        "taken, then refused"
    );
    assert_eq!(conn.error(), Some(&ProtocolError::InvalidUtf8));
    let mut out = Vec::new();
    conn.poll_transmit(&mut out);
    assert_eq!(out, [0x88, 0x02, 0x03, 0xef], "closed with 1007");
}

#[test]
fn a_message_over_the_limit_is_refused_as_usual() {
    let now = Instant::now();
    let config = Config {
        max_message_size: 30_000,
        ..Config::default()
    };
    let mut s = Scratch::new();
    let mut conn = Connection::new(Role::Server, config, now);
    conn.receive(
        &mut s,
        now,
        &frame(true, Opcode::Binary, &binary(20_000, 1)),
    );
    recycle_events(&mut s, &mut conn);
    let wire = frame(true, Opcode::Binary, &binary(30_001, 1));
    assert!(
        !read_ahead_of(&mut s, now, &mut conn, &wire, 20_000),
        "over the limit: not taken"
    );
    assert!(matches!(
        conn.error(),
        Some(ProtocolError::MessageTooBig { .. })
    ));
}
