//! The `event` objects handed to callbacks, with 4D's fields and `to_json()` renderings that
//! use 4D's names (`type`, `remoteAddress`, `errCode`, ...).

use std::cell::Cell;
use std::net::IpAddr;

use serde_json::{Map, Value};

use crate::data::Data;
use crate::error::ErrorInfo;
use crate::session::Session;

/// Name/value pairs kept as sent: original names, arrival order, repeats kept.
///
/// Used for both the request headers and the query; lookups by name are case-insensitive
/// for headers ([`Pairs::get`]) and exact for queries ([`Pairs::get_exact`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pairs {
    items: Vec<(String, String)>,
}

impl Pairs {
    /// Builds from pairs in arrival order.
    pub fn new(items: Vec<(String, String)>) -> Self {
        Pairs { items }
    }

    /// First value whose name matches `name` ignoring ASCII case.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.items
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value whose name matches `name` ignoring ASCII case, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.items
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// First value whose name is exactly `name`.
    pub fn get_exact(&self, name: &str) -> Option<&str> {
        self.items
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// All pairs in arrival order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.items.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// 4D's object form: `name: value`, or a collection of values in order when a name
    /// repeats (names compared exactly, as sent).
    pub fn to_json(&self) -> Value {
        let mut map = Map::new();
        for (k, v) in &self.items {
            match map.get_mut(k) {
                None => {
                    map.insert(k.clone(), Value::String(v.clone()));
                }
                Some(Value::Array(list)) => list.push(Value::String(v.clone())),
                Some(first) => {
                    let prev = first.take();
                    *first = Value::Array(vec![prev, Value::String(v.clone())]);
                }
            }
        }
        Value::Object(map)
    }
}

/// The upgrade request as `on_connection` sees it (4D's `event.request`).
#[derive(Clone, Debug)]
pub struct Request {
    /// Headers of the GET request, names as sent (`headers.Host`), repeats kept (A18).
    pub headers: Pairs,
    /// Query parameters, percent-decoded, `+` as space, repeats kept, `key` alone gives `""`.
    pub query: Pairs,
    /// The request-target exactly as in the request line, e.g. `/status?name=ryan`.
    pub url: String,
    /// The client's IP address (IPv4-mapped IPv6 shown as IPv4), without port.
    pub remote_address: IpAddr,
    /// The client's TCP port (not in 4D's object; handy for logs).
    pub remote_port: u16,
    /// The web session of the request, when the web server runs with `scalable_session`
    /// (SPEC Part A point 4); `None` otherwise.
    pub session: Option<Session>,
}

impl Request {
    /// The path part of `url` (before `?`), undecoded.
    pub fn path(&self) -> &str {
        self.url.split(['?', '#']).next().unwrap_or("")
    }

    /// 4D's `request` object: `{headers, query, url, remoteAddress}` plus
    /// `session: {id, storage}` when sessions are on.
    pub fn to_json(&self) -> Value {
        let mut obj = serde_json::json!({
            "headers": self.headers.to_json(),
            "query": self.query.to_json(),
            "url": self.url,
            "remoteAddress": self.remote_address.to_string(),
        });
        if let (Some(s), Some(map)) = (&self.session, obj.as_object_mut()) {
            map.insert(
                "session".into(),
                serde_json::json!({ "id": s.id(), "storage": s.storage() }),
            );
        }
        obj
    }
}

/// `on_connection`'s event: `{type: "connection", request}`.
#[derive(Debug)]
pub struct ConnectionEvent {
    /// The upgrade request.
    pub request: Request,
    /// Subprotocols the client offered in `Sec-WebSocket-Protocol`, in its order.
    pub protocols: Vec<String>,
    chosen: Cell<Option<usize>>,
}

impl ConnectionEvent {
    /// 4D's `type`.
    pub const TYPE: &'static str = "connection";

    /// Builds the event (the server does this; public for handler unit tests).
    pub fn new(request: Request, protocols: Vec<String>) -> Self {
        ConnectionEvent {
            request,
            protocols,
            chosen: Cell::new(None),
        }
    }

    /// Picks the subprotocol to answer with (an extension of 4D's API, SPEC Part A point 3).
    /// Only one the client offered can be picked (compared exactly); returns false otherwise.
    /// Without a call, no `Sec-WebSocket-Protocol` is sent. Ignored if the connection is refused.
    pub fn select_protocol(&self, name: &str) -> bool {
        match self.protocols.iter().position(|p| p == name) {
            Some(i) => {
                self.chosen.set(Some(i));
                true
            }
            None => false,
        }
    }

    /// The subprotocol picked so far, if any.
    pub fn selected_protocol(&self) -> Option<&str> {
        self.chosen
            .get()
            .and_then(|i| self.protocols.get(i))
            .map(String::as_str)
    }

    /// `{type: "connection", request: {...}}`.
    pub fn to_json(&self) -> Value {
        serde_json::json!({ "type": Self::TYPE, "request": self.request.to_json() })
    }
}

/// `on_open`'s event, server or connection: `{type: "open"}`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpenEvent;

impl OpenEvent {
    /// 4D's `type`.
    pub const TYPE: &'static str = "open";

    /// `{type: "open"}`.
    pub fn to_json(&self) -> Value {
        serde_json::json!({ "type": Self::TYPE })
    }
}

/// The connection's `on_message` event: `{type: "message", data}`.
#[derive(Clone, Debug, PartialEq)]
pub struct MessageEvent {
    /// The message, shaped by the server's [`DataType`](crate::DataType).
    pub data: Data,
}

impl MessageEvent {
    /// 4D's `type`.
    pub const TYPE: &'static str = "message";

