//! The receive side: bytes in any split, out come whole messages and control frames.
//!
//! Nothing received is buffered twice. A partial header waits in a 14-byte array; payload
//! bytes go straight from the caller's input into the message (or control) buffer,
//! unmasked on the way. The frame and message limits are checked on the header, before a
//! single payload byte is stored, and a buffer only grows with the bytes that actually
//! arrived: a peer announcing 16 MiB and sending slowly pins only what it sent.
//!
//! A compressed message (permessage-deflate, RSV1 on its first frame) is inflated as its
//! bytes arrive, unmasked a few KiB at a time on the stack: only the inflated message is
//! stored, and inflating stops one byte past `max_message`.

use crate::connection::Role;
#[cfg(feature = "deflate")]
use crate::deflate::Inflater;
use crate::error::ProtocolError;
use crate::frame::{FrameHeader, Opcode, RSV1};
use crate::mask::extend_masked;
use crate::message::Message;
use crate::utf8::Utf8Validator;

/// One complete thing read from the peer.
#[derive(Debug)]
pub(crate) enum Incoming {
    Message(Message),
    /// Close, ping or pong with its unmasked payload (at most 125 bytes).
    Control(Opcode, Vec<u8>),
}

/// The frame whose payload is arriving.
#[derive(Debug)]
struct Frame {
    opcode: Opcode,
    fin: bool,
    mask: Option<[u8; 4]>,
    /// Payload bytes still to come.
    remaining: u64,
    /// Payload bytes already read: the mask phase.
    done: usize,
}

/// A data message whose frames are arriving.
#[derive(Debug)]
struct Partial {
    text: bool,
    /// RSV1 was set on the first frame: `buf` holds the inflated bytes.
    compressed: bool,
    buf: Vec<u8>,
    utf8: Utf8Validator,
}

#[derive(Debug)]
pub(crate) struct Decoder {
    role: Role,
    allowed_rsv: u8,
    max_frame: usize,
    max_message: usize,
    header: [u8; FrameHeader::MAX_SIZE],
    header_len: usize,
    frame: Option<Frame>,
    message: Option<Partial>,
    control: Vec<u8>,
    /// Present once permessage-deflate was negotiated: RSV1 then marks compressed messages.
    #[cfg(feature = "deflate")]
    inflater: Option<Inflater>,
}

/// Compressed input is unmasked into a stack buffer of this size before inflating.
#[cfg(feature = "deflate")]
const UNMASK_PIECE: usize = 4096;

/// Appends `src`, unmasking it when the frame is masked.
fn copy_payload(dst: &mut Vec<u8>, src: &[u8], mask: Option<[u8; 4]>, done: usize) {
    match mask {
        Some(key) => extend_masked(dst, src, key, done),
        None => dst.extend_from_slice(src),
    }
}

/// Makes room for `take` more bytes of a frame that has `remaining` bytes left (`take`
/// included). Capacity doubles, as `Vec` would, but never past the end of the frame: a
/// message whose last frame has arrived holds no slack, and a slow sender pins at most
/// about twice what it actually sent.
fn grow(buf: &mut Vec<u8>, take: usize, remaining: u64) {
    let need = buf.len().saturating_add(take);
    if buf.capacity() >= need {
        return;
    }
    let frame_end = usize::try_from(remaining).map_or(usize::MAX, |r| buf.len().saturating_add(r));
    let target = buf.capacity().saturating_mul(2).min(frame_end).max(need);
    buf.reserve_exact(target - buf.len());
}

fn into_message(text: bool, buf: Vec<u8>) -> Result<Message, ProtocolError> {
    if text {
        String::from_utf8(buf)
            .map(Message::Text)
            .map_err(|_| ProtocolError::InvalidUtf8)
    } else {
        Ok(Message::Binary(buf))
    }
}

