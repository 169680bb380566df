//! Server side of the opening handshake: is this an upgrade, and is it a valid one?

use std::fmt;

use base64::Engine as _;

use super::headers::{split_list, split_quoted_list};
use super::request::Request;
use super::response::Response;

/// What a valid upgrade request offers: everything the `101` and the handler need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpgradeRequest {
    /// The `Sec-WebSocket-Key` as sent (trimmed), input of the accept key.
    pub key: String,
    /// Offered subprotocols, in the client's order of preference, from every
    /// `Sec-WebSocket-Protocol` field.
    pub protocols: Vec<String>,
    /// Offered extensions, one raw offer each (`permessage-deflate; client_max_window_bits`),
    /// from every `Sec-WebSocket-Extensions` field, in order.
    pub extensions: Vec<String>,
}

/// Which rule of RFC 6455 §4.2.1 an upgrade request broke.
///
/// [`status`](Self::status) and [`response`](Self::response) give the HTTP answer.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The method is not `GET` (405, with `Allow: GET`).
    MethodNotGet,
    /// The request is HTTP/1.0; the upgrade needs HTTP/1.1 (400).
    NotHttp11,
    /// No `Host` field (400; RFC 9112 §3.2 requires one).
    MissingHost,
    /// More than one `Host` field (400; RFC 9112 §3.2 forbids it).
    DuplicateHost,
    /// No `Upgrade` field naming `websocket` (400).
    MissingUpgrade,
    /// No `Connection` field carrying the `upgrade` token (400).
    MissingConnectionUpgrade,
    /// No `Sec-WebSocket-Version` field (426: likely a pre-RFC draft client).
    MissingVersion,
    /// A `Sec-WebSocket-Version` other than a single `13` (426); holds what was sent.
    UnsupportedVersion(String),
    /// No `Sec-WebSocket-Key` field (400).
    MissingKey,
    /// The key is not base64 of exactly 16 bytes (400).
    InvalidKey,
    /// More than one `Sec-WebSocket-Key` field (400).
    DuplicateKey,
}

impl HandshakeError {
    /// The HTTP status of the refusal.
    pub fn status(&self) -> u16 {
        match self {
            HandshakeError::MethodNotGet => 405,
            HandshakeError::MissingVersion | HandshakeError::UnsupportedVersion(_) => 426,
            _ => 400,
        }
    }

    /// A short English description, also the body of [`response`](Self::response).
    pub fn reason(&self) -> &'static str {
        match self {
            HandshakeError::MethodNotGet => "websocket upgrade needs GET",
            HandshakeError::NotHttp11 => "websocket upgrade needs HTTP/1.1",
            HandshakeError::MissingHost => "missing Host header",
            HandshakeError::DuplicateHost => "more than one Host header",
            HandshakeError::MissingUpgrade => "missing Upgrade: websocket header",
            HandshakeError::MissingConnectionUpgrade => "missing Connection: Upgrade header",
            HandshakeError::MissingVersion => "missing Sec-WebSocket-Version header",
            HandshakeError::UnsupportedVersion(_) => "unsupported Sec-WebSocket-Version",
            HandshakeError::MissingKey => "missing Sec-WebSocket-Key header",
            HandshakeError::InvalidKey => "invalid Sec-WebSocket-Key",
            HandshakeError::DuplicateKey => "more than one Sec-WebSocket-Key header",
        }
    }

    /// The refusal to send before closing: `Connection: close`, the reason as a plain-text body,
    /// and `Sec-WebSocket-Version: 13` on a 426, `Allow: GET` on a 405.
    pub fn response(&self) -> Response {
        Response::error(self.status(), self.reason())
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.reason(), self.status())?;
        if let HandshakeError::UnsupportedVersion(sent) = self {
            write!(f, ": {sent:?}")?;
        }
        Ok(())
    }
}

impl std::error::Error for HandshakeError {}

/// Whether `request` asks for a WebSocket at all: an `Upgrade` field naming `websocket`, or a
/// `Sec-WebSocket-Key`. Such a request is validated with [`validate_upgrade`]; any other is
/// plain HTTP (a page, a file).
pub fn is_upgrade_request(request: &Request) -> bool {
    let headers = request.headers();
    headers.contains_token("upgrade", "websocket") || headers.get("sec-websocket-key").is_some()
}

/// Checks an upgrade request against RFC 6455 §4.2.1 and extracts what the `101` needs.
///
/// The rules are checked in a fixed order and the first broken one is reported: method,
/// HTTP version, `Host`, `Upgrade`, `Connection`, then `Sec-WebSocket-Version` before the key,
/// so that a client speaking an old draft (which sends no key either) learns the version it
/// should use from the 426.
pub fn validate_upgrade(request: &Request) -> Result<UpgradeRequest, HandshakeError> {
    let headers = request.headers();
    if request.method() != "GET" {
        return Err(HandshakeError::MethodNotGet);
    }
    if request.version() < 1 {
        return Err(HandshakeError::NotHttp11);
    }
    match headers.count("host") {
        0 => return Err(HandshakeError::MissingHost),
        1 => {}
        _ => return Err(HandshakeError::DuplicateHost),
    }
    if !headers.contains_token("upgrade", "websocket") {
        return Err(HandshakeError::MissingUpgrade);
    }
    if !headers.contains_token("connection", "upgrade") {
        return Err(HandshakeError::MissingConnectionUpgrade);
    }
    let mut versions = headers.get_all("sec-websocket-version");
    match (versions.next(), versions.next()) {
        (None, _) => return Err(HandshakeError::MissingVersion),
        (Some(version), None) if version.trim() == "13" => {}
        _ => {
            let sent: Vec<&str> = headers.get_all("sec-websocket-version").collect();
            return Err(HandshakeError::UnsupportedVersion(sent.join(", ")));
        }
    }
    let mut keys = headers.get_all("sec-websocket-key");
    let key = match (keys.next(), keys.next()) {
        (None, _) => return Err(HandshakeError::MissingKey),
        (Some(_), Some(_)) => return Err(HandshakeError::DuplicateKey),
        (Some(key), None) => key.trim_matches([' ', '\t']),
    };
    if !is_valid_key(key) {
        return Err(HandshakeError::InvalidKey);
    }
    Ok(UpgradeRequest {
        key: key.to_owned(),
        protocols: headers
            .get_all("sec-websocket-protocol")
            .flat_map(split_list)
            .map(str::to_owned)
            .collect(),
        extensions: headers
            .get_all("sec-websocket-extensions")
            .flat_map(split_quoted_list)
            .map(str::to_owned)
            .collect(),
    })
}

/// A key is the base64 (with padding) of 16 bytes: 24 characters, canonical encoding.
fn is_valid_key(key: &str) -> bool {
    let mut decoded = [0u8; 18];
    key.len() == 24
        && matches!(
            base64::engine::general_purpose::STANDARD.decode_slice(key, &mut decoded),
            Ok(16)
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_must_be_24_chars_of_16_bytes() {
        assert!(is_valid_key("dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(!is_valid_key("dGhlIHNhbXBsZSBub25jZQ"));
        // 18 bytes: 24 chars but the wrong length once decoded
        assert!(!is_valid_key("AAAAAAAAAAAAAAAAAAAAAAAA"));
        assert!(!is_valid_key("dGhlIHNhbXBsZSBub25jZ!=="));
    }
}
