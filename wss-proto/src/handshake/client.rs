//! Client side of the opening handshake: the upgrade request and the check of the `101`.

use std::fmt;

use base64::Engine as _;

use super::accept_key;
use super::deflate::{
    accept_response, client_offer, DeflateConfig, DeflateParams, NegotiationError, EXTENSION_NAME,
    HEADER_NAME,
};
use super::headers::{split_list, split_quoted_list, Headers};
use super::parser::{collect_headers, with_header_slots, HeadLimits, HeadSyntax};
use super::scan::{HeadScanner, Scan};

/// Why a server's answer to our upgrade request was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientHandshakeError {
    /// The response head grew past the limit (16 KiB).
    TooLarge,
    /// The response head has more than 64 fields.
    TooManyHeaders,
    /// The response head is not valid HTTP/1.x.
    Malformed(HeadSyntax),
    /// The status is not `101`; the server refused or does not speak WebSocket.
    UnexpectedStatus(u16),
    /// No `Upgrade: websocket` in the `101`.
    MissingUpgrade,
    /// No `Connection: upgrade` in the `101`.
    MissingConnectionUpgrade,
    /// No `Sec-WebSocket-Accept` in the `101`.
    MissingAccept,
    /// The `Sec-WebSocket-Accept` does not match our key (or appears twice).
    WrongAccept,
    /// The server selected a subprotocol we did not offer; holds it.
    UnofferedProtocol(String),
    /// The server accepted an extension we did not offer; holds its name.
    UnofferedExtension(String),
    /// The server's `permessage-deflate` answer breaks RFC 7692 §7.1 or goes beyond the offer
    /// made with [`ClientHandshake::with_deflate`].
    InvalidDeflateResponse(NegotiationError),
}

impl fmt::Display for ClientHandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientHandshakeError::TooLarge => f.write_str("response head too large"),
            ClientHandshakeError::TooManyHeaders => f.write_str("too many response header fields"),
            ClientHandshakeError::Malformed(syntax) => write!(f, "{}", syntax.reason()),
            ClientHandshakeError::UnexpectedStatus(status) => {
                write!(f, "server answered {status} instead of 101")
            }
            ClientHandshakeError::MissingUpgrade => f.write_str("missing Upgrade: websocket"),
            ClientHandshakeError::MissingConnectionUpgrade => {
                f.write_str("missing Connection: Upgrade")
            }
            ClientHandshakeError::MissingAccept => f.write_str("missing Sec-WebSocket-Accept"),
            ClientHandshakeError::WrongAccept => f.write_str("wrong Sec-WebSocket-Accept"),
            ClientHandshakeError::UnofferedProtocol(p) => {
                write!(f, "server selected unoffered subprotocol {p:?}")
            }
            ClientHandshakeError::UnofferedExtension(e) => {
                write!(f, "server accepted unoffered extension {e:?}")
            }
            ClientHandshakeError::InvalidDeflateResponse(e) => {
                write!(f, "invalid permessage-deflate answer: {e}")
            }
        }
    }
}

impl std::error::Error for ClientHandshakeError {}

#[derive(Debug, Clone)]
enum Progress {
    Reading,
    Done,
    Failed(ClientHandshakeError),
}

/// The client's half of the opening handshake, without I/O.
///
/// Write [`request_bytes`](Self::request_bytes), then feed what the server sends to
/// [`feed_response`](Self::feed_response) until it reports the handshake done; the bytes after
/// the `101` are WebSocket frames. The key's 16 random bytes come from the caller, which keeps
/// this crate free of any source of randomness.
///
/// ```
/// use wss_proto::handshake::{accept_key, ClientHandshake};
///
/// let mut client = ClientHandshake::new("example.com", "/chat", [7; 16], &[]);
/// let request = String::from_utf8(client.request_bytes()).unwrap();
/// assert!(request.starts_with("GET /chat HTTP/1.1\r\nHost: example.com\r\n"));
///
/// let reply = format!(
///     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
///      Sec-WebSocket-Accept: {}\r\n\r\n\x01\x00",
///     accept_key(client.key()),
/// );
/// let used = client.feed_response(reply.as_bytes()).unwrap().unwrap();
/// assert_eq!(used, reply.len() - 2); // the two bytes after the head are frame bytes
/// ```
#[derive(Debug, Clone)]
pub struct ClientHandshake {
    host: String,
    target: String,
    key: String,
    extra_headers: Vec<(String, String)>,
    limits: HeadLimits,
    scanner: HeadScanner,
    buf: Vec<u8>,
    progress: Progress,
    protocol: Option<String>,
    response_headers: Headers,
    /// What we offered for permessage-deflate, and what the server agreed to.
    deflate_offer: Option<DeflateConfig>,
    deflate: Option<DeflateParams>,
}

