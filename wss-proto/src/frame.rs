//! Frame headers (RFC 6455 §5.2): opcodes, FIN, RSV bits, mask key and the three length forms.
//!
//! [`FrameHeader::parse`] checks only what a header alone can break. Rules that depend on the
//! connection (role, negotiated RSV bits, fragmentation state, size limits) live in
//! [`Connection`](crate::connection::Connection).

use crate::error::ProtocolError;
use crate::mask::extend_masked;

/// Frame opcodes defined by RFC 6455. The reserved ones have no variant: parsing them fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Opcode {
    /// 0x0: the next fragment of a text or binary message.
    Continuation,
    /// 0x1: the first frame of a UTF-8 text message.
    Text,
    /// 0x2: the first frame of a binary message.
    Binary,
    /// 0x8: starts or answers the closing handshake.
    Close,
    /// 0x9: asks the peer for a pong.
    Ping,
    /// 0xA: answers a ping, or a unidirectional heartbeat.
    Pong,
}

impl Opcode {
    /// The opcode for the low 4 bits `v`, or `None` for reserved values.
    pub fn from_u8(v: u8) -> Option<Opcode> {
        match v {
            0x0 => Some(Opcode::Continuation),
            0x1 => Some(Opcode::Text),
            0x2 => Some(Opcode::Binary),
            0x8 => Some(Opcode::Close),
            0x9 => Some(Opcode::Ping),
            0xA => Some(Opcode::Pong),
            _ => None,
        }
    }

    /// The 4-bit wire value.
    pub fn as_u8(self) -> u8 {
        match self {
            Opcode::Continuation => 0x0,
            Opcode::Text => 0x1,
            Opcode::Binary => 0x2,
            Opcode::Close => 0x8,
            Opcode::Ping => 0x9,
            Opcode::Pong => 0xA,
        }
    }

    /// Close, ping and pong: they may interleave with a fragmented message but must be
    /// unfragmented and at most 125 bytes.
    pub fn is_control(self) -> bool {
        self.as_u8() & 0x8 != 0
    }
}

/// Largest payload a control frame may carry (§5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// A decoded frame header. The payload follows it on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Final fragment of a message (always true for control frames).
    pub fin: bool,
    /// The three RSV bits: RSV1 = 0b100, RSV2 = 0b010, RSV3 = 0b001.
    pub rsv: u8,
    /// What the payload is.
    pub opcode: Opcode,
    /// The masking key, present on every client-to-server frame.
    pub mask: Option<[u8; 4]>,
    /// Payload length in bytes (at most 2^63 - 1).
    pub payload_len: u64,
}

impl FrameHeader {
    /// Largest encoded header: 2 bytes, 8 of extended length, 4 of mask key.
    pub const MAX_SIZE: usize = 14;

    /// Decodes a header from the start of `buf`.
    ///
    /// Returns `Ok(None)` when `buf` holds only part of a header (call again with more bytes),
    /// or `Ok(Some((header, header_len)))`; the payload starts at `buf[header_len]`.
    ///
    /// # Errors
    /// A reserved opcode, a 64-bit length with its top bit set, or a control frame without
    /// FIN or with more than 125 bytes. The opcode and FIN are checked from the first byte,
    /// so a bad frame is refused before its extended length arrives.
    pub fn parse(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>, ProtocolError> {
        let Some(&b0) = buf.first() else {
            return Ok(None);
        };
        let fin = b0 & 0x80 != 0;
        let rsv = (b0 >> 4) & 0x7;
        let opcode = Opcode::from_u8(b0 & 0x0f).ok_or(ProtocolError::ReservedOpcode(b0 & 0x0f))?;
        if opcode.is_control() && !fin {
            return Err(ProtocolError::FragmentedControlFrame);
        }
        let Some(&b1) = buf.get(1) else {
            return Ok(None);
        };
        let masked = b1 & 0x80 != 0;
        let (ext_len, len7) = match b1 & 0x7f {
            126 => (2, 126),
            127 => (8, 127),
            n => (0, n),
        };
        let header_len = 2 + ext_len + if masked { 4 } else { 0 };
        let Some(rest) = buf.get(2..header_len) else {
            return Ok(None);
        };
        let (len_bytes, mask_bytes) = rest.split_at(ext_len);
        let payload_len = match len7 {
            126 => u64::from(u16::from_be_bytes([len_bytes[0], len_bytes[1]])),
            127 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(len_bytes);
                let len = u64::from_be_bytes(b);
                if len >> 63 != 0 {
                    return Err(ProtocolError::InvalidLength);
                }
                len
            }
            n => u64::from(n),
        };
        if opcode.is_control() && payload_len > MAX_CONTROL_PAYLOAD as u64 {
            return Err(ProtocolError::ControlFrameTooBig(payload_len));
        }
        let mask = if masked {
            let mut key = [0u8; 4];
            key.copy_from_slice(mask_bytes);
            Some(key)
        } else {
            None
        };
        Ok(Some((
            FrameHeader {
                fin,
                rsv,
                opcode,
                mask,
                payload_len,
            },
            header_len,
        )))
    }

