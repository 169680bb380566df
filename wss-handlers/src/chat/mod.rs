//! [`Chat`]: the seed's chat example as a reusable handler, and the JSON protocol the built-in
//! chat page speaks.
//!
//! # Protocol
//!
//! Every frame is a JSON object with a `type`.
//!
//! Page to server:
//! - `{"type":"message","text":"hi"}`. `{"message":"hi"}` (4D's HDI page) and a plain,
//!   non-JSON text frame are accepted too, so a terminal client can chat.
//!
//! Server to page:
//! - `{"type":"error","text":"..."}` to the sender alone, when a frame could not be read as a
//!   message (under [`DataType::Object`](wss_server::DataType::Object), a frame that is not
//!   JSON); the frame is also reported to `on_error` as the server's data type requires.
//! - `{"type":"welcome","name":"Ada","text":"Welcome to the chat!","users":[...],"count":n}` to
//!   the newcomer only; `name` is the name the others see (cleaned, made unique).
//! - `{"type":"joined","name":"Ada","users":[...],"count":n}` to everyone else.
//! - `{"type":"message","name":"Ada","text":"hi"}` to everyone but the sender.
//! - `{"type":"left","name":"Ada","users":[...],"count":n}` to those who remain.
//!
//! `users` lists the names in joining order, at most [`MAX_LISTED_USERS`] of them; `count` is
//! the real number.
//!
//! # Several nodes
//!
//! The room is the server's presence ([`WebSocketServer::presence`]): each user is made present
//! under their name ([`WebSocketConnection::set_user`]), and rosters list the members of every
//! node sharing the server's broker (grouped by node, each node's users in joining order).
//! A name used on any node counts as taken. Notices and messages go out with
//! [`WebSocketServer::broadcast`], which reaches every node. On one node (the default
//! in-process broker) this is exactly the single room described above.
//!
//! Across nodes, two limits follow from presence being shared through the broker: two users
//! joining on two nodes within the same few milliseconds may get the same name (neither node
//! has seen the other's presence yet), and the users of a node that dies without closing its
//! connections drop out of the rosters once its presence expires, without a `left` notice.

mod clean;
mod room;

pub use clean::{clean_name, clean_text, MAX_NAME_CHARS, MAX_TEXT_CHARS};
pub use room::MAX_LISTED_USERS;

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde_json::{json, Value};
use wss_server::{
    codes, ConnectionEvent, ConnectionHandler, Data, ErrorEvent, Member, MessageEvent, OpenEvent,
    ServerHandler, TerminateEvent, WebSocketConnection, WebSocketServer,
};

use room::Room;

/// Key of the chosen name in the web session's storage, so a page that reconnects without
/// `?name=` keeps its name.
pub const SESSION_NAME_KEY: &str = "chatName";

/// The default welcome text.
pub const DEFAULT_WELCOME: &str = "Welcome to the chat!";

/// A chat room, as in the seed: the newcomer gets a welcome, the others a "joined" notice;
/// each message goes to everyone but its sender; a leaving user is announced to those who
/// remain. Every notice and message is encoded once and handed to all receivers through
/// [`WebSocketServer::broadcast`].
///
/// A user's name comes from the `name` query parameter of the upgrade URL
/// (`ws://host/chat?name=Ada`), else from the web session (when the web server runs with
/// scalable sessions, a name given once is remembered), else it is `Guest N`. Names are
/// cleaned ([`clean_name`]) and made unique in the room (`Ada`, `Ada 2`, ...); message texts
/// are cleaned too ([`clean_text`]). Each user is present in the server's
/// [presence](WebSocketServer::presence) under their name, so with a shared broker (several
/// nodes) the room spans every node; see the [module docs](self#several-nodes). Run it with [`DataType::Object`](wss_server::DataType::Object)
/// (text mode works as well, and is what the `wss` binary uses: JSON frames and plain text both
/// arrive as messages). See the [module docs](self) for the JSON protocol.
///
/// ```no_run
/// use wss_handlers::Chat;
/// use wss_server::{DataType, ServerOptions, WebServer, WebServerOptions, WebSocketServer};
///
/// let web = WebServer::start(WebServerOptions::default().with_scalable_session(true))?;
/// let options = ServerOptions::default().with_path("/chat").with_data_type(DataType::Object);
/// let wss = WebSocketServer::new(&web, Chat::new().with_welcome("Hello!"), options)?;
/// # drop(wss);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Chat {
    room: Arc<Mutex<Room>>,
    welcome: String,
}

