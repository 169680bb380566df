//! [`Frame`]: a message framed once and shared by every receiver, on this node and, through a
//! [`Broker`](crate::Broker), on the others.

use std::fmt;
use std::sync::Arc;

use wss_proto::{encode_frame, FrameHeader, Opcode};

use crate::data::Data;

/// One complete, unmasked, unfragmented text or binary WebSocket frame (header and payload),
/// ready to be written to any number of connections without copying.
///
/// A broadcast encodes its message once into a `Frame`; a broker ships the frame's bytes to the
/// other nodes, and each node checks them once ([`Frame::from_wire`]) before handing the same
/// buffer to all its local receivers.
///
/// ```
/// use wss_server::{Data, Frame, WebSocketServer};
///
/// // One message to several rooms: framed once, not once per room.
/// fn announce(wss: &WebSocketServer, rooms: &[&str], text: &str) -> usize {
///     let frame = Frame::encode(&Data::Text(text.into()));
///     rooms.iter().map(|room| wss.publish_frame(Some(room), &frame, None)).sum()
/// }
///
/// let frame = Frame::encode(&Data::Text("hi".into()));
/// assert_eq!(frame.as_bytes(), [0x81, 2, b'h', b'i']); // FIN + text, length 2, unmasked
/// assert_eq!(Frame::from_wire(frame.as_bytes()), Ok(frame));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Frame(Arc<[u8]>);

/// Why bytes received from another node are not a frame this server may forward. Such bytes
/// are dropped: a broker must never let them reach a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// The header is cut short.
    Truncated,
    /// The header breaks a structural rule of RFC 6455 (reserved opcode, bad length form).
    Header,
    /// Not a final frame: fragments are never shared between nodes.
    Fragment,
    /// An RSV bit is set (no extension applies to shared frames).
    ReservedBits,
    /// A masked frame: servers send unmasked frames only.
    Masked,
    /// Not a text or binary frame.
    NotData,
    /// The payload length in the header differs from the bytes present.
    LengthMismatch,
    /// A text frame whose payload is not UTF-8.
    InvalidUtf8,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FrameError::Truncated => "frame header cut short",
            FrameError::Header => "invalid frame header",
            FrameError::Fragment => "fragmented frame",
            FrameError::ReservedBits => "reserved bits set",
            FrameError::Masked => "masked frame",
            FrameError::NotData => "not a text or binary frame",
            FrameError::LengthMismatch => "payload length differs from the header",
            FrameError::InvalidUtf8 => "text frame is not UTF-8",
        })
    }
}

impl std::error::Error for FrameError {}

impl Frame {
    /// Frames `data` the way `send` would: text and JSON (compact) as a text frame, bytes as
    /// a binary frame.
    pub fn encode(data: &Data) -> Frame {
        let object;
        let (opcode, payload): (Opcode, &[u8]) = match data {
            Data::Text(t) => (Opcode::Text, t.as_bytes()),
            Data::Blob(b) => (Opcode::Binary, b),
            Data::Object(v) => {
                object = v.to_string();
                (Opcode::Text, object.as_bytes())
            }
        };
        let mut frame = Vec::with_capacity(payload.len() + 10);
        encode_frame(&mut frame, true, opcode, payload, None);
        Frame(frame.into())
    }

    /// Checks bytes that came from another node and keeps them as a frame: one whole final
    /// text or binary frame, unmasked, no RSV bit, a length that matches, UTF-8 if text.
    /// Costs one copy and, for text, one UTF-8 pass: once per node, not per receiver.
    pub fn from_wire(bytes: &[u8]) -> Result<Frame, FrameError> {
        let (header, header_len) = match FrameHeader::parse(bytes) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => return Err(FrameError::Truncated),
            Err(_) => return Err(FrameError::Header),
        };
        if !header.fin {
            return Err(FrameError::Fragment);
        }
        if header.rsv != 0 {
            return Err(FrameError::ReservedBits);
        }
        if header.mask.is_some() {
            return Err(FrameError::Masked);
        }
        let payload = bytes.get(header_len..).ok_or(FrameError::Truncated)?;
        if u64::try_from(payload.len()).ok() != Some(header.payload_len) {
            return Err(FrameError::LengthMismatch);
        }
        match header.opcode {
            Opcode::Text => {
                std::str::from_utf8(payload).map_err(|_| FrameError::InvalidUtf8)?;
            }
            Opcode::Binary => {}
            _ => return Err(FrameError::NotData),
        }
        Ok(Frame(bytes.into()))
    }

    /// The whole frame, header included: what a broker ships to the other nodes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Bytes on the wire for each receiver.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Never true: a frame has at least a two-byte header.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The shared buffer handed to the network for each receiver.
    pub(crate) fn shared(&self) -> Arc<[u8]> {
        self.0.clone()
    }

    /// The message's opcode and payload. `None` never happens for a `Frame` (every
    /// constructor checks the header), but the bytes are not re-trusted blindly.
    pub(crate) fn message(&self) -> Option<(Opcode, &[u8])> {
        let (header, len) = FrameHeader::parse(&self.0).ok()??;
        Some((header.opcode, self.0.get(len..)?))
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Frame").field("len", &self.0.len()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_frames_pass_the_wire_check() {
        for data in [
            Data::Text("héllo".into()),
            Data::Blob(vec![0, 255, 3]),
            Data::Object(serde_json::json!({"a": [1, 2]})),
            Data::Text("x".repeat(70_000)),
        ] {
            let frame = Frame::encode(&data);
            assert_eq!(Frame::from_wire(frame.as_bytes()), Ok(frame));
        }
    }

    #[test]
    fn message_gives_back_opcode_and_payload() {
        let frame = Frame::encode(&Data::Text("x".repeat(300)));
        let (opcode, payload) = frame.message().expect("a frame");
        assert_eq!(opcode, Opcode::Text);
        assert_eq!(payload, "x".repeat(300).as_bytes());
        let frame = Frame::encode(&Data::Blob(vec![1, 2]));
        assert_eq!(frame.message(), Some((Opcode::Binary, &[1u8, 2][..])));
    }

    #[test]
    fn wire_check_refuses_what_a_client_must_never_see() {
        let good = Frame::encode(&Data::Text("hi".into()));
        let bytes = good.as_bytes().to_vec();
        assert_eq!(Frame::from_wire(&[]), Err(FrameError::Truncated));
        assert_eq!(
            Frame::from_wire(&bytes[..3]),
            Err(FrameError::LengthMismatch)
        );
        let mut long = bytes.clone();
        long.push(b'!');
        assert_eq!(Frame::from_wire(&long), Err(FrameError::LengthMismatch));
        let mut fragment = bytes.clone();
        fragment[0] &= 0x7f;
        assert_eq!(Frame::from_wire(&fragment), Err(FrameError::Fragment));
        let mut rsv = bytes.clone();
        rsv[0] |= 0x40;
        assert_eq!(Frame::from_wire(&rsv), Err(FrameError::ReservedBits));
        let mut close = bytes.clone();
        close[0] = 0x88;
        assert_eq!(Frame::from_wire(&close), Err(FrameError::NotData));
        let mut masked = vec![0x81, 0x82, 0, 0, 0, 0];
        masked.extend_from_slice(b"hi");
        assert_eq!(Frame::from_wire(&masked), Err(FrameError::Masked));
        assert_eq!(
            Frame::from_wire(&[0x81, 0x02, 0xff, 0xfe]),
            Err(FrameError::InvalidUtf8)
        );
        assert_eq!(Frame::from_wire(&[0x83, 0x00]), Err(FrameError::Header));
    }
}