impl Decoder {
    pub(crate) fn new(role: Role, allowed_rsv: u8, max_frame: usize, max_message: usize) -> Self {
        Decoder {
            role,
            allowed_rsv,
            max_frame,
            max_message,
            header: [0; FrameHeader::MAX_SIZE],
            header_len: 0,
            frame: None,
            message: None,
            control: Vec::new(),
            #[cfg(feature = "deflate")]
            inflater: None,
        }
    }

    /// permessage-deflate was negotiated: RSV1 on a first frame means compressed, inflated
    /// with a window of 2^`bits` bytes, reset after each message when `reset_each`.
    #[cfg(feature = "deflate")]
    pub(crate) fn enable_inflate(&mut self, bits: u8, reset_each: bool) {
        self.inflater = Some(Inflater::new(bits, reset_each));
    }

    fn deflate_on(&self) -> bool {
        #[cfg(feature = "deflate")]
        return self.inflater.is_some();
        #[cfg(not(feature = "deflate"))]
        return false;
    }

    /// Reads from `input` until one item completes, an error occurs, or `input` is used up.
    /// Returns the bytes consumed. After an error the decoder must not be used again.
    pub(crate) fn step(
        &mut self,
        input: &[u8],
    ) -> (usize, Option<Result<Incoming, ProtocolError>>) {
        if self.frame.is_some() {
            return self.read_payload(input);
        }
        let (used, header) = match self.read_header(input) {
            Ok(Some(found)) => found,
            Ok(None) => return (input.len(), None),
            Err(e) => return (input.len(), Some(Err(e))),
        };
        if let Err(e) = self.check(&header) {
            return (used, Some(Err(e)));
        }
        let rest = input.get(used..).unwrap_or(&[]);
        // Fast path: a whole unfragmented message already in the input is copied once,
        // into an allocation of exactly its size.
        let compressed = header.rsv & RSV1 != 0 && self.deflate_on();
        if header.fin && !compressed && matches!(header.opcode, Opcode::Text | Opcode::Binary) {
            if let Some(payload) = usize::try_from(header.payload_len)
                .ok()
                .and_then(|len| rest.get(..len))
            {
                let mut buf = Vec::with_capacity(payload.len());
                copy_payload(&mut buf, payload, header.mask, 0);
                let msg = into_message(header.opcode == Opcode::Text, buf);
                return (used + payload.len(), Some(msg.map(Incoming::Message)));
            }
        }
        if let Opcode::Text | Opcode::Binary = header.opcode {
            self.message = Some(Partial {
                text: header.opcode == Opcode::Text,
                compressed,
                buf: Vec::new(),
                utf8: Utf8Validator::new(),
            });
        }
        self.frame = Some(Frame {
            opcode: header.opcode,
            fin: header.fin,
            mask: header.mask,
            remaining: header.payload_len,
            done: 0,
        });
        let (more, item) = self.read_payload(rest);
        (used + more, item)
    }

    /// Gathers a header, possibly across calls. Returns the bytes of `input` it used.
    fn read_header(&mut self, input: &[u8]) -> Result<Option<(usize, FrameHeader)>, ProtocolError> {
        if self.header_len == 0 {
            match FrameHeader::parse(input)? {
                Some((header, len)) => return Ok(Some((len, header))),
                None => {
                    // Incomplete, so shorter than a maximal header.
                    let n = input.len().min(FrameHeader::MAX_SIZE);
                    self.header[..n].copy_from_slice(&input[..n]);
                    self.header_len = n;
                    return Ok(None);
                }
            }
        }
        let had = self.header_len;
        let take = (FrameHeader::MAX_SIZE - had).min(input.len());
        self.header[had..had + take].copy_from_slice(&input[..take]);
        self.header_len = had + take;
        match FrameHeader::parse(&self.header[..self.header_len])? {
            Some((header, len)) => {
                self.header_len = 0;
                Ok(Some((len.saturating_sub(had), header)))
            }
            None => Ok(None),
        }
    }