impl Default for Chat {
    fn default() -> Self {
        Chat::new()
    }
}

impl Chat {
    /// An empty room with the default welcome text.
    pub fn new() -> Chat {
        Chat {
            room: Arc::new(Mutex::new(Room::default())),
            welcome: DEFAULT_WELCOME.to_string(),
        }
    }

    /// Uses `text` as the welcome message.
    pub fn with_welcome(mut self, text: impl Into<String>) -> Chat {
        self.welcome = text.into();
        self
    }

    /// The names of this node's users, in joining order (the whole cluster's are in
    /// [`WebSocketServer::presence`]).
    pub fn users(&self) -> Vec<String> {
        lock(&self.room).names().map(str::to_string).collect()
    }
}

fn lock(room: &Mutex<Room>) -> MutexGuard<'_, Room> {
    // Callbacks run one at a time on the server's worker, so this lock is never contended;
    // it exists because the server and connection handlers are separate objects.
    room.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The name asked for by the request: `?name=`, else the session's remembered name.
fn requested_name(event: &ConnectionEvent) -> String {
    let req = &event.request;
    if let Some(name) = req.query.get_exact("name") {
        let cleaned = clean_name(name);
        if !cleaned.is_empty() {
            if let Some(session) = &req.session {
                session.update_storage(|storage| {
                    if let Some(map) = storage.as_object_mut() {
                        map.insert(SESSION_NAME_KEY.into(), Value::String(cleaned.clone()));
                    }
                });
            }
            return cleaned;
        }
    }
    req.session
        .as_ref()
        .and_then(|s| s.storage().get(SESSION_NAME_KEY)?.as_str().map(clean_name))
        .unwrap_or_default()
}

impl ServerHandler for Chat {
    type Connection = ChatConnection;

    fn on_connection(
        &mut self,
        _: &WebSocketServer,
        event: &ConnectionEvent,
    ) -> Option<ChatConnection> {
        Some(ChatConnection {
            room: self.room.clone(),
            welcome: self.welcome.clone(),
            wanted: requested_name(event),
            name: String::new(),
        })
    }
}

/// One user of a [`Chat`].
#[derive(Debug)]
pub struct ChatConnection {
    room: Arc<Mutex<Room>>,
    welcome: String,
    wanted: String,
    name: String,
}

