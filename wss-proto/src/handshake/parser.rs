//! The incremental request-head parser a server runs on each new connection.

use std::fmt;

use super::headers::Headers;
use super::request::Request;
use super::response::Response;
use super::scan::{HeadScanner, Scan};

/// Bounds on a request head, checked as its bytes arrive.
///
/// A peer that sends more is answered with `431 Request Header Fields Too Large` at the moment
/// it crosses the bound; nothing beyond it is buffered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadLimits {
    /// Largest head in bytes, request line and final empty line included. Default 16 KiB,
    /// which fits the cookies and tokens of real browsers with room to spare.
    pub max_head_bytes: usize,
    /// Most header fields (lines after the request line). Default 64.
    pub max_headers: usize,
}

impl Default for HeadLimits {
    fn default() -> Self {
        HeadLimits {
            max_head_bytes: 16 * 1024,
            max_headers: 64,
        }
    }
}

/// Which part of a head httparse refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HeadSyntax {
    /// A header name holds a byte outside the token set (or is empty).
    HeaderName,
    /// A header value holds a control byte.
    HeaderValue,
    /// A line ending is broken (a CR not followed by LF, for instance).
    NewLine,
    /// The method or the request target holds a forbidden byte, or a separator is missing.
    RequestLine,
    /// The HTTP version is not `HTTP/1.0` or `HTTP/1.1`.
    Version,
    /// The status line of a response is broken (client side).
    Status,
    /// The head ended before its request line and fields were complete.
    Truncated,
}

impl HeadSyntax {
    fn from_httparse(err: httparse::Error) -> HeadSyntax {
        match err {
            httparse::Error::HeaderName => HeadSyntax::HeaderName,
            httparse::Error::HeaderValue => HeadSyntax::HeaderValue,
            httparse::Error::NewLine => HeadSyntax::NewLine,
            httparse::Error::Status => HeadSyntax::Status,
            httparse::Error::Version => HeadSyntax::Version,
            // TooManyHeaders cannot happen: the scanner counted lines against the same bound
            // that sizes httparse's array. Token covers the method and the target.
            httparse::Error::Token | httparse::Error::TooManyHeaders => HeadSyntax::RequestLine,
        }
    }

    /// A short English description, used as the body of the 400 response.
    pub fn reason(self) -> &'static str {
        match self {
            HeadSyntax::HeaderName => "invalid header name",
            HeadSyntax::HeaderValue => "invalid header value",
            HeadSyntax::NewLine => "invalid line ending",
            HeadSyntax::RequestLine => "invalid request line",
            HeadSyntax::Version => "invalid HTTP version",
            HeadSyntax::Status => "invalid status line",
            HeadSyntax::Truncated => "incomplete head",
        }
    }
}

/// Why a request head was refused. Answer with [`HeadError::response`], then close.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HeadError {
    /// The head grew past [`HeadLimits::max_head_bytes`] (431).
    TooLarge,
    /// The head has more fields than [`HeadLimits::max_headers`] (431).
    TooManyHeaders,
    /// The head is not valid HTTP/1.x (400).
    Malformed(HeadSyntax),
}

impl HeadError {
    /// The HTTP status to answer with: 431 for the limits, 400 for syntax.
    pub fn status(&self) -> u16 {
        match self {
            HeadError::TooLarge | HeadError::TooManyHeaders => 431,
            HeadError::Malformed(_) => 400,
        }
    }

    /// A short English description, also the body of [`HeadError::response`].
    pub fn reason(&self) -> &'static str {
        match self {
            HeadError::TooLarge => "request head too large",
            HeadError::TooManyHeaders => "too many header fields",
            HeadError::Malformed(syntax) => syntax.reason(),
        }
    }

    /// The complete error response (`Connection: close`, plain-text reason as body).
    pub fn response(&self) -> Response {
        Response::error(self.status(), self.reason())
    }
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.reason(), self.status())
    }
}

impl std::error::Error for HeadError {}

/// Reads request heads from a byte stream, one at a time, however the bytes are split.
///
/// Feed it what the socket gave; it answers "need more", a [`Request`] with how many of the fed
/// bytes it used, or an error to answer with. Each byte is scanned once for the end of the head
/// (the bytes are buffered only when a head spans several reads) and httparse runs once per
/// head. Limits are enforced while scanning, so an endless head costs at most
/// [`HeadLimits::max_head_bytes`] of memory.
///
/// ```
/// use wss_proto::handshake::{HeadLimits, RequestParser};
///
/// let mut parser = RequestParser::new(HeadLimits::default());
/// assert!(parser.feed(b"GET /chat?room=1 HTTP/1.1\r\nHo").unwrap().is_none());
/// let (request, used) = parser.feed(b"st: example.com\r\n\r\n\x81\x80").unwrap().unwrap();
/// assert_eq!(request.path(), "/chat");
/// assert_eq!(request.headers().get("host"), Some("example.com"));
/// assert_eq!(used, 19); // the two bytes after the head are the client's first frame
/// ```
#[derive(Debug, Clone)]
pub struct RequestParser {
    limits: HeadLimits,
    scanner: HeadScanner,
    /// Bytes of a head that spans several `feed` calls.
    buf: Vec<u8>,
    /// Sticky: after an error the connection is to be closed, so later input gets it again.
    failed: Option<HeadError>,
}

