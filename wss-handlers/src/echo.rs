//! [`Echo`]: every message goes back to its sender unchanged.

use wss_server::{
    ConnectionEvent, ConnectionHandler, MessageEvent, ServerHandler, WebSocketConnection,
    WebSocketServer,
};

/// Sends every message back to its sender as it came: text as text, binary as binary
/// (with [`DataType::Text`](wss_server::DataType::Text), the default), JSON as JSON.
///
/// ```no_run
/// use wss_handlers::Echo;
/// use wss_server::{ServerOptions, WebServer, WebServerOptions, WebSocketServer};
///
/// let web = WebServer::start(WebServerOptions::default().with_address("127.0.0.1", 0))?;
/// let wss = WebSocketServer::new(&web, Echo, ServerOptions::default().with_path("/echo"))?;
/// # drop(wss);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct Echo;

/// The per-connection half of [`Echo`].
#[derive(Debug, Default, Clone, Copy)]
pub struct EchoConnection;

impl ServerHandler for Echo {
    type Connection = EchoConnection;

    fn on_connection(
        &mut self,
        _: &WebSocketServer,
        _: &ConnectionEvent,
    ) -> Option<EchoConnection> {
        Some(EchoConnection)
    }
}

impl ConnectionHandler for EchoConnection {
    fn on_message(&mut self, ws: &WebSocketConnection, event: &MessageEvent) {
        // A peer that is already closing gets nothing; that is not an error worth reporting.
        let _ = ws.send(event.data.clone());
    }

    fn on_message_owned(&mut self, ws: &WebSocketConnection, event: MessageEvent) {
        // The message goes back as it came: no copy, a large payload is queued as it is.
        let _ = ws.send(event.data);
    }
}