    /// `{type: "message", data}` (a blob shows as `{"blob": <length>}`).
    pub fn to_json(&self) -> Value {
        serde_json::json!({ "type": Self::TYPE, "data": self.data.to_json() })
    }
}

/// The connection's `on_terminate` event: `{type: "terminate", code, reason}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TerminateEvent {
    /// The close code: the peer's, 1005 when its close frame had none, 1006 when the
    /// connection ended without a close frame or with an error (SPEC §3.1, A12).
    pub code: u16,
    /// The peer's reason; `None` when it gave none (4D: undefined).
    pub reason: Option<String>,
}

impl TerminateEvent {
    /// 4D's `type`.
    pub const TYPE: &'static str = "terminate";

    /// `{type: "terminate", code, reason}`, `reason` left out when absent.
    pub fn to_json(&self) -> Value {
        let mut v = serde_json::json!({ "type": Self::TYPE, "code": self.code });
        if let (Some(r), Some(map)) = (&self.reason, v.as_object_mut()) {
            map.insert("reason".into(), Value::String(r.clone()));
        }
        v
    }
}

/// The server's `on_terminate` event: `{type: "terminate"}`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerTerminateEvent;

impl ServerTerminateEvent {
    /// 4D's `type`.
    pub const TYPE: &'static str = "terminate";

    /// `{type: "terminate"}`.
    pub fn to_json(&self) -> Value {
        serde_json::json!({ "type": Self::TYPE })
    }
}

/// `on_error`'s event, server or connection: `{type: "error", errors}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorEvent {
    /// The error stack, most relevant last (at least one item).
    pub errors: Vec<ErrorInfo>,
}

impl ErrorEvent {
    /// 4D's `type`.
    pub const TYPE: &'static str = "error";

    /// An event with one error.
    pub fn single(info: ErrorInfo) -> Self {
        ErrorEvent { errors: vec![info] }
    }

    /// Early 4D's `statusText` (A22): the message of the last error.
    pub fn status_text(&self) -> &str {
        self.errors.last().map(|e| e.message.as_str()).unwrap_or("")
    }

    /// `{type: "error", errors: [...]}` plus A22's compatibility fields `statusText` and
    /// `status: {errors}` that older 4D code reads.
    pub fn to_json(&self) -> Value {
        let errors: Vec<Value> = self.errors.iter().map(ErrorInfo::to_json).collect();
        serde_json::json!({
            "type": Self::TYPE,
            "errors": errors,
            "statusText": self.status_text(),
            "status": { "errors": errors },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn request() -> Request {
        Request {
            headers: Pairs::new(vec![
                ("Host".into(), "a".into()),
                ("X-A".into(), "1".into()),
                ("X-A".into(), "2".into()),
            ]),
            query: Pairs::new(vec![("name".into(), "ryan".into())]),
            url: "/status?name=ryan".into(),
            remote_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            remote_port: 5000,
            session: None,
        }
    }

    #[test]
    fn request_json_has_exactly_the_4d_fields() {
        let v = request().to_json();
        let keys: Vec<&String> = v
            .as_object()
            .map(|m| m.keys().collect())
            .unwrap_or_default();
        assert_eq!(keys, ["headers", "query", "remoteAddress", "url"]);
        assert_eq!(v["headers"]["Host"], "a");
        assert_eq!(v["headers"]["X-A"], serde_json::json!(["1", "2"]));
        assert_eq!(v["query"]["name"], "ryan");
        assert_eq!(v["url"], "/status?name=ryan");
        assert_eq!(v["remoteAddress"], "127.0.0.1");
    }

    #[test]
    fn header_lookup_ignores_case() {
        let r = request();
        assert_eq!(r.headers.get("host"), Some("a"));
        assert_eq!(r.headers.get_all("x-a").collect::<Vec<_>>(), ["1", "2"]);
        assert_eq!(r.path(), "/status");
    }

    #[test]
    fn only_offered_protocols_can_be_selected() {
        let e = ConnectionEvent::new(request(), vec!["chat".into(), "v2".into()]);
        assert!(!e.select_protocol("other"));
        assert_eq!(e.selected_protocol(), None);
        assert!(e.select_protocol("v2"));
        assert_eq!(e.selected_protocol(), Some("v2"));
        assert_eq!(e.to_json()["type"], "connection");
    }

    #[test]
    fn terminate_event_omits_absent_reason() {
        let t = TerminateEvent {
            code: 1005,
            reason: None,
        };
        assert_eq!(
            t.to_json(),
            serde_json::json!({"type": "terminate", "code": 1005})
        );
        let t = TerminateEvent {
            code: 1000,
            reason: Some("bye".into()),
        };
        assert_eq!(t.to_json()["reason"], "bye");
    }

    #[test]
    fn error_event_carries_compat_fields() {
        let e = ErrorEvent::single(ErrorInfo::new(1001, "going away", "HTTP"));
        let v = e.to_json();
        assert_eq!(v["type"], "error");
        assert_eq!(v["errors"][0]["errCode"], 1001);
        assert_eq!(v["errors"][0]["componentSignature"], "HTTP");
        assert_eq!(v["statusText"], "going away");
        assert_eq!(v["status"]["errors"], v["errors"]);
    }
}
