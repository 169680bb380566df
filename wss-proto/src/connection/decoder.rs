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
use crate::frame::MAX_CONTROL_PAYLOAD;
use crate::frame::{FrameHeader, Opcode, RSV1};
use crate::mask::extend_masked;
use crate::message::Message;
use crate::text::{self, Kind, MessageBuf};
#[cfg(feature = "deflate")]
use crate::utf8::Utf8Validator;

/// One complete thing read from the peer, or the rule it broke.
///
/// What lies whole in the input passed to the step is not copied here: the item says where it
/// is (`at..at + len` of that input, still masked), and the caller either copies it out
/// (owned receive) or unmasks it where it lies (borrowed receive).
#[derive(Debug)]
pub(crate) enum Item {
    /// An unfragmented data message, whole in the input.
    Whole {
        kind: Kind,
        at: usize,
        len: usize,
        mask: Option<[u8; 4]>,
    },
    /// A data message gathered across frames or inputs, unmasked (and inflated).
    Message(Message),
    /// Close, ping or pong, whole in the input (at most 125 bytes).
    Control {
        opcode: Opcode,
        at: usize,
        len: usize,
        mask: Option<[u8; 4]>,
    },
    /// Close, ping or pong gathered across inputs: its unmasked payload is in
    /// [`Decoder::take_control`].
    ControlBuffered(Opcode),
    Failed(ProtocolError),
}

/// The limits a decoder enforces, copied out of the connection's shared `Config` once per
/// `receive`, and how the caller wants its buffers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) role: Role,
    pub(crate) allowed_rsv: u8,
    pub(crate) max_frame: usize,
    pub(crate) max_message: usize,
    /// The caller hands reassembled messages back (borrowed receive): start them in this
    /// thread's spare buffer instead of a new allocation.
    pub(crate) recycle: bool,
}

/// The frame whose payload is arriving.
#[derive(Debug)]
struct Frame {
    opcode: Opcode,
    fin: bool,
    /// Payload bytes already read, modulo 4: the mask phase.
    phase: u8,
    mask: Option<[u8; 4]>,
    /// Payload bytes still to come.
    remaining: u64,
}

/// A data message whose frames are arriving.
#[derive(Debug)]
enum Assembling {
    Plain(MessageBuf),
    /// RSV1 was set on the first frame: the buffer holds the inflated bytes. Boxed: rare, and
    /// it would make every connection larger.
    #[cfg(feature = "deflate")]
    Inflating(Box<Inflating>),
}

#[cfg(feature = "deflate")]
#[derive(Debug)]
struct Inflating {
    text: bool,
    buf: Vec<u8>,
    utf8: Utf8Validator,
}

#[derive(Debug, Default)]
pub(crate) struct Decoder {
    frame: Option<Frame>,
    message: Option<Assembling>,
    control: Vec<u8>,
    header: [u8; FrameHeader::MAX_SIZE],
    header_len: u8,
    /// Present once permessage-deflate was negotiated: RSV1 then marks compressed messages.
    #[cfg(feature = "deflate")]
    inflater: Option<Box<Inflater>>,
}

/// Compressed input is unmasked into a stack buffer of this size before inflating.
#[cfg(feature = "deflate")]
const UNMASK_PIECE: usize = 4096;

/// Appends `src`, unmasking it when the frame is masked.
fn copy_payload(dst: &mut Vec<u8>, src: &[u8], mask: Option<[u8; 4]>, phase: u8) {
    match mask {
        Some(key) => extend_masked(dst, src, key, usize::from(phase)),
        None => dst.extend_from_slice(src),
    }
}

fn kind_of(opcode: Opcode) -> Kind {
    if opcode == Opcode::Text {
        Kind::Text
    } else {
        Kind::Binary
    }
}

fn finish(buf: MessageBuf) -> Item {
    match buf.into_message() {
        Ok(message) => Item::Message(message),
        Err(_) => Item::Failed(ProtocolError::InvalidUtf8),
    }
}

impl Decoder {
    /// permessage-deflate was negotiated: RSV1 on a first frame means compressed, inflated
    /// with a window of 2^`bits` bytes, reset after each message when `reset_each`.
    #[cfg(feature = "deflate")]
    pub(crate) fn enable_inflate(&mut self, bits: u8, reset_each: bool) {
        self.inflater = Some(Box::new(Inflater::new(bits, reset_each)));
    }

    fn deflate_on(&self) -> bool {
        #[cfg(feature = "deflate")]
        return self.inflater.is_some();
        #[cfg(not(feature = "deflate"))]
        return false;
    }

