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
//! - `{"type":"welcome","name":"Ada","text":"Welcome to the chat!","users":[...],"count":n}` to
//!   the newcomer only; `name` is the name the others see (cleaned, made unique).
//! - `{"type":"joined","name":"Ada","users":[...],"count":n}` to everyone else.
//! - `{"type":"message","name":"Ada","text":"hi"}` to everyone but the sender.
//! - `{"type":"left","name":"Ada","users":[...],"count":n}` to those who remain.
//!
//! `users` lists the names in joining order, at most [`MAX_LISTED_USERS`] of them; `count` is
//! the real number.

mod clean;
mod room;

pub use clean::{clean_name, clean_text, MAX_NAME_CHARS, MAX_TEXT_CHARS};
pub use room::MAX_LISTED_USERS;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde_json::{json, Value};
use wss_server::{
    ConnectionEvent, ConnectionHandler, Data, MessageEvent, OpenEvent, ServerHandler,
    TerminateEvent, WebSocketConnection, WebSocketServer,
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
/// are cleaned too ([`clean_text`]). Run it with [`DataType::Object`](wss_server::DataType::Object)
/// (text mode works as well). See the [module docs](self) for the JSON protocol.
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

    /// The names in the room, in joining order.
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

fn roster(room: &Room, kind: &str, name: &str) -> Value {
    json!({ "type": kind, "name": name, "users": room.listed(), "count": room.len() })
}

impl ConnectionHandler for ChatConnection {
    fn on_open(&mut self, ws: &WebSocketConnection, _: &OpenEvent) {
        let (welcome, joined) = {
            let mut room = lock(&self.room);
            self.name = room.join(ws.id(), &self.wanted);
            let mut welcome = roster(&room, "welcome", &self.name);
            if let Some(map) = welcome.as_object_mut() {
                map.insert("text".into(), Value::String(self.welcome.clone()));
            }
            (welcome, roster(&room, "joined", &self.name))
        };
        let _ = ws.send(welcome);
        ws.wss().broadcast(joined, Some(ws.id()));
    }

    fn on_message(&mut self, ws: &WebSocketConnection, event: &MessageEvent) {
        let Some(text) = message_text(&event.data) else {
            return;
        };
        let message = json!({ "type": "message", "name": self.name, "text": text });
        ws.wss().broadcast(message, Some(ws.id()));
    }

    fn on_terminate(&mut self, ws: &WebSocketConnection, _: &TerminateEvent) {
        let left = {
            let mut room = lock(&self.room);
            if !room.leave(ws.id()) {
                return;
            }
            roster(&room, "left", &self.name)
        };
        ws.wss().broadcast(left, Some(ws.id()));
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
}