    /// The rules that depend on the connection rather than on the header alone.
    fn check(&self, h: &FrameHeader) -> Result<(), ProtocolError> {
        let deflate = self.deflate_on();
        let allowed = if deflate {
            self.allowed_rsv | RSV1
        } else {
            self.allowed_rsv
        };
        if h.rsv & !allowed != 0 {
            return Err(ProtocolError::NonZeroReservedBits);
        }
        if deflate && h.rsv & RSV1 != 0 && !matches!(h.opcode, Opcode::Text | Opcode::Binary) {
            return Err(ProtocolError::MisplacedCompressionBit);
        }
        match (self.role, h.mask.is_some()) {
            (Role::Server, false) => return Err(ProtocolError::UnmaskedFrameFromClient),
            (Role::Client, true) => return Err(ProtocolError::MaskedFrameFromServer),
            _ => {}
        }
        let so_far = match (h.opcode, &self.message) {
            (Opcode::Continuation, None) => return Err(ProtocolError::UnexpectedContinuation),
            (Opcode::Text | Opcode::Binary, Some(_)) => {
                return Err(ProtocolError::ExpectedContinuation)
            }
            // A compressed message is limited on its inflated size, while inflating.
            (Opcode::Continuation, Some(partial)) if partial.compressed => 0,
            (Opcode::Continuation, Some(partial)) => partial.buf.len() as u64,
            (Opcode::Text | Opcode::Binary, None) => 0,
            _ => return Ok(()),
        };
        if h.payload_len > self.max_frame as u64 {
            return Err(ProtocolError::FrameTooBig {
                len: h.payload_len,
                max: self.max_frame,
            });
        }
        let total = so_far.saturating_add(h.payload_len);
        if total > self.max_message as u64 {
            return Err(ProtocolError::MessageTooBig {
                len: total,
                max: self.max_message,
            });
        }
        Ok(())
    }

    /// Moves payload bytes of the current frame from `input` into their buffer.
    fn read_payload(&mut self, input: &[u8]) -> (usize, Option<Result<Incoming, ProtocolError>>) {
        let Some(frame) = self.frame.as_mut() else {
            return (0, None);
        };
        let take = usize::try_from(frame.remaining)
            .unwrap_or(usize::MAX)
            .min(input.len());
        let chunk = &input[..take];
        if frame.opcode.is_control() {
            copy_payload(&mut self.control, chunk, frame.mask, frame.done);
        } else if let Some(partial) = self.message.as_mut().filter(|p| p.compressed) {
            #[cfg(feature = "deflate")]
            if let Some(inflater) = self.inflater.as_mut() {
                if let Err(e) = inflate_piece(inflater, partial, chunk, frame, self.max_message) {
                    return (take, Some(Err(e)));
                }
            }
            #[cfg(not(feature = "deflate"))]
            let _ = partial;
        } else if let Some(partial) = self.message.as_mut() {
            let start = partial.buf.len();
            grow(&mut partial.buf, take, frame.remaining);
            copy_payload(&mut partial.buf, chunk, frame.mask, frame.done);
            // Validate as the bytes arrive so a bad text fails on its first bad byte,
            // even inside a frame whose end has not arrived yet.
            if partial.text {
                let fresh = partial.buf.get(start..).unwrap_or(&[]);
                if partial.utf8.feed(fresh).is_err() {
                    return (take, Some(Err(ProtocolError::InvalidUtf8)));
                }
            }
        }
        frame.remaining -= take as u64;
        frame.done = frame.done.wrapping_add(take);
        if frame.remaining > 0 {
            return (take, None);
        }
        (take, self.end_frame())
    }

