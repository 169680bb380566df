//! The plain-HTTP side of a web server: which request gets which answer (files, 304s,
//! redirects, refusals), with the session and `Host` rules. Shared by the network threads
//! (answers from memory) and the file thread (answers that needed the disk).

use std::time::{Instant, SystemTime};

use wss_proto::handshake::{self, Response};

use crate::clock::dated;
use crate::files::Files;
use crate::hosts::HostPolicy;
use crate::session::{cookie_value, set_cookie_value, Session, SessionStore};
use crate::statics::{percent_decode, Entity};

/// What a plain GET or HEAD asks for, detached from the request's buffer so it can wait for
/// the file thread.
#[derive(Debug)]
pub(crate) struct Ask {
    pub(crate) head: bool,
    /// The percent-decoded path; `None` when it does not decode (then nothing matches).
    pub(crate) path: Option<String>,
    /// The path as sent, for a redirect's `Location`.
    raw_path: String,
    /// The query as sent (without `?`), kept across a redirect.
    raw_query: Option<String>,
    if_none_match: Option<String>,
    if_modified_since: Option<String>,
    /// The session id the request's cookie names, if any.
    cookie: Option<String>,
    tls: bool,
}

impl Ask {
    pub(crate) fn of(
        request: &handshake::Request,
        head: bool,
        cookie_name: &str,
        tls: bool,
    ) -> Ask {
        let headers = request.headers();
        let joined = |name: &str| {
            let mut values = headers.get_all(name).peekable();
            values.peek()?;
            Some(values.collect::<Vec<_>>().join(", "))
        };
        let raw_query = request
            .url()
            .split('#')
            .next()
            .and_then(|u| u.split_once('?'))
            .map(|(_, q)| q.to_owned());
        Ask {
            head,
            path: percent_decode(request.path()),
            raw_path: request.path().to_owned(),
            raw_query,
            if_none_match: joined("if-none-match"),
            if_modified_since: headers.get("if-modified-since").map(str::to_owned),
            cookie: headers
                .get_all("cookie")
                .find_map(|h| cookie_value(h, cookie_name))
                .map(str::to_owned),
            tls,
        }
    }
}

/// The web side's state: files, sessions, the `Host` policy.
pub(crate) struct Site {
    pub(crate) files: Files,
    sessions: Option<SessionStore>,
    cookie_name: String,
    pub(crate) hosts: HostPolicy,
}

impl Site {
    pub(crate) fn new(
        files: Files,
        sessions: Option<SessionStore>,
        cookie_name: String,
        hosts: HostPolicy,
    ) -> Site {
        Site {
            files,
            sessions,
            cookie_name,
            hosts,
        }
    }

    pub(crate) fn cookie_name(&self) -> &str {
        &self.cookie_name
    }

    /// The live session with this id, if any (refreshed).
    /// Sessions kept now (for stats).
    pub(crate) fn session_count(&self) -> usize {
        self.sessions.as_ref().map_or(0, SessionStore::len)
    }

    pub(crate) fn session(&self, id: &str) -> Option<Session> {
        self.sessions.as_ref()?.get(id, Instant::now())
    }

    /// The live session a request's cookie names (refreshed); never creates one.
    pub(crate) fn known_session(&self, request: &handshake::Request) -> Option<Session> {
        let id = request
            .headers()
            .get_all("cookie")
            .find_map(|h| cookie_value(h, &self.cookie_name))?;
        self.session(id)
    }

    /// The answer to `ask` for `entity`: `304` when a validator matches, else `200` (headers
    /// only for `HEAD`). Only a `200` to a `GET` of an HTML page opens a session: scripts,
    /// styles, images, `HEAD`s and `304`s never add one to the store.
    pub(crate) fn answer(&self, entity: &Entity, ask: &Ask) -> Response {
        if not_modified(entity, ask) {
            if entity.html {
                // Keeps a visitor's session alive; a 304 never opens one.
                if let Some(id) = &ask.cookie {
                    let _ = self.session(id);
                }
            }
            let mut r = Response::new(304)
                .header("ETag", &entity.etag)
                .header("Last-Modified", &entity.last_modified);
            if let Some((n, v)) = entity
                .headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("cache-control"))
            {
                r = r.header(n, v);
            }
            return r;
        }
        let mut r = Response::new(200);
        r.headers.reserve(entity.headers.len() + 4);
        r.headers.extend(entity.headers.iter().cloned());
        r = r
            .header("ETag", &entity.etag)
            .header("Last-Modified", &entity.last_modified);
        if entity.html && !ask.head {
            if let Some(cookie) = self.page_session(ask) {
                r = r.header("Set-Cookie", &cookie);
            }
        }
        if ask.head {
            // HEAD states the length of the body it does not send.
            r = r.header("Content-Length", &entity.body.len().to_string());
        } else {
            r.body = entity.body.clone();
        }
        r
    }

    /// For a page served: refreshes the request's session, or opens one and returns the
    /// `Set-Cookie` value (`Secure` over TLS). An id the store does not know is replaced,
    /// never adopted.
    fn page_session(&self, ask: &Ask) -> Option<String> {
        let store = self.sessions.as_ref()?;
        if let Some(id) = &ask.cookie {
            if store.get(id, Instant::now()).is_some() {
                return None;
            }
        }
        let s = store.create(Instant::now())?;
        Some(set_cookie_value(&self.cookie_name, s.id(), ask.tls))
    }
}