impl ClientHandshake {
    /// Prepares an upgrade request for `path_and_query` (`/chat?room=1`) on `host`
    /// (`example.com:8080`), with `key_bytes` as the random nonce and `extra_headers` added
    /// as given (`Origin`, `Sec-WebSocket-Protocol`, cookies, ...).
    pub fn new(
        host: &str,
        path_and_query: &str,
        key_bytes: [u8; 16],
        extra_headers: &[(String, String)],
    ) -> Self {
        ClientHandshake {
            host: host.to_owned(),
            target: path_and_query.to_owned(),
            key: base64::engine::general_purpose::STANDARD.encode(key_bytes),
            extra_headers: extra_headers.to_vec(),
            limits: HeadLimits::default(),
            scanner: HeadScanner::default(),
            buf: Vec::new(),
            progress: Progress::Reading,
            protocol: None,
            response_headers: Headers::new(),
            deflate_offer: None,
            deflate: None,
        }
    }

    /// Offers permessage-deflate as `config` describes ([`client_offer`]), adding the
    /// `Sec-WebSocket-Extensions` field. The server's answer is then checked against the
    /// offer, and [`deflate_params`](Self::deflate_params) gives what to put in
    /// [`Config::deflate`](crate::Config::deflate). Does nothing when `config.enabled` is false.
    #[must_use]
    pub fn with_deflate(mut self, config: &DeflateConfig) -> Self {
        if config.enabled {
            self.extra_headers
                .push((HEADER_NAME.to_owned(), client_offer(config)));
            self.deflate_offer = Some(config.clone());
        }
        self
    }

    /// The permessage-deflate parameters the server agreed to, once done; `None` when it
    /// declined or none was offered with [`with_deflate`](Self::with_deflate).
    pub fn deflate_params(&self) -> Option<&DeflateParams> {
        self.deflate.as_ref()
    }

