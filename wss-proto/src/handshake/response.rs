//! HTTP responses a WebSocket server sends: the 101 and the refusals.

use super::server::UpgradeRequest;
use super::{accept_key_bytes, ACCEPT_KEY_LEN};

/// An HTTP/1.1 response, ready to be encoded onto the wire.
///
/// ```
/// use wss_proto::handshake::Response;
///
/// let mut out = Vec::new();
/// Response::error(404, "no such path").encode(&mut out);
/// let text = String::from_utf8(out).unwrap();
/// assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"));
/// assert!(text.contains("Content-Length: 12\r\n"));
/// assert!(text.ends_with("\r\n\r\nno such path"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// Status code (`101`, `403`, ...).
    pub status: u16,
    /// Reason phrase of the status line; informative only, clients ignore it.
    pub reason: &'static str,
    /// Header fields in the order they are written. `Content-Length` is added by
    /// [`encode`](Self::encode) unless present here.
    pub headers: Vec<(String, String)>,
    /// The body, written as is after the head.
    pub body: Vec<u8>,
}

impl Response {
    /// An empty response with the standard reason phrase of `status` (empty if unknown).
    pub fn new(status: u16) -> Response {
        Response {
            status,
            reason: reason_phrase(status),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// The `101 Switching Protocols` that accepts `upgrade`, with `extra_headers` appended
    /// (a chosen `Sec-WebSocket-Protocol`, cookies, ...).
    pub fn switching_protocols(
        upgrade: &UpgradeRequest,
        extra_headers: &[(String, String)],
    ) -> Response {
        let accept = accept_key_bytes(&upgrade.key);
        let mut response = Response::new(101)
            .header("Upgrade", "websocket")
            .header("Connection", "Upgrade")
            .header("Sec-WebSocket-Accept", &String::from_utf8_lossy(&accept));
        response.headers.extend_from_slice(extra_headers);
        response
    }

    /// Appends to `out` exactly what `Response::switching_protocols(upgrade, extra_headers)`
    /// would encode, without building that response: a server writes one 101 per
    /// connection, and the intermediate response costs seven allocations (the accept key and
    /// each name and value) that the bytes do not need.
    pub fn encode_switching_protocols(
        upgrade: &UpgradeRequest,
        extra_headers: &[(String, String)],
        out: &mut Vec<u8>,
    ) {
        const HEAD: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\n\
            Upgrade: websocket\r\n\
            Connection: Upgrade\r\n\
            Sec-WebSocket-Accept: ";
        let accept = accept_key_bytes(&upgrade.key);
        let extra: usize = extra_headers
            .iter()
            .map(|(n, v)| n.len() + v.len() + 4)
            .sum();
        out.reserve(HEAD.len() + ACCEPT_KEY_LEN + 4 + extra);
        out.extend_from_slice(HEAD);
        out.extend_from_slice(&accept);
        out.extend_from_slice(b"\r\n");
        // A 1xx carries no Content-Length, whatever the extra headers say.
        for (name, value) in extra_headers {
            push_sanitized(out, name);
            out.extend_from_slice(b": ");
            push_sanitized(out, value);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
    }

    /// A refusal: `Connection: close` and, when `text` is not empty, `text` as a `text/plain`
    /// body. A `426` also carries `Sec-WebSocket-Version: 13`, the only version spoken here,
    /// and a `405` carries `Allow: GET`.
    pub fn error(status: u16, text: &str) -> Response {
        let mut response = Response::new(status).header("Connection", "close");
        match status {
            426 => response = response.header("Sec-WebSocket-Version", "13"),
            405 => response = response.header("Allow", "GET"),
            _ => {}
        }
        if !text.is_empty() {
            response = response.header("Content-Type", "text/plain; charset=utf-8");
            response.body = text.as_bytes().to_vec();
        }
        response
    }

    /// Appends a header field (builder style).
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Response {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Appends the encoded response (status line, headers, body) to `out`.
    ///
    /// `Content-Length` is written from the body unless the headers already hold one (a reply
    /// to `HEAD` states the length of a body it does not send) or the status forbids it (1xx,
    /// 204, 304). CR and LF inside names or values are written as spaces: a value that came
    /// from elsewhere must not be able to start a header of its own.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.reserve(64 + self.body.len() + self.headers.len() * 32);
        out.extend_from_slice(b"HTTP/1.1 ");
        push_decimal(out, u64::from(self.status));
        out.push(b' ');
        push_sanitized(out, self.reason);
        out.extend_from_slice(b"\r\n");
        let mut has_length = false;
        for (name, value) in &self.headers {
            has_length |= name.eq_ignore_ascii_case("content-length");
            push_sanitized(out, name);
            out.extend_from_slice(b": ");
            push_sanitized(out, value);
            out.extend_from_slice(b"\r\n");
        }
        let bodiless = self.status < 200 || self.status == 204 || self.status == 304;
        if !has_length && !bodiless {
            out.extend_from_slice(b"Content-Length: ");
            push_decimal(out, self.body.len() as u64);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
    }

    /// The encoded response as a new buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

fn push_sanitized(out: &mut Vec<u8>, text: &str) {
    out.extend(text.bytes().map(|b| match b {
        b'\r' | b'\n' | 0 => b' ',
        _ => b,
    }));
}

fn push_decimal(out: &mut Vec<u8>, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        if let Some(slot) = digits.get_mut(start) {
            *slot = b'0' + (value % 10) as u8;
        }
        value /= 10;
        if value == 0 || start == 0 {
            break;
        }
    }
    out.extend_from_slice(digits.get(start..).unwrap_or_default());
}

/// The reason phrase RFC 9110 gives for the statuses a WebSocket or small web server uses.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        416 => "Range Not Satisfiable",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_101_matches_the_built_response() {
        let upgrade = UpgradeRequest {
            key: "dGhlIHNhbXBsZSBub25jZQ==".to_owned(),
            protocols: Vec::new(),
            extensions: Vec::new(),
        };
        for extra in [
            Vec::new(),
            vec![
                ("Sec-WebSocket-Protocol".to_owned(), "chat".to_owned()),
                ("Set-Cookie".to_owned(), "a=b\r\nX: y".to_owned()),
            ],
        ] {
            let mut direct = b"before".to_vec();
            Response::encode_switching_protocols(&upgrade, &extra, &mut direct);
            let mut built = b"before".to_vec();
            Response::switching_protocols(&upgrade, &extra).encode(&mut built);
            assert_eq!(
                String::from_utf8_lossy(&direct),
                String::from_utf8_lossy(&built)
            );
        }
    }

    #[test]
    fn decimal_digits() {
        for value in [0u64, 7, 10, 431, u64::MAX] {
            let mut out = Vec::new();
            push_decimal(&mut out, value);
            assert_eq!(out, value.to_string().as_bytes());
        }
    }
}
