//! Whole data messages, as delivered to and sent by the application.

/// A complete text or binary message, reassembled from its frames.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Message {
    /// A text message: validated UTF-8.
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
}

impl Message {
    /// The payload bytes (the UTF-8 encoding for text).
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Message::Text(s) => s.as_bytes(),
            Message::Binary(b) => b,
        }
    }

    /// Payload length in bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// True for a message with no payload.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True for [`Message::Text`].
    pub fn is_text(&self) -> bool {
        matches!(self, Message::Text(_))
    }

    /// The payload, without copying.
    pub fn into_bytes(self) -> Vec<u8> {
        match self {
            Message::Text(s) => s.into_bytes(),
            Message::Binary(b) => b,
        }
    }
}

impl From<String> for Message {
    fn from(s: String) -> Self {
        Message::Text(s)
    }
}

impl From<&str> for Message {
    fn from(s: &str) -> Self {
        Message::Text(s.to_owned())
    }
}

impl From<Vec<u8>> for Message {
    fn from(b: Vec<u8>) -> Self {
        Message::Binary(b)
    }
}

/// A whole data message that borrows its payload instead of owning it, as
/// [`Connection::receive_in_place`](crate::Connection::receive_in_place) hands it over: the
/// bytes lie in the caller's read buffer (unmasked there), or, for a message that was
/// fragmented, compressed or split across reads, in a reassembly buffer the connection reuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageRef<'a> {
    /// A text message: validated UTF-8.
    Text(&'a str),
    /// A binary message.
    Binary(&'a [u8]),
}

impl<'a> MessageRef<'a> {
    /// The payload bytes (the UTF-8 encoding for text).
    pub fn as_bytes(&self) -> &'a [u8] {
        match *self {
            MessageRef::Text(s) => s.as_bytes(),
            MessageRef::Binary(b) => b,
        }
    }

    /// Payload length in bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// True for a message with no payload.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True for [`MessageRef::Text`].
    pub fn is_text(&self) -> bool {
        matches!(self, MessageRef::Text(_))
    }

    /// An owned copy, for a message that must outlive the buffer it lies in.
    pub fn to_message(&self) -> Message {
        match *self {
            MessageRef::Text(s) => Message::Text(s.to_owned()),
            MessageRef::Binary(b) => Message::Binary(b.to_vec()),
        }
    }
}

impl<'a> From<&'a Message> for MessageRef<'a> {
    fn from(m: &'a Message) -> Self {
        match m {
            Message::Text(s) => MessageRef::Text(s),
            Message::Binary(b) => MessageRef::Binary(b),
        }
    }
}
