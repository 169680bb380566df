//! The send side: messages and frames the owner sends, framed (masked, compressed) here and
//! written into this connection's buffer or the caller's transmit queue.

use super::{Connection, Outgoing, Rare, Role, Transmit};
use crate::close::{encode_close_payload, CloseCode};
use crate::error::SendError;
use crate::frame::{encode_frame, FrameHeader, Opcode, MAX_CONTROL_PAYLOAD};

/// Payloads above this size are queued by [`Connection::send`] as their own chunk instead of
/// copied after their header.
const ZERO_COPY_MIN: usize = 16 * 1024;

impl Connection {
    /// Queues a text message as one frame, compressed when permessage-deflate was negotiated
    /// and the text is at least the threshold long. Without context takeover on this side,
    /// each compressed message gets a compressor of its own (made and dropped):
    /// [`send`](Self::send) through a queue that lends a [`Scratch`](crate::Scratch) reuses
    /// one instead.
    ///
    /// # Errors
    /// [`SendError::Closed`] once close was sent or the connection closed;
    /// [`SendError::MessageInProgress`] during a fragmented send.
    pub fn send_text(&mut self, text: &str) -> Result<(), SendError> {
        self.send_message(None, Opcode::Text, text.as_bytes())
    }

    /// Queues a binary message as one frame, compressed as for
    /// [`send_text`](Self::send_text). Errors as for `send_text`.
    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), SendError> {
        self.send_message(None, Opcode::Binary, data)
    }

    /// Frames a message into this connection's buffer, compressed when it should be (with a
    /// compressor from `scratch` when this side has no context takeover and one is lent).
    #[cfg_attr(not(feature = "deflate"), allow(unused_variables))]
    pub(super) fn send_message(
        &mut self,
        scratch: Option<&mut crate::Scratch>,
        opcode: Opcode,
        payload: &[u8],
    ) -> Result<(), SendError> {
        if !self.can_send() && !self.close_reply_pending() {
            return Err(SendError::Closed);
        }
        if self.sending_fragments {
            return Err(SendError::MessageInProgress);
        }
        #[cfg(feature = "deflate")]
        if let Some(rare) = self.rare.as_deref_mut() {
            if let Some(deflater) = rare.deflater.as_mut().filter(|d| d.wants(payload.len())) {
                let mask = match self.role {
                    Role::Client => Some(next_mask(&mut rare.mask_state)),
                    Role::Server => None,
                };
                let rsv = crate::frame::RSV1;
                let out = &mut self.out;
                let fresh = scratch.map(|s| &mut s.compressors);
                if crate::frame::encode_frame_with(out, true, rsv, opcode, mask, |v| {
                    deflater.compress(fresh, payload, v)
                }) {
                    return Ok(());
                }
            }
        }
        self.push_frame(true, opcode, payload);
        Ok(())
    }

    /// Sends a message into the caller's transmit queue `tx`, after everything this
    /// connection queued before it (pongs, close): the network layer's send. Frames as
    /// [`send_text`](Self::send_text) / [`send_binary`](Self::send_binary) do, but an
    /// uncompressed server frame's payload is not copied into this connection's buffer: a
    /// large one becomes its own chunk (`push_owned`), a small one is copied once after its
    /// header and its buffer given to the queue's [`Transmit::scratch`]. A shared frame is queued as
    /// it is; with context takeover, a compressed one cuts this side's compressor history
    /// (the peer's window now holds a message our compressor never saw).
    ///
    /// # Errors
    /// As for `send_text`, plus [`SendError::SharedOnClient`]. Nothing is queued then.
    ///
    /// # Example
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Instant;
    /// use wss_proto::{Config, Connection, Outgoing, Role};
    ///
    /// let mut server = Connection::new(Role::Server, Config::default(), Instant::now());
    /// let mut wire = Vec::new();
    /// server.send(Outgoing::Text("Hi".into()), &mut wire).unwrap();
    /// let shared: Arc<[u8]> = Arc::from(&[0x82, 0x01, 7][..]);
    /// server.send(Outgoing::Shared(shared), &mut wire).unwrap();
    /// assert_eq!(wire, [0x81, 0x02, b'H', b'i', 0x82, 0x01, 7]);
    /// ```
    pub fn send(&mut self, message: Outgoing, tx: &mut impl Transmit) -> Result<(), SendError> {
        if !self.can_send() && !self.close_reply_pending() {
            return Err(SendError::Closed);
        }
        if self.sending_fragments {
            return Err(SendError::MessageInProgress);
        }
        // Frames queued here before (pongs) keep their place ahead of this message.
        self.transmit_into(tx);
        let (opcode, payload) = match message {
            Outgoing::Shared(frames) => {
                if self.role == Role::Client {
                    return Err(SendError::SharedOnClient);
                }
                self.note_shared_frames(&frames);
                tx.push_shared(frames);
                return Ok(());
            }
            Outgoing::Text(text) => (Opcode::Text, text.into_bytes()),
            Outgoing::Binary(bytes) => (Opcode::Binary, bytes),
        };
        if self.role == Role::Client || self.compresses(payload.len()) {
            // Masking or compression writes a new payload anyway: framed in our buffer.
            self.send_message(tx.scratch(), opcode, &payload)?;
            self.transmit_into(tx);
            return Ok(());
        }
        // A server's frame is unmasked, so the payload goes out as it is: a large one as its
        // own chunk, a small one copied once after its header.
        if payload.len() > ZERO_COPY_MIN {
            let header = FrameHeader {
                fin: true,
                rsv: 0,
                opcode,
                mask: None,
                payload_len: payload.len() as u64,
            };
            tx.push_with(FrameHeader::MAX_SIZE, |v| header.encode(v));
            tx.push_owned(payload);
        } else {
            tx.push_with(FrameHeader::MAX_SIZE + payload.len(), |v| {
                encode_frame(v, true, opcode, &payload, None);
            });
            // Most often a received message sent back or on: the queue may keep its buffer
            // for the next message its thread receives.
            if let Some(scratch) = tx.scratch() {
                scratch.recycle(payload);
            }
        }
        Ok(())
    }

    /// Moves what this connection queued (control frames, compressed or masked messages)
    /// into `tx`, handing its buffer over when it can.
    pub(super) fn transmit_into(&mut self, tx: &mut impl Transmit) {
        if !self.out.is_empty() {
            tx.push_owned(std::mem::take(&mut self.out));
        }
    }

    /// Whether a message of `len` bytes would go out compressed.
    pub(super) fn compresses(&self, len: usize) -> bool {
        #[cfg(feature = "deflate")]
        if let Some(deflater) = self.rare.as_ref().and_then(|r| r.deflater.as_ref()) {
            return deflater.wants(len);
        }
        let _ = len;
        false
    }

    /// Shared frames went out past this side's compressor: when one of them is a compressed
    /// message and the compressor keeps history, that history is cut, or the next compressed
    /// message could refer to bytes at the wrong distance in the peer's window. Bytes that do
    /// not parse as whole frames are treated as compressed.
    pub(super) fn note_shared_frames(&mut self, mut frames: &[u8]) {
        #[cfg(feature = "deflate")]
        if let Some(deflater) = self.rare.as_mut().and_then(|r| r.deflater.as_mut()) {
            if !deflater.keeps_context() {
                return;
            }
            while !frames.is_empty() {
                let Ok(Some((header, len))) = FrameHeader::parse(frames) else {
                    return deflater.reset();
                };
                if header.rsv & crate::frame::RSV1 != 0 {
                    return deflater.reset();
                }
                let end = usize::try_from(header.payload_len)
                    .ok()
                    .and_then(|n| n.checked_add(len));
                frames = end.and_then(|end| frames.get(end..)).unwrap_or_default();
            }
        }
        let _ = &mut frames;
    }

    /// Queues one frame: a fragment of a message (Text/Binary with `fin: false`, then
    /// Continuation frames, the last with `fin: true`), or a ping or pong.
    ///
    /// Text fragments are not checked for UTF-8 on their own, since a code point may
    /// straddle two fragments; the caller sends whole UTF-8 text across them. Fragments are
    /// never compressed (RSV1 clear), which permessage-deflate allows for any message.
    ///
    /// # Errors
    /// [`SendError::Closed`] after close; [`SendError::UseCloseMethod`] for close frames;
    /// [`SendError::ControlPayloadTooBig`] / [`SendError::FragmentedControlFrame`] for bad
    /// control frames; [`SendError::NoMessageInProgress`] / [`SendError::MessageInProgress`]
    /// for fragments out of order.
    pub fn send_frame(
        &mut self,
        opcode: Opcode,
        fin: bool,
        payload: &[u8],
    ) -> Result<(), SendError> {
        if !self.can_send() {
            return Err(SendError::Closed);
        }
        match opcode {
            Opcode::Close => return Err(SendError::UseCloseMethod),
            Opcode::Ping | Opcode::Pong => {
                if payload.len() > MAX_CONTROL_PAYLOAD {
                    return Err(SendError::ControlPayloadTooBig);
                }
                if !fin {
                    return Err(SendError::FragmentedControlFrame);
                }
            }
            Opcode::Continuation => {
                if !self.sending_fragments {
                    return Err(SendError::NoMessageInProgress);
                }
                self.sending_fragments = !fin;
            }
            Opcode::Text | Opcode::Binary => {
                if self.sending_fragments {
                    return Err(SendError::MessageInProgress);
                }
                self.sending_fragments = !fin;
            }
        }
        self.push_frame(fin, opcode, payload);
        Ok(())
    }

    /// Queues a ping (at most 125 bytes of payload). The peer answers with a pong event.
    ///
    /// # Errors
    /// [`SendError::Closed`] after close; [`SendError::ControlPayloadTooBig`].
    pub fn ping(&mut self, payload: &[u8]) -> Result<(), SendError> {
        self.send_frame(Opcode::Ping, true, payload)
    }

    pub(super) fn push_close(&mut self, code: Option<CloseCode>, reason: &str) {
        let mut payload = Vec::with_capacity(MAX_CONTROL_PAYLOAD);
        encode_close_payload(&mut payload, code, reason);
        self.push_frame(true, Opcode::Close, &payload);
    }

    pub(super) fn push_frame(&mut self, fin: bool, opcode: Opcode, payload: &[u8]) {
        let mask = match self.role {
            Role::Client => {
                let config = &self.config;
                let rare = self.rare.get_or_insert_with(|| Rare::new(config));
                Some(next_mask(&mut rare.mask_state))
            }
            Role::Server => None,
        };
        encode_frame(&mut self.out, fin, opcode, payload, mask);
    }
}

/// splitmix64: cheap, and every seed (0 included) gives a full-period sequence.
fn next_mask(state: &mut u64) -> [u8; 4] {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    let b = z.to_le_bytes();
    [b[0], b[1], b[2], b[3]]
}
