//! What a message carries: [`DataType`] (the server's `dataType` option) and [`Data`].

use std::fmt;
use std::str::FromStr;

use wss_proto::Message;

use crate::error::{codes, ErrorInfo, ServerError};

/// How received messages are handed to `on_message` (4D's `dataType` option).
///
/// Sending never depends on it: [`WebSocketConnection::send`](crate::WebSocketConnection::send)
/// goes by the type of its argument (SPEC A4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DataType {
    /// Text frames arrive as [`Data::Text`], binary frames as [`Data::Blob`], unchanged.
    #[default]
    Text,
    /// Every message arrives as [`Data::Blob`] (text frames as their UTF-8 bytes).
    Blob,
    /// Text frames and UTF-8 binary frames are parsed as JSON into [`Data::Object`]; a payload
    /// that is not JSON goes to the connection's `on_error` (errCode 1007) and the connection
    /// stays open (SPEC A5).
    Object,
}

impl DataType {
    /// What a received message becomes under this data type (SPEC Part A point 2): text
    /// stays text and binary stays bytes under `Text`; everything is bytes under `Blob`;
    /// under `Object` the payload is parsed as JSON, and a payload that is not UTF-8 JSON is
    /// an [`ErrorInfo`] with errCode 1007 and componentSignature `"JSON"` (A5). The server's
    /// worker and the client both decode received messages with it.
    ///
    /// ```
    /// use wss_proto::Message;
    /// use wss_server::{Data, DataType};
    ///
    /// let data = DataType::Object.decode(Message::Text(r#"{"a":1}"#.into())).unwrap();
    /// assert_eq!(data, Data::Object(serde_json::json!({"a": 1})));
    /// assert_eq!(DataType::Object.decode(Message::Text("{".into())).unwrap_err().err_code, 1007);
    /// ```
    pub fn decode(self, message: Message) -> Result<Data, ErrorInfo> {
        match (self, message) {
            (DataType::Text, Message::Text(t)) => Ok(Data::Text(t)),
            (DataType::Text | DataType::Blob, Message::Binary(b)) => Ok(Data::Blob(b)),
            (DataType::Blob, Message::Text(t)) => Ok(Data::Blob(t.into_bytes())),
            (DataType::Object, Message::Text(t)) => parse_json(t.as_bytes()),
            (DataType::Object, Message::Binary(b)) => parse_json(&b),
        }
    }

    /// The 4D spelling: `"text"`, `"blob"` or `"object"`.
    pub fn as_str(self) -> &'static str {
        match self {
            DataType::Text => "text",
            DataType::Blob => "blob",
            DataType::Object => "object",
        }
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DataType {
    type Err = ServerError;

    /// Accepts `text`, `blob` and `object` in any case (SPEC A4).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("text") {
            Ok(DataType::Text)
        } else if s.eq_ignore_ascii_case("blob") {
            Ok(DataType::Blob)
        } else if s.eq_ignore_ascii_case("object") {
            Ok(DataType::Object)
        } else {
            Err(ServerError::InvalidDataType(s.to_owned()))
        }
    }
}

/// A message's content, received (`MessageEvent::data`) or to send (`send`, `broadcast`).
///
/// On send the variant picks the frame: `Text` and `Object` go as text frames (`Object` as
/// compact JSON, like 4D's `JSON Stringify`), `Blob` as a binary frame.
#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    /// UTF-8 text.
    Text(String),
    /// Raw bytes (4D's Blob).
    Blob(Vec<u8>),
    /// A JSON value (4D's Object; arrays and scalars are kept as parsed).
    Object(serde_json::Value),
}

