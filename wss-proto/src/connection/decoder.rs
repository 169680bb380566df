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
//!
//! Between frames, which is where an idle connection sits, the decoder is one null pointer:
//! everything that only matters while a header, a frame or a message is part-way across reads
//! lives in a [`Partial`] box that exists only then. Boxes are lent from the caller's
//! [`Scratch`] and given back (cleared) as soon as nothing is partial, so a frame split across
//! reads costs no allocation once the scratch has seen one.

use crate::connection::{Role, Scratch};
#[cfg(feature = "deflate")]
pub(crate) use crate::deflate::{Inflater, Inflaters};
use crate::error::ProtocolError;
use crate::frame::MAX_CONTROL_PAYLOAD;
use crate::frame::{FrameHeader, Opcode, RSV1};
use crate::message::Message;
use crate::text::{Kind, MessageBuf};
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
    /// The caller hands reassembled messages back (borrowed receive): start them in the
    /// scratch's spare buffer instead of a new allocation.
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

/// Without the `deflate` feature no inflater exists: the decoder's `Option<&mut Inflater>`
/// argument is always `None`.
#[cfg(not(feature = "deflate"))]
#[derive(Debug)]
pub(crate) enum Inflater {}

/// Without the `deflate` feature a scratch keeps no inflaters.
#[cfg(not(feature = "deflate"))]
#[derive(Debug, Default)]
pub(crate) struct Inflaters;

/// The receive state of one connection.
///
/// The permessage-deflate inflater is not in here but passed to each call (`None` when
/// compression was not negotiated): the connection keeps it in its rarely used box, so that a
/// decoder is one pointer.
#[derive(Debug, Default)]
pub(crate) struct Decoder {
    /// Present exactly while something is partial; lent from the scratch's [`Partials`].
    partial: Option<Box<Partial>>,
}

/// What is part-way across reads: a header, a frame's payload, a fragmented message, or the
/// payload of a control frame not yet taken.
#[derive(Debug)]
struct Partial {
    frame: Option<Frame>,
    message: Option<Assembling>,
    /// The unmasked payload of a control frame read across calls.
    control: [u8; MAX_CONTROL_PAYLOAD],
    control_len: u8,
    header: [u8; FrameHeader::MAX_SIZE],
    header_len: u8,
}

impl Partial {
    fn new() -> Box<Partial> {
        Box::new(Partial {
            frame: None,
            message: None,
            control: [0; MAX_CONTROL_PAYLOAD],
            control_len: 0,
            header: [0; FrameHeader::MAX_SIZE],
            header_len: 0,
        })
    }

    /// Nothing is part-way: the box can go back to the pool.
    fn is_empty(&self) -> bool {
        self.frame.is_none()
            && self.message.is_none()
            && self.header_len == 0
            && self.control_len == 0
    }

    /// Forgets everything, dropping a message buffer (so a pooled box owns no heap memory and
    /// carries nothing from one connection to the next).
    fn clear(&mut self) {
        self.frame = None;
        self.message = None;
        self.control_len = 0;
        self.header_len = 0;
    }
}

/// Partial boxes a scratch keeps for its connections' next split frame. A cleared box owns
/// nothing but itself (about 250 bytes), so the pool costs at most `POOL_MAX` of those per
/// scratch; it only needs to cover the connections that are mid-frame at once on a thread.
const POOL_MAX: usize = 64;

/// The cleared partial states a [`Scratch`] lends to decoders.
#[derive(Debug, Default)]
pub(crate) struct Partials {
    // Boxes on purpose: a decoder holds its partial state boxed, and lending one moves a
    // pointer.
    #[allow(clippy::vec_box)]
    boxes: Vec<Box<Partial>>,
}

impl Partials {
    /// A cleared partial state: a kept one, or a new one.
    fn lend(&mut self) -> Box<Partial> {
        self.boxes.pop().unwrap_or_else(Partial::new)
    }

    /// Clears `partial` and keeps it, unless the pool is full: then it is freed.
    fn give_back(&mut self, mut partial: Box<Partial>) {
        if self.boxes.len() < POOL_MAX {
            partial.clear();
            self.boxes.push(partial);
        }
    }

    /// Boxes kept.
    pub(crate) fn len(&self) -> usize {
        self.boxes.len()
    }
}