    /// Bytes [`encode`](Self::encode) writes: 2 to 14.
    pub fn encoded_len(&self) -> usize {
        let ext = match self.payload_len {
            0..=125 => 0,
            126..=0xffff => 2,
            _ => 8,
        };
        2 + ext + if self.mask.is_some() { 4 } else { 0 }
    }

    /// Appends the header, with the shortest length form, to `out`. The payload is not written.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let b0 = (u8::from(self.fin) << 7) | ((self.rsv & 0x7) << 4) | self.opcode.as_u8();
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        out.push(b0);
        match self.payload_len {
            n @ 0..=125 => out.push(mask_bit | n as u8),
            n @ 126..=0xffff => {
                out.push(mask_bit | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(mask_bit | 127);
                out.extend_from_slice(&n.to_be_bytes());
            }
        }
        if let Some(key) = self.mask {
            out.extend_from_slice(&key);
        }
    }
}

/// The RSV1 bit in [`FrameHeader::rsv`]: "per-message compressed" under permessage-deflate.
pub const RSV1: u8 = 0b100;

/// Appends a frame whose payload `fill` appends to `out`, then writes the header in front of
/// it (shortest length form) and masks the payload when `mask` is given. When `fill` returns
/// `false`, `out` is restored and `false` returned.
///
/// The payload is produced in place, so a compressed payload is never held in a buffer of its
/// own: the only extra work is one move by at most 12 bytes.
#[cfg(feature = "deflate")]
pub(crate) fn encode_frame_with(
    out: &mut Vec<u8>,
    fin: bool,
    rsv: u8,
    opcode: Opcode,
    mask: Option<[u8; 4]>,
    fill: impl FnOnce(&mut Vec<u8>) -> bool,
) -> bool {
    let start = out.len();
    let body = start + FrameHeader::MAX_SIZE;
    out.resize(body, 0);
    if !fill(out) {
        out.truncate(start);
        return false;
    }
    let len = out.len() - body;
    let header = FrameHeader {
        fin,
        rsv,
        opcode,
        mask,
        payload_len: len as u64,
    };
    let mut head = Vec::with_capacity(FrameHeader::MAX_SIZE);
    header.encode(&mut head);
    let payload_at = start + head.len();
    out.copy_within(body.., payload_at);
    out.truncate(payload_at + len);
    if let Some(slot) = out.get_mut(start..payload_at) {
        slot.copy_from_slice(&head);
    }
    if let (Some(key), Some(payload)) = (mask, out.get_mut(payload_at..)) {
        crate::mask::apply_mask(payload, key);
    }
    true
}

/// Appends one whole data message as a server sends it (unmasked, FIN set), compressed per
/// permessage-deflate with `params` when it is at least `params.threshold` bytes long (RSV1
/// set), plain otherwise. Returns whether it was compressed.
///
/// Compression starts from an empty window and refers to nothing sent before, so the bytes do
/// not depend on any connection: encode a broadcast once and hand the same bytes to every
/// receiver for which [`DeflateParams::shares_server_encoding_with`](crate::DeflateParams::shares_server_encoding_with) holds (same or larger
/// agreed server window), whatever the rest of its params.
///
/// A receiver that agreed on context takeover decodes these bytes fine, but its own
/// [`Connection`](crate::Connection) compressor did not see this message while the peer's
/// window did: hand the bytes to it as [`Outgoing::Shared`](crate::Outgoing::Shared) through
/// [`Connection::send`](crate::Connection::send), which cuts its compressor's history when
/// the message went out compressed.
///
/// `opcode` is `Text` or `Binary`; control opcodes are always encoded plain. The compressor
/// is borrowed from `scratch` (the calling thread's) and given back reset.
///
/// ```
/// use wss_proto::encode_message_deflated;
/// use wss_proto::{DeflateParams, Opcode, Scratch};
///
/// let params = DeflateParams { server_no_context_takeover: true, threshold: 0, ..DeflateParams::default() };
/// let mut scratch = Scratch::new();
/// let mut out = Vec::new();
/// assert!(encode_message_deflated(&mut scratch, &mut out, &params, Opcode::Text, b"Hello"));
/// assert_eq!(out, [0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
/// ```
#[cfg(feature = "deflate")]
pub fn encode_message_deflated(
    scratch: &mut crate::Scratch,
    out: &mut Vec<u8>,
    params: &crate::handshake::deflate::DeflateParams,
    opcode: Opcode,
    payload: &[u8],
) -> bool {
    use crate::deflate::{compress_into, with_fresh_compressor, MIN_COMPRESS_BITS};
    let bits = params.server_max_window_bits;
    let wants = matches!(opcode, Opcode::Text | Opcode::Binary)
        && bits >= MIN_COMPRESS_BITS
        && payload.len() >= params.threshold.max(1);
    if wants
        && encode_frame_with(out, true, RSV1, opcode, None, |v| {
            let fresh = Some(&mut scratch.compressors);
            with_fresh_compressor(fresh, params.level, bits, |c| compress_into(c, payload, v))
        })
    {
        return true;
    }
    encode_frame(out, true, opcode, payload, None);
    false
}