    /// The `Sec-WebSocket-Key` sent (base64 of the 16 key bytes).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The request head to write to the server. CR and LF in the caller's strings are written
    /// as spaces so that none of them can end the head early.
    pub fn request_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(160 + self.target.len() + self.host.len());
        let mut line = |parts: &[&str]| {
            for part in parts {
                out.extend(part.bytes().map(|b| match b {
                    b'\r' | b'\n' | 0 => b' ',
                    _ => b,
                }));
            }
            out.extend_from_slice(b"\r\n");
        };
        line(&["GET ", &self.target, " HTTP/1.1"]);
        line(&["Host: ", &self.host]);
        line(&["Upgrade: websocket"]);
        line(&["Connection: Upgrade"]);
        line(&["Sec-WebSocket-Key: ", &self.key]);
        line(&["Sec-WebSocket-Version: 13"]);
        for (name, value) in &self.extra_headers {
            line(&[name, ": ", value]);
        }
        line(&[]);
        out
    }

    /// Call with each chunk read from the server until the handshake is decided.
    ///
    /// - `Ok(None)`: the response head is not complete; all of `data` was taken.
    /// - `Ok(Some(used))`: a valid `101` ended after `used` bytes of `data`; the rest are
    ///   WebSocket frames. Later calls return `Ok(Some(0))`: the handshake is over.
    /// - `Err(e)`: the server refused or answered wrongly; close the connection. The error is
    ///   sticky.
    pub fn feed_response(&mut self, data: &[u8]) -> Result<Option<usize>, ClientHandshakeError> {
        match &self.progress {
            Progress::Reading => {}
            Progress::Done => return Ok(Some(0)),
            Progress::Failed(err) => return Err(err.clone()),
        }
        let result = match self.scanner.scan(data, &self.limits) {
            Scan::Partial => {
                self.buf.extend_from_slice(data);
                return Ok(None);
            }
            Scan::TooLarge => Err(ClientHandshakeError::TooLarge),
            Scan::TooManyHeaders => Err(ClientHandshakeError::TooManyHeaders),
            Scan::Complete(used) => {
                let head = data.get(..used).unwrap_or_default();
                let checked = if self.buf.is_empty() {
                    self.check_response(head)
                } else {
                    let mut buf = std::mem::take(&mut self.buf);
                    buf.extend_from_slice(head);
                    self.check_response(&buf)
                };
                checked.map(|()| used)
            }
        };
        self.buf = Vec::new();
        match result {
            Ok(used) => {
                self.progress = Progress::Done;
                Ok(Some(used))
            }
            Err(err) => {
                self.progress = Progress::Failed(err.clone());
                Err(err)
            }
        }
    }

    /// Whether a valid `101` has been received.
    pub fn is_done(&self) -> bool {
        matches!(self.progress, Progress::Done)
    }

    /// The subprotocol the server selected, once done (`None` if it selected none).
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// The header fields of the server's `101`, once done (empty before).
    pub fn response_headers(&self) -> &Headers {
        &self.response_headers
    }

    fn check_response(&mut self, head: &[u8]) -> Result<(), ClientHandshakeError> {
        let (status, headers) = with_header_slots(self.limits.max_headers, |slots| {
            let mut parsed = httparse::Response::new(slots);
            match parsed.parse(head) {
                Ok(httparse::Status::Complete(_)) => {}
                Ok(httparse::Status::Partial) => {
                    return Err(ClientHandshakeError::Malformed(HeadSyntax::Truncated))
                }
                Err(err) => {
                    let syntax = match err {
                        httparse::Error::HeaderName => HeadSyntax::HeaderName,
                        httparse::Error::HeaderValue => HeadSyntax::HeaderValue,
                        httparse::Error::NewLine => HeadSyntax::NewLine,
                        httparse::Error::Version => HeadSyntax::Version,
                        _ => HeadSyntax::Status,
                    };
                    return Err(ClientHandshakeError::Malformed(syntax));
                }
            }
            let status = parsed
                .code
                .ok_or(ClientHandshakeError::Malformed(HeadSyntax::Truncated))?;
            Ok((status, collect_headers(parsed.headers, head.len())))
        })?;
        if status != 101 {
            return Err(ClientHandshakeError::UnexpectedStatus(status));
        }
        if !headers.contains_token("upgrade", "websocket") {
            return Err(ClientHandshakeError::MissingUpgrade);
        }
        if !headers.contains_token("connection", "upgrade") {
            return Err(ClientHandshakeError::MissingConnectionUpgrade);
        }
        match headers.count("sec-websocket-accept") {
            0 => return Err(ClientHandshakeError::MissingAccept),
            1 => {}
            _ => return Err(ClientHandshakeError::WrongAccept),
        }
        let accept = headers.get("sec-websocket-accept").unwrap_or_default();
        if accept.trim() != accept_key(&self.key) {
            return Err(ClientHandshakeError::WrongAccept);
        }
        let offered = |name: &str| {
            self.extra_headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .flat_map(|(_, v)| split_list(v))
                .map(|item| item.split(';').next().unwrap_or_default().trim().to_owned())
                .collect::<Vec<_>>()
        };
        let protocols: Vec<&str> = headers
            .get_all("sec-websocket-protocol")
            .flat_map(split_list)
            .collect();
        let offered_protocols = offered("sec-websocket-protocol");
        for &protocol in &protocols {
            if !offered_protocols.iter().any(|p| p == protocol) || protocols.len() > 1 {
                return Err(ClientHandshakeError::UnofferedProtocol(protocol.to_owned()));
            }
        }
        let offered_extensions = offered("sec-websocket-extensions");
        for extension in headers
            .get_all("sec-websocket-extensions")
            .flat_map(split_quoted_list)
        {
            let name = extension.split(';').next().unwrap_or_default().trim();
            if !offered_extensions
                .iter()
                .any(|e| e.eq_ignore_ascii_case(name))
            {
                return Err(ClientHandshakeError::UnofferedExtension(name.to_owned()));
            }
        }
        if let Some(config) = &self.deflate_offer {
            let mut answers = headers
                .get_all("sec-websocket-extensions")
                .flat_map(split_quoted_list)
                .filter(|item| {
                    let name = item.split(';').next().unwrap_or_default().trim();
                    name.eq_ignore_ascii_case(EXTENSION_NAME)
                });
            if let Some(answer) = answers.next() {
                if answers.next().is_some() {
                    return Err(ClientHandshakeError::InvalidDeflateResponse(
                        NegotiationError::Repeated,
                    ));
                }
                let params = accept_response(answer, config)
                    .map_err(ClientHandshakeError::InvalidDeflateResponse)?;
                self.deflate = Some(params);
            }
        }
        self.protocol = protocols.first().map(|p| (*p).to_owned());
        self.response_headers = headers;
        Ok(())
    }
}