/// Compressed input is unmasked into a stack buffer of this size before inflating.
#[cfg(feature = "deflate")]
const UNMASK_PIECE: usize = 4096;

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
    /// The partial state, lent from the scratch if there was none.
    fn partial(&mut self, scratch: &mut Scratch) -> &mut Partial {
        self.partial.get_or_insert_with(|| scratch.partials.lend())
    }

    /// Gives the partial state back to the scratch once nothing in it is partial any more.
    fn release_if_empty(&mut self, scratch: &mut Scratch) {
        if self.partial.as_ref().is_some_and(|p| p.is_empty()) {
            if let Some(partial) = self.partial.take() {
                scratch.partials.give_back(partial);
            }
        }
    }

    /// Nothing is part-way: the next input starts with a frame header.
    pub(crate) fn is_idle(&self) -> bool {
        self.partial.is_none()
    }

    fn frame_in_progress(&self) -> bool {
        self.partial.as_ref().is_some_and(|p| p.frame.is_some())
    }

    fn message_in_progress(&self) -> Option<&Assembling> {
        self.partial.as_ref()?.message.as_ref()
    }

    /// The common case, decided from the first bytes without building a header: `input`
    /// starts with a whole text or binary frame with FIN, no RSV bit, masked as the role
    /// wants, with a 7- or 16-bit length within the limits, and no message is in progress.
    /// Returns the bytes used and the message; `None` leaves everything (every error
    /// included) to [`step`](Self::step).
    #[inline]
    pub(crate) fn whole_message(&mut self, input: &[u8], limits: Limits) -> Option<(usize, Item)> {
        if self.partial.is_some() {
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
    /// `inflater` is the connection's, when permessage-deflate was negotiated.
    #[inline]
    pub(crate) fn step(
        &mut self,
        scratch: &mut Scratch,
        input: &[u8],
        limits: Limits,
        inflater: Option<&mut Inflater>,
    ) -> (usize, Option<Item>) {
        let stepped = self.step_inner(scratch, input, limits, inflater);
        if self.partial.is_some() {
            self.release_if_empty(scratch);
        }
        stepped
    }

    fn step_inner(
        &mut self,
        scratch: &mut Scratch,
        input: &[u8],
        limits: Limits,
        inflater: Option<&mut Inflater>,
    ) -> (usize, Option<Item>) {
        if self.frame_in_progress() {
            return self.read_payload(&mut scratch.inflaters, input, limits, inflater);
        }
        let (used, header) = match self.read_header(scratch, input) {
            Ok(Some(found)) => found,
            Ok(None) => return (input.len(), None),
            Err(e) => return (input.len(), Some(Item::Failed(e))),
        };
        let deflate_on = inflater.is_some();
        if let Err(e) = self.check(&header, limits, deflate_on) {
            return (used, Some(Item::Failed(e)));
        }
        let rest = input.get(used..).unwrap_or_default();
        let data = matches!(header.opcode, Opcode::Text | Opcode::Binary);
        let compressed = header.rsv & RSV1 != 0 && deflate_on;
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
        let message = data.then(|| {
            // Room for the whole first frame, but never more than twice what arrived of it:
            // a peer that announces a large frame and sends it slowly cannot make the
            // connection hold memory its bytes do not fill.
            let room = usize::try_from(header.payload_len)
                .unwrap_or(usize::MAX)
                .min(rest.len().saturating_mul(2))
                .min(SPLIT_RESERVE_MAX);
            start_message(scratch, header.opcode, compressed, limits.recycle, room)
        });
        let partial = self.partial(scratch);
        if message.is_some() {
            // (A control frame between fragments keeps the message in progress.)
            partial.message = message;
        }
        partial.frame = Some(Frame {
            opcode: header.opcode,
            fin: header.fin,
            phase: 0,
            mask: header.mask,
            remaining: header.payload_len,
        });
        let (more, item) = self.read_payload(&mut scratch.inflaters, rest, limits, inflater);
        (used + more, item)
    }

    /// Whether `head`, exactly one whole header, starts a frame a read straight into a message
    /// buffer can take: an unfragmented, uncompressed text or binary frame, masked as the
    /// role wants, within the limits, with nothing in progress. Its kind, payload length
    /// and mask key. Anything else (errors included) is `None`, for [`step`](Self::step).
    pub(crate) fn ahead_frame(
        &self,
        head: &[u8],
        limits: Limits,
    ) -> Option<(Kind, usize, Option<[u8; 4]>)> {
        if self.partial.is_some() {
            return None;
        }
        let (header, used) = FrameHeader::parse(head).ok()??;
        if used != head.len() || !header.fin || header.rsv != 0 {
            return None;
        }
        let kind = match header.opcode {
            Opcode::Text => Kind::Text,
            Opcode::Binary => Kind::Binary,
            _ => return None,
        };
        if header.mask.is_some() != (limits.role == Role::Server) {
            return None;
        }
        let len = usize::try_from(header.payload_len).ok()?;
        if len > limits.max_frame || len > limits.max_message {
            return None;
        }
        Some((kind, len, header.mask))
    }

    /// Continues the frame [`ahead_frame`](Self::ahead_frame) accepted, whose first
    /// `buf.len()` payload bytes were read (and unmasked) straight into `buf`; `remaining`
    /// more are to come, through [`step`](Self::step).
    pub(crate) fn continue_ahead(
        &mut self,
        scratch: &mut Scratch,
        buf: MessageBuf,
        mask: Option<[u8; 4]>,
        remaining: usize,
    ) {
        let opcode = match buf.kind() {
            Kind::Text => Opcode::Text,
            Kind::Binary => Opcode::Binary,
        };
        let phase = (buf.len() & 3) as u8;
        let partial = self.partial(scratch);
        partial.message = Some(Assembling::Plain(buf));
        partial.frame = Some(Frame {
            opcode,
            fin: true,
            phase,
            mask,
            remaining: remaining as u64,
        });
    }

    /// The unmasked payload of the control frame just reported as
    /// [`Item::ControlBuffered`], copied out so that the decoder keeps no buffer.
    pub(crate) fn take_control(
        &mut self,
        scratch: &mut Scratch,
    ) -> ([u8; MAX_CONTROL_PAYLOAD], usize) {
        let Some(partial) = self.partial.as_mut() else {
            // An empty payload: nothing was kept.
            return ([0u8; MAX_CONTROL_PAYLOAD], 0);
        };
        let payload = partial.control;
        let len = usize::from(partial.control_len);
        partial.control_len = 0;
        self.release_if_empty(scratch);
        (payload, len)
    }

    /// Gathers a header, possibly across calls. Returns the bytes of `input` it used.
    fn read_header(
        &mut self,
        scratch: &mut Scratch,
        input: &[u8],
    ) -> Result<Option<(usize, FrameHeader)>, ProtocolError> {
        let had = self
            .partial
            .as_ref()
            .map_or(0, |p| usize::from(p.header_len));
        if had == 0 {
            return match FrameHeader::parse(input)? {
                Some((header, len)) => Ok(Some((len, header))),
                None => {
                    // Incomplete, so shorter than a maximal header.
                    let n = input.len().min(FrameHeader::MAX_SIZE);
                    let partial = self.partial(scratch);
                    partial.header[..n].copy_from_slice(&input[..n]);
                    partial.header_len = n as u8;
                    Ok(None)
                }
            };
        }
        let partial = self.partial(scratch);
        let take = (FrameHeader::MAX_SIZE - had).min(input.len());
        partial.header[had..had + take].copy_from_slice(&input[..take]);
        let have = had + take;
        partial.header_len = have as u8;
        match FrameHeader::parse(&partial.header[..have])? {
            Some((header, len)) => {
                partial.header_len = 0;
                Ok(Some((len.saturating_sub(had), header)))
            }
            None => Ok(None),
        }
    }

    /// The rules that depend on the connection rather than on the header alone. `deflate`:
    /// permessage-deflate was negotiated.
    fn check(&self, h: &FrameHeader, limits: Limits, deflate: bool) -> Result<(), ProtocolError> {
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
        let so_far = match (h.opcode, self.message_in_progress()) {
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
    fn read_payload(
        &mut self,
        inflaters: &mut Inflaters,
        input: &[u8],
        limits: Limits,
        inflater: Option<&mut Inflater>,
    ) -> (usize, Option<Item>) {
        // Reborrowed for a compressed piece, then passed on to end the frame.
        #[cfg(feature = "deflate")]
        let mut inflater = inflater;
        let Some(partial) = self.partial.as_deref_mut() else {
            return (0, None);
        };
        let Some(frame) = partial.frame.as_mut() else {
            return (0, None);
        };
        let take = usize::try_from(frame.remaining)
            .unwrap_or(usize::MAX)
            .min(input.len());
        let chunk = input.get(..take).unwrap_or_default();
        if frame.opcode.is_control() {
            // The header check bounds a control payload to 125 bytes.
            let have = usize::from(partial.control_len);
            let end = (have + take).min(MAX_CONTROL_PAYLOAD);
            if let Some(dst) = partial.control.get_mut(have..end) {
                let src = chunk.get(..dst.len()).unwrap_or_default();
                dst.copy_from_slice(src);
                if let Some(key) = frame.mask {
                    crate::mask::apply_mask_offset(dst, key, usize::from(frame.phase));
                }
            }
            partial.control_len = end as u8;
        } else {
            match partial.message.as_mut() {
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
                Some(Assembling::Inflating(inflating)) => {
                    if let Some(inflater) = inflater.as_deref_mut() {
                        let max = limits.max_message;
                        let inflaters = &mut *inflaters;
                        let piece =
                            inflate_piece(inflaters, inflater, inflating, chunk, frame, max);
                        if let Err(e) = piece {
                            return (take, Some(Item::Failed(e)));
                        }
                    }
                }
                None => {}
            }
        }
        (take, self.frame_read(inflaters, take, limits, inflater))
    }

    /// `take` more payload bytes of the current frame were stored: ends the frame (and the
    /// message) when they were its last.
    fn frame_read(
        &mut self,
        inflaters: &mut Inflaters,
        take: usize,
        limits: Limits,
        inflater: Option<&mut Inflater>,
    ) -> Option<Item> {
        let frame = self.partial.as_mut()?.frame.as_mut()?;
        frame.remaining -= take as u64;
        frame.phase = ((usize::from(frame.phase) + take) & 3) as u8;
        if frame.remaining > 0 {
            return None;
        }
        self.end_frame(inflaters, limits, inflater)
    }

    fn end_frame(
        &mut self,
        inflaters: &mut Inflaters,
        limits: Limits,
        inflater: Option<&mut Inflater>,
    ) -> Option<Item> {
        let partial = self.partial.as_deref_mut()?;
        let frame = partial.frame.take()?;
        if frame.opcode.is_control() {
            return Some(Item::ControlBuffered(frame.opcode));
        }
        if !frame.fin {
            return None;
        }
        let _ = (limits, &inflater, &inflaters);
        match partial.message.take()? {
            Assembling::Plain(buf) => Some(finish(buf)),
            #[cfg(feature = "deflate")]
            Assembling::Inflating(mut partial) => {
                let inflater = inflater?;
                let utf8 = partial.text.then_some(&mut partial.utf8);
                let max = limits.max_message;
                if let Err(e) = inflater.finish(inflaters, &mut partial.buf, max, utf8) {
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

/// Most room reserved up front for a message whose first frame is not whole in the input.
/// A frame split across reads then lands in one buffer instead of growing by doubling
/// (each step a copy of everything so far); past this, it grows.
const SPLIT_RESERVE_MAX: usize = 1 << 20;

/// A buffer for a data message that starts with a frame not whole in the input, with `room`
/// bytes reserved (unless compressed: the inflated size is not known).
fn start_message(
    scratch: &mut Scratch,
    opcode: Opcode,
    compressed: bool,
    recycle: bool,
    room: usize,
) -> Assembling {
    let buf = if recycle {
        take_spare(scratch)
    } else if compressed {
        Vec::new()
    } else {
        scratch.buffers.take(room)
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

/// The scratch's spare reassembly buffer (borrowed receive).
#[cfg(feature = "in-place")]
fn take_spare(scratch: &mut Scratch) -> Vec<u8> {
    std::mem::take(&mut scratch.spare)
}

/// Without the borrowed receive path nothing asks for the spare buffer.
#[cfg(not(feature = "in-place"))]
fn take_spare(_: &mut Scratch) -> Vec<u8> {
    Vec::new()
}

/// Inflates one received piece of a compressed frame, unmasking it on the stack first.
#[cfg(feature = "deflate")]
fn inflate_piece(
    inflaters: &mut Inflaters,
    inflater: &mut Inflater,
    partial: &mut Inflating,
    chunk: &[u8],
    frame: &Frame,
    max: usize,
) -> Result<(), ProtocolError> {
    let Some(key) = frame.mask else {
        let utf8 = partial.text.then_some(&mut partial.utf8);
        return inflater.inflate(inflaters, chunk, &mut partial.buf, max, utf8);
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
        inflater.inflate(inflaters, buf, &mut partial.buf, max, utf8)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
