//! Errors, split by whose fault they are.
//!
//! [`ProtocolError`]: the peer broke RFC 6455. The connection turns it into a close frame
//! with the matching code and stops reading. [`SendError`]: the local caller asked for
//! something the protocol forbids; nothing was queued and the connection is unchanged.

use std::fmt;

use crate::close::CloseCode;

/// A rule of RFC 6455 that the peer broke. One variant per rule.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// Opcode 0x3-0x7 or 0xB-0xF (§5.2).
    ReservedOpcode(u8),
    /// An RSV bit is set that no negotiated extension gave a meaning to (§5.2).
    NonZeroReservedBits,
    /// A client must mask every frame it sends (§5.1).
    UnmaskedFrameFromClient,
    /// A server must never mask a frame (§5.1).
    MaskedFrameFromServer,
    /// A control frame without FIN (§5.5).
    FragmentedControlFrame,
    /// A control frame payload over 125 bytes (§5.5); carries the announced length.
    ControlFrameTooBig(u64),
    /// A 64-bit payload length with the most significant bit set (§5.2).
    InvalidLength,
    /// A continuation frame with no fragmented message to continue (§5.4).
    UnexpectedContinuation,
    /// A new text or binary frame while a fragmented message is unfinished (§5.4).
    ExpectedContinuation,
    /// A text message that is not UTF-8 (§8.1), found at the first bad byte.
    InvalidUtf8,
    /// A close code that may not appear on the wire (§7.4).
    InvalidCloseCode(u16),
    /// A close payload of exactly one byte: too short for a code (§5.5.1).
    InvalidClosePayload,
    /// A close reason that is not UTF-8 (§5.5.1).
    InvalidCloseReason,
    /// A frame announced more payload than `Config::max_frame_size` allows.
    FrameTooBig {
        /// The announced payload length.
        len: u64,
        /// The configured limit.
        max: usize,
    },
    /// A message would exceed `Config::max_message_size`. For a compressed message, `len`
    /// counts the bytes inflated so far, and inflating stops right past the limit.
    MessageTooBig {
        /// The message length including the announced frame (or inflated so far).
        len: u64,
        /// The configured limit.
        max: usize,
    },
    /// With permessage-deflate, RSV1 ("compressed") set on a control frame or on a frame
    /// other than the first of a message (RFC 7692 §6.1).
    MisplacedCompressionBit,
    /// A compressed message that does not inflate: not a valid deflate stream (RFC 7692 §6.2).
    InvalidCompressedData,
}

impl ProtocolError {
    /// The close code this failure sends to the peer: 1007 for bad UTF-8 or undecodable
    /// compressed data, 1009 for sizes over a limit, 1002 for everything else.
    pub fn close_code(&self) -> CloseCode {
        match self {
            ProtocolError::InvalidUtf8
            | ProtocolError::InvalidCloseReason
            | ProtocolError::InvalidCompressedData => CloseCode::INVALID_PAYLOAD,
            ProtocolError::FrameTooBig { .. } | ProtocolError::MessageTooBig { .. } => {
                CloseCode::TOO_BIG
            }
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::ReservedOpcode(op) => write!(f, "reserved opcode {op:#x}"),
            ProtocolError::NonZeroReservedBits => f.write_str("reserved bits set"),
            ProtocolError::UnmaskedFrameFromClient => f.write_str("unmasked frame from client"),
            ProtocolError::MaskedFrameFromServer => f.write_str("masked frame from server"),
            ProtocolError::FragmentedControlFrame => f.write_str("fragmented control frame"),
            ProtocolError::ControlFrameTooBig(len) => {
                write!(f, "control frame payload of {len} bytes (max 125)")
            }
            ProtocolError::InvalidLength => f.write_str("payload length with the top bit set"),
            ProtocolError::UnexpectedContinuation => {
                f.write_str("continuation frame without a message to continue")
            }
            ProtocolError::ExpectedContinuation => {
                f.write_str("new data frame inside a fragmented message")
            }
            ProtocolError::InvalidUtf8 => f.write_str("text message is not valid UTF-8"),
            ProtocolError::InvalidCloseCode(code) => write!(f, "invalid close code {code}"),
            ProtocolError::InvalidClosePayload => f.write_str("close payload of one byte"),
            ProtocolError::InvalidCloseReason => f.write_str("close reason is not valid UTF-8"),
            ProtocolError::FrameTooBig { len, max } => {
                write!(f, "frame of {len} bytes over the limit of {max}")
            }
            ProtocolError::MessageTooBig { len, max } => {
                write!(f, "message of {len} bytes over the limit of {max}")
            }
            ProtocolError::MisplacedCompressionBit => {
                f.write_str("RSV1 on a control frame or a continuation frame")
            }
            ProtocolError::InvalidCompressedData => {
                f.write_str("compressed message is not a valid deflate stream")
            }
        }
    }
}