impl Data {
    /// The text, if this is `Data::Text`.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Data::Text(t) => Some(t),
            _ => None,
        }
    }

    /// The bytes, if this is `Data::Blob`.
    pub fn as_blob(&self) -> Option<&[u8]> {
        match self {
            Data::Blob(b) => Some(b),
            _ => None,
        }
    }

    /// The JSON value, if this is `Data::Object`.
    pub fn as_object(&self) -> Option<&serde_json::Value> {
        match self {
            Data::Object(v) => Some(v),
            _ => None,
        }
    }

    /// The payload length in bytes once on the wire (JSON serialised compactly).
    pub fn wire_len(&self) -> usize {
        match self {
            Data::Text(t) => t.len(),
            Data::Blob(b) => b.len(),
            Data::Object(v) => v.to_string().len(),
        }
    }

    /// A JSON rendering for logs and event dumps: text as a string, a blob as
    /// `{"blob": <byte count>}`, an object as itself.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Data::Text(t) => serde_json::Value::String(t.clone()),
            Data::Blob(b) => serde_json::json!({ "blob": b.len() }),
            Data::Object(v) => v.clone(),
        }
    }
}

impl From<String> for Data {
    fn from(v: String) -> Self {
        Data::Text(v)
    }
}

impl From<&str> for Data {
    fn from(v: &str) -> Self {
        Data::Text(v.to_owned())
    }
}

impl From<&String> for Data {
    fn from(v: &String) -> Self {
        Data::Text(v.clone())
    }
}

impl From<Vec<u8>> for Data {
    fn from(v: Vec<u8>) -> Self {
        Data::Blob(v)
    }
}

impl From<&[u8]> for Data {
    fn from(v: &[u8]) -> Self {
        Data::Blob(v.to_vec())
    }
}

impl From<serde_json::Value> for Data {
    fn from(v: serde_json::Value) -> Self {
        Data::Object(v)
    }
}

impl From<&Data> for Data {
    fn from(v: &Data) -> Self {
        v.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_type_parses_any_case_and_rejects_others() {
        assert_eq!("TEXT".parse::<DataType>().ok(), Some(DataType::Text));
        assert_eq!("Blob".parse::<DataType>().ok(), Some(DataType::Blob));
        assert_eq!("object".parse::<DataType>().ok(), Some(DataType::Object));
        assert!(matches!(
            "json".parse::<DataType>(),
            Err(ServerError::InvalidDataType(s)) if s == "json"
        ));
    }

    #[test]
    fn argument_type_decides_the_variant() {
        assert_eq!(Data::from("a"), Data::Text("a".into()));
        assert_eq!(Data::from(vec![1u8]), Data::Blob(vec![1]));
        assert_eq!(
            Data::from(serde_json::json!({"a": 1})).wire_len(),
            "{\"a\":1}".len()
        );
    }
}

fn parse_json(bytes: &[u8]) -> Result<Data, ErrorInfo> {
    let json_error = |detail: String| {
        ErrorInfo::new(
            codes::INVALID_JSON,
            format!("Invalid JSON payload: {detail}"),
            "JSON",
        )
    };
    let text = std::str::from_utf8(bytes).map_err(|e| json_error(e.to_string()))?;
    serde_json::from_str(text)
        .map(Data::Object)
        .map_err(|e| json_error(e.to_string()))
}

#[cfg(test)]
mod decode_tests {
    use super::*;

    #[test]
    fn text_type_keeps_binary_frames_as_blobs() {
        assert_eq!(
            DataType::Text.decode(Message::Binary(vec![0xff, 0])),
            Ok(Data::Blob(vec![0xff, 0]))
        );
        assert_eq!(
            DataType::Text.decode(Message::Text("é".into())),
            Ok(Data::Text("é".into()))
        );
        assert_eq!(
            DataType::Blob.decode(Message::Text("a".into())),
            Ok(Data::Blob(b"a".to_vec()))
        );
    }

    #[test]
    fn object_type_parses_json_and_reports_bad_json() {
        assert_eq!(
            DataType::Object.decode(Message::Text("{\"a\":1}".into())),
            Ok(Data::Object(serde_json::json!({"a": 1})))
        );
        assert_eq!(
            DataType::Object.decode(Message::Binary(b"[1,2]".to_vec())),
            Ok(Data::Object(serde_json::json!([1, 2])))
        );
        let err = DataType::Object.decode(Message::Text("{oops".into())).err();
        let err = err.expect("bad JSON is an error");
        assert_eq!(err.err_code, 1007);
        assert_eq!(err.component_signature, "JSON");
        assert!(DataType::Object
            .decode(Message::Binary(vec![0xff]))
            .is_err());
    }
}