    /// The common case, decided from the first bytes without building a header: `input`
    /// starts with a whole text or binary frame with FIN, no RSV bit, masked as the role
    /// wants, with a 7- or 16-bit length within the limits, and no message is in progress.
    /// Returns the bytes used and the message; `None` leaves everything (every error
    /// included) to [`step`](Self::step).
    #[inline]
    pub(crate) fn whole_message(&mut self, input: &[u8], limits: Limits) -> Option<(usize, Item)> {
        if self.frame.is_some() || self.header_len != 0 || self.message.is_some() {
            return None;
        }
        let kind = match *input.first()? {
            0x81 => Kind::Text,
            0x82 => Kind::Binary,
            _ => return None,
        };
        let b1 = *input.get(1)?;
        let masked = b1 & 0x80 != 0;
        if masked != (limits.role == Role::Server) {
            return None;
        }
        let (len, mut at) = match b1 & 0x7f {
            126 => {
                let ext = input.get(2..4)?;
                (usize::from(u16::from_be_bytes([ext[0], ext[1]])), 4)
            }
            127 => return None,
            n => (usize::from(n), 2),
        };
        if len > limits.max_frame || len > limits.max_message {
            return None;
        }
        let mask = if masked {
            let key = input.get(at..at + 4)?;
            at += 4;
            Some([key[0], key[1], key[2], key[3]])
        } else {
            None
        };
        let end = at + len;
        if input.len() < end {
            return None;
        }
        Some((
            end,
            Item::Whole {
                kind,
                at,
                len,
                mask,
            },
        ))
    }

    /// Reads from `input` until one item completes, an error occurs, or `input` is used up.
    /// Returns the bytes consumed. After an error the decoder must not be used again.
    #[inline]
    pub(crate) fn step(&mut self, input: &[u8], limits: Limits) -> (usize, Option<Item>) {
        if self.frame.is_some() {
            return self.read_payload(input, limits);
        }
        let (used, header) = match self.read_header(input) {
            Ok(Some(found)) => found,
            Ok(None) => return (input.len(), None),
            Err(e) => return (input.len(), Some(Item::Failed(e))),
        };
        if let Err(e) = self.check(&header, limits) {
            return (used, Some(Item::Failed(e)));
        }
        let rest = input.get(used..).unwrap_or_default();
        let data = matches!(header.opcode, Opcode::Text | Opcode::Binary);
        let compressed = header.rsv & RSV1 != 0 && self.deflate_on();
        // A whole unfragmented message or control frame already in the input is left where
        // it is for the caller (`whole_message` takes the usual shapes of a data frame
        // before the header is even built; this takes the rest).
        let whole_len = usize::try_from(header.payload_len)
            .ok()
            .filter(|&len| len <= rest.len());
        if let Some(len) = whole_len {
            let (at, mask) = (used, header.mask);
            if header.opcode.is_control() {
                let opcode = header.opcode;
                return (
                    at + len,
                    Some(Item::Control {
                        opcode,
                        at,
                        len,
                        mask,
                    }),
                );
            }
            if header.fin && data && !compressed {
                let kind = kind_of(header.opcode);
                return (
                    at + len,
                    Some(Item::Whole {
                        kind,
                        at,
                        len,
                        mask,
                    }),
                );
            }
        }
        if data {
            self.message = Some(self.start_message(header.opcode, compressed, limits.recycle));
        }
        self.frame = Some(Frame {
            opcode: header.opcode,
            fin: header.fin,
            phase: 0,
            mask: header.mask,
            remaining: header.payload_len,
        });
        let (more, item) = self.read_payload(rest, limits);
        (used + more, item)
    }

    fn start_message(&self, opcode: Opcode, compressed: bool, recycle: bool) -> Assembling {
        let buf = if recycle {
            text::take_spare()
        } else {
            Vec::new()
        };
        #[cfg(feature = "deflate")]
        if compressed {
            return Assembling::Inflating(Box::new(Inflating {
                text: opcode == Opcode::Text,
                buf,
                utf8: Utf8Validator::new(),
            }));
        }
        let _ = compressed;
        Assembling::Plain(MessageBuf::reusing(kind_of(opcode), buf))
    }

    /// The unmasked payload of the control frame just reported as
    /// [`Item::ControlBuffered`], copied out so that the decoder keeps no buffer.
    pub(crate) fn take_control(&mut self) -> ([u8; MAX_CONTROL_PAYLOAD], usize) {
        let mut payload = [0u8; MAX_CONTROL_PAYLOAD];
        let len = self.control.len().min(MAX_CONTROL_PAYLOAD);
        payload[..len].copy_from_slice(&self.control[..len]);
        self.control = Vec::new();
        (payload, len)
    }