impl std::error::Error for ProtocolError {}

/// The caller asked the connection for something it may not send. Nothing was queued.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// A close frame was already sent (or the connection failed or closed): no more frames.
    Closed,
    /// Control frames (ping, pong, close) carry at most 125 bytes.
    ControlPayloadTooBig,
    /// This code may not be sent: it must be valid on the wire (1000-1003, 1007-1014, 3000-4999).
    InvalidCloseCode(u16),
    /// Control frames cannot be fragmented: `fin` must be true.
    FragmentedControlFrame,
    /// A continuation frame was sent with no fragmented message started.
    NoMessageInProgress,
    /// A new message was started while a fragmented one is unfinished.
    MessageInProgress,
    /// Close frames go through [`Connection::close`](crate::connection::Connection::close),
    /// which also drives the closing handshake.
    UseCloseMethod,
    /// [`Outgoing::Shared`](crate::Outgoing::Shared) frames are unmasked server frames: a
    /// client connection must mask what it sends.
    SharedOnClient,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Closed => f.write_str("connection is closing or closed"),
            SendError::ControlPayloadTooBig => f.write_str("control payload over 125 bytes"),
            SendError::InvalidCloseCode(code) => write!(f, "close code {code} may not be sent"),
            SendError::FragmentedControlFrame => f.write_str("control frames cannot be fragmented"),
            SendError::NoMessageInProgress => f.write_str("continuation without a started message"),
            SendError::MessageInProgress => f.write_str("a fragmented message is unfinished"),
            SendError::UseCloseMethod => f.write_str("send close frames with close()"),
            SendError::SharedOnClient => {
                f.write_str("shared server frames cannot go out on a client connection")
            }
        }
    }
}

impl std::error::Error for SendError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_errors_map_to_1007() {
        assert_eq!(ProtocolError::InvalidUtf8.close_code(), CloseCode(1007));
        assert_eq!(
            ProtocolError::InvalidCloseReason.close_code(),
            CloseCode(1007)
        );
        assert_eq!(
            ProtocolError::InvalidCompressedData.close_code(),
            CloseCode(1007)
        );
    }

    #[test]
    fn size_errors_map_to_1009() {
        let e = ProtocolError::FrameTooBig { len: 10, max: 5 };
        assert_eq!(e.close_code(), CloseCode(1009));
        let e = ProtocolError::MessageTooBig { len: 10, max: 5 };
        assert_eq!(e.close_code(), CloseCode(1009));
    }

    #[test]
    fn structural_errors_map_to_1002() {
        for e in [
            ProtocolError::ReservedOpcode(3),
            ProtocolError::NonZeroReservedBits,
            ProtocolError::UnmaskedFrameFromClient,
            ProtocolError::MaskedFrameFromServer,
            ProtocolError::FragmentedControlFrame,
            ProtocolError::ControlFrameTooBig(126),
            ProtocolError::InvalidLength,
            ProtocolError::UnexpectedContinuation,
            ProtocolError::ExpectedContinuation,
            ProtocolError::InvalidCloseCode(999),
            ProtocolError::InvalidClosePayload,
            ProtocolError::MisplacedCompressionBit,
        ] {
            assert_eq!(e.close_code(), CloseCode(1002), "{e}");
        }
    }
}
