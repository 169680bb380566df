//! Reading a large message straight into its own buffer, so its payload is copied once (by
//! the kernel) and unmasked where it lands.
//!
//! [`Connection::receive`] copies each payload out of the caller's read buffer into the
//! message's buffer, unmasking on the way: the kernel's copy, then ours. For a 64 KiB echo
//! that second pass is a few microseconds of the server's CPU per message. A socket read
//! cannot put a frame's payload anywhere but the read buffer unless the caller knows, before
//! the read, where the header ends and how long the payload is. It can guess: a peer that
//! just sent a large whole message (an echo client, a stream of equal chunks) very likely
//! sends the next one of the same shape. So after a read that ended exactly at the end of
//! such a frame, the connection offers a [`ReadAhead`]: a vectored read of three slices puts
//! the next header in the first, the payload in a buffer that becomes the message, and
//! whatever follows in the rest of the caller's buffer.
//!
//! A wrong guess costs nothing but the guess: [`Connection::receive_ahead`] checks the header
//! it finds, and anything it cannot take as-is (another length, a control frame, a fragment,
//! compression, an error) is decoded from the three slices in order by the ordinary
//! [`receive`](Connection::receive), byte for byte the same as if it had come in one slice.
//! One read without a large whole frame at its end ends the guessing.

use std::time::Instant;

use super::receive::Owned;
use super::{Connection, Event, Scratch, State};
use crate::error::ProtocolError;
use crate::frame::FrameHeader;
use crate::mask::apply_mask;
use crate::pool::MAX_CAPACITY;
use crate::text::MessageBuf;

/// The smallest payload read ahead: below it, the copy saved is worth less than the guess.
pub(crate) const AHEAD_MIN: usize = 16 * 1024;

/// The largest payload read ahead: a buffer the scratch's pool still keeps, so a steady
/// stream reuses one buffer and never zeroes it.
pub(crate) const AHEAD_MAX: usize = MAX_CAPACITY;

/// Payload room is guessed in units of this many bytes, so the guess fits in a `u16`; the
/// buffer lent is the kept one's capacity, up to that room.
const UNIT: usize = 64;

/// Bytes after the payload that a read ahead may have put in the message buffer (the guess
/// was up to a unit longer than the frame) and that are moved out on the stack.
const TAIL_MAX: usize = UNIT;

/// The guess a connection keeps between reads: 0 for none, else the payload room in
/// [`UNIT`]s shifted left by one, with the low bit set for a 64-bit extended length.
pub(crate) fn guess(payload_len: usize, header_len: usize) -> u16 {
    if !(AHEAD_MIN..=AHEAD_MAX).contains(&payload_len) {
        return 0;
    }
    let units = payload_len.div_ceil(UNIT);
    let long = usize::from(header_len >= 10);
    u16::try_from(units << 1 | long).unwrap_or(0)
}

/// A read that puts a frame's payload straight into the buffer that becomes its message,
/// from [`Connection::read_ahead`].
///
/// Read with three slices, in this order: the first [`head_len`](Self::head_len) bytes of
/// the caller's read buffer, [`payload`](Self::payload), and the rest of the read buffer
/// (one `readv`); then hand everything to [`Connection::receive_ahead`]. Not reading after
/// all: [`give_back`](Self::give_back).
#[derive(Debug)]
pub struct ReadAhead {
    head: usize,
    /// The payload room, at its full length (bytes to be overwritten by the read).
    buf: Vec<u8>,
}

impl ReadAhead {
    /// Bytes of the header the read should put in the caller's buffer first.
    pub fn head_len(&self) -> usize {
        self.head
    }

    /// Where the read puts the payload. Its current bytes are stale and never read: only
    /// what the read writes is kept.
    pub fn payload(&mut self) -> &mut [u8] {
        &mut self.buf
    }

