//! A parsed HTTP/1.x request head.

use std::fmt;
use std::ops::Range;

use super::headers::Headers;
use super::query::Query;

/// An HTTP request head (request line and header fields), as a server received it.
///
/// Built by [`RequestParser`](super::RequestParser) from the wire, or by [`Request::new`] in
/// tests and tools. Nothing in it is normalised except the query, which is decoded: the target
/// and the header names stay exactly as sent.
#[derive(Clone, PartialEq, Eq)]
pub struct Request {
    /// The method followed by the target, in one allocation: `line[..method_len]` is the
    /// method, the rest the target.
    line: String,
    method_len: usize,
    /// The path's bytes within the target.
    path: Range<usize>,
    version: u8,
    query: Query,
    headers: Headers,
}

impl Request {
    /// Assembles a request from its parts; `url` is the raw request-target (`/chat?room=1`).
    ///
    /// `version` is the HTTP minor version: 1 for HTTP/1.1, 0 for HTTP/1.0.
    pub fn new(method: &str, url: &str, version: u8, headers: Headers) -> Request {
        let (path, query) = split_target(url);
        let mut line = String::with_capacity(method.len() + url.len());
        line.push_str(method);
        line.push_str(url);
        Request {
            line,
            method_len: method.len(),
            path,
            version,
            query: query.map(Query::parse).unwrap_or_default(),
            headers,
        }
    }

    /// The method, as sent (`GET`); methods are case-sensitive in HTTP.
    pub fn method(&self) -> &str {
        self.line.get(..self.method_len).unwrap_or_default()
    }

    /// The request-target exactly as it appears in the request line, undecoded:
    /// `GET /status?name=ryan HTTP/1.1` gives `/status?name=ryan`.
    pub fn url(&self) -> &str {
        self.line.get(self.method_len..).unwrap_or_default()
    }

    /// The path part of the target, still percent-encoded, without query or fragment.
    ///
    /// For an absolute-form target (`http://host/chat?x`, as sent to proxies) this is the path
    /// after the authority (`/chat`), or `/` when there is none.
    pub fn path(&self) -> &str {
        match self.url().get(self.path.clone()) {
            Some("") | None => "/",
            Some(path) => path,
        }
    }

    /// The decoded query parameters (empty when the target has no `?`).
    pub fn query(&self) -> &Query {
        &self.query
    }

    /// The header fields, names as sent, in arrival order.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The HTTP minor version: 1 for HTTP/1.1, 0 for HTTP/1.0.
    pub fn version(&self) -> u8 {
        self.version
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method())
            .field("url", &self.url())
            .field("path", &self.path())
            .field("version", &self.version)
            .field("query", &self.query)
            .field("headers", &self.headers)
            .finish()
    }
}

/// Splits a request-target into the byte range of its path and its raw query, if any.
///
/// The path starts at 0 for origin-form (`/chat`), after `scheme://authority` for
/// absolute-form (`http://host/chat`); it ends at the first `?` or `#`.
fn split_target(target: &str) -> (Range<usize>, Option<&str>) {
    let end = target.find(['?', '#']).unwrap_or(target.len());
    let start = match target.find("://") {
        Some(i) if i > 0 && target.bytes().take(i).all(|b| b.is_ascii_alphabetic()) && i < end => {
            let authority = i + 3;
            target
                .get(authority..end)
                .and_then(|rest| rest.find('/'))
                .map_or(end, |slash| authority + slash)
        }
        _ => 0,
    };
    let query = target
        .get(end..)
        .and_then(|rest| rest.strip_prefix('?'))
        .map(|rest| rest.split('#').next().unwrap_or_default());
    (start..end, query)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path_of(url: &str) -> String {
        Request::new("GET", url, 1, Headers::new())
            .path()
            .to_owned()
    }

    #[test]
    fn path_stops_at_query_and_fragment() {
        assert_eq!(path_of("/a/b?x=1"), "/a/b");
        assert_eq!(path_of("/a#frag"), "/a");
        assert_eq!(path_of("/a%20b"), "/a%20b");
    }

    #[test]
    fn absolute_form_path_skips_the_authority() {
        assert_eq!(path_of("http://example.com/chat?x=1"), "/chat");
        assert_eq!(path_of("http://example.com"), "/");
        assert_eq!(path_of("http://example.com?x=1"), "/");
    }

    #[test]
    fn query_excludes_the_fragment() {
        let req = Request::new("GET", "/?a=1#b=2", 1, Headers::new());
        assert_eq!(req.query().get("a"), Some("1"));
        assert_eq!(req.query().get("b"), None);
    }
}