    fn end_frame(&mut self) -> Option<Result<Incoming, ProtocolError>> {
        let frame = self.frame.take()?;
        if frame.opcode.is_control() {
            let payload = std::mem::take(&mut self.control);
            return Some(Ok(Incoming::Control(frame.opcode, payload)));
        }
        if !frame.fin {
            return None;
        }
        let mut partial = self.message.take()?;
        #[cfg(feature = "deflate")]
        if partial.compressed {
            if let Some(inflater) = self.inflater.as_mut() {
                let utf8 = partial.text.then_some(&mut partial.utf8);
                if let Err(e) = inflater.finish(&mut partial.buf, self.max_message, utf8) {
                    return Some(Err(e));
                }
            }
        }
        if partial.text && partial.utf8.finish().is_err() {
            return Some(Err(ProtocolError::InvalidUtf8));
        }
        Some(into_message(partial.text, partial.buf).map(Incoming::Message))
    }
}

/// Inflates one received piece of a compressed frame, unmasking it on the stack first.
#[cfg(feature = "deflate")]
fn inflate_piece(
    inflater: &mut Inflater,
    partial: &mut Partial,
    chunk: &[u8],
    frame: &Frame,
    max: usize,
) -> Result<(), ProtocolError> {
    let Some(key) = frame.mask else {
        let utf8 = partial.text.then_some(&mut partial.utf8);
        return inflater.inflate(chunk, &mut partial.buf, max, utf8);
    };
    let mut piece = [0u8; UNMASK_PIECE];
    let mut offset = frame.done;
    for src in chunk.chunks(UNMASK_PIECE) {
        let buf = piece.get_mut(..src.len()).unwrap_or_default();
        buf.copy_from_slice(src);
        crate::mask::apply_mask_offset(buf, key, offset);
        offset = offset.wrapping_add(src.len());
        let utf8 = partial.text.then_some(&mut partial.utf8);
        inflater.inflate(buf, &mut partial.buf, max, utf8)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::encode_frame;

    #[test]
    fn slow_huge_frame_holds_only_what_arrived() {
        let mut d = Decoder::new(Role::Server, 0, 16 << 20, 16 << 20);
        let mut bytes = Vec::new();
        FrameHeader {
            fin: true,
            rsv: 0,
            opcode: Opcode::Binary,
            mask: Some([1, 2, 3, 4]),
            payload_len: (16 << 20) - 1,
        }
        .encode(&mut bytes);
        bytes.extend_from_slice(&[0u8; 100]);
        let (used, item) = d.step(&bytes);
        assert_eq!(used, bytes.len());
        assert!(item.is_none());
        let held = d.message.as_ref().map_or(0, |m| m.buf.capacity());
        assert!(held < 4096, "holds {held} bytes for 100 received");
    }

    #[test]
    fn growth_doubles_but_stops_at_the_end_of_the_frame() {
        let mut buf = Vec::new();
        grow(&mut buf, 100, 1000);
        assert_eq!(buf.capacity(), 100, "first piece: exactly what arrived");
        buf.resize(100, 0);
        grow(&mut buf, 50, 900);
        assert_eq!(buf.capacity(), 200, "doubles");
        buf.resize(200, 0);
        grow(&mut buf, 10, 10);
        assert_eq!(buf.capacity(), 210, "never past the frame end");
    }

    #[test]
    fn step_stops_after_each_complete_item() {
        let mut d = Decoder::new(Role::Client, 0, 1 << 20, 1 << 20);
        let mut bytes = Vec::new();
        encode_frame(&mut bytes, true, Opcode::Text, b"ab", None);
        encode_frame(&mut bytes, true, Opcode::Ping, b"c", None);
        let (used, item) = d.step(&bytes);
        assert_eq!(used, 4);
        assert!(matches!(item, Some(Ok(Incoming::Message(Message::Text(ref t)))) if t == "ab"));
        let (used, item) = d.step(&bytes[4..]);
        assert_eq!(used, 3);
        assert!(matches!(item, Some(Ok(Incoming::Control(Opcode::Ping, ref p))) if p == b"c"));
    }
}
