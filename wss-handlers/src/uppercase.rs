//! [`Uppercase`]: the first example of 4D's WebSocketServer page, an echo in capitals.

use serde_json::Value;
use wss_server::{
    ConnectionEvent, ConnectionHandler, Data, MessageEvent, ServerHandler, WebSocketConnection,
    WebSocketServer,
};

/// Sends every message back upper-cased with Unicode's full rules (`"straße"` becomes
/// `"STRASSE"`), as the seed's `$ws.send(Uppercase($message.data))`.
///
/// Text comes back as text. A binary message that is UTF-8 comes back upper-cased as binary;
/// other bytes come back unchanged. With [`DataType::Object`](wss_server::DataType::Object),
/// every string inside the JSON value is upper-cased (keys are left alone).
///
/// ```no_run
/// use wss_handlers::Uppercase;
/// use wss_server::{ServerOptions, WebServer, WebServerOptions, WebSocketServer};
///
/// let web = WebServer::start(WebServerOptions::default())?;
/// let wss = WebSocketServer::new(&web, Uppercase, ServerOptions::default())?;
/// # drop(wss);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct Uppercase;

/// The per-connection half of [`Uppercase`].
#[derive(Debug, Default, Clone, Copy)]
pub struct UppercaseConnection;

impl ServerHandler for Uppercase {
    type Connection = UppercaseConnection;

    fn on_connection(
        &mut self,
        _: &WebSocketServer,
        _: &ConnectionEvent,
    ) -> Option<UppercaseConnection> {
        Some(UppercaseConnection)
    }
}

/// `data` upper-cased as [`Uppercase`] describes.
pub fn uppercase_data(data: &Data) -> Data {
    match data {
        Data::Text(t) => Data::Text(t.to_uppercase()),
        Data::Blob(b) => match std::str::from_utf8(b) {
            Ok(t) => Data::Blob(t.to_uppercase().into_bytes()),
            Err(_) => Data::Blob(b.clone()),
        },
        Data::Object(v) => Data::Object(uppercase_json(v)),
    }
}

fn uppercase_json(value: &Value) -> Value {
    match value {
        Value::String(s) => Value::String(s.to_uppercase()),
        Value::Array(items) => Value::Array(items.iter().map(uppercase_json).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), uppercase_json(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

impl ConnectionHandler for UppercaseConnection {
    fn on_message(&mut self, ws: &WebSocketConnection, event: &MessageEvent) {
        let _ = ws.send(uppercase_data(&event.data));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_uses_full_unicode_rules() {
        assert_eq!(
            uppercase_data(&Data::Text("straße ǆ ﬁ ω".into())),
            Data::Text("STRASSE Ǆ FI Ω".into())
        );
    }

    #[test]
    fn binary_stays_binary() {
        assert_eq!(
            uppercase_data(&Data::Blob(b"abc".to_vec())),
            Data::Blob(b"ABC".to_vec())
        );
        let raw = vec![0xff, b'a', 0x00];
        assert_eq!(uppercase_data(&Data::Blob(raw.clone())), Data::Blob(raw));
    }

    #[test]
    fn json_strings_change_and_keys_do_not() {
        let v = json!({"msg": "hi", "list": ["a", 1, null], "n": 2});
        assert_eq!(
            uppercase_data(&Data::Object(v)),
            Data::Object(json!({"msg": "HI", "list": ["A", 1, null], "n": 2}))
        );
    }
}
