//! Close codes and close frame payloads (RFC 6455 §5.5.1, §7.4).
//!
//! Two codes never travel on the wire but are what the layer above reports:
//! [`CloseCode::NO_STATUS`] (1005, a close frame arrived without a code) and
//! [`CloseCode::ABNORMAL`] (1006, the connection ended without a close frame, or failed).

use std::fmt;

use crate::error::ProtocolError;

/// A close status code. Any `u16` can be held; [`CloseCode::is_valid_on_wire`] says whether
/// it may be sent or received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: the purpose of the connection was fulfilled.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: an endpoint is going away (server shutdown, page left).
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: the peer broke the protocol.
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    /// 1003: a data type the endpoint cannot accept.
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    /// 1005: reported, never sent: the close frame had no code.
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// 1006: reported, never sent: closed without a close frame, or failed.
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    /// 1007: message data inconsistent with its type (bad UTF-8 in text).
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// 1008: a policy was violated.
    pub const POLICY: CloseCode = CloseCode(1008);
    /// 1009: a message too big to process.
    pub const TOO_BIG: CloseCode = CloseCode(1009);
    /// 1010: the client needed an extension the server did not negotiate.
    pub const MANDATORY_EXTENSION: CloseCode = CloseCode(1010);
    /// 1011: the server hit an unexpected condition.
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);
    /// 1012: the service is restarting.
    pub const SERVICE_RESTART: CloseCode = CloseCode(1012);
    /// 1013: try again later (temporary overload).
    pub const TRY_AGAIN_LATER: CloseCode = CloseCode(1013);
    /// 1014: a gateway got an invalid response upstream.
    pub const BAD_GATEWAY: CloseCode = CloseCode(1014);
    /// 1015: reported, never sent: the TLS handshake failed.
    pub const TLS_HANDSHAKE: CloseCode = CloseCode(1015);

    /// Whether this code may appear in a close frame: 1000-1003, 1007-1014 (registered) and
    /// 3000-4999 (libraries and applications). Anything else received fails with 1002.
    pub fn is_valid_on_wire(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }

    /// A sentence describing the code, as 4D puts it in `reason` and error messages.
    /// Codes without a standard meaning get a generic text.
    pub fn standard_text(self) -> &'static str {
        match self.0 {
            1000 => "WebSocket has been closed normally.",
            1001 => "An endpoint is going away (likely a browser leaving a page without explicitly closing the websocket before).",
            1002 => "An endpoint is terminating the connection due to a protocol error.",
            1003 => "An endpoint received a type of data it cannot accept.",
            1005 => "No status code was present in the close frame.",
            1006 => "Abnormal closure (close frame not sent nor received).",
            1007 => "An endpoint received data inconsistent with the message type.",
            1008 => "An endpoint received a message that violates its policy.",
            1009 => "An endpoint received a message too big to process.",
            1010 => "The client expected the server to negotiate an extension.",
            1011 => "The server met an unexpected condition.",
            1012 => "The service is restarting.",
            1013 => "The service is overloaded, try again later.",
            1014 => "The gateway received an invalid response.",
            1015 => "The TLS handshake failed.",
            3000..=3999 => "Closed with a code registered for libraries and frameworks.",
            4000..=4999 => "Closed with an application-defined code.",
            _ => "Closed with an unknown code.",
        }
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<u16> for CloseCode {
    fn from(code: u16) -> Self {
        CloseCode(code)
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> Self {
        code.0
    }
}

/// A close reason fits a control frame: 125 bytes less the 2-byte code.
pub const MAX_REASON_LEN: usize = 123;

/// The longest prefix of `reason` that is at most [`MAX_REASON_LEN`] bytes and ends on a
/// char boundary, so truncation never produces invalid UTF-8.
pub fn truncate_reason(reason: &str) -> &str {
    if reason.len() <= MAX_REASON_LEN {
        return reason;
    }
    let mut end = MAX_REASON_LEN;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason.get(..end).unwrap_or("")
}

/// Reads a received close payload: empty gives `(None, "")`; otherwise a big-endian code
/// that must be valid on the wire, followed by a UTF-8 reason.
///
/// # Errors
/// One byte: [`ProtocolError::InvalidClosePayload`]; a code not valid on the wire:
/// [`ProtocolError::InvalidCloseCode`]; a reason that is not UTF-8:
/// [`ProtocolError::InvalidCloseReason`].
pub fn parse_close_payload(payload: &[u8]) -> Result<(Option<CloseCode>, &str), ProtocolError> {
    match payload {
        [] => Ok((None, "")),
        [_] => Err(ProtocolError::InvalidClosePayload),
        [hi, lo, reason @ ..] => {
            let code = CloseCode(u16::from_be_bytes([*hi, *lo]));
            if !code.is_valid_on_wire() {
                return Err(ProtocolError::InvalidCloseCode(code.0));
            }
            let reason =
                std::str::from_utf8(reason).map_err(|_| ProtocolError::InvalidCloseReason)?;
            Ok((Some(code), reason))
        }
    }
}

/// Appends a close payload (code and reason truncated to fit) to `out`.
pub(crate) fn encode_close_payload(out: &mut Vec<u8>, code: Option<CloseCode>, reason: &str) {
    if let Some(code) = code {
        out.extend_from_slice(&code.0.to_be_bytes());
        out.extend_from_slice(truncate_reason(reason).as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_valid_on_the_wire() {
        for code in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
        ] {
            assert!(CloseCode(code).is_valid_on_wire(), "{code}");
        }
        for code in [3000, 3999, 4000, 4999] {
            assert!(CloseCode(code).is_valid_on_wire(), "{code}");
        }
    }

    #[test]
    fn codes_invalid_on_the_wire() {
        for code in [
            0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ] {
            assert!(!CloseCode(code).is_valid_on_wire(), "{code}");
        }
    }

    #[test]
    fn standard_texts_match_4d_observations() {
        assert_eq!(
            CloseCode::ABNORMAL.standard_text(),
            "Abnormal closure (close frame not sent nor received)."
        );
        assert_eq!(
            CloseCode::NORMAL.standard_text(),
            "WebSocket has been closed normally."
        );
        assert!(CloseCode::GOING_AWAY
            .standard_text()
            .starts_with("An endpoint is going away"));
    }

    #[test]
    fn empty_close_payload_has_no_code() {
        assert_eq!(parse_close_payload(&[]), Ok((None, "")));
    }

    #[test]
    fn one_byte_close_payload_fails_with_1002() {
        let err = parse_close_payload(&[3]).unwrap_err();
        assert_eq!(err, ProtocolError::InvalidClosePayload);
        assert_eq!(err.close_code(), CloseCode::PROTOCOL_ERROR);
    }

    #[test]
    fn invalid_close_code_fails_with_1002() {
        let err = parse_close_payload(&1005u16.to_be_bytes()).unwrap_err();
        assert_eq!(err, ProtocolError::InvalidCloseCode(1005));
        assert_eq!(err.close_code(), CloseCode::PROTOCOL_ERROR);
    }

    #[test]
    fn non_utf8_close_reason_fails_with_1007() {
        let err = parse_close_payload(&[0x03, 0xe8, 0xff, 0xfe]).unwrap_err();
        assert_eq!(err, ProtocolError::InvalidCloseReason);
        assert_eq!(err.close_code(), CloseCode::INVALID_PAYLOAD);
    }

    #[test]
    fn close_payload_with_code_and_reason_parses() {
        let mut p = 4001u16.to_be_bytes().to_vec();
        p.extend_from_slice("bye ✓".as_bytes());
        assert_eq!(
            parse_close_payload(&p),
            Ok((Some(CloseCode(4001)), "bye ✓"))
        );
    }

    #[test]
    fn truncate_reason_keeps_123_bytes_on_a_char_boundary() {
        let short = "x".repeat(123);
        assert_eq!(truncate_reason(&short), short);
        let long = "y".repeat(200);
        assert_eq!(truncate_reason(&long).len(), 123);
        // 'é' is 2 bytes: 61 of them are 122 bytes, the 62nd would end at 124.
        let accents = "é".repeat(70);
        let cut = truncate_reason(&accents);
        assert_eq!(cut.len(), 122);
        assert!(cut.chars().all(|c| c == 'é'));
    }
}