impl ChatConnection {
    /// The name the others see (empty until the connection is open).
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// The text of a received message, whatever form the client used; `None` to ignore it.
fn message_text(data: &Data) -> Option<String> {
    let from_json = |v: &Value| -> Option<String> {
        let obj = v.as_object()?;
        match obj.get("type").and_then(Value::as_str) {
            None | Some("message") => {}
            Some(_) => return None,
        }
        obj.get("text")
            .or_else(|| obj.get("message"))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let raw = match data {
        Data::Object(v) => from_json(v)?,
        Data::Text(t) => match serde_json::from_str::<Value>(t) {
            Ok(v) if v.is_object() => from_json(&v)?,
            _ => t.clone(),
        },
        Data::Blob(b) => String::from_utf8(b.clone()).ok()?,
    };
    let text = clean_text(&raw);
    (!text.is_empty()).then_some(text)
}

/// A notice with the roster: `members` sorted as [`WebSocketServer::presence`] sorts them
/// (by node, then connection id, which is joining order on one node).
fn roster(members: &[Member], kind: &str, name: &str) -> Value {
    let users: Vec<&str> = members
        .iter()
        .take(MAX_LISTED_USERS)
        .map(|m| m.user.as_str())
        .collect();
    json!({ "type": kind, "name": name, "users": users, "count": members.len() })
}

impl ConnectionHandler for ChatConnection {
    fn on_open(&mut self, ws: &WebSocketConnection, _: &OpenEvent) {
        let wss = ws.wss();
        let node = wss.node_id().to_owned();
        // One presence read per join: it may ask the broker's backend (a Redis round trip).
        let mut members = wss.presence(None).members;
        let elsewhere: HashSet<String> = members
            .iter()
            .filter(|m| m.node != node)
            .map(|m| m.user.to_lowercase())
            .collect();
        self.name = lock(&self.room).join(ws.id(), &self.wanted, &elsewhere);
        // Cannot fail on an open connection with a cleaned, non-empty name (at most 32
        // characters, far below the server's limit); if it still does, this user is only
        // missing from the other nodes' rosters.
        if let Err(e) = ws.set_user(Some(&self.name)) {
            log::debug!("chat: connection {} not made present: {e}", ws.id());
        }
        let me = Member {
            node,
            connection: ws.id(),
            user: self.name.clone(),
        };
        if let Err(at) = members.binary_search(&me) {
            members.insert(at, me);
        }
        let mut welcome = roster(&members, "welcome", &self.name);
        if let Some(map) = welcome.as_object_mut() {
            map.insert("text".into(), Value::String(self.welcome.clone()));
        }
        let _ = ws.send(welcome);
        wss.broadcast(roster(&members, "joined", &self.name), Some(ws.id()));
    }

    fn on_message(&mut self, ws: &WebSocketConnection, event: &MessageEvent) {
        let Some(text) = message_text(&event.data) else {
            return;
        };
        let message = json!({ "type": "message", "name": self.name, "text": text });
        ws.wss().broadcast(message, Some(ws.id()));
    }

    /// A frame the server could not deliver (with [`DataType::Object`](wss_server::DataType::Object),
    /// one that is not JSON): the sender is told, instead of seeing nothing happen.
    fn on_error(&mut self, ws: &WebSocketConnection, event: &ErrorEvent) {
        if let Some(bad) = event
            .errors
            .iter()
            .find(|e| e.err_code == codes::INVALID_JSON && e.component_signature == "JSON")
        {
            let _ = ws.send(json!({
                "type": "error",
                "text": format!(
                    "message not sent: this chat expects JSON such as \
                     {{\"type\":\"message\",\"text\":\"hi\"}} ({})",
                    bad.message
                ),
            }));
        }
    }

    fn on_terminate(&mut self, ws: &WebSocketConnection, _: &TerminateEvent) {
        if !lock(&self.room).leave(ws.id()) {
            return;
        }
        // The server took this connection out of its presence before calling us.
        let wss = ws.wss();
        let members = wss.presence(None).members;
        wss.broadcast(roster(&members, "left", &self.name), Some(ws.id()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_text_accepts_every_client_form() {
        let page = Data::Object(json!({"type": "message", "text": " hi "}));
        assert_eq!(message_text(&page).as_deref(), Some("hi"));
        let hdi = Data::Object(json!({"message": "hello"}));
        assert_eq!(message_text(&hdi).as_deref(), Some("hello"));
        let json_in_text = Data::Text(r#"{"type":"message","text":"x"}"#.into());
        assert_eq!(message_text(&json_in_text).as_deref(), Some("x"));
        let plain = Data::Text("plain words".into());
        assert_eq!(message_text(&plain).as_deref(), Some("plain words"));
        assert_eq!(
            message_text(&Data::Blob(b"bytes".to_vec())).as_deref(),
            Some("bytes")
        );
    }

    #[test]
    fn message_text_ignores_other_types_and_empty_texts() {
        assert_eq!(message_text(&Data::Object(json!({"type": "typing"}))), None);
        assert_eq!(message_text(&Data::Object(json!({"text": 5}))), None);
        assert_eq!(message_text(&Data::Object(json!(["x"]))), None);
        assert_eq!(message_text(&Data::Text(" \u{0} ".into())), None);
        assert_eq!(message_text(&Data::Blob(vec![0xff])), None);
    }

    #[test]
    fn roster_is_bounded_but_counts_everyone() {
        let members: Vec<Member> = (0..(MAX_LISTED_USERS as u64 + 5))
            .map(|id| Member {
                node: "a".into(),
                connection: id,
                user: format!("Guest {id}"),
            })
            .collect();
        let notice = roster(&members, "joined", "Guest 0");
        assert_eq!(
            notice["users"].as_array().map(Vec::len),
            Some(MAX_LISTED_USERS)
        );
        assert_eq!(notice["users"][0], "Guest 0");
        assert_eq!(notice["count"], MAX_LISTED_USERS + 5);
    }
}