    /// Total room of the three slices for a read buffer of `buf_len` bytes: a read that
    /// returns less took everything the socket held.
    pub fn capacity(&self, buf_len: usize) -> usize {
        buf_len.saturating_add(self.buf.len())
    }

    /// Returns the unused buffer to `scratch` (the read failed or was not made).
    pub fn give_back(self, scratch: &mut Scratch) {
        scratch.recycle(self.buf);
    }
}

impl Connection {
    /// A [`ReadAhead`] for the next read, when the last read ended exactly at the end of a
    /// large (16 KiB to 256 KiB) unfragmented, uncompressed text or binary frame and
    /// `scratch` keeps a buffer of that size; `None` otherwise, and then read as usual and
    /// call [`receive`](Self::receive).
    ///
    /// The buffer is one given back to `scratch` with [`Scratch::recycle`]: in an echo or a
    /// relay, the one the previous message of that size went out in. It is not zeroed
    /// again. Without one there is no read ahead, since zeroing a new buffer would cost a pass
    /// over memory, about what the read ahead saves.
    ///
    /// # Example
    /// ```
    /// use std::time::Instant;
    /// use wss_proto::{Config, Connection, Event, Message, Role, Scratch};
    ///
    /// let mut scratch = Scratch::new();
    /// let now = Instant::now();
    /// let mut server = Connection::new(Role::Server, Config::default(), now);
    /// // A masked binary frame of 20 000 bytes (mask key 0, so the bytes stay as sent).
    /// let frame = |byte: u8| {
    ///     let mut f = vec![0x82, 0xfe, 0x4e, 0x20, 0, 0, 0, 0];
    ///     f.resize(8 + 20_000, byte);
    ///     f
    /// };
    /// server.receive(&mut scratch, now, &frame(1));
    /// let Some(Event::Message(first)) = server.poll_event(&mut scratch) else { panic!() };
    /// scratch.recycle(first.into_bytes()); // as an echo does once it has written it
    ///
    /// // The read ended with a large frame, and a buffer of its size is kept: the next one
    /// // is read straight into that buffer.
    /// let mut ahead = server.read_ahead(&mut scratch).expect("a guess");
    /// let mut read_buf = vec![0u8; 4096];
    /// let (head, rest) = read_buf.split_at_mut(ahead.head_len());
    /// // What a readv would do with the next frame:
    /// let wire = frame(2);
    /// let (h, p) = wire.split_at(head.len());
    /// head.copy_from_slice(h);
    /// ahead.payload()[..p.len()].copy_from_slice(p);
    /// let n = wire.len();
    /// server.receive_ahead(&mut scratch, now, ahead, n, head, rest);
    /// let Some(Event::Message(Message::Binary(payload))) = server.poll_event(&mut scratch) else {
    ///     panic!()
    /// };
    /// assert_eq!(payload, vec![2u8; 20_000]);
    /// ```
    pub fn read_ahead(&mut self, scratch: &mut Scratch) -> Option<ReadAhead> {
        if self.ahead == 0 || self.state == State::Closed || !self.decoder.is_idle() {
            return None;
        }
        // The last frame's payload was at most `room` bytes and more than `room - UNIT`: a
        // kept buffer that held one (an echo's) has at least that capacity.
        let room = usize::from(self.ahead >> 1) * UNIT;
        let ext = if self.ahead & 1 == 1 { 8 } else { 2 };
        let mask = if self.role == super::Role::Server {
            4
        } else {
            0
        };
        let head = 2 + ext + mask;
        debug_assert!(head <= FrameHeader::MAX_SIZE);
        Some(ReadAhead {
            head,
            buf: scratch.buffers.take_filled(room - (UNIT - 1), room)?,
        })
    }