/// Appends a whole frame to `out`: header, then `payload` (masked with `mask` when given).
/// RSV bits are zero.
pub fn encode_frame(
    out: &mut Vec<u8>,
    fin: bool,
    opcode: Opcode,
    payload: &[u8],
    mask: Option<[u8; 4]>,
) {
    let header = FrameHeader {
        fin,
        rsv: 0,
        opcode,
        mask,
        payload_len: payload.len() as u64,
    };
    out.reserve(header.encoded_len() + payload.len());
    header.encode(out);
    match mask {
        Some(key) => extend_masked(out, payload, key, 0),
        None => out.extend_from_slice(payload),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(buf: &[u8]) -> (FrameHeader, usize) {
        FrameHeader::parse(buf).unwrap().unwrap()
    }

    #[test]
    fn opcodes_round_trip_and_reserved_ones_are_none() {
        for v in 0u8..16 {
            match Opcode::from_u8(v) {
                Some(op) => assert_eq!(op.as_u8(), v),
                None => assert!(matches!(v, 3..=7 | 0xB..=0xF), "{v}"),
            }
        }
        assert!(Opcode::Ping.is_control() && !Opcode::Text.is_control());
    }

    #[test]
    fn seven_bit_length_form() {
        let (h, n) = parse_all(&[0x81, 0x05]);
        assert_eq!(n, 2);
        assert_eq!(h.payload_len, 5);
        assert!(h.fin);
        assert_eq!(h.opcode, Opcode::Text);
        assert_eq!(h.mask, None);
    }

    #[test]
    fn sixteen_bit_length_form() {
        let (h, n) = parse_all(&[0x82, 0x7e, 0x01, 0x00]);
        assert_eq!((h.payload_len, n), (256, 4));
    }

    #[test]
    fn sixty_four_bit_length_form() {
        let (h, n) = parse_all(&[0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0]);
        assert_eq!((h.payload_len, n), (65536, 10));
    }

    #[test]
    fn sixty_four_bit_length_with_top_bit_fails() {
        let buf = [0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(FrameHeader::parse(&buf), Err(ProtocolError::InvalidLength));
    }

    #[test]
    fn reserved_opcodes_fail_from_the_first_byte() {
        for op in [3u8, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
            assert_eq!(
                FrameHeader::parse(&[0x80 | op]),
                Err(ProtocolError::ReservedOpcode(op))
            );
        }
    }

    #[test]
    fn control_frame_without_fin_fails() {
        assert_eq!(
            FrameHeader::parse(&[0x09]),
            Err(ProtocolError::FragmentedControlFrame)
        );
    }

    #[test]
    fn control_frame_over_125_bytes_fails() {
        assert_eq!(
            FrameHeader::parse(&[0x89, 0x7e, 0x00, 0x7e]),
            Err(ProtocolError::ControlFrameTooBig(126))
        );
        assert!(FrameHeader::parse(&[0x89, 125]).unwrap().is_some());
    }

    #[test]
    fn partial_headers_need_more() {
        let full = [0x82, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4];
        for cut in 0..full.len() {
            assert_eq!(FrameHeader::parse(&full[..cut]), Ok(None), "cut {cut}");
        }
        let (h, n) = parse_all(&full);
        assert_eq!(n, 14);
        assert_eq!(h.mask, Some([1, 2, 3, 4]));
    }

    #[test]
    fn rsv_bits_are_reported() {
        let (h, _) = parse_all(&[0xc1, 0x00]);
        assert_eq!(h.rsv, 0b100);
        let (h, _) = parse_all(&[0xb1, 0x00]);
        assert_eq!(h.rsv, 0b011);
    }

    #[test]
    fn encode_round_trips_every_length_form() {
        for len in [0u64, 1, 125, 126, 0xffff, 0x10000, 1 << 40] {
            for mask in [None, Some([5, 6, 7, 8])] {
                let h = FrameHeader {
                    fin: len % 2 == 0,
                    rsv: 0b010,
                    opcode: Opcode::Binary,
                    mask,
                    payload_len: len,
                };
                let mut out = Vec::new();
                h.encode(&mut out);
                assert_eq!(out.len(), h.encoded_len());
                assert_eq!(parse_all(&out), (h, out.len()));
            }
        }
    }
}