/// Capacity kept across `reset` for the split-head buffer; larger ones are released so a
/// keep-alive connection does not hold a big head's buffer forever.
const KEEP_CAPACITY: usize = 1024;

impl RequestParser {
    /// A parser enforcing `limits`.
    pub fn new(limits: HeadLimits) -> Self {
        RequestParser {
            limits,
            scanner: HeadScanner::default(),
            buf: Vec::new(),
            failed: None,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> HeadLimits {
        self.limits
    }

    /// Call with each chunk of bytes read from the connection.
    ///
    /// - `Ok(None)`: the head is not complete; all of `data` was taken, read more.
    /// - `Ok(Some((request, used)))`: a head ended after `used` bytes of this `data`. The rest of
    ///   `data` is whatever the peer pipelined (the next request, or early WebSocket frames);
    ///   the parser is ready for the next head.
    /// - `Err(e)`: answer with `e.response()` and close. The error is sticky until
    ///   [`reset`](Self::reset).
    pub fn feed(&mut self, data: &[u8]) -> Result<Option<(Request, usize)>, HeadError> {
        if let Some(err) = self.failed {
            return Err(err);
        }
        let result = match self.scanner.scan(data, &self.limits) {
            Scan::Partial => {
                self.buf.extend_from_slice(data);
                return Ok(None);
            }
            Scan::TooLarge => Err(HeadError::TooLarge),
            Scan::TooManyHeaders => Err(HeadError::TooManyHeaders),
            Scan::Complete(used) => {
                let head = data.get(..used).unwrap_or_default();
                let parsed = if self.buf.is_empty() {
                    parse_head(head, self.limits.max_headers)
                } else {
                    self.buf.extend_from_slice(head);
                    parse_head(&self.buf, self.limits.max_headers)
                };
                parsed.map(|request| Some((request, used)))
            }
        };
        match result {
            Ok(done) => {
                self.reset();
                Ok(done)
            }
            Err(err) => {
                self.failed = Some(err);
                self.buf = Vec::new();
                Err(err)
            }
        }
    }

    /// Forgets any partial head and any error, ready for a new request.
    ///
    /// Not needed after a successful `feed` (the parser already starts afresh); use it to reuse
    /// a parser for another connection.
    pub fn reset(&mut self) {
        self.scanner = HeadScanner::default();
        self.failed = None;
        if self.buf.capacity() > KEEP_CAPACITY {
            self.buf = Vec::new();
        } else {
            self.buf.clear();
        }
    }

    /// Bytes of the current, unfinished head received so far.
    pub fn buffered(&self) -> usize {
        self.scanner.len()
    }
}

/// Parses a complete head (ending with its empty line) with httparse.
fn parse_head(head: &[u8], max_headers: usize) -> Result<Request, HeadError> {
    with_header_slots(max_headers, |slots| {
        let mut parsed = httparse::Request::new(slots);
        match parsed.parse(head) {
            Ok(httparse::Status::Complete(_)) => {}
            Ok(httparse::Status::Partial) => {
                return Err(HeadError::Malformed(HeadSyntax::Truncated))
            }
            Err(err) => return Err(HeadError::Malformed(HeadSyntax::from_httparse(err))),
        }
        let (Some(method), Some(target), Some(version)) =
            (parsed.method, parsed.path, parsed.version)
        else {
            return Err(HeadError::Malformed(HeadSyntax::Truncated));
        };
        let headers = collect_headers(parsed.headers, head.len());
        Ok(Request::new(method, target, version, headers))
    })
}

/// Copies httparse's borrowed fields into an owned [`Headers`].
///
/// Values are text for every client we know of; a stray obs-text byte (allowed by HTTP) is
/// replaced with U+FFFD rather than refusing the request.
pub(crate) fn collect_headers(fields: &[httparse::Header<'_>], head_len: usize) -> Headers {
    let mut headers = Headers::with_capacity(head_len, fields.len());
    for field in fields {
        // The strict check first: it runs word by word over ASCII, the lossy one byte by byte.
        match std::str::from_utf8(field.value) {
            Ok(value) => headers.append(field.name, value),
            Err(_) => headers.append(field.name, &String::from_utf8_lossy(field.value)),
        }
    }
    headers
}

/// Runs `f` with `max_headers` empty httparse slots: on the stack for the usual limit, on the
/// heap for a larger configured one.
pub(crate) fn with_header_slots<'b, T>(
    max_headers: usize,
    f: impl FnOnce(&mut [httparse::Header<'b>]) -> T,
) -> T {
    const STACK_SLOTS: usize = 64;
    if max_headers <= STACK_SLOTS {
        let mut slots: [httparse::Header<'b>; STACK_SLOTS] = [httparse::EMPTY_HEADER; STACK_SLOTS];
        f(slots.get_mut(..max_headers).unwrap_or_default())
    } else {
        let mut slots = vec![httparse::EMPTY_HEADER; max_headers];
        f(&mut slots)
    }
}
