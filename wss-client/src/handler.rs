//! [`ClientHandler`]: 4D's client connectionHandler callbacks.

use wss_server::{ErrorEvent, MessageEvent, OpenEvent, TerminateEvent};

use crate::socket::WebSocket;

/// The callbacks of one [`WebSocket`] (4D's `connectionHandler` of `4D.WebSocket.new`).
/// Only `on_message` is required; the events are the server's types, with the same fields
/// and `to_json()` renderings.
///
/// They run on the WebSocket's own worker thread, one at a time, in this order (SPEC §5.2):
/// `on_open` once (when the handshake succeeded), then `on_message` in wire order, then at
/// most one `on_error`, then `on_terminate`, which always runs, once, last: a connection
/// that could not be made gets `on_error` with why, then `on_terminate` with 1006. A panic
/// in a callback is caught and reported to `on_error` (the connection stays as it was); a
/// panic in `on_error` is only logged.
pub trait ClientHandler: Send + 'static {
    /// A message arrived, shaped by [`ClientOptions::data_type`](crate::ClientOptions).
    fn on_message(&mut self, ws: &WebSocket, event: &MessageEvent);

    /// What the worker calls for a message: by default it lends the event to
    /// [`on_message`](Self::on_message). Override it to keep or forward the data without a
    /// copy.
    fn on_message_owned(&mut self, ws: &WebSocket, event: MessageEvent) {
        self.on_message(ws, &event)
    }

    /// The handshake succeeded: `ws.status()` is `Connected` and `send` works.
    fn on_open(&mut self, ws: &WebSocket, event: &OpenEvent) {
        let _ = (ws, event);
    }

    /// The WebSocket is over: `code` is the server's close code, 1005 when its close frame
    /// had none, 1006 when no close frame was exchanged or an error ended it; `reason` is the
    /// server's text, `None` when it gave none. `ws.status()` is `Closed`.
    fn on_terminate(&mut self, ws: &WebSocket, event: &TerminateEvent) {
        let _ = (ws, event);
    }

    /// Something went wrong: the connection could not be made (why, with the HTTP status
    /// when the server refused), it ended abnormally (the close code as `errCode`), a
    /// message was not valid JSON with `DataType::Object` (the connection stays open), or a
    /// callback panicked.
    fn on_error(&mut self, ws: &WebSocket, event: &ErrorEvent) {
        let _ = (ws, event);
    }
}

impl ClientHandler for Box<dyn ClientHandler> {
    fn on_message(&mut self, ws: &WebSocket, event: &MessageEvent) {
        (**self).on_message(ws, event)
    }
    fn on_message_owned(&mut self, ws: &WebSocket, event: MessageEvent) {
        (**self).on_message_owned(ws, event)
    }
    fn on_open(&mut self, ws: &WebSocket, event: &OpenEvent) {
        (**self).on_open(ws, event)
    }
    fn on_terminate(&mut self, ws: &WebSocket, event: &TerminateEvent) {
        (**self).on_terminate(ws, event)
    }
    fn on_error(&mut self, ws: &WebSocket, event: &ErrorEvent) {
        (**self).on_error(ws, event)
    }
}