    /// Decodes a read made with `ahead`: `n` bytes arrived, the first
    /// [`head_len`](ReadAhead::head_len) of them in `head`, the next in the payload slice,
    /// the rest in `rest` (as `readv` fills its slices). Same events, same replies, same
    /// errors as [`receive`](Self::receive) of those bytes in one slice.
    ///
    /// Returns whether the guess was right: the payload was unmasked where the read put it
    /// (and became the message, or the start of it). `false`: decoded the ordinary way.
    ///
    /// # Panics
    /// Never; a `head` shorter than `head_len` or an `n` larger than the three slices hold
    /// is read as what the slices do hold.
    pub fn receive_ahead(
        &mut self,
        scratch: &mut Scratch,
        now: Instant,
        ahead: ReadAhead,
        n: usize,
        head: &[u8],
        rest: &[u8],
    ) -> bool {
        let ReadAhead {
            head: head_len,
            buf,
        } = ahead;
        // Guessed again if this read ends with the frame guessed.
        self.ahead = 0;
        let head_got = n.min(head_len).min(head.len());
        let landed = (n - head_got).min(buf.len());
        let rest_got = (n - head_got - landed).min(rest.len());
        let head = head.get(..head_got).unwrap_or_default();
        let rest = rest.get(..rest_got).unwrap_or_default();
        let mut buf = buf;
        buf.truncate(landed);
        if head_got == head_len && landed > 0 && self.state != State::Closed {
            match self.take_ahead(scratch, now, head, buf) {
                Ok(tail) => {
                    let (tail, tail_len) = tail;
                    if self.state == State::Closed {
                        self.input_after_close |= tail_len > 0 || !rest.is_empty();
                        self.start_reply_wait(now);
                        return true;
                    }
                    self.receive(scratch, now, tail.get(..tail_len).unwrap_or_default());
                    self.receive(scratch, now, rest);
                    return true;
                }
                Err(back) => buf = back,
            }
        }
        // Not the frame guessed: the bytes, in order, the ordinary way.
        self.receive(scratch, now, head);
        self.receive(scratch, now, &buf);
        scratch.recycle(buf);
        self.receive(scratch, now, rest);
        false
    }

    /// Takes the frame whose header is `head` and whose payload starts in `buf` when it is the
    /// kind guessed: its message delivered, or its frame continued. Returns the bytes read
    /// past the payload into `buf` (at most [`TAIL_MAX`]), or `buf` untouched when the
    /// frame is not one to take here.
    fn take_ahead(
        &mut self,
        scratch: &mut Scratch,
        now: Instant,
        head: &[u8],
        mut buf: Vec<u8>,
    ) -> Result<([u8; TAIL_MAX], usize), Vec<u8>> {
        let Some((kind, len, mask)) = self.decoder.ahead_frame(head, self.limits::<Owned>()) else {
            return Err(buf);
        };
        let mut tail = [0u8; TAIL_MAX];
        let extra = buf.len().saturating_sub(len);
        if extra > TAIL_MAX {
            return Err(buf);
        }
        if let (Some(dst), Some(src)) = (tail.get_mut(..extra), buf.get(len..)) {
            dst.copy_from_slice(src);
        }
        buf.truncate(len);
        self.note_received(now);
        if let Some(key) = mask {
            apply_mask(&mut buf, key);
        }
        let landed = buf.len();
        let message = MessageBuf::received(kind, buf);
        if landed < len {
            // The rest of the frame comes in later reads, the ordinary way.
            if message.failed() {
                self.fail_in(
                    scratch,
                    &mut Owned { input: &[] },
                    ProtocolError::InvalidUtf8,
                );
            } else {
                self.decoder
                    .continue_ahead(scratch, message, mask, len - landed);
            }
            return Ok((tail, extra));
        }
        match message.into_message() {
            Ok(message) => {
                self.events.push(scratch, Event::Message(message));
                if extra == 0 {
                    self.ahead = guess(len, head.len());
                }
            }
            Err(_) => self.fail_in(
                scratch,
                &mut Owned { input: &[] },
                ProtocolError::InvalidUtf8,
            ),
        }
        Ok((tail, extra))
    }
}

#[cfg(test)]
mod tests {
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
}