    /// Gathers a header, possibly across calls. Returns the bytes of `input` it used.
    fn read_header(&mut self, input: &[u8]) -> Result<Option<(usize, FrameHeader)>, ProtocolError> {
        if self.header_len == 0 {
            return match FrameHeader::parse(input)? {
                Some((header, len)) => Ok(Some((len, header))),
                None => {
                    // Incomplete, so shorter than a maximal header.
                    let n = input.len().min(FrameHeader::MAX_SIZE);
                    self.header[..n].copy_from_slice(&input[..n]);
                    self.header_len = n as u8;
                    Ok(None)
                }
            };
        }
        let had = usize::from(self.header_len);
        let take = (FrameHeader::MAX_SIZE - had).min(input.len());
        self.header[had..had + take].copy_from_slice(&input[..take]);
        let have = had + take;
        self.header_len = have as u8;
        match FrameHeader::parse(&self.header[..have])? {
            Some((header, len)) => {
                self.header_len = 0;
                Ok(Some((len.saturating_sub(had), header)))
            }
            None => Ok(None),
        }
    }

    /// The rules that depend on the connection rather than on the header alone.
    fn check(&self, h: &FrameHeader, limits: Limits) -> Result<(), ProtocolError> {
        let deflate = self.deflate_on();
        let allowed = if deflate {
            limits.allowed_rsv | RSV1
        } else {
            limits.allowed_rsv
        };
        if h.rsv & !allowed != 0 {
            return Err(ProtocolError::NonZeroReservedBits);
        }
        if deflate && h.rsv & RSV1 != 0 && !matches!(h.opcode, Opcode::Text | Opcode::Binary) {
            return Err(ProtocolError::MisplacedCompressionBit);
        }
        match (limits.role, h.mask.is_some()) {
            (Role::Server, false) => return Err(ProtocolError::UnmaskedFrameFromClient),
            (Role::Client, true) => return Err(ProtocolError::MaskedFrameFromServer),
            _ => {}
        }
        let so_far = match (h.opcode, &self.message) {
            (Opcode::Continuation, None) => return Err(ProtocolError::UnexpectedContinuation),
            (Opcode::Text | Opcode::Binary, Some(_)) => {
                return Err(ProtocolError::ExpectedContinuation)
            }
            (Opcode::Continuation, Some(Assembling::Plain(buf))) => buf.len() as u64,
            // A compressed message is limited on its inflated size, while inflating.
            #[cfg(feature = "deflate")]
            (Opcode::Continuation, Some(Assembling::Inflating(_))) => 0,
            (Opcode::Text | Opcode::Binary, None) => 0,
            _ => return Ok(()),
        };
        if h.payload_len > limits.max_frame as u64 {
            return Err(ProtocolError::FrameTooBig {
                len: h.payload_len,
                max: limits.max_frame,
            });
        }
        let total = so_far.saturating_add(h.payload_len);
        if total > limits.max_message as u64 {
            return Err(ProtocolError::MessageTooBig {
                len: total,
                max: limits.max_message,
            });
        }
        Ok(())
    }

    /// Moves payload bytes of the current frame from `input` into their buffer.
    fn read_payload(&mut self, input: &[u8], limits: Limits) -> (usize, Option<Item>) {
        let Some(frame) = self.frame.as_mut() else {
            return (0, None);
        };
        let take = usize::try_from(frame.remaining)
            .unwrap_or(usize::MAX)
            .min(input.len());
        let chunk = input.get(..take).unwrap_or_default();
        if frame.opcode.is_control() {
            copy_payload(&mut self.control, chunk, frame.mask, frame.phase);
        } else {
            match self.message.as_mut() {
                Some(Assembling::Plain(buf)) => {
                    buf.grow_for(take, frame.remaining);
                    // Validated as the bytes arrive so a bad text fails on its first bad
                    // byte, even inside a frame whose end has not arrived yet.
                    if buf
                        .append(chunk, frame.mask, usize::from(frame.phase))
                        .is_err()
                    {
                        return (take, Some(Item::Failed(ProtocolError::InvalidUtf8)));
                    }
                }
                #[cfg(feature = "deflate")]
                Some(Assembling::Inflating(partial)) => {
                    if let Some(inflater) = self.inflater.as_mut() {
                        let max = limits.max_message;
                        if let Err(e) = inflate_piece(inflater, partial, chunk, frame, max) {
                            return (take, Some(Item::Failed(e)));
                        }
                    }
                }
                None => {}
            }
        }
        let _ = limits;
        frame.remaining -= take as u64;
        frame.phase = ((usize::from(frame.phase) + take) & 3) as u8;
        if frame.remaining > 0 {
            return (take, None);
        }
        (take, self.end_frame(limits))
    }

