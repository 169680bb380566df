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
    pub fn read_ahead(&self, scratch: &mut Scratch) -> Option<ReadAhead> {
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
mod tests;