/// The last touch on every answer the web server writes: a `Date`, and `nosniff` beside a
/// `Content-Type` that lacks it (the handshake refusals of `wss-proto` carry none).
pub(crate) fn finished(response: Response) -> Response {
    let mut response = dated(response);
    let has =
        |r: &Response, name: &str| r.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    if has(&response, "content-type") && !has(&response, "x-content-type-options") {
        response
            .headers
            .push(("X-Content-Type-Options".into(), "nosniff".into()));
    }
    response
}

/// `404` with a short text body.
pub(crate) fn not_found(ask: &Ask) -> Response {
    text(404, "Not Found\n", ask.head)
}

/// `301` to the folder's path with a trailing slash, the query kept. The `Location` always
/// starts with exactly one `/`, so a path such as `//evil.example` cannot become a redirect to
/// another host.
pub(crate) fn folder_redirect(ask: &Ask) -> Response {
    let mut location = String::with_capacity(ask.raw_path.len() + 2);
    location.push('/');
    location.push_str(ask.raw_path.trim_start_matches('/'));
    location.push('/');
    if let Some(q) = &ask.raw_query {
        location.push('?');
        location.push_str(q);
    }
    let mut r = text(301, "Moved Permanently\n", ask.head);
    r.headers.push(("Location".into(), location));
    r
}

/// `503` when the file thread has too much to do already.
pub(crate) fn busy(ask: &Ask) -> Response {
    let mut r = text(503, "Service Unavailable\n", ask.head);
    r.headers.push(("Retry-After".into(), "1".into()));
    r
}

/// A response with a `text/plain` body (stated, not sent, for `HEAD`).
pub(crate) fn text(status: u16, body: &str, head: bool) -> Response {
    let mut r = Response::new(status)
        .header("Content-Type", "text/plain; charset=utf-8")
        .header("X-Content-Type-Options", "nosniff");
    if head {
        r = r.header("Content-Length", &body.len().to_string());
    } else {
        r.body = body.as_bytes().to_vec();
    }
    r
}

/// RFC 9110 §13.2.2: `If-None-Match` decides when present (weak comparison, `*` matches);
/// otherwise `If-Modified-Since`, when it is a valid date, and the file is not newer.
fn not_modified(entity: &Entity, ask: &Ask) -> bool {
    if let Some(list) = &ask.if_none_match {
        return etag_listed(list, &entity.etag);
    }
    let Some(since) = ask
        .if_modified_since
        .as_deref()
        .and_then(|d| httpdate::parse_http_date(d.trim()).ok())
    else {
        return false;
    };
    entity.modified <= since && since <= SystemTime::now() + std::time::Duration::from_secs(60)
}

/// Whether an `If-None-Match` value lists `etag` (a quoted strong tag), comparing weakly.
fn etag_listed(list: &str, etag: &str) -> bool {
    let mut rest = list.trim();
    if rest == "*" {
        return true;
    }
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            return false;
        }
        let tag_start = rest.strip_prefix("W/").unwrap_or(rest);
        let Some(after_quote) = tag_start.strip_prefix('"') else {
            return false;
        };
        let Some(end) = after_quote.find('"') else {
            return false;
        };
        let (opaque, after) = after_quote.split_at(end);
        if etag.get(1..etag.len().saturating_sub(1)) == Some(opaque) {
            return true;
        }
        rest = after.get(1..).unwrap_or("");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_lists_are_compared_weakly() {
        let tag = "\"abc\"";
        for yes in [
            "\"abc\"",
            "W/\"abc\"",
            "\"x\", \"abc\"",
            "*",
            " \"x\" ,W/\"abc\" ",
        ] {
            assert!(etag_listed(yes, tag), "{yes}");
        }
        for no in ["\"abcd\"", "abc", "\"ab", "", "\"x\",", "W/\"x\""] {
            assert!(!etag_listed(no, tag), "{no}");
        }
    }
}