    fn end_frame(&mut self, limits: Limits) -> Option<Item> {
        let frame = self.frame.take()?;
        if frame.opcode.is_control() {
            return Some(Item::ControlBuffered(frame.opcode));
        }
        if !frame.fin {
            return None;
        }
        let _ = limits;
        match self.message.take()? {
            Assembling::Plain(buf) => Some(finish(buf)),
            #[cfg(feature = "deflate")]
            Assembling::Inflating(mut partial) => {
                let inflater = self.inflater.as_mut()?;
                let utf8 = partial.text.then_some(&mut partial.utf8);
                if let Err(e) = inflater.finish(&mut partial.buf, limits.max_message, utf8) {
                    return Some(Item::Failed(e));
                }
                let Inflating {
                    text,
                    buf,
                    mut utf8,
                } = *partial;
                if !text {
                    return Some(Item::Message(Message::Binary(buf)));
                }
                let text = utf8
                    .finish()
                    .and_then(|()| crate::text::string_from_utf8(buf));
                Some(match text {
                    Ok(text) => Item::Message(Message::Text(text)),
                    Err(_) => Item::Failed(ProtocolError::InvalidUtf8),
                })
            }
        }
    }
}

/// Inflates one received piece of a compressed frame, unmasking it on the stack first.
#[cfg(feature = "deflate")]
fn inflate_piece(
    inflater: &mut Inflater,
    partial: &mut Inflating,
    chunk: &[u8],
    frame: &Frame,
    max: usize,
) -> Result<(), ProtocolError> {
    let Some(key) = frame.mask else {
        let utf8 = partial.text.then_some(&mut partial.utf8);
        return inflater.inflate(chunk, &mut partial.buf, max, utf8);
    };
    // Compressed messages are mostly small (chat, JSON): zeroing the whole 4 KiB piece for each
    // of them showed up as a fifth of a deflate server's instructions, so small chunks get a
    // small piece.
    let mut small = [0u8; 256];
    let mut large;
    let piece: &mut [u8] = if chunk.len() <= small.len() {
        &mut small
    } else {
        large = [0u8; UNMASK_PIECE];
        &mut large
    };
    let mut offset = usize::from(frame.phase);
    for src in chunk.chunks(piece.len()) {
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

    const SERVER: Limits = Limits {
        role: Role::Server,
        allowed_rsv: 0,
        max_frame: 16 << 20,
        max_message: 16 << 20,
        recycle: false,
    };

    #[test]
    fn slow_huge_frame_holds_only_what_arrived() {
        let mut d = Decoder::default();
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
        let (used, item) = d.step(&bytes, SERVER);
        assert_eq!(used, bytes.len());
        assert!(item.is_none());
        let Some(Assembling::Plain(buf)) = d.message.take() else {
            panic!("a plain message is assembling")
        };
        let Ok(Message::Binary(held)) = buf.into_message() else {
            panic!("binary")
        };
        assert!(
            held.capacity() < 4096,
            "holds {} bytes for 100 received",
            held.capacity()
        );
    }

    #[test]
    fn step_stops_after_each_complete_item() {
        let mut d = Decoder::default();
        let client = Limits {
            role: Role::Client,
            ..SERVER
        };
        let mut bytes = Vec::new();
        encode_frame(&mut bytes, true, Opcode::Text, b"ab", None);
        encode_frame(&mut bytes, true, Opcode::Ping, b"c", None);
        let (used, item) = d.step(&bytes, client);
        assert_eq!(used, 4);
        assert!(matches!(
            item,
            Some(Item::Whole {
                kind: Kind::Text,
                at: 2,
                len: 2,
                mask: None
            })
        ));
        let (used, item) = d.step(&bytes[4..], client);
        assert_eq!(used, 3);
        assert!(matches!(
            item,
            Some(Item::Control {
                opcode: Opcode::Ping,
                at: 2,
                len: 1,
                mask: None
            })
        ));
    }

    #[test]
    fn whole_masked_text_frame_is_one_exact_allocation() {
        let mut d = Decoder::default();
        let text = "héllo ✓".repeat(100);
        let mut bytes = Vec::new();
        encode_frame(
            &mut bytes,
            true,
            Opcode::Text,
            text.as_bytes(),
            Some([5, 6, 7, 8]),
        );
        let (used, item) = d.step(&bytes, SERVER);
        assert_eq!(used, bytes.len());
        let Some(Item::Whole {
            kind,
            at,
            len,
            mask,
        }) = item
        else {
            panic!("a whole message in the input")
        };
        let owned = text::whole_message(kind, &bytes[at..at + len], mask);
        let Ok(Message::Text(got)) = owned else {
            panic!("a text message")
        };
        assert_eq!(got, text);
        assert_eq!(got.capacity(), text.len());
    }
}
